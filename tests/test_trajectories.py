import math

import pytest
import torch

from dreamjourney.camera import Cameras, look_at
from dreamjourney.camera.formats import save_cameras
from dreamjourney.camera.trajectories import (
    PRESETS,
    keep_clear,
    make_trajectory,
    resolve_trajectory,
)
from dreamjourney.errors import InputError


def start_camera() -> Cameras:
    """An arbitrary, non-axis-aligned start with an off-centre K and a non-zero time."""
    c2w = look_at(torch.tensor([0.5, -1.0, -2.0]), torch.tensor([2.0, 0.5, 3.0]))
    K = torch.tensor([[70.0, 0.0, 30.0], [0.0, 75.0, 26.0], [0.0, 0.0, 1.0]])
    return Cameras.create(c2w, width=64, height=48, K=K, times=[1.5])


def rotation_steps_deg(cams: Cameras) -> torch.Tensor:
    R = cams.c2w[:, :3, :3].double()
    rel = R[:-1].transpose(1, 2) @ R[1:]
    cos = ((rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


def position_steps(cams: Cameras) -> torch.Tensor:
    return cams.centers.double().diff(dim=0).norm(dim=-1)


def in_start_frame(cams: Cameras, start: Cameras) -> torch.Tensor:
    """(N, 4, 4) poses relative to the start camera."""
    return torch.linalg.inv(start.c2w[0].double()) @ cams.c2w.double()


def test_yaw_plus_90_looks_along_plus_x():
    # documented: positive yaw turns right, i.e. towards the camera's +x axis
    right = make_trajectory("turn-right", 3, angle_deg=90.0)
    assert torch.allclose(right.forward[-1], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(right.forward[1], torch.tensor([math.sqrt(0.5), 0, math.sqrt(0.5)]))
    assert torch.allclose(right.centers, torch.zeros(3, 3))
    left = make_trajectory("turn-left", 2, angle_deg=90.0)
    assert torch.allclose(left.forward[-1], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)
    # image "down" (+y) stays world down: a yaw does not roll
    assert torch.allclose(right.c2w[-1, :3, 1], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


def test_yaw_is_relative_to_the_start_camera():
    start = Cameras.create(
        look_at(torch.zeros(3), torch.tensor([1.0, 0, 0])), width=8, height=8, fov_deg=60
    )  # looking along +x; its right is world -z
    cams = make_trajectory("turn-right", 2, start=start, angle_deg=90.0)
    assert torch.allclose(cams.forward[-1], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)


def test_tilt_up_looks_at_world_up():
    cams = make_trajectory("tilt-up", 2, angle_deg=90.0)
    assert torch.allclose(cams.forward[-1], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)
    down = make_trajectory("tilt-down", 2, angle_deg=30.0)
    assert down.forward[-1, 1].item() == pytest.approx(math.sin(math.radians(30)), abs=1e-6)


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("forward", (0, 0, 1)),
        ("backward", (0, 0, -1)),
        ("pan-left", (-1, 0, 0)),
        ("pan-right", (1, 0, 0)),
    ],
)
def test_translations_move_in_start_frame_by_scaled_distance(name, direction):
    start = start_camera()
    cams = make_trajectory(name, 5, start=start, scene_scale=4.0, distance=0.25)
    rel = in_start_frame(cams, start)
    assert torch.allclose(rel[-1, :3, 3], torch.tensor(direction).double(), atol=1e-5)
    assert torch.allclose(rel[:, :3, :3], torch.eye(3).double().expand(5, 3, 3), atol=1e-5)


@pytest.mark.parametrize("name", ["orbit", "arc-left", "arc-right"])
def test_orbit_keeps_look_at_point_at_image_centre(name):
    start = Cameras.create(
        look_at(torch.tensor([0.5, -1.0, -2.0]), torch.tensor([2.0, 0.5, 3.0])),
        width=64,
        height=48,
        fov_deg=50,
    )
    scale = 3.0
    target = start.centers[0] + scale * 1.5 * start.forward[0]
    cams = make_trajectory(name, 24, start=start, scene_scale=scale, depth=1.5)
    uv, z = cams.project(target[None])
    assert torch.allclose(uv[:, 0], torch.tensor([32.0, 24.0]).expand(24, 2), atol=1e-3)
    assert torch.allclose(z[:, 0], torch.full((24,), 4.5), atol=1e-4)


def test_orbit_sweep_and_arc_directions():
    cams = make_trajectory("orbit", 5, sweep_deg=180.0, depth=1.0, scene_scale=2.0)
    # half an orbit around (0, 0, 2): the camera ends behind the look-at point, facing back
    assert torch.allclose(cams.centers[-1], torch.tensor([0.0, 0.0, 4.0]), atol=1e-5)
    assert torch.allclose(cams.forward[-1], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)
    assert cams.centers[2, 0] < 0  # positive sweep moves the camera to its left first
    assert make_trajectory("arc-left", 3).centers[-1, 0] < 0
    assert make_trajectory("arc-right", 3).centers[-1, 0] > 0


def test_zoom_and_dolly_zoom_focal():
    start = start_camera()
    zoom = make_trajectory("zoom-in", 3, start=start, factor=4.0)
    assert torch.allclose(zoom.fx, torch.tensor([70.0, 140.0, 280.0]))
    assert torch.allclose(zoom.K[:, :2, 2], start.K[0, :2, 2].expand(3, 2))  # centre kept
    assert torch.allclose(zoom.c2w, start.c2w.expand(3, 4, 4))
    out = make_trajectory("zoom-out", 2)
    assert out.fx[-1].item() == pytest.approx(out.fx[0].item() / 2)
    # dolly zoom: any point on the subject plane keeps its pixel position
    dolly = make_trajectory("dolly-zoom", 9, scene_scale=2.0, distance=0.6, depth=1.0)
    subject = torch.tensor([[0.3, -0.2, 2.0], [-0.5, 0.4, 2.0]])
    uv, _ = dolly.project(subject)
    assert torch.allclose(uv, uv[:1].expand_as(uv), atol=1e-3)
    assert dolly.centers[-1, 2].item() == pytest.approx(1.2)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_starts_at_start_and_times_follow_fps(name):
    start = start_camera()
    cams = make_trajectory(name, 7, start=start, fps=10.0)
    assert len(cams) == 7 and (cams.width, cams.height) == (64, 48)
    assert torch.equal(cams.c2w[0], start.c2w[0]) and torch.equal(cams.K[0], start.K[0])
    assert torch.allclose(cams.times, 1.5 + torch.arange(7) / 10.0)
    R = cams.c2w[:, :3, :3]
    assert torch.allclose(R.transpose(1, 2) @ R, torch.eye(3).expand(7, 3, 3), atol=1e-5)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_scales_with_scene_scale(name):
    small = make_trajectory(name, 9, scene_scale=1.0)
    large = make_trajectory(name, 9, scene_scale=5.0)
    assert torch.allclose(large.centers, 5.0 * small.centers, atol=1e-4)
    assert torch.allclose(large.c2w[:, :3, :3], small.c2w[:, :3, :3], atol=1e-5)
    assert torch.allclose(large.K, small.K)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_is_smooth(name):
    """No jumps: steps are bounded by a few times their mean, and halve when frames double."""
    coarse, fine = (make_trajectory(name, n, start=start_camera()) for n in (40, 80))
    moved = False
    for steps in (position_steps, rotation_steps_deg):
        a, b = steps(coarse), steps(fine)
        if a.max() < 1e-6:
            continue
        moved = True
        assert a.max() <= 4.0 * a.mean()
        assert b.max() <= 0.55 * a.max()
        # no kink: consecutive steps change little relative to the step itself
        assert (a.diff().abs().max() <= 0.35 * a.max()).item()
    focal = coarse.fx.double()
    ratio = (focal[1:] / focal[:-1]).log().abs()
    if ratio.max() > 1e-6:
        moved = True
        assert ratio.max() <= 2.0 * ratio.mean()
    assert moved


def test_continuing_a_preset_equals_one_longer_run():
    start = start_camera()
    first = make_trajectory("forward", 5, start=start, distance=0.4)
    second = make_trajectory("forward", 5, start=first[-1], distance=0.4)
    whole = make_trajectory("forward", 9, start=start, distance=0.8)
    joined = Cameras.cat([first, second[1:]])
    assert torch.allclose(joined.c2w, whole.c2w, atol=1e-5)
    assert torch.allclose(joined.times, whole.times)


@pytest.mark.parametrize("seed", range(5))
def test_wander_never_looks_or_moves_backwards(seed):
    cams = make_trajectory("wander", 60, seed=seed, max_yaw_deg=80.0, max_pitch_deg=30.0)
    assert (cams.forward[:, 2] > 0).all()
    assert (cams.centers[:, 2].diff() > 0).all()
    again = make_trajectory("wander", 60, seed=seed, max_yaw_deg=80.0, max_pitch_deg=30.0)
    other = make_trajectory("wander", 60, seed=seed + 100, max_yaw_deg=80.0, max_pitch_deg=30.0)
    assert torch.equal(cams.c2w, again.c2w) and not torch.allclose(cams.c2w, other.c2w)


def test_journey_segments_turn_and_advance():
    straight = make_trajectory("journey", 11, segments=["straight"], step=0.5, scene_scale=2.0)
    assert torch.allclose(straight.centers[-1], torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)
    uturn = make_trajectory("journey", 41, segments="right,right", turn_deg=90.0)
    assert torch.allclose(uturn.forward[-1], torch.tensor([0.0, 0.0, -1.0]), atol=1e-5)
    # the first right turn heads towards +x; the path ends beside the start, to its right
    assert uturn.forward[20, 0].item() == pytest.approx(1.0, abs=1e-5)
    assert uturn.centers[-1, 0] > 0.5 and abs(uturn.centers[-1, 2].item()) < 1e-3
    left = make_trajectory("journey", 21, segments=["left"])
    assert left.forward[-1, 0] < 0 and left.centers[-1, 0] < 0


def test_bad_preset_requests_are_input_errors():
    with pytest.raises(InputError, match=r"unknown preset 'spin'.*orbit"):
        make_trajectory("spin", 10)
    with pytest.raises(InputError, match=r"\[?sweep\b.*unknown option.*sweep_deg"):
        make_trajectory("orbit", 10, sweep=30)
    with pytest.raises(InputError, match="frames"):
        make_trajectory("orbit", 0)
    with pytest.raises(InputError, match="scene_scale"):
        make_trajectory("orbit", 5, scene_scale=float("nan"))
    with pytest.raises(InputError, match="sweep_deg: must be a number"):
        make_trajectory("orbit", 5, sweep_deg="wide")
    with pytest.raises(InputError, match="segments"):
        make_trajectory("journey", 5, segments=["straight", "up"])
    with pytest.raises(InputError, match="distance"):
        make_trajectory("dolly-zoom", 5, distance=1.0, depth=1.0)


def test_resolve_preset_or_file(tmp_path):
    cams = resolve_trajectory("orbit", None, scene_scale=1, width=32, height=32, fov_deg=50)
    assert len(cams) == 49
    path = tmp_path / "path.json"
    save_cameras(make_trajectory("arc-left", 10, width=32, height=32), path)
    same = resolve_trajectory(str(path), None, scene_scale=9, width=8, height=8, fov_deg=20)
    assert len(same) == 10 and same.width == 32
    resampled = resolve_trajectory(str(path), 19, scene_scale=9, width=8, height=8, fov_deg=20)
    assert len(resampled) == 19
    assert torch.allclose(resampled.c2w[::2], same.c2w, atol=1e-3)  # the arc is a circle
    with pytest.raises(InputError, match="neither a preset"):
        resolve_trajectory(
            str(tmp_path / "nope.json"), 5, scene_scale=1, width=8, height=8, fov_deg=50
        )


def _wall_view(distance: float, size: int = 64) -> tuple[Cameras, torch.Tensor]:
    """A camera at the origin and the depth of a wall `distance` ahead (with a nearer post
    on the left edge, off the path's way)."""
    cam = Cameras.create(torch.eye(4), width=size, height=size, fov_deg=60.0)
    depth = torch.full((size, size), distance)
    depth[:, :4] = 0.2 * distance
    return cam, depth


def test_keep_clear_stops_a_forward_path_short_of_the_nearest_surface():
    start, depth = _wall_view(2.0)
    path = make_trajectory("forward", 9, scene_scale=10.0, start=start)  # 5 units: through it
    assert float(path.centers[-1, 2]) > 2.0
    kept = keep_clear(path, depth)
    z = kept.centers[:, 2]
    assert float(z.max()) == pytest.approx(1.0, abs=1e-4)  # half way to the wall, no further
    assert torch.all(z[1:] > z[:-1])  # same path, shorter: it still moves forward every frame
    assert torch.allclose(kept.c2w[:, :3, :3], path.c2w[:, :3, :3])
    assert torch.equal(kept.K, path.K) and torch.equal(kept.c2w[0], path.c2w[0])
    # a path that stays clear is returned as it is; so is one moving sideways
    short = make_trajectory("forward", 9, scene_scale=1.0, start=start)  # 0.5 units
    assert keep_clear(short, depth) is short
    pan = make_trajectory("pan-left", 9, scene_scale=10.0, start=start)
    assert keep_clear(pan, depth) is pan


def test_keep_clear_looks_where_the_camera_moves():
    # moving forward and to the right, towards a wall that is near only on the right
    start = Cameras.create(torch.eye(4), width=64, height=64, fov_deg=60.0)
    depth = torch.full((64, 64), 8.0)
    depth[:, 40:] = 2.0
    c2w = torch.eye(4).repeat(2, 1, 1)
    c2w[1, :3, 3] = torch.tensor([1.0, 0.0, 3.0])  # points at pixel column ~50 (the near part)
    path = Cameras(start.K.repeat(2, 1, 1), c2w, 64, 64, torch.zeros(2))
    kept = keep_clear(path, depth)
    assert float(kept.centers[1, 2]) == pytest.approx(1.0, abs=1e-3)
    depth[:, 40:] = 8.0
    assert keep_clear(path, depth) is path  # the far wall is 8 away: 3 units is clear
