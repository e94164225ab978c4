import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamjourney.camera.formats import load_cameras
from dreamjourney.cli import app
from dreamjourney.data import save_scene, synth_scene
from dreamjourney.eval.bench import covisible_mask, run_bench
from dreamjourney.eval.metrics import psnr
from dreamjourney.io.clips import load_clip
from dreamjourney.io.images import save_image
from dreamjourney.io.video import read_video
from dreamjourney.models.registry import build_backends
from dreamjourney.pipelines.anyview_geometry import (
    AnyViewGeometryPipeline,
    temporally_consistent_depth,
)
from dreamjourney.pipelines.novel_view import build_method

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scene():
    return synth_scene(5, cameras=4, frames=3, width=64, height=48)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory, scene):
    root = tmp_path_factory.mktemp("anyview")
    save_scene(scene, root / "scenes" / "s0")
    return root


def test_temporally_consistent_depth_undoes_per_frame_scale_and_shift():
    base = torch.rand(48, 64) * 4 + 1
    frames = torch.rand(1, 3, 48, 64).expand(4, -1, -1, -1).clone()
    frames[2, :, :10, :10] = 1 - frames[2, :, :10, :10]  # something moves in frame 2
    scales, shifts = [1.0, 2.0, 0.5, 3.0], [0.0, 0.3, -0.1, 1.0]
    depths = torch.stack([base * s + b for s, b in zip(scales, shifts, strict=True)])
    depths[2, :10, :10] = 50.0  # the moving thing's depth must not skew the fit
    aligned = temporally_consistent_depth(depths, frames)
    static = torch.ones(48, 64, dtype=torch.bool)
    static[:10, :10] = False
    for t in range(4):
        assert torch.allclose(aligned[t][static], base[static], rtol=1e-3, atol=1e-3)


def test_geometry_pipeline_keeps_visible_pixels_and_beats_copying_them(scene):
    a, b = scene.streams["exo_front"], scene.streams["exo_side"]
    backends = build_backends("offline")
    pipe = AnyViewGeometryPipeline(backends.depth, backends.completer)
    out = pipe(a.frames, a.cameras, b.cameras, input_depth=a.depth)
    assert out.frames.shape == b.frames.shape
    assert torch.equal(
        out.frames[out.mask.unsqueeze(1).expand_as(out.frames)],
        out.render[out.mask.unsqueeze(1).expand_as(out.render)],
    )
    assert 0.05 < out.mask.float().mean() < 0.95
    visible = covisible_mask(a, b, torch.arange(3), torch.arange(3))
    assert visible is not None and visible.any()
    ours = psnr(out.frames, b.frames, visible).mean()
    copied = psnr(a.frames, b.frames, visible).mean()
    assert ours > copied + 2.0


def test_pipeline_rejects_camera_count_mismatch(scene):
    a = scene.streams["exo_front"]
    backends = build_backends("offline")
    pipe = AnyViewGeometryPipeline(backends.depth, backends.completer)
    with pytest.raises(ValueError, match="3 frames but 2 input"):
        pipe(a.frames, a.cameras[:2], a.cameras, input_depth=a.depth)


def test_bench_geometry_beats_copy_input_on_visible_pixels(scene_dir):
    scores = {}
    for method in ("copy-input", "geometry"):
        results = run_bench(
            build_method(method), scene_dir / "scenes", scene_dir / method, name=method,
            pairs="extreme", videos=False,
        )  # fmt: skip
        scores[method] = results["overall"]["psnr_visible"]
    assert scores["geometry"] > scores["copy-input"] + 1.0


