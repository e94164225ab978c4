"""The journey pipeline and command end to end, the run directory, resume after SIGKILL."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamjourney.camera import Cameras
from dreamjourney.camera.formats import load_cameras, save_cameras
from dreamjourney.camera.trajectories import make_trajectory
from dreamjourney.errors import InputError
from dreamjourney.io.rundir import RunDir, RunInputs, SegmentRecord
from dreamjourney.io.video import read_video
from dreamjourney.pipelines.journey import (
    JourneyConfig,
    JourneyPipeline,
    default_size,
    fit_image,
    segment_seed,
)
from dreamjourney.scene import World
from helpers import run_main, small_journey_config

REPO = Path(__file__).resolve().parents[1]
W, H = 64, 48


def photo(path: Path, mode: str = "RGB", size: tuple[int, int] = (W, H)) -> Path:
    """A small synthetic landscape: sky, a red house, grass (no pure black anywhere)."""
    a = np.zeros((size[1], size[0], 3), np.uint8)
    a[:] = [70, 150, 50]
    a[: size[1] // 2] = [120, 170, 230]
    a[size[1] // 2 - 8 : size[1] // 2 + 4, 10:22] = [200, 50, 40]
    a[..., 1] += (np.arange(size[0]) % 7 * 3).astype(np.uint8)[None]
    im = Image.fromarray(a)
    if mode == "L":
        im = im.convert("L")
    elif mode == "RGBA":
        im = im.convert("RGBA")
        im.putalpha(200)
    elif mode == "I;16":
        im = Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257)
    im.save(path)
    return path


def cli_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src")}


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dreamjourney", "journey", *args]


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ----------------------------------------------------------------------------- end to end
@pytest.mark.parametrize(("preset", "frames"), [("offline", 3), ("tiny", 5)])
def test_end_to_end_outputs_agree(tmp_path, preset, frames):
    image = photo(tmp_path / "photo.png")
    pipe = JourneyPipeline.from_preset(preset)
    # sideways: every segment reveals new ground; Wan models take 4k+1 frames
    config = small_journey_config(trajectory="pan-right", frames_per_segment=frames)
    result = pipe(image, tmp_path / "run", config=config, num_segments=2, seed=3)
    run = result.run
    manifest = json.loads(run.manifest_path.read_text())
    assert [s["status"] for s in manifest["segments"]] == ["done"] * 2
    motion = config.motion_frames if pipe.backends.animator is not None else 0
    assert preset == "offline" or motion  # tiny exercises stage II

    frames, fps = read_video(run.video_path)
    # video.mp4 holds exactly the segments' frames: joined, not decoded and encoded again
    clips = [
        read_video(run.segment_dir(k) / name)[0]
        for k in range(2)
        for name in ("completed.mp4", "animated.mp4")
        if (run.segment_dir(k) / name).is_file()
    ]
    assert torch.equal(frames, torch.cat(clips))
    cameras = load_cameras(run.cameras_path)
    per_segment = config.frames_per_segment + motion
    assert frames.shape[0] == len(cameras) == result.num_frames == 2 * per_segment
    assert fps == pytest.approx(config.fps)
    # one clock: output frame n at (n + 1) / fps
    assert torch.allclose(cameras.times, (torch.arange(len(cameras)) + 1) / config.fps)

    # stage I cameras continue the preset from the last camera; stage II holds the last view
    start = load_cameras(run.cameras_path)[0]
    start_c2w = torch.eye(4)
    for k, seg in enumerate(manifest["segments"]):
        first = seg["first_frame"]
        seg_cams = cameras[first : first + per_segment]
        prev = cameras[first - 1] if k else start.with_times([0.0])
        if k == 0:
            prev = type(prev)(prev.K, start_c2w[None], W, H, torch.zeros(1))
        expected = make_trajectory(
            config.trajectory,
            config.frames_per_segment + 1,
            scene_scale=manifest["scene_scale"],
            width=W,
            height=H,
            fov_deg=config.fov_deg,
            start=prev,
            seed=segment_seed(3, k),
        )[1:]
        assert torch.allclose(seg_cams.c2w[: config.frames_per_segment], expected.c2w, atol=1e-5)
        still = seg_cams.c2w[config.frames_per_segment :]
        assert torch.equal(still, expected.c2w[-1:].expand_as(still))

    # every output frame is hole-free: hole pixels of the renders are filled, not background
    for k in range(2):
        folder = run.segment_dir(k)
        masks, _ = read_video(folder / "mask.mp4")
        done, _ = read_video(folder / "completed.mp4")
        holes = masks[:, 0] < 0.5
        assert holes.any()
        black = (done.amax(1) < 0.03) & holes
        assert black.sum() <= 0.01 * holes.sum()
        assert (folder / "animated.mp4").is_file() == bool(motion)
        assert (folder / "prompt.txt").read_text().startswith("completion: ")

    points = [s["world_points"] for s in manifest["segments"]]
    assert all(s["points_added"] > 0 for s in manifest["segments"])
    assert points == sorted(points) and points[-1] > points[0]
    assert run.ply_path.is_file() and run.contact_sheet_path.is_file()
    sheet = Image.open(run.contact_sheet_path)  # up to 12 frames, 4 a row, 4 px gaps
    rows = -(-min(12, len(cameras)) // 4)
    assert sheet.size == (4 * W + 5 * 4, rows * H + (rows + 1) * 4)
    assert run.trajectory_plot_path.is_file()


def test_trajectory_file_is_cut_into_segments(tmp_path):
    image = photo(tmp_path / "photo.png")
    c2w = torch.eye(4).repeat(7, 1, 1)
    c2w[:, 0, 3] = torch.linspace(0, 0.3, 7)  # a sideways dolly
    from dreamjourney.camera import Cameras

    path_cams = Cameras.create(c2w, width=W, height=H, fov_deg=55.0)
    save_cameras(path_cams, tmp_path / "path.json", format="native")
    pipe = JourneyPipeline.from_preset("offline")
    config = small_journey_config(
        trajectory=str(tmp_path / "path.json"), frames_per_segment=3, motion=False, path_scale=1.0
    )
    result = pipe(image, tmp_path / "run", config=config)
    cameras = load_cameras(result.run.cameras_path)
    assert (
        len(cameras) == 6 == result.num_frames
    )  # 2 segments of 3; the file's frame 0 is the photo
    assert torch.allclose(cameras.c2w, c2w[1:])
    assert torch.allclose(cameras.K, path_cams.K[1:])
    assert not (result.run.segment_dir(0) / "animated.mp4").exists()
    with pytest.raises(InputError, match="enough for 2 segments"):
        pipe(image, tmp_path / "run", config=config, extend=1)


def test_finished_run_is_reported_complete_and_extends(tmp_path):
    image = photo(tmp_path / "photo.png")
    pipe = JourneyPipeline.from_preset("offline")
    config = small_journey_config(frames_per_segment=2, motion=False)
    first = pipe(image, tmp_path / "run", config=config, num_segments=1)
    before = tree_hashes(first.run.root / "segments")
    again = pipe(image, tmp_path / "run", config=config)
    assert again.already_complete and again.segments_made == []
    assert again.num_frames == first.num_frames
    more = pipe(image, tmp_path / "run", config=config, extend=1)
    assert more.segments_made == [1] and more.num_frames == 2 * first.num_frames
    after = tree_hashes(first.run.root / "segments")
    assert {k: v for k, v in after.items() if k.startswith("0000")} == before


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16"])
def test_other_image_modes_are_handled(tmp_path, mode):
    image = photo(tmp_path / "photo.png", mode=mode)
    pipe = JourneyPipeline.from_preset("offline")
    result = pipe(
        image,
        tmp_path / "run",
        config=small_journey_config(frames_per_segment=2, motion=False),
        num_segments=1,
    )
    frames, _ = read_video(result.video)
    assert frames.shape == (2, 3, H, W)


def test_default_size_and_fit():
    assert default_size(4000, 3000) == (512, 384)
    assert default_size(64, 48) == (64, 48)
    assert default_size(9, 1000) == (8, 512)
    img = torch.rand(3, 300, 400)
    assert fit_image(img, 64, 64).shape == (3, 64, 64)
    # centre crop keeps the middle: a vertical stripe in the centre stays centred
    img = torch.zeros(3, 100, 300)
    img[:, :, 145:155] = 1
    out = fit_image(img, 50, 50)
    row = out[0, 25]
    centre = (row * (torch.arange(50) + 0.5)).sum() / row.sum()
    assert centre.item() == pytest.approx(25.0, abs=0.1)
    assert row[:20].max() < 0.01 and row[31:].max() < 0.01


def test_segment_seeds_are_distinct_and_stable():
    seeds = {segment_seed(0, k) for k in range(100)} | {segment_seed(1, k) for k in range(100)}
    assert len(seeds) == 200
    assert segment_seed(5, 7) == segment_seed(5, 7) < 2**63


# ----------------------------------------------------------------------------- run directory
def _inputs(sha="a" * 64) -> RunInputs:
    return RunInputs(image="x.png", image_sha256=sha, image_size=(4, 4))


def test_rundir_refuses_other_runs_and_files(tmp_path):
    RunDir.open(tmp_path / "run", inputs=_inputs(), config={"frames": 4}, seed=0, num_segments=2)
    same = RunDir.open(
        tmp_path / "run", inputs=_inputs(), config={"frames": 4}, seed=0, num_segments=2
    )
    assert not same.created
    with pytest.raises(InputError, match="different image"):
        RunDir.open(
            tmp_path / "run", inputs=_inputs("b" * 64), config={"frames": 4}, seed=0, num_segments=2
        )
    with pytest.raises(InputError, match=r"different config \(frames: 4 there, 5 now\)"):
        RunDir.open(
            tmp_path / "run", inputs=_inputs(), config={"frames": 5}, seed=0, num_segments=2
        )
    with pytest.raises(InputError, match="seed 0, not 1"):
        RunDir.open(
            tmp_path / "run", inputs=_inputs(), config={"frames": 4}, seed=1, num_segments=2
        )
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        RunDir.open(tmp_path / "file", inputs=_inputs(), config={}, seed=0, num_segments=1)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a run directory"):
        RunDir.open(tmp_path / "other", inputs=_inputs(), config={}, seed=0, num_segments=1)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{broken")
    with pytest.raises(InputError, match="cannot read the run manifest"):
        RunDir.open(tmp_path / "bad", inputs=_inputs(), config={}, seed=0, num_segments=1)


def test_segment_is_done_only_with_all_its_files(tmp_path):
    run = RunDir.open(tmp_path / "run", inputs=_inputs(), config={}, seed=0, num_segments=2)
    record = SegmentRecord(index=0, first_frame=0, stage1_frames=2)
    with pytest.raises(RuntimeError, match="missing files"):
        run.mark_done(record)
    folder = run.segment_dir(0)
    folder.mkdir(parents=True)
    for name in ("render.mp4", "mask.mp4", "completed.mp4", "prompt.txt", "cameras.json"):
        (folder / name).write_text("x")
    run.mark_done(record)
    assert run.resume_point() == 1
    reopened = RunDir.open(tmp_path / "run", inputs=_inputs(), config={}, seed=0, num_segments=2)
    assert reopened.manifest.done_segments == 1 and not reopened.manifest.complete
    (folder / "mask.mp4").unlink()  # a file lost after the fact: the segment is made again
    assert reopened.resume_point() == 0


# ----------------------------------------------------------------------------- CLI
def test_cli_bad_inputs_one_line_exit_2(tmp_path, monkeypatch, capsys):
    good = photo(tmp_path / "photo.png")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "truncated.png").write_bytes(good.read_bytes()[:60])
    Image.new("RGB", (1, 1)).save(tmp_path / "one.png")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "traj.json").write_text('{"format": "dreamjourney.cameras/1", "frames": []}')
    huge = Image.new("RGB", (9000, 8000))
    huge.save(tmp_path / "huge.png", compress_level=1)
    out = str(tmp_path / "run")
    cases = [
        ([str(tmp_path / "missing.png"), "--out", out], "no such image file"),
        ([str(tmp_path / "text.png"), "--out", out], "cannot read image"),
        ([str(tmp_path / "truncated.png"), "--out", out], "cannot read image"),
        ([str(tmp_path / "one.png"), "--out", out], "at least 8 pixels"),
        ([str(tmp_path / "huge.png"), "--out", out], "MP limit"),
        ([str(good), "--out", str(tmp_path / "afile")], "is a file"),
        ([str(good), "--out", out, "--preset", "nope"], "unknown preset"),
        ([str(good), "--out", out, "--trajectory", "nope"], "nope"),
        ([str(good), "--out", out, "--trajectory", str(tmp_path / "traj.json")], "traj.json"),
        ([str(good), "--out", out, "--size", "12by4"], "--size"),
        ([str(good), "--out", out, "--frames", "0"], "--frames"),
    ]
    for args, message in cases:
        code, _, stderr = run_main(monkeypatch, capsys, "journey", *args)
        assert code == 2, (args, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], stderr
    assert (tmp_path / "afile").read_text() == "x"
    assert not (tmp_path / "run").exists()


def test_cli_subprocess_error_has_no_traceback(tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = subprocess.run(
        cli_command(str(photo(tmp_path / "p.png")), "--out", str(tmp_path / "afile")),
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_sigkill_mid_segment_then_resume_gives_the_same_frames(tmp_path, monkeypatch, capsys):
    image = photo(tmp_path / "photo.png")
    args = ["--frames", "3", "--segments", "3", "--seed", "9", "-q"]
    args += ["--trajectory", "pan-right"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        cli_command(str(image), "--out", str(killed), *args),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    marker = killed / "segments" / "0001" / "render.mp4"
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    manifest = json.loads((killed / "manifest.json").read_text())
    assert [s["status"] for s in manifest["segments"]] == ["done"], "not killed mid-segment 1"
    finished = tree_hashes(killed / "segments" / "0000")

    code, _, err = run_main(monkeypatch, capsys, "journey", str(image), "--out", str(killed), *args)
    assert code == 2 and "--resume" in err
    # what a SIGKILL during an atomic write leaves behind; resuming clears it
    leftover = killed / "segments" / "0001" / ".completed.k1ll3d.tmp.mp4"
    leftover.write_bytes(b"partial")
    code, _, err = run_main(
        monkeypatch, capsys, "journey", str(image), "--out", str(killed), *args, "--resume"
    )
    assert code == 0, err
    whole = tmp_path / "whole"
    assert run_main(monkeypatch, capsys, "journey", str(image), "--out", str(whole), *args)[0] == 0

    assert tree_hashes(killed / "segments" / "0000") == finished
    assert not list(killed.rglob("*.tmp*"))
    a, _ = read_video(killed / "video.mp4")
    assert a.shape == (9, 3, H, W)
    assert (killed / "video.mp4").read_bytes() == (whole / "video.mp4").read_bytes()
    assert (killed / "cameras.json").read_bytes() == (whole / "cameras.json").read_bytes()
    assert sorted(p.name for p in (killed / "state").iterdir()) == ["world_0003.npz"]


def _wall_ahead(size: int) -> tuple[Cameras, World, JourneyPipeline]:
    """A `size`x`size` camera at the origin looking down +z, a world that is one wall 2 units
    ahead of it, and the offline preset's pipeline with a scene scale of 10."""
    camera = Cameras.create(torch.eye(4), width=size, height=size, fov_deg=60.0)
    world = World()
    world.add_frame(
        torch.rand(3, size, size), torch.full((size, size), 2.0), camera, new_only=False
    )
    pipe = JourneyPipeline.from_preset("offline")
    pipe._scene_scale = 10.0
    return camera, world, pipe


