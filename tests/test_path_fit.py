"""Placing camera files in a scene (path_fit), fitting K to a frame, resampling a file to a clip,
and the scale of relative depth from parallax, against analytic paths and synthetic scenes."""

import math

import pytest
import torch

from dreamjourney.camera import Cameras, look_at
from dreamjourney.camera.keyframes import resample_to_clip
from dreamjourney.camera.path_fit import EXTENT_IN_SCENE_SCALES, fit_path
from dreamjourney.errors import InputError


def _orbit(
    radius: float, n: int = 12, sweep_deg: float = 120.0, offset=(5.0, -2.0, 7.0)
) -> Cameras:
    """Cameras on a circle of `radius` about a point, all looking at it, in a shifted world."""
    centre = torch.tensor(offset)
    angles = torch.linspace(0, math.radians(sweep_deg), n)
    eyes = centre + radius * torch.stack([torch.sin(angles), torch.zeros(n), -torch.cos(angles)], 1)
    return Cameras.create(look_at(eyes, centre.expand(n, 3)), width=64, height=48, fov_deg=50)


def _start(width=64, height=48) -> Cameras:
    return Cameras.create(torch.eye(4), width=width, height=height, fov_deg=50)


def test_orbit_focus_lands_at_the_scene_scale():
    path = _orbit(radius=4.0)
    placed = fit_path(path, _start(), scene_scale=1.5)
    assert placed.rule == "focus" and placed.scale == pytest.approx(1.5 / 4.0, rel=1e-4)
    cams = placed.cameras
    assert torch.equal(cams.c2w[0], torch.eye(4))
    # every camera now looks at the point 1.5 ahead of the first one
    focus = torch.tensor([0.0, 0.0, 1.5])
    to_focus = torch.nn.functional.normalize(focus - cams.centers, dim=1)
    assert torch.allclose((to_focus * cams.forward).sum(1), torch.ones(len(cams)), atol=1e-4)
    # relative rotations are kept, relative translations scaled
    rel_file = path.relative_to(path.c2w[0]).c2w
    assert torch.allclose(cams.c2w[:, :3, :3], rel_file[:, :3, :3], atol=1e-5)
    assert torch.allclose(cams.c2w[:, :3, 3], rel_file[:, :3, 3] * placed.scale, atol=1e-5)


def test_straight_path_extent_and_given_and_turning_paths():
    c2w = torch.eye(4).repeat(5, 1, 1)
    c2w[:, 2, 3] = torch.linspace(10, 18, 5)  # 8 file units forward
    path = Cameras.create(c2w, width=64, height=48, fov_deg=50)
    placed = fit_path(path, _start(), scene_scale=2.0)
    assert placed.rule == "extent"
    assert placed.cameras.centers[-1].tolist() == pytest.approx([0, 0, EXTENT_IN_SCENE_SCALES * 2])
    given = fit_path(path, _start(), scene_scale=2.0, path_scale=0.01)
    assert given.rule == "given" and given.cameras.centers[-1, 2] == pytest.approx(0.08)
    turn = Cameras.create(look_at(torch.zeros(3, 3), torch.eye(3) + 0.1), width=64, height=48,
                          fov_deg=50)  # fmt: skip
    assert fit_path(turn, _start(), scene_scale=2.0).rule == "turns only"
    with pytest.raises(InputError, match="--path-scale"):
        fit_path(path, _start(), scene_scale=2.0, path_scale=-1.0)


def test_path_starts_at_the_start_pose_and_time():
    start_c2w = look_at(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 2.0, 6.0]))
    start = Cameras.create(start_c2w, width=64, height=48, fov_deg=50, times=[2.5])
    placed = fit_path(_orbit(3.0), start, scene_scale=1.0)
    assert torch.allclose(placed.cameras.c2w[0], start_c2w, atol=1e-6)
    assert placed.cameras.times[0] == pytest.approx(2.5)


def test_fit_crops_k_to_the_frame_aspect_instead_of_stretching():
    K = torch.tensor([[500.0, 0, 320], [0, 500.0, 180], [0, 0, 1]])
    wide = Cameras.create(torch.eye(4), width=640, height=360, K=K)
    fitted = wide.fit(512, 384)
    assert float(fitted.fx[0]) == pytest.approx(
        float(fitted.fy[0]), rel=2e-3
    )  # square pixels stay square
    assert fitted.K[0, 0, 2] == pytest.approx(256, abs=0.5)
    assert fitted.K[0, 1, 2] == pytest.approx(192, abs=0.5)
    assert fitted.fy[0] == pytest.approx(500 * 384 / 360, rel=2e-3)  # the height is kept
    placed = fit_path(wide.with_times([0.0]), _start(512, 384), scene_scale=1.0)
    assert placed.cropped_from == (640, 360)
    assert "centre-cropped to the frame's aspect" in placed.describe("x.txt")


def test_resample_to_clip_on_time_or_by_index():
    path = _orbit(2.0, n=9)  # times 0 .. 8/24 s
    clip_times = torch.arange(5) / 12.0  # 5 frames at 12 fps: the same 1/3 s
    cams, how = resample_to_clip(path, clip_times)
    assert how == "on time" and len(cams) == 5 and torch.equal(cams.times, clip_times)
    assert torch.allclose(cams.c2w[::2], path.c2w[::4], atol=1e-4)  # every other frame is a key
    assert torch.equal(cams.K, path.K[:5])
    longer = torch.arange(5) / 6.0  # 2/3 s: longer than the file, so by index
    cams, how = resample_to_clip(path, longer)
    assert how == "by index" and torch.allclose(cams.c2w[-1], path.c2w[-1], atol=1e-5)
    same, how = resample_to_clip(path, torch.arange(9) / 30.0)
    assert how == "one per frame" and torch.equal(same.c2w, path.c2w)


def test_parallax_recovers_the_scale_of_relative_depth():
    from dreamjourney.data import synth_scene
    from dreamjourney.scene.parallax import parallax_scales

    scene = synth_scene(3, cameras=4, frames=6, width=96, height=96)
    walk = scene.streams["ego_walk"]  # a moving camera
    relative = walk.depth / walk.depth[walk.depth > 0].median() * 0.7
    truth = float(walk.depth[walk.depth > 0].median() / 0.7)
    fits = parallax_scales(walk.frames, relative, walk.cameras)
    found = [f for f in fits if f is not None]
    assert len(found) >= 4
    for fit in found:
        assert fit.scale == pytest.approx(truth, rel=0.03) and fit.parallax_deg >= 1.0
    still = scene.streams["exo_front"]  # a static camera: no parallax, no scale
    assert all(f is None for f in parallax_scales(still.frames, still.depth, still.cameras))