def _cli(args, tmp_path):
    from typer.testing import CliRunner

    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_anyview_command_writes_outputs(scene_dir, tmp_path):
    s = scene_dir / "scenes" / "s0"
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cmd = [
        sys.executable,
        "-m",
        "dreamjourney",
        "anyview",
        str(s / "exo_front" / "rgb"),
        "--input-cameras",
        str(s / "exo_front" / "cameras.json"),
        "--depth",
        str(s / "exo_front" / "depth.npy"),
        "--trajectory",
        str(s / "exo_side" / "cameras.json"),
        "--target-frame",
        "world",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in ("video.mp4", "render.mp4", "mask.mp4", "side_by_side.mp4", "cameras.json"):
        assert (out / name).is_file(), name
    video, _ = read_video(out / "video.mp4")
    sbs, _ = read_video(out / "side_by_side.mp4")
    assert video.shape == (3, 3, 48, 64) and sbs.shape == (3, 3, 48, 128)
    target = load_cameras(out / "cameras.json")
    expected = load_cameras(s / "exo_side" / "cameras.json")
    assert torch.allclose(target.c2w, expected.c2w, atol=1e-5)


def test_anyview_preset_path_starts_at_the_input_camera(scene_dir, tmp_path):
    frames = scene_dir / "scenes" / "s0" / "exo_front" / "rgb"
    main = _run_main(
        ["anyview", str(frames), "--trajectory", "arc-left", "--out", str(tmp_path / "o")]
    )
    assert main == 0
    target = load_cameras(tmp_path / "o" / "cameras.json")
    assert len(target) == 3 and torch.allclose(target.c2w[0], torch.eye(4), atol=1e-6)
    assert (target.centers[-1] - target.centers[0]).norm() > 0.05


def _run_main(args):
    """Run the console entry point in-process; return its exit status."""
    from dreamjourney.cli import main

    old = sys.argv
    sys.argv = ["dreamjourney", *args]
    try:
        main()
    except SystemExit as exc:
        return exc.code
    finally:
        sys.argv = old
    return 0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("undecodable", r"broken\.mp4: cannot decode video \("),
        ("empty", r"empty: folder holds no image frames$"),
        (
            "static cameras, no depth",
            r"--input-cameras: the input cameras move 0 units at most, too little to see the scale "
            r"of the estimated depth",
        ),
        ("depth", r"d\.npy: depth has 9216 NaN/inf values$"),
    ],
)
def test_anyview_bad_input_is_one_line_exit_2(case, message, scene_dir, tmp_path, capsys):
    s = scene_dir / "scenes" / "s0"
    video = s / "exo_front" / "rgb"
    extra = []
    if case == "undecodable":
        video = tmp_path / "broken.mp4"
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    elif case == "empty":
        video = tmp_path / "empty"
        video.mkdir()
    elif case == "static cameras, no depth":  # metric cameras, relative depth, no parallax
        extra = ["--input-cameras", str(s / "exo_front" / "cameras.json")]
    elif case == "depth":
        bad = tmp_path / "d.npy"
        np.save(bad, np.full((3, 48, 64), np.nan, dtype=np.float32))
        extra = ["--depth", str(bad)]
    out = tmp_path / "out"
    status = _run_main(["anyview", str(video), "--trajectory", "orbit", "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    assert re.search(message, err), err
    assert not (out / "video.mp4").exists()


def test_load_clip_from_frames_resizes(tmp_path):
    for i in range(2):
        save_image(tmp_path / f"{i:03d}.png", torch.full((3, 20, 30), i / 2))
    clip, fps = load_clip(tmp_path, size=(15, 10), fps=12.0)
    assert clip.shape == (2, 3, 10, 15) and fps == 12.0
    assert torch.allclose(clip[1], torch.full((3, 10, 15), 0.5), atol=1 / 255)


def test_target_file_defaults_to_the_input_cameras_world(scene_dir, tmp_path):
    s = scene_dir / "scenes" / "s0"
    out = tmp_path / "out"
    status = _run_main(
        ["anyview", str(s / "exo_front" / "rgb"), "--input-cameras",
         str(s / "exo_front" / "cameras.json"), "--depth", str(s / "exo_front" / "depth.npy"),
         "--trajectory", str(s / "exo_side" / "cameras.json"), "--out", str(out)]
    )  # fmt: skip
    assert status == 0
    expected = load_cameras(s / "exo_side" / "cameras.json")
    assert torch.allclose(load_cameras(out / "cameras.json").c2w, expected.c2w, atol=1e-5)


def test_target_file_is_resampled_and_keeps_its_aspect_and_k(scene_dir, tmp_path, capsys):
    from dreamjourney.camera import Cameras
    from dreamjourney.camera.formats import save_cameras

    s = scene_dir / "scenes" / "s0"  # the video is 64x48 (4:3), 3 frames at 24 fps
    side = load_cameras(s / "exo_side" / "cameras.json")
    K = torch.tensor([[40.0, 0, 32], [0, 40.0, 18], [0, 0, 1]])  # a 64x36 (16:9) camera
    c2w = side.c2w[:1].expand(5, 4, 4).clone()
    c2w[:, 0, 3] += torch.linspace(0, 0.4, 5)
    wide = Cameras.create(c2w, width=64, height=36, K=K, times=torch.arange(5) / 48)
    save_cameras(wide, tmp_path / "wide.json")
    out = tmp_path / "out"
    status = _run_main(
        ["anyview", str(s / "exo_front" / "rgb"), "--input-cameras",
         str(s / "exo_front" / "cameras.json"), "--depth", str(s / "exo_front" / "depth.npy"),
         "--trajectory", str(tmp_path / "wide.json"), "--out", str(out)]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 0, err
    assert "5 in the file, taken on time for the video's 3 frames" in err
    assert "output 64x36: the file's aspect and K" in err
    target = load_cameras(out / "cameras.json")
    assert (len(target), target.width, target.height) == (3, 64, 36)
    assert torch.allclose(target.K[0], K) and torch.allclose(target.c2w, c2w[::2], atol=1e-5)
    video, _ = read_video(out / "video.mp4")
    sbs, _ = read_video(out / "side_by_side.mp4")
    assert video.shape == (3, 3, 36, 64) and sbs.shape[-2] == 36


def test_metric_cameras_get_the_depth_scale_from_parallax(tmp_path, capsys):
    from dreamjourney.camera.formats import save_cameras

    scene = synth_scene(3, cameras=4, frames=6, width=96, height=96)
    walk = scene.streams["ego_walk"]  # a camera that moves: its parallax shows the scale
    for i, frame in enumerate(walk.frames):
        save_image(tmp_path / "rgb" / f"{i:03d}.png", frame)
    save_cameras(walk.cameras, tmp_path / "cams.json")
    status = _run_main(
        ["anyview", str(tmp_path / "rgb"), "--input-cameras", str(tmp_path / "cams.json"),
         "--trajectory", "pan-left", "--out", str(tmp_path / "out")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 0, err
    assert "scaled to the input cameras' unit" in err and "by the parallax of" in err
    backends = build_backends("offline")
    pipe = AnyViewGeometryPipeline(backends.depth, backends.completer)
    still = scene.streams["exo_front"]
    with pytest.raises(Exception, match="give --depth in the cameras' units, or a preset"):
        pipe.estimate_depth(still.frames, still.cameras, metric_cameras=True)
    relative = pipe.estimate_depth(still.frames, still.cameras, metric_cameras=False)
    assert "relative depth estimate" in relative.how