def test_forward_segments_never_enter_the_nearest_surface():
    # a world that is one wall 2 units ahead; the preset would fly 5 units per segment
    size = 48
    camera, world, pipe = _wall_ahead(size)
    config = JourneyConfig(trajectory="forward", frames_per_segment=8, width=size, height=size)
    start = camera.with_times([0.0])
    for index in range(3):
        cameras = pipe._segment_cameras(index, config, start, None, 0, world)
        ahead = cameras.centers[:, 2]
        # each segment goes at most half way to the wall it sees, so none reaches it
        assert (
            float(ahead.max())
            <= float(start.centers[0, 2]) + 0.5 * (2.0 - float(start.centers[0, 2])) + 1e-4
        )
        start = cameras[-1]
    assert float(start.centers[0, 2]) < 2.0


@pytest.mark.parametrize("trajectory", ["orbit", "arc-left", "pan-left"])
def test_paths_that_do_not_fly_ahead_keep_their_shape_beside_a_near_wall(trajectory):
    # the same wall: an orbit about the point at scene depth passes behind it, and stays an orbit
    size = 48
    camera, world, pipe = _wall_ahead(size)
    config = JourneyConfig(trajectory=trajectory, frames_per_segment=8, width=size, height=size)
    start = camera.with_times([0.0])
    cameras = pipe._segment_cameras(0, config, start, None, 0, world)
    preset = make_trajectory(trajectory, 9, scene_scale=10.0, start=start)[1:]
    assert torch.allclose(cameras.c2w, preset.c2w)


