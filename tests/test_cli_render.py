"""`dreamjourney render`: outputs on disk, and one-line errors (exit 2) for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamjourney.camera import Cameras
from dreamjourney.camera.formats import load_cameras, save_cameras
from dreamjourney.cli import main
from dreamjourney.io.images import load_image, save_image
from dreamjourney.io.video import read_video
from dreamjourney.scene import load_ply

REPO = Path(__file__).resolve().parents[1]
H, W = 40, 48


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "dreamjourney", "render", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip


@pytest.fixture
def inputs(tmp_path):
    """A photo, its depth (a plane at z = 2 with a nearer square), and a 3-camera path."""
    g = torch.Generator().manual_seed(0)
    save_image(tmp_path / "photo.png", torch.rand(3, H, W, generator=g))
    depth = np.full((H, W), 2.0, dtype=np.float32)
    depth[10:20, 10:20] = 1.0
    np.save(tmp_path / "depth.npy", depth)
    c2w = torch.eye(4).repeat(3, 1, 1)
    c2w[:, 0, 3] = torch.tensor([0.0, 0.1, 0.2])
    save_cameras(Cameras.create(c2w, width=W, height=H, fov_deg=60), tmp_path / "path.json")
    return tmp_path


def test_render_writes_frames_masks_depth_cameras_video_and_ply(inputs):
    out = inputs / "out"
    res = run_cli("photo.png", "--depth", "depth.npy", "--trajectory", "path.json",
                  "--padding", "2", "--out", out, cwd=inputs)  # fmt: skip
    assert res.returncode == 0, res.stderr
    n, h, w = 3, H + 4, W + 4
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:06d}.png" for i in range(n)]
    photo = load_image(inputs / "photo.png")
    first = load_image(out / "frames" / "000000.png")
    assert first.shape == (3, h, w)
    assert torch.allclose(first[:, 2:-2, 2:-2], photo, atol=1 / 255)  # frame 0 = the photo
    for i in range(n):
        mask = np.asarray(Image.open(out / "masks" / f"{i:06d}.png"))
        depth = np.load(out / "depth" / f"{i:06d}.npy")
        assert depth.dtype == np.float32 and depth.shape == mask.shape == (h, w)
        assert set(np.unique(mask)) <= {0, 255}
        assert ((depth > 0) == (mask == 255)).all()
        assert not mask[0].any()  # the padding ring saw nothing
    last_mask = np.asarray(Image.open(out / "masks" / "000002.png"))[2:-2, 2:-2]
    assert (last_mask == 0).any()  # the sideways move opened holes
    np.testing.assert_allclose(np.load(out / "depth" / "000000.npy")[2:-2, 2:-2],
                               np.load(inputs / "depth.npy"), rtol=1e-5)  # fmt: skip
    cams = load_cameras(out / "cameras.json")
    assert len(cams) == n and (cams.width, cams.height) == (w, h)
    frames, _ = read_video(out / "render.mp4")
    assert frames.shape[0] == n
    assert len(load_ply(out / "world.ply")) == H * W


def test_render_without_depth_uses_the_heuristic(inputs):
    out = inputs / "out"
    res = run_cli("photo.png", "--trajectory", "path.json", "--out", out, cwd=inputs)
    assert res.returncode == 0, res.stderr
    assert (np.load(out / "depth" / "000000.npy") > 0).all()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unreadable image", "broken.png: cannot read image (UnidentifiedImageError"),
        ("depth of the wrong shape", "bad.npy [--depth]: depth has shape (40, 47), expected (40, 48)"),
        ("NaN depth", "bad.npy [--depth]: depth has 1 NaN/inf values"),
        ("inf depth", "bad.npy [--depth]: depth has 1 NaN/inf values"),
        ("negative depth", "bad.npy [--depth]: depth has 1 negative values"),
        ("empty trajectory", "empty.json [frames]: must be a non-empty list"),
        ("zero frames", "--frames: must be at least 1, got 0"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2(inputs, case, message, monkeypatch, capsys):
    args = ["photo.png", "--depth", "bad.npy", "--trajectory", "path.json", "--out", "out"]
    depth = np.full((H, W), 2.0, dtype=np.float32)
    if case == "unreadable image":
        (inputs / "broken.png").write_bytes(b"not a png")
        args[0] = "broken.png"
    elif case == "depth of the wrong shape":
        depth = depth[:, :-1]
    elif case == "NaN depth":
        depth[3, 4] = np.nan
    elif case == "inf depth":
        depth[3, 4] = np.inf
    elif case == "negative depth":
        depth[3, 4] = -1.0
    elif case == "empty trajectory":
        data = json.loads((inputs / "path.json").read_text())
        data["frames"] = []
        (inputs / "empty.json").write_text(json.dumps(data))
        args[4] = "empty.json"
    elif case == "zero frames":
        args += ["--frames", "0"]
    np.save(inputs / "bad.npy", depth)
    monkeypatch.chdir(inputs)
    monkeypatch.setattr(sys, "argv", ["dreamjourney", "render", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert err.startswith(f"error: {message}"), err
    assert "\n" not in err and "Traceback" not in err
    assert not (inputs / "out").exists()  # nothing was started


def test_bad_input_through_the_real_command(inputs):
    np.save(inputs / "nan.npy", np.full((H, W), np.nan, dtype=np.float32))
    res = run_cli("photo.png", "--depth", "nan.npy", "--trajectory", "path.json", "--out", "o",
                  cwd=inputs)  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "nan.npy" in res.stderr
    assert "Traceback" not in res.stderr
