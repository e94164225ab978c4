"""Real camera files from public repositories (tests/data/real, sources in its README): every
format flies a photo's world with frame 0 = the photo, the default scale keeps the path in the
scene, distortion and blank renders warn, DyCheck scenes are recognised, z-up paths preview."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamjourney.camera import Cameras
from dreamjourney.camera.formats import detect_format, load_cameras
from dreamjourney.data import detect_layout, load_any_scene
from dreamjourney.errors import InputError, InputWarning
from dreamjourney.io.images import fit_image, load_image, save_image
from dreamjourney.io.plots import axis_label, parse_up, up_axis
from helpers import run_main

REAL = Path(__file__).resolve().parent / "data" / "real"
FILES = {
    "re10k": REAL / "re10k_0f47577ab3441480.txt",
    "nerfstudio": REAL / "nerfstudio_camera_path.json",
    "transforms": REAL / "room_transforms.json",
    "colmap": REAL / "colmap_room",
    "blender": REAL / "lego" / "transforms_train.json",
}
W, H = 64, 48


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A textured 4:3 photo with a horizon (the heuristic depth sees ground and sky)."""
    g = torch.Generator().manual_seed(1)
    image = torch.rand(3, 96, 128, generator=g) * 0.3
    image[2, :40] += 0.6  # sky
    image[1, 40:] += 0.5  # ground
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    save_image(path, image.clamp(0, 1))
    return path


@pytest.mark.parametrize("name", list(FILES))
def test_every_format_renders_the_photo_at_frame_0_and_stays_in_the_scene(
    name, photo, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out"
    code, _, err = run_main(
        monkeypatch, capsys, "render", str(photo), "-t", str(FILES[name]), "-o", str(out),
        "--size", f"{W}x{H}", "-q",
    )  # fmt: skip
    assert code == 0, err
    assert f"camera file {FILES[name].name}: its first camera is the input's" in err
    assert ">= 95% holes" not in err  # the default path scale keeps the path in the scene
    first = load_image(out / "frames" / "000000.png")
    assert torch.allclose(first, fit_image(load_image(photo), W, H), atol=1.5 / 255)
    cameras = load_cameras(out / "cameras.json")
    assert torch.allclose(cameras.c2w[0], torch.eye(4), atol=1e-6)
    masks = np.stack([np.asarray(Image.open(p)) for p in sorted((out / "masks").iterdir())])
    assert masks.shape[0] == len(load_cameras(FILES[name], size=(W, H)))
    assert ((masks > 0).reshape(len(masks), -1).mean(1) > 0.05).all()


def test_formats_are_detected_and_read(recwarn):
    assert {name: detect_format(p) for name, p in FILES.items()} == {
        "re10k": "re10k",
        "nerfstudio": "nerfstudio",
        "transforms": "transforms",
        "colmap": "colmap",
        "blender": "transforms",
    }
    re10k = load_cameras(FILES["re10k"])
    assert (len(re10k), re10k.width, re10k.height) == (16, 640, 360)  # 640 wide, square pixels
    assert re10k.fx[0] == pytest.approx(0.507650910 * 640, rel=1e-6)
    # COLMAP's text model and instant-ngp's colmap2nerf export of the same capture agree on K
    colmap, ngp = load_cameras(FILES["colmap"]), load_cameras(FILES["transforms"])
    assert torch.allclose(colmap.K[0], ngp.K[0], rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "where", "values"),
    [
        ("transforms", "room_transforms.json", "k1=-0.000695, k2=-0.00221, p1=-0.000182"),
        ("colmap", "cameras.txt [line 4]: OPENCV", "k1=-0.000695, k2=-0.00221, p1=-0.000182"),
    ],
)
def test_dropped_distortion_warns_naming_file_and_coefficients(name, where, values):
    with pytest.warns(InputWarning) as record:
        load_cameras(FILES[name])
    message = str(record[0].message)
    assert where in message and values in message and "ignored" in message