# ----------------------------------------------------------------------------- camera files
def test_a_camera_file_that_leaves_the_scene_warns(tmp_path):
    from dreamjourney.camera import Cameras
    from dreamjourney.errors import InputWarning

    image = photo(tmp_path / "photo.png")
    c2w = torch.eye(4).repeat(4, 1, 1)
    c2w[:, 2, 3] = torch.linspace(0, 3, 4)  # straight ahead, 1 unit a frame
    save_cameras(Cameras.create(c2w, width=W, height=H, fov_deg=55.0), tmp_path / "p.json")
    pipe = JourneyPipeline.from_preset("offline")
    config = small_journey_config(
        trajectory=str(tmp_path / "p.json"), frames_per_segment=3, motion=False
    )
    far = dataclasses.replace(config, path_scale=1000.0)
    with pytest.warns(InputWarning, match=r"3 of 3 rendered frames were >= 95% holes"):
        left = pipe(image, tmp_path / "far", config=far)
    assert left.blank_frames == 3
    assert left.run.manifest.segments[0].blank_frames == 3
    kept = pipe(image, tmp_path / "default", config=config)  # the default scale stays inside
    assert kept.blank_frames == 0 and "translations x" in (kept.path_fit or "")


def test_aligned_depth_is_clamped_to_a_plausible_range(tmp_path):
    """A depth estimate that puts the newly seen pixels 10,000x farther than the known ones
    never throws world points that far."""
    from dreamjourney.models.protocols import DepthResult
    from dreamjourney.scene import World

    class WildDepth:
        """Depth 1-2 growing down the rows (a sideways pan keeps it per row, so known pixels
        fit exactly), but 10,000 on the right edge after the photo."""

        calls = 0

        def estimate(self, image):
            self.calls += 1
            h, w = image.shape[-2:]
            depth = (1 + torch.arange(h) / h)[:, None].expand(h, w).clone()
            if self.calls > 1:
                depth[:, -12:] = 1e4  # the right edge, revealed by panning right
            return DepthResult(depth=depth, metric=False)

    pipe = JourneyPipeline.from_preset("offline")
    pipe.backends.depth = WildDepth()
    config = small_journey_config(trajectory="pan-right", frames_per_segment=3, motion=False)
    result = pipe(photo(tmp_path / "photo.png"), tmp_path / "run", config=config, num_segments=1)
    world = World.load(result.run.world_state_path(1))
    assert result.run.manifest.segments[0].points_added > 0
    # at most DEPTH_RANGE_FACTOR (4) x the farthest known depth (2) ahead of the cameras
    assert float(world.cloud.points[:, 2].max()) <= 4 * 2 * 1.01


