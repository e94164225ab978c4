import json
import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from dreamjourney.camera import Cameras, look_at
from dreamjourney.camera.formats import detect_format, load_cameras
from dreamjourney.camera.keyframes import (
    concat_paths,
    continue_path,
    interpolate_path,
    resample_path,
)
from dreamjourney.camera.trajectories import make_trajectory
from dreamjourney.errors import InputError


def yaw_pose(deg: float, position) -> torch.Tensor:
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.from_numpy(Rotation.from_euler("y", deg, degrees=True).as_matrix())
    c2w[:3, 3] = torch.tensor(position, dtype=torch.float32)
    return c2w


def keys(poses, times, fx=(50.0,)) -> Cameras:
    fx = list(fx) * len(poses) if len(fx) == 1 else list(fx)
    K = torch.stack([torch.tensor([[f, 0, 16.0], [0, f, 16.0], [0, 0, 1]]) for f in fx])
    return Cameras(K, torch.stack(poses), 32, 32, torch.tensor(times))


def test_two_keys_slerp_and_linear():
    path = interpolate_path(
        keys([yaw_pose(0, [0, 0, 0]), yaw_pose(90, [2, 0, 4])], [0.0, 2.0], fx=(40.0, 80.0)), 5
    )
    assert torch.allclose(path.times, torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]))
    assert torch.allclose(path.centers[2], torch.tensor([1.0, 0.0, 2.0]), atol=1e-5)
    half = math.sqrt(0.5)
    assert torch.allclose(path.forward[2], torch.tensor([half, 0.0, half]), atol=1e-5)
    assert torch.allclose(path.fx, torch.tensor([40.0, 50.0, 60.0, 70.0, 80.0]))


def test_path_passes_through_keys_with_continuous_velocity():
    poses = [
        yaw_pose(a, p)
        for a, p in [(0, [0, 0, 0]), (30, [1, 0, 2]), (-20, [3, 1, 3]), (10, [4, 0, 6])]
    ]
    path = interpolate_path(keys(poses, [0.0, 1.0, 2.0, 3.0]), 31)
    for i, pose in zip((0, 10, 20, 30), poses, strict=True):
        assert torch.allclose(path.c2w[i], pose, atol=1e-5)
    velocity = path.centers.diff(dim=0)
    # C1: the velocity changes by a small fraction of itself between neighbouring steps
    assert (velocity.diff(dim=0).norm(dim=-1) < 0.2 * velocity.norm(dim=-1).max()).all()
    angles = Rotation.from_matrix(path.c2w[:, :3, :3].double().numpy())
    steps = (angles[1:] * angles[:-1].inv()).magnitude()
    assert abs(steps[1:] - steps[:-1]).max() < 0.3 * steps.max()


def test_constant_speed_reparametrisation():
    poses = [yaw_pose(0, [0, 0, 0]), yaw_pose(0, [0, 0, 3]), yaw_pose(0, [0, 0, 10])]
    k = keys(poses, [0.0, 1.0, 2.0])
    uneven = interpolate_path(k, 41).centers.diff(dim=0).norm(dim=-1)
    even = interpolate_path(k, 41, constant_speed=True).centers.diff(dim=0).norm(dim=-1)
    assert uneven.max() > 3 * uneven.min()
    assert torch.allclose(even, torch.full_like(even, 10.0 / 40), rtol=1e-3)


def test_resample_keeps_ends_and_retimes():
    cams = make_trajectory("orbit", 12, sweep_deg=90.0)
    more = resample_path(cams, 23)
    assert len(more) == 23 and torch.allclose(more.c2w[[0, -1]], cams.c2w[[0, -1]], atol=1e-5)
    assert torch.allclose(more.times[[0, -1]], cams.times[[0, -1]])
    # without increasing times the index is the parameter
    flat = resample_path(cams.with_times(torch.zeros(12)), 23)
    assert torch.allclose(flat.c2w[::2], cams.c2w, atol=1e-3)


