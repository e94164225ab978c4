"""Video files: reproducible encodes, joining clips without re-encoding, the reader."""

from __future__ import annotations

import pytest
import torch

from dreamjourney.io import video
from dreamjourney.io.video import concat_videos, read_video, write_video, x264_options


def clip(n: int, w: int = 48, h: int = 32, seed: int = 0) -> torch.Tensor:
    """A moving textured clip (T, 3, H, W): random texture panned sideways."""
    g = torch.Generator().manual_seed(seed)
    texture = torch.rand(3, h, w + n, generator=g)
    return torch.stack([texture[:, :, i : i + w] for i in range(n)])


def test_x264_is_held_to_avx2_only_on_avx512_cpus(monkeypatch):
    monkeypatch.setattr(video, "_host_has_avx512", lambda: True)
    assert x264_options(18) == {"crf": "18", "threads": "4", "x264-params": "asm=AVX2"}
    monkeypatch.setattr(video, "_host_has_avx512", lambda: False)
    # elsewhere x264 chooses: naming kernels the CPU lacks crashes it (illegal instruction)
    assert x264_options(23) == {"crf": "23", "threads": "4"}


def test_the_avx2_options_encode_and_change_no_pixel(tmp_path, monkeypatch):
    from llvmlite import binding

    if not binding.get_host_cpu_features().get("avx2"):
        pytest.skip("this CPU has no AVX2: asm=AVX2 would be an illegal instruction here")
    frames = clip(6)
    write_video(tmp_path / "auto.mp4", frames)
    monkeypatch.setattr(video, "_host_has_avx512", lambda: True)
    write_video(tmp_path / "avx2.mp4", frames)
    # x264's kernels are bit-exact with each other, so the stream is the same as with auto
    assert (tmp_path / "avx2.mp4").read_bytes() == (tmp_path / "auto.mp4").read_bytes()


def test_same_frames_same_bytes_in_one_process(tmp_path):
    frames = clip(20, 96, 64)
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        write_video(tmp_path / name, frames)
    data = {(tmp_path / n).read_bytes() for n in ("a.mp4", "b.mp4", "c.mp4")}
    assert len(data) == 1


def test_concat_holds_exactly_the_clips_frames(tmp_path):
    parts = [clip(5, seed=1), clip(1, seed=2), clip(7, seed=3)]  # 1 frame: an IDR alone
    for i, part in enumerate(parts):
        write_video(tmp_path / f"{i}.mp4", part, fps=12)
    sources = [tmp_path / f"{i}.mp4" for i in range(3)]
    assert concat_videos(tmp_path / "joined.mp4", sources) == 13
    joined, fps = read_video(tmp_path / "joined.mp4")
    decoded = torch.cat([read_video(s)[0] for s in sources])
    assert torch.equal(joined, decoded)
    assert fps == pytest.approx(12)
    # timestamps follow one another: 13 frames of 1/12 s
    import av

    with av.open(str(tmp_path / "joined.mp4")) as container:
        stream = container.streams.video[0]
        pts = sorted(f.pts for f in container.decode(stream))
        duration = float(stream.duration * stream.time_base)
    step = pts[1] - pts[0]
    assert pts == [pts[0] + k * step for k in range(13)]
    assert duration == pytest.approx(13 / 12, abs=1e-3)
    # joining again gives the same bytes
    concat_videos(tmp_path / "again.mp4", sources)
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "joined.mp4").read_bytes()


def test_concat_refuses_clips_of_another_size_and_keeps_the_old_file(tmp_path):
    write_video(tmp_path / "a.mp4", clip(3, 48, 32))
    write_video(tmp_path / "b.mp4", clip(3, 64, 32))
    (tmp_path / "out.mp4").write_bytes(b"old")
    with pytest.raises(ValueError, match=r"b\.mp4: its codec parameters"):
        concat_videos(tmp_path / "out.mp4", [tmp_path / "a.mp4", tmp_path / "b.mp4"])
    assert (tmp_path / "out.mp4").read_bytes() == b"old"
    assert not list(tmp_path.glob(".*tmp*"))