def test_two_runs_in_one_process_write_the_same_bytes(tmp_path):
    """x264 must encode the same frames to the same bitstream every time (see x264_options)."""
    image = photo(tmp_path / "photo.png")
    pipe = JourneyPipeline.from_preset("offline")
    config = small_journey_config(frames_per_segment=4)
    for name in ("a", "b"):
        pipe(image, tmp_path / name, config=config, num_segments=2, seed=5)
    a = {k: v for k, v in tree_hashes(tmp_path / "a").items() if k.endswith(".mp4")}
    b = {k: v for k, v in tree_hashes(tmp_path / "b").items() if k.endswith(".mp4")}
    assert "video.mp4" in a and len(a) == 7  # 3 clips a segment, and the video
    assert a == b


def test_background_fills_are_lifted_no_nearer_than_the_background_they_continue():
    # a close-up's depth reads sharp texture as near: a PatchMatch fill of a hole between a
    # near object (left, depth 1) and the background (right, depth 3) would stand in front of
    # that background; a completer that copies the background keeps it at least that far
    from dreamjourney.models.classical import ClassicalCompleter
    from dreamjourney.models.registry import build_backends

    g = torch.Generator().manual_seed(9)
    frame = 0.4 + 0.05 * torch.rand(3, 64, 96, generator=g)
    frame[:, :, 40:56] = torch.rand(3, 64, 16, generator=g)  # the fill: sharp texture
    target = torch.full((64, 96), 3.0)
    target[:, :40] = 1.0
    known = torch.ones(64, 96, dtype=torch.bool)
    known[:, 40:56] = False
    target = torch.where(known, target, 0.0)
    pipeline = JourneyPipeline(build_backends("offline"))
    assert isinstance(pipeline.backends.completer, ClassicalCompleter)
    depth = pipeline._fill_depth(frame, target, known)
    assert (depth[:, 40:56] >= 3.0 * 0.999).all()
    assert torch.equal(depth[known], pipeline._aligned_depth(frame, target, known)[known])
    # a completer that may put something new in front gets the estimate as it is
    pipeline.backends.completer.fills_background = False  # type: ignore[misc]
    assert (pipeline._fill_depth(frame, target, known)[:, 40:56] < 3.0 * 0.999).any()


