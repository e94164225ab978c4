import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from dreamjourney.camera import Cameras, intrinsics_from_fov
from dreamjourney.camera.formats import (
    detect_format,
    format_from_suffix,
    load_cameras,
    save_cameras,
)
from dreamjourney.errors import InputError

FAST = settings(max_examples=15, deadline=None)


@st.composite
def camera_batches(draw, *, centred: bool = False):
    """Random rigid poses and pinhole K (square pixels at the centre when `centred`)."""
    n = draw(st.integers(1, 5))
    width, height = draw(st.integers(16, 800)), draw(st.integers(16, 800))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    R = torch.from_numpy(Rotation.random(n, random_state=seed).as_matrix()).float()
    c2w = torch.eye(4).repeat(n, 1, 1)
    c2w[:, :3, :3] = R
    c2w[:, :3, 3] = (torch.rand(n, 3, generator=gen) - 0.5) * 20
    fov = draw(st.floats(20.0, 120.0))
    K = intrinsics_from_fov(fov, width, height, axis="vertical").expand(n, 3, 3).clone()
    if not centred:
        K[:, 0, 0] *= draw(st.floats(0.8, 1.25))
        K[:, :2, 2] += (torch.rand(n, 2, generator=gen) - 0.5) * 10
    times = draw(st.floats(0.0, 100.0)) + torch.arange(n) / draw(st.sampled_from([10.0, 24.0]))
    return Cameras(K, c2w, width, height, times)


def assert_same(a: Cameras, b: Cameras, *, times: bool = True):
    assert (a.width, a.height) == (b.width, b.height) and len(a) == len(b)
    assert torch.allclose(a.c2w, b.c2w, atol=1e-4)
    assert torch.allclose(a.K, b.K, rtol=1e-5, atol=1e-3)
    if times:
        assert torch.allclose(a.times, b.times, atol=1e-5)


def round_trip(tmp_path, cams, name, fmt):
    path = tmp_path / name
    save_cameras(cams, path)
    assert format_from_suffix(path) == fmt and detect_format(path) == fmt
    return load_cameras(path)


@FAST
@given(cams=camera_batches())
def test_native_round_trip(tmp_path_factory, cams):
    assert_same(round_trip(tmp_path_factory.mktemp("n"), cams, "cameras.json", "native"), cams)


@FAST
@given(cams=camera_batches(centred=True))
def test_nerfstudio_round_trip(tmp_path_factory, cams):
    back = round_trip(tmp_path_factory.mktemp("ns"), cams, "camera_path.json", "nerfstudio")
    assert_same(back, cams, times=False)
    # nerfstudio keeps normalised render times: the clip starts at 0 and lasts as long
    assert torch.allclose(back.times, cams.times - cams.times[0], atol=1e-4)


@FAST
@given(cams=camera_batches())
def test_re10k_round_trip(tmp_path_factory, cams):
    back = round_trip(tmp_path_factory.mktemp("re"), cams, "cams.txt", "re10k")
    assert_same(back, cams, times=False)
    assert torch.allclose(back.times, cams.times, atol=2e-6)  # microsecond stamps


@FAST
@given(cams=camera_batches())
def test_colmap_round_trip(tmp_path_factory, cams):
    back = round_trip(tmp_path_factory.mktemp("cm"), cams, "sparse", "colmap")
    assert_same(back, cams, times=False)


def test_nerfstudio_hand_case(tmp_path):
    # OpenGL identity looks down world -z with image up = world +y
    data = {
        "render_width": 200,
        "render_height": 100,
        "fps": 10,
        "seconds": 2.0,
        "camera_path": [
            {"camera_to_world": torch.eye(4).flatten().tolist(), "fov": 90.0, "render_time": 0.0},
            {
                "camera_to_world": [1, 0, 0, 5, 0, 1, 0, 6, 0, 0, 1, 7, 0, 0, 0, 1],
                "fov": 90.0,
                "render_time": 1.0,
            },
        ],
    }
    path = tmp_path / "path.json"
    path.write_text(json.dumps(data))
    assert detect_format(path) == "nerfstudio"
    cams = load_cameras(path)
    assert torch.allclose(cams.forward[0], torch.tensor([0.0, 0.0, -1.0]))
    assert torch.allclose(cams.c2w[0, :3, 1], torch.tensor([0.0, -1.0, 0.0]))  # image down
    assert torch.allclose(cams.centers[1], torch.tensor([5.0, 6.0, 7.0]))
    assert torch.allclose(cams.K[0], torch.tensor([[50.0, 0, 100], [0, 50, 50], [0, 0, 1]]))
    assert torch.allclose(cams.times, torch.tensor([0.0, 2.0]))