def test_simple_radial_distortion_warns_and_zero_distortion_does_not(tmp_path, recwarn):
    model = tmp_path / "model"
    model.mkdir()
    (model / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    (model / "cameras.txt").write_text("1 SIMPLE_RADIAL 64 48 50 32 24 0.0\n")
    load_cameras(model)
    assert not [w for w in recwarn if issubclass(w.category, InputWarning)]
    (model / "cameras.txt").write_text("1 SIMPLE_RADIAL 64 48 50 32 24 -0.05\n")
    with pytest.warns(InputWarning, match=r"SIMPLE_RADIAL lens distortion \(k=-0.05\)"):
        load_cameras(model)


def test_distortion_warning_is_one_cli_line(tmp_path, monkeypatch, capsys):
    code, _, err = run_main(
        monkeypatch, capsys, "trajectory", "convert", str(FILES["colmap"]),
        str(tmp_path / "cameras.json"),
    )  # fmt: skip
    assert code == 0
    lines = [line for line in err.splitlines() if "distortion" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "cameras.txt" in lines[0]


def test_transforms_without_size_takes_it_from_its_image_or_size(tmp_path):
    lego = load_cameras(FILES["blender"])  # no w/h: the 50x50 image beside it
    assert (lego.width, lego.height) == (50, 50)
    f = 0.5 * 50 / np.tan(0.5 * 0.6911112070083618)  # from camera_angle_x
    assert lego.fx[0] == pytest.approx(f, rel=1e-6) and lego.K[0, 0, 2] == 25
    alone = tmp_path / "transforms.json"
    shutil.copy(FILES["blender"], alone)  # its image is not beside it now
    with pytest.raises(InputError, match=r"no w/h .* give the image size with --size"):
        load_cameras(alone)
    sized = load_cameras(alone, size=(80, 60))
    assert (sized.width, sized.height) == (80, 60) and sized.K[0, 1, 2] == 30


def test_dycheck_scene_is_detected_by_its_folders(tmp_path):
    scene = tmp_path / "paper-windmill"
    shutil.copytree(REAL / "dycheck_paper_windmill", scene)
    assert (scene / "scene.json").is_file() and (scene / "metadata.json").is_file()
    assert detect_layout(scene) == "dycheck"
    with pytest.raises(InputError, match="no rgb/<k>x folder"):
        load_any_scene(scene)  # the demo has cameras only
    rgb = scene / "rgb" / "16x"  # 720x960 at 1/16: 45x60
    for camera in sorted((scene / "camera").iterdir()):
        save_image(rgb / f"{camera.stem}.png", torch.full((3, 60, 45), 0.5))
    loaded = load_any_scene(scene)
    assert loaded.input_camera == "0" and sorted(loaded.streams) == ["0", "1", "2"]
    stream = loaded.streams["1"]
    assert (stream.cameras.width, stream.cameras.height) == (45, 60)
    raw = json.loads((scene / "camera" / "1_00000.json").read_text())
    R = torch.tensor(raw["orientation"])
    assert torch.allclose(stream.cameras.c2w[0, :3, :3], R.T, atol=1e-6)
    assert torch.allclose(stream.cameras.centers[0], torch.tensor(raw["position"]), atol=1e-6)
    assert stream.cameras.fx[0] == pytest.approx(raw["focal_length"] / 16, rel=1e-6)


@pytest.mark.parametrize(("name", "up"), [("nerfstudio", "+z"), ("transforms", "+z"),
                                          ("blender", "+z"), ("re10k", "-y"), ("colmap", "-y")])  # fmt: skip
def test_up_axis_comes_from_the_cameras(name, up):
    assert axis_label(up_axis(load_cameras(FILES[name], size=(W, H)))) == up


def test_z_up_orbit_previews_as_a_circle_from_above(tmp_path, monkeypatch, capsys):
    from dreamjourney.io.plots import _plane, _views

    cameras = load_cameras(FILES["nerfstudio"])
    top, side = _views(up_axis(cameras)).values()
    xy = _plane(cameras.centers.double().numpy(), top)
    extent = np.ptp(xy, axis=0)
    assert extent.min() > 0.8 * extent.max()  # a circle, not the line the y-up view drew
    height = np.ptp(_plane(cameras.centers.double().numpy(), side)[:, 1])
    assert height < 0.5 * extent.max()
    code, out, _ = run_main(monkeypatch, capsys, "trajectory", "preview", str(FILES["nerfstudio"]),
                       "-o", str(tmp_path / "p.png"))  # fmt: skip
    assert code == 0 and "up = +z, from the cameras" in out
    assert parse_up("-y") == (1, -1.0) and parse_up("z") == (2, 1.0)
    with pytest.raises(ValueError, match="world axis"):
        parse_up("up")


def test_journey_flies_a_real_file_from_the_photo_and_keeps_its_scale_on_resume(photo, tmp_path):
    from dreamjourney.camera.path_fit import fit_path
    from dreamjourney.pipelines.journey import JourneyConfig, JourneyPipeline

    config = JourneyConfig(
        trajectory=str(FILES["re10k"]), frames_per_segment=5, motion=False, width=W, height=H
    )
    pipe = JourneyPipeline.from_preset("offline")
    result = pipe(photo, tmp_path / "run", config=config, num_segments=1)
    assert result.blank_frames == 0
    assert result.path_fit is not None and "translations x" in result.path_fit
    manifest = result.run.manifest
    file_cameras = load_cameras(FILES["re10k"])
    start = Cameras(file_cameras[0].fit(W, H).K, torch.eye(4), W, H, torch.zeros(1))
    expected = fit_path(file_cameras, start, scene_scale=manifest.scene_scale)
    assert manifest.path_scale == pytest.approx(expected.scale)
    flown = load_cameras(result.run.cameras_path)
    assert torch.allclose(flown.c2w, expected.cameras.c2w[1:6], atol=1e-5)
    assert torch.allclose(flown.K, expected.cameras.K[1:6], atol=1e-4)
    more = pipe(photo, tmp_path / "run", config=config, extend=1)  # the kept scale
    flown = load_cameras(more.run.cameras_path)
    assert torch.allclose(flown.c2w[5:], expected.cameras.c2w[6:11], atol=1e-5)


def test_a_path_scaled_out_of_the_scene_warns(photo, tmp_path, monkeypatch, capsys):
    code, _, err = run_main(
        monkeypatch, capsys, "render", str(photo), "-t", str(FILES["nerfstudio"]), "-o",
        str(tmp_path / "out"), "--size", f"{W}x{H}", "--path-scale", "1000", "-q",
    )  # fmt: skip
    assert code == 0
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "of 24 rendered frames are >= 95% holes" in warning[0]
    assert "try a smaller --path-scale" in warning[0]


def test_anyview_resamples_a_real_target_file_and_keeps_its_aspect(tmp_path, monkeypatch, capsys):
    for i in range(3):  # a 3-frame 64x48 clip at 24 fps: 0.083 s
        save_image(tmp_path / "rgb" / f"{i:03d}.png", torch.rand(3, H, W))
    code, _, err = run_main(
        monkeypatch, capsys, "anyview", str(tmp_path / "rgb"), "-t", str(FILES["nerfstudio"]),
        "-o", str(tmp_path / "out"), "-q",
    )  # fmt: skip
    assert code == 0, err
    assert "24 in the file, taken on time for the video's 3 frames" in err
    assert "output 64x36: the file's aspect and K" in err  # 1920x1080 at the input's long side
    target = load_cameras(tmp_path / "out" / "cameras.json")
    source = load_cameras(FILES["nerfstudio"])
    assert (len(target), target.width, target.height) == (3, 64, 36)
    assert float(target.fx[0] / target.fy[0]) == pytest.approx(1.0, abs=1e-3)
    assert float(target.fov_deg("vertical")[0]) == pytest.approx(
        float(source.fov_deg("vertical")[0]), abs=0.5
    )
    assert torch.allclose(target.c2w[0], torch.eye(4), atol=1e-5)  # placed at the input camera