def test_magnified_splats_are_smoothed_in_the_video_not_in_the_world(tmp_path, monkeypatch):
    # flying forward magnifies the photo's points: the frames shown are smoothed, while the
    # world lifts the frames the completer completed, as they are
    from dreamjourney.models.registry import build_backends

    pipeline = JourneyPipeline(build_backends("offline"))
    completer = pipeline.backends.completer
    outputs: list[torch.Tensor] = []
    lifted_after: list[torch.Tensor] = []
    complete, fill_depth = completer.complete, pipeline._fill_depth

    def recorded_complete(*args, **kwargs):  # type: ignore[no-untyped-def]
        outputs.append(complete(*args, **kwargs))
        return outputs[-1]

    def recorded_fill_depth(frame, target, known):  # type: ignore[no-untyped-def]
        if outputs:  # a lift made after completion, by the pipeline itself
            lifted_after.append(frame)
        return fill_depth(frame, target, known)

    monkeypatch.setattr(completer, "complete", recorded_complete)
    monkeypatch.setattr(pipeline, "_fill_depth", recorded_fill_depth)
    config = small_journey_config(
        trajectory="forward", motion=False, width=96, height=72, frames_per_segment=8
    )
    import skimage.data

    image = tmp_path / "coffee.png"
    Image.fromarray(skimage.data.coffee()).resize((96, 72), Image.Resampling.LANCZOS).save(image)
    result = pipeline(image, tmp_path / "run", config=config, num_segments=1)
    shown, _ = read_video(result.run.segment_dir(0) / "completed.mp4")
    completed = outputs[0]

    # smoothed where magnified: the video's last frame has less fine detail than the
    # completer's (x264 alone keeps 0.9 of it, the smoothing about 0.6), same brightness
    def fine(frame: torch.Tensor) -> float:
        grey = frame.mean(0)
        return float(
            (grey[1:, :] - grey[:-1, :]).abs().mean() + (grey[:, 1:] - grey[:, :-1]).abs().mean()
        )

    assert fine(shown[-1]) < 0.8 * fine(completed[-1]), (fine(shown[-1]), fine(completed[-1]))
    assert abs(float(shown[-1].mean() - completed[-1].mean())) < 0.02
    # what the pipeline lifted itself are completed frames as they are, never smoothed ones
    assert all(any(torch.equal(f, c) for c in completed) for f in lifted_after)