def test_continue_and_concat_paths():
    start = Cameras.create(
        look_at(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([3.0, 0.0, 1.0])),
        width=32,
        height=32,
        fov_deg=50,
        times=[4.0],
    )
    seg = make_trajectory("journey", 9, segments=["left"])
    moved = continue_path(seg, start)
    assert torch.equal(moved.c2w[0], start.c2w[0]) and moved.times[0].item() == 4.0
    rel = torch.linalg.inv(moved.c2w[0]) @ moved.c2w
    assert torch.allclose(rel, seg.c2w, atol=1e-5)  # the motion is the same, only moved
    both = concat_paths([seg, make_trajectory("forward", 5)], fps=8.0)
    assert len(both) == 13
    assert torch.allclose(both.c2w[:9], seg.c2w)
    # the forward segment moves along the heading where the left turn ended
    step = both.centers[-1] - both.centers[8]
    assert torch.allclose(step / step.norm(), seg.forward[-1], atol=1e-5)
    assert torch.allclose(both.times, torch.arange(13) / 8.0)


def write(path, data):
    path.write_text(json.dumps(data))
    return path


def test_keyframe_file(tmp_path):
    target = [0.0, 0.0, 5.0]
    path = write(
        tmp_path / "keys.json",
        {
            "format": "dreamjourney.keyframes/1",
            "width": 64,
            "height": 48,
            "fps": 10,
            "keyframes": [
                {"time": 0, "position": [-2, 0, 0], "look_at": target, "fov": 60},
                {"time": 1, "position": [0, -1, 1], "look_at": target, "focal": 80},
                {
                    "time": 2,
                    "c2w": look_at(torch.tensor([2.0, 0, 0]), torch.tensor(target)).tolist(),
                },
            ],
        },
    )
    assert detect_format(path) == "keyframes"
    cams = load_cameras(path)
    assert len(cams) == 21 and (cams.width, cams.height) == (64, 48)
    uv, _ = cams[[0, 10, 20]].project(torch.tensor([target]))
    assert torch.allclose(uv[:, 0], torch.tensor([32.0, 24.0]).expand(3, 2), atol=1e-3)
    assert cams.fx[10].item() == pytest.approx(80.0)


@pytest.mark.parametrize(
    ("keyframes", "field"),
    [
        ([{"position": [0, 0, 0], "look_at": [0, 0, 1]}], "keyframes"),
        (
            [{"position": [0, 0], "look_at": [0, 0, 1]}, {"c2w": torch.eye(4).tolist()}],
            "keyframes[0].position",
        ),
        ([{"position": [0, 0, 0]}, {"c2w": torch.eye(4).tolist()}], "keyframes[0]"),
        (
            [
                {"position": [0, 0, 0], "rotation": [[1, 0, 0], [0, 2, 0], [0, 0, 1]]},
                {"c2w": torch.eye(4).tolist()},
            ],
            "keyframes[0].rotation",
        ),
        (
            [{"time": 1, "c2w": torch.eye(4).tolist()}, {"time": 1, "c2w": torch.eye(4).tolist()}],
            "keyframes[1].time",
        ),
        (
            [{"c2w": torch.eye(4).tolist(), "fov": float("nan")}, {"c2w": torch.eye(4).tolist()}],
            "keyframes[0].fov",
        ),
    ],
)
def test_bad_keyframe_files_name_the_field(tmp_path, keyframes, field):
    path = write(
        tmp_path / "k.json", {"format": "dreamjourney.keyframes/1", "keyframes": keyframes}
    )
    with pytest.raises(InputError) as info:
        load_cameras(path)
    assert str(info.value).startswith(f"{path} [{field}]: ")


def test_bundled_example_and_readme_list_every_preset():
    from pathlib import Path

    from dreamjourney.camera.trajectories import PRESETS

    repo = Path(__file__).resolve().parents[1]
    cams = load_cameras(repo / "examples" / "keyframes.json")
    assert len(cams) == 97 and (cams.width, cams.height) == (512, 320)
    assert torch.allclose(cams.centers[48], torch.tensor([1.0, -0.3, 1.5]), atol=1e-5)
    readme = (repo / "README.md").read_text()
    assert all(f"| `{name}` |" in readme for name in PRESETS)
