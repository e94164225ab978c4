import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dreamjourney.camera import Cameras, look_at
from dreamjourney.camera.formats import load_cameras
from dreamjourney.camera.trajectories import make_trajectory
from dreamjourney.cli import main
from dreamjourney.io.plots import plot_trajectory, spread, thin

REPO = Path(__file__).resolve().parents[1]


def cli_subprocess(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dreamjourney", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the console entry point in-process; returns (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["dreamjourney", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


NAN_POSE = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float("nan")], [0, 0, 0, 1]]
K = [[5, 0, 4], [0, 5, 4], [0, 0, 1]]


def test_cli_error_is_one_line_exit_2_without_traceback(tmp_path):
    """The real entry point in a subprocess (the other error tests call `main()` in-process)."""
    (tmp_path / "bad.json").write_text("[1, 2,")
    result = cli_subprocess("trajectory", "preview", "bad.json", "--out", "p.png", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bad.json: not valid JSON")
    assert not (tmp_path / "p.png").exists()


def native_file(c2w) -> str:
    frames = [{"c2w": c2w, "K": K}] if c2w is not None else []
    return json.dumps(
        {"format": "dreamjourney.cameras/1", "width": 8, "height": 8, "frames": frames}
    )


REFLECTION = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]]


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (native_file([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), "frames[0].c2w", "must be 4x4, got shape (3, 3)"),
        (native_file([[1, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "frames[0].c2w",
         "rotation is not orthonormal (max |R^T R - I| = 0.75)"),
        (native_file(NAN_POSE), "frames[0].c2w", "contains NaN or infinite values"),
        (native_file(REFLECTION), "frames[0].c2w", "rotation is a reflection (det < 0)"),
        (native_file(None), "frames", "must be a non-empty list"),
        (json.dumps({"format": "dreamjourney.cameras/9"}), "format",
         "unknown camera format 'dreamjourney.cameras/9'"),
    ],
)  # fmt: skip
def test_cli_bad_file_keeps_existing_output(tmp_path, monkeypatch, capsys, text, field, message):
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    out = tmp_path / "out.json"
    out.write_text("precious")
    code, _, err = cli(monkeypatch, capsys, "trajectory", "convert", str(bad), str(out))
    assert code == 2 and err.strip() == f"error: {bad} [{field}]: {message}"
    assert "Traceback" not in err
    assert out.read_text() == "precious"


def test_cli_bad_preset_arguments(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "o.json")
    for args, expected in [
        (["orbit", "--frames", "0"], "error: frames: must be a positive integer"),
        (["spin"], "error: spin: neither a preset (forward, backward, orbit"),
        (["orbit", "--size", "96"], "error: --size: expected WIDTHxHEIGHT"),
        (["orbit", "--set", "sweep=3"], "error: sweep: unknown option for preset 'orbit'"),
        (["orbit", "--set", "sweep_deg"], "error: --set: expected KEY=VALUE"),
        (["orbit", "--fov", "180"], "error: fov_deg: must be in (0, 180) degrees"),
        (["orbit", "--format", "ply"], "error: unknown camera format 'ply'"),
    ]:
        code, _, err = cli(monkeypatch, capsys, "trajectory", "make", *args, "--out", out)
        assert code == 2 and err.startswith(expected), err
    assert not Path(out).exists()


def test_cli_make_convert_preview(tmp_path, monkeypatch, capsys):
    path = tmp_path / "camera_path.json"
    code, out, _ = cli(
        monkeypatch,
        capsys,
        "trajectory",
        "make",
        "orbit",
        "--frames",
        "12",
        "--scene-scale",
        "2",
        "--size",
        "96x64",
        "--fov",
        "50",
        "--set",
        "sweep_deg=90",
        "--out",
        str(path),
    )
    assert code == 0 and "12 cameras" in out
    cams = load_cameras(path)
    expected = make_trajectory(
        "orbit", 12, scene_scale=2.0, width=96, height=64, fov_deg=50.0, sweep_deg=90.0
    )
    assert (cams.width, cams.height) == (96, 64)
    assert torch.allclose(cams.c2w, expected.c2w, atol=1e-5)
    assert torch.allclose(cams.K, expected.K, atol=1e-3)

    colmap_dir = tmp_path / "sparse"
    assert cli(monkeypatch, capsys, "trajectory", "convert", str(path), str(colmap_dir))[0] == 0
    back = load_cameras(colmap_dir)
    assert torch.allclose(back.c2w, expected.c2w, atol=1e-5)

    code, _, err = cli(
        monkeypatch,
        capsys,
        "trajectory",
        "convert",
        str(colmap_dir),
        str(tmp_path / "again_camera_path.json"),
    )
    assert code == 0 and "warning" not in err  # centred square pixels convert losslessly
    shifted = "".join(f"{i} PINHOLE 96 64 50 50 40 32\n" for i in range(1, 13))
    (colmap_dir / "cameras.txt").write_text(shifted)  # principal point 8 px left of centre
    code, _, err = cli(
        monkeypatch,
        capsys,
        "trajectory",
        "convert",
        str(colmap_dir),
        str(tmp_path / "shifted_camera_path.json"),
    )
    assert code == 0 and "warning: nerfstudio camera paths assume" in err and "8.0 px" in err

    png = tmp_path / "preview.png"
    assert (
        cli(monkeypatch, capsys, "trajectory", "preview", str(colmap_dir), "--out", str(png))[0]
        == 0
    )
    assert Image.open(png).size == (1300, 620)


def colour_fraction(png: Path, rgb: tuple[int, int, int]) -> float:
    image = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return float((np.abs(image - np.array(rgb)).sum(-1) < 30).mean())


def test_plot_trajectory_marks_start_end_and_draws_points(tmp_path):
    cams = make_trajectory("journey", 30, width=64, height=48)
    plain, with_points = tmp_path / "a.png", tmp_path / "b.png"
    plot_trajectory(cams, plain)
    pts = torch.rand(500, 3) * torch.tensor([2.0, 1.0, 3.0]) - torch.tensor([1.0, 0.5, 0.0])
    plot_trajectory(cams, with_points, points=(pts, torch.tensor([1.0, 0.0, 1.0]).expand(500, 3)))
    green, red = (44, 160, 44), (214, 39, 40)  # matplotlib tab:green / tab:red
    assert colour_fraction(plain, green) > 1e-4 and colour_fraction(plain, red) > 1e-4
    assert colour_fraction(plain, (255, 0, 255)) == 0
    assert colour_fraction(with_points, (255, 0, 255)) > 1e-4


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    fov=st.floats(20.0, 150.0),
    size=st.tuples(st.integers(8, 2000), st.integers(8, 2000)),
)
def test_project_unproject_round_trip_property(seed, fov, size):
    gen = torch.Generator().manual_seed(seed)
    eye = torch.randn(3, generator=gen) * 5
    cam = Cameras.create(
        look_at(eye, eye + torch.tensor([0.3, 0.2, 1.0]) + torch.randn(3, generator=gen) * 0.3),
        width=size[0],
        height=size[1],
        fov_deg=fov,
    )
    uv = torch.rand(1, 50, 2, generator=gen) * torch.tensor([float(size[0]), float(size[1])])
    depth = torch.rand(1, 50, generator=gen) * 50 + 0.05
    points = cam.unproject(uv, depth)
    uv2, z = cam.project(points)
    assert torch.allclose(z, depth, rtol=1e-4, atol=1e-4)
    assert torch.allclose(uv2, uv, atol=2e-3 * max(size) / 100 + 1e-3)


def test_spread_and_thin_pick_the_same_evenly_every_time():
    assert spread(5, 12).tolist() == [0, 1, 2, 3, 4]
    assert spread(1, 8).tolist() == [0]
    assert spread(100, 4).tolist() == [0, 33, 66, 99]
    picks = spread(37, 12)
    assert len(picks) == 12 and picks[0] == 0 and picks[-1] == 36 and picks.dtype.kind == "i"
    points = np.arange(300.0).reshape(100, 3)
    colors = points / 300
    assert thin(points, colors, 100)[0] is points
    few, their = thin(points, colors, 10)
    assert few.shape == (10, 3) and np.array_equal(their, few / 300)
    assert np.array_equal(thin(points, colors, 10)[0], few)
    assert len({tuple(p) for p in few}) == 10