def test_transforms_json_hand_case(tmp_path):
    data = {
        "w": 100,
        "h": 80,
        "camera_angle_x": math.radians(90),
        "frames": [
            {"file_path": "a.png", "transform_matrix": torch.eye(4).tolist()},
            {
                "file_path": "b.png",
                "fl_x": 40,
                "cx": 49.5,
                "cy": 40.5,
                "transform_matrix": [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]],
            },
        ],
    }
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps(data))
    assert detect_format(path) == "transforms"
    cams = load_cameras(path)
    assert cams.fx[0].item() == pytest.approx(50.0) and cams.fy[0].item() == pytest.approx(50.0)
    assert torch.allclose(cams.K[1], torch.tensor([[40.0, 0, 49.5], [0, 40, 40.5], [0, 0, 1]]))
    assert torch.allclose(cams.forward[1], torch.tensor([0.0, 0.0, -1.0]))
    assert torch.allclose(cams.centers[1], torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(InputError, match="read but not written"):
        save_cameras(cams, tmp_path / "out.json", format="transforms")


def test_re10k_hand_case(tmp_path):
    path = tmp_path / "clip.txt"
    path.write_text(
        "https://www.youtube.com/watch?v=abc\n"
        "33366667 0.5 0.888889 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 -1.5\n"
    )
    assert detect_format(path) == "re10k"
    cams = load_cameras(path)
    assert (cams.width, cams.height) == (640, 360)  # 640 wide, square pixels
    assert torch.allclose(
        cams.K[0], torch.tensor([[320.0, 0, 320], [0, 320, 180], [0, 0, 1]]), atol=1e-3
    )
    assert torch.allclose(cams.centers[0], torch.tensor([0.0, 0.0, 1.5]))
    assert cams.times[0].item() == pytest.approx(33.366667)
    bare = tmp_path / "bare.txt"  # some tools drop the URL line
    bare.write_text(path.read_text().splitlines()[1] + "\n")
    assert detect_format(bare) == "re10k"
    assert torch.equal(load_cameras(bare).c2w, cams.c2w)


def test_colmap_hand_case(tmp_path):
    (tmp_path / "cameras.txt").write_text(
        "# Camera list\n7 SIMPLE_RADIAL 64 48 50 32 24 0.01\n3 PINHOLE 64 48 60 55 31 23\n"
    )
    # quaternion of a +90 degree rotation about y (w2c), camera centre C = -R^T t
    q = Rotation.from_euler("y", 90, degrees=True).as_quat(scalar_first=True)
    (tmp_path / "images.txt").write_text(
        "# Image list with two lines of data per image\n"
        f"2 {q[0]} {q[1]} {q[2]} {q[3]} 1 2 3 7 b.png\n"
        "10.0 20.0 -1\n"
        "1 1 0 0 0 0 0 0 3 a.png\n"
        "\n"
    )
    for location in (tmp_path, tmp_path / "images.txt"):
        assert detect_format(location) == "colmap"
        cams = load_cameras(location)
        assert torch.allclose(cams.c2w[0], torch.eye(4))  # a.png sorts first
        assert torch.allclose(cams.K[0], torch.tensor([[60.0, 0, 31], [0, 55, 23], [0, 0, 1]]))
        R = torch.tensor(Rotation.from_quat(q, scalar_first=True).as_matrix()).float()
        assert torch.allclose(cams.centers[1], -R.T @ torch.tensor([1.0, 2.0, 3.0]), atol=1e-5)
        assert cams.fx[1].item() == 50.0 and cams.fy[1].item() == 50.0


def test_format_from_suffix():
    assert format_from_suffix("out/camera_path.json") == "nerfstudio"
    assert format_from_suffix("out/cams.json") == "native"
    assert format_from_suffix("out/cams.txt") == "re10k"
    assert format_from_suffix("out/sparse") == "colmap"
    with pytest.raises(InputError, match=r"suffix '\.npz'"):
        format_from_suffix("cams.npz")


EYE = torch.eye(4).tolist()
ROT_BAD = [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


@pytest.mark.parametrize(
    ("name", "text", "field"),
    [
        ("path.json", "{not json", None),
        (
            "path.json",
            json.dumps(
                {
                    "render_width": 8,
                    "render_height": 8,
                    "camera_path": [{"camera_to_world": [1, 2, 3], "fov": 50}],
                }
            ),
            "camera_path[0].camera_to_world",
        ),
        (
            "path.json",
            json.dumps(
                {
                    "render_width": 8,
                    "render_height": 8,
                    "camera_path": [{"camera_to_world": ROT_BAD, "fov": 50}],
                }
            ),
            "camera_path[0].camera_to_world",
        ),
        (
            "path.json",
            json.dumps(
                {
                    "render_width": 8,
                    "render_height": 8,
                    "camera_path": [{"camera_to_world": EYE, "fov": None}],
                }
            ),
            "camera_path[0].fov",
        ),
        (
            "path.json",
            json.dumps({"render_width": 8, "render_height": 8, "camera_path": []}),
            "camera_path",
        ),
        (
            "t.json",
            json.dumps(
                {
                    "w": 8,
                    "h": 8,
                    "fl_x": 5,
                    "frames": [{"transform_matrix": [[float("nan")] * 4] * 4}],
                }
            ),
            "frames[0].transform_matrix",
        ),
        (
            "t.json",
            json.dumps(
                {"w": 8, "h": 8, "fl_x": 5, "frames": [{"transform_matrix": EYE, "fl_x": -1}]}
            ),
            "frames[0].fl_x",
        ),
        (
            "t.json",
            json.dumps({"w": 0, "h": 8, "fl_x": 5, "frames": [{"transform_matrix": EYE}]}),
            "w",
        ),
        (
            "c.json",
            json.dumps({"format": "dreamjourney.cameras/1", "width": 8, "height": 8, "frames": []}),
            "frames",
        ),
        ("c.txt", "url\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 3 0\n", "line 2"),
    ],
)
def test_bad_camera_files_name_file_and_field(tmp_path, name, text, field):
    path = tmp_path / name
    path.write_text(text)
    fmt = {"path.json": "nerfstudio", "t.json": "transforms", "c.json": "native", "c.txt": "re10k"}[
        name
    ]
    with pytest.raises(InputError) as info:
        load_cameras(path, format=fmt)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path} [{field}]: " if field else f"{path}: ")


def test_undetectable_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputError, match="not a camera file in any supported format"):
        load_cameras(path)