def test_each_frame_is_lifted_once(tmp_path, monkeypatch):
    # the completer lifts the frames it fills into a trial copy of the world; the world that
    # goes on is that copy (lifting them again, into the world itself, gave the same points
    # at the cost of a render, an unprojection and a copy of the cloud per frame)
    lifted: list[bytes] = []
    add_frame = World.add_frame

    def recorded(self, image, depth, camera, **kwargs):  # type: ignore[no-untyped-def]
        lifted.append(camera.c2w.numpy().tobytes())
        return add_frame(self, image, depth, camera, **kwargs)

    monkeypatch.setattr(World, "add_frame", recorded)
    config = small_journey_config(trajectory="orbit", motion=False, frames_per_segment=8)
    pipe = JourneyPipeline.from_preset("offline")
    result = pipe(photo(tmp_path / "photo.png"), tmp_path / "run", config=config, num_segments=2)
    assert len(lifted) > 3  # the photo and each segment's keyframes at least
    assert len(set(lifted)) == len(lifted)
    record = result.run.manifest.segments[-1]
    assert record.world_points == len(World.load(result.run.world_state_path(2)))


def test_an_orbit_back_to_the_photo_shows_the_photo(tmp_path):
    # fills lifted on the far side of an orbit stood between the photo's camera and the houses
    # it shows, and the orbit came back to a green wall; the photo's free space is kept empty
    from dreamjourney.io.images import load_image
    from dreamjourney.pipelines.journey import first_camera, fit_image

    config = small_journey_config(
        trajectory="orbit", motion=False, width=128, height=96, frames_per_segment=8,
        lift_stride=8,
    )  # fmt: skip
    garden = Path(__file__).resolve().parents[1] / "examples" / "garden.png"
    pipe = JourneyPipeline.from_preset("offline")
    result = pipe(garden, tmp_path / "run", config=config, num_segments=3)
    photo = fit_image(load_image(garden), 128, 96)
    world = World.load(result.run.world_state_path(3))
    camera = first_camera(config, None, result.run.manifest.fov_deg)
    back = world.render(camera)
    changed = (back.image[0] - photo).abs().amax(0) > 0.15
    assert float(changed.float().mean()) < 0.02, float(changed.float().mean())
