"""Robust depth alignment and the heuristic pop-up depth."""

import numpy as np
import pytest
import torch

from dreamjourney.camera import Cameras, look_at
from dreamjourney.scene import align_depth, heuristic_depth
from dreamjourney.scene.heuristic_depth import (
    CLOSE_UP_RANGE,
    GROUND,
    SKY,
    VERTICAL,
    pop_up,
    superpixels,
)


def noisy_pair(space, outlier_share=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(64, 64, generator=g) * 3 + 1
    if space == "depth":
        target = 2.5 * pred + 0.7
    else:
        target = 1.0 / (0.5 / pred + 0.1)
    target = target * (1 + 1e-3 * torch.randn(64, 64, generator=g))
    outliers = torch.rand(64, 64, generator=g) < outlier_share
    target = torch.where(outliers, torch.rand(64, 64, generator=g) * 30 + 0.1, target)
    return pred, target, outliers


@pytest.mark.parametrize("space,scale,shift", [("depth", 2.5, 0.7), ("disparity", 0.5, 0.1)])
def test_recovers_scale_and_shift_with_20_percent_outliers(space, scale, shift):
    pred, target, outliers = noisy_pair(space)
    mask = torch.ones_like(pred, dtype=torch.bool)
    fit = align_depth(pred, target, mask, space=space)
    assert fit.scale == pytest.approx(scale, rel=5e-3)
    assert fit.shift == pytest.approx(shift, abs=5e-3)
    # outliers are rejected (a few random ones land on the line by chance)
    assert (fit.inliers & outliers).sum() < 0.01 * outliers.sum() + 5
    assert fit.inliers[~outliers].float().mean() > 0.98
    clean = 2.5 * pred + 0.7 if space == "depth" else 1.0 / (0.5 / pred + 0.1)
    assert torch.allclose(fit.aligned, clean, rtol=0.01)
    assert 0 < fit.residual < 0.02


def test_max_samples_fits_on_an_even_subset_with_the_same_result():
    pred, target, _ = noisy_pair("depth")
    mask = torch.ones_like(pred, dtype=torch.bool)
    mask[:, :8] = False
    fit = align_depth(pred, target, mask, max_samples=500)
    # 3584 usable pixels, every 8th: 448 samples, about 20% of them outliers
    assert 330 <= int(fit.inliers.sum()) <= 448
    assert not fit.inliers[:, :8].any()
    assert fit.inliers[:32].any() and fit.inliers[32:].any()  # spread over the frame
    assert fit.scale == pytest.approx(2.5, rel=2e-2)
    assert fit.shift == pytest.approx(0.7, abs=2e-2)
    assert (fit.aligned > 0).all()  # every pixel is aligned, not only the samples


def test_only_masked_valid_pixels_are_used():
    pred, target, _ = noisy_pair("depth", outlier_share=0.0)
    mask = torch.zeros_like(pred, dtype=torch.bool)
    mask[:, :32] = True
    target[:, 32:] = 0.0  # unknown there, and outside the mask anyway
    pred[0, 0] = 0.0
    fit = align_depth(pred, target, mask)
    assert not fit.inliers[:, 32:].any() and not fit.inliers[0, 0]
    assert fit.aligned[0, 0] == 0 and fit.aligned[5, 40].item() == pytest.approx(
        2.5 * pred[5, 40].item() + 0.7, rel=0.01
    )
    with pytest.raises(ValueError):
        align_depth(pred, target, torch.zeros_like(mask))


def sky_ground_box(h=64, w=64):
    g = torch.Generator().manual_seed(0)
    img = torch.zeros(3, h, w)
    img[:, : h // 2] = torch.tensor([0.4, 0.6, 0.95])[:, None, None]
    img[:, h // 2 :] = torch.tensor([0.35, 0.33, 0.3])[:, None, None] + 0.05 * torch.rand(
        3, h - h // 2, w, generator=g
    )
    img[:, 20:52, 20:34] = torch.tensor([0.8, 0.2, 0.15])[:, None, None]  # stands on row 51
    return img


def test_heuristic_depth_pops_up_ground_sky_and_a_standing_box():
    img = sky_ground_box()
    cam = Cameras.create(torch.eye(4), width=64, height=64, fov_deg=60)
    d = heuristic_depth(img, cam)
    assert d.shape == (64, 64) and d.dtype == torch.float32
    assert (d > 0).all() and d.isfinite().all()
    assert d.median().item() == pytest.approx(1.0, rel=0.05)
    ground = d[36:, 50]
    assert (ground[1:] <= ground[:-1] + 1e-4).all()  # the ground comes nearer downwards
    assert ground[0] > 3 * ground[-1]
    assert d[5, 50] > d[36, 50]  # sky beyond the ground
    box = d[24:48, 25:30]
    contact = d[53, 27]  # ground just below the box's foot
    assert box.max() < 1.6 * contact and box.min() > 0.6 * contact  # vertical, at its foot's depth
    assert box.mean() < 0.5 * d[24:48, 50].mean()  # in front of what is beside it


def test_heuristic_horizon_follows_camera_pitch():
    # a landscape: blue sky in the top rows, even grey ground below
    img = torch.full((3, 64, 64), 0.5) + 0.02 * torch.rand(
        3, 64, 64, generator=torch.Generator().manual_seed(1)
    )
    img[:, :10] = torch.tensor([0.4, 0.6, 0.95])[:, None, None]
    level = Cameras.create(torch.eye(4), width=64, height=64, fov_deg=60)
    down = Cameras.create(
        look_at(torch.zeros(3), torch.tensor([0.0, 0.3, 1.0])), width=64, height=64, fov_deg=60
    )
    d_level, d_down = heuristic_depth(img, level), heuristic_depth(img, down)
    # looking down, the horizon moves up the image: a row above the level horizon is ground
    assert d_down[28, 32] / d_down[63, 32] < 0.5 * d_level[28, 32] / d_level[63, 32]


def landscape(h=96, w=128):
    """Blue sky with a white cloud and a sun, textured green ground, a red box on the ground."""
    g = torch.Generator().manual_seed(0)
    img = torch.zeros(3, h, w)
    img[:] = torch.tensor([0.35, 0.55, 0.95])[:, None, None]
    img[:, 8:16, 20:50] = 0.97  # a cloud, inside the sky
    img[:, 6:12, 100:106] = torch.tensor([1.0, 0.95, 0.7])[:, None, None]  # the sun
    img[:, h // 2 :] = torch.tensor([0.3, 0.55, 0.2])[:, None, None] + 0.08 * torch.rand(
        1, h - h // 2, w, generator=g
    )
    img[:, 30:70, 50:80] = torch.tensor([0.8, 0.2, 0.15])[:, None, None]  # stands on row 69
    return img


def test_pop_up_labels_a_landscape_and_orders_its_depth():
    img = landscape()
    cam = Cameras.create(torch.eye(4), width=128, height=96, fov_deg=60)
    scene = pop_up(img, cam)
    assert scene.landscape
    labels, d = scene.labels, scene.depth
    assert (labels[:6] == SKY).mean() > 0.95
    # the cloud and the sun stay sky (holes in the sky mask are closed)
    assert (labels[9:15, 22:48] == SKY).all() and (labels[7:11, 101:105] == SKY).all()
    assert (labels[75:, :40] == GROUND).mean() > 0.95 and (labels[75:, 90:] == GROUND).mean() > 0.95
    assert (labels[35:65, 55:75] == VERTICAL).all()
    # depth order: sky beyond the box, the box beyond the ground in front of it; the box
    # stands upright at the depth of the ground at its foot
    sky, box = float(np.median(d[:6])), d[35:65, 55:75]
    front = float(np.median(d[85:, 55:75]))
    foot = float(np.median(d[71:73, 20:40]))
    assert sky > 5 * box.max() and box.min() > 1.5 * front
    assert box.max() < 1.3 * foot and box.min() > 0.75 * foot
    # the ground comes nearer downwards
    column = d[55:, 10]
    assert (column[1:] <= column[:-1] + 1e-4).all() and column[0] > 3 * column[-1]


def test_pop_up_landscape_has_no_flying_pixels_at_a_billboards_edge():
    # a smoothed step from the box to what is beside it puts pixels at every depth in between,
    # which a camera move spreads into streaks: across the box's sides (rows above the
    # horizon) the depth takes a few levels (the box's, the sky's, a superpixel's), no ramp
    scene = pop_up(landscape(), Cameras.create(torch.eye(4), width=128, height=96, fov_deg=60))
    band = scene.depth[32:46, 40:90]
    box, beside = float(np.median(band[:, 15:35])), band[:, [0, -1]].min()
    assert box < 0.5 * beside  # the box stands in front of what is beside it
    levels = np.unique(np.round(np.log(band), 2))
    assert len(levels) <= 4, np.exp(levels)


def test_pop_up_landscape_puts_an_objects_blended_rim_at_its_depth():
    # the box's sides blend into the sky over a column (as a camera's pixels do); left at the
    # sky's depth, that rim would stay behind when the box moves and draw its outline on the sky
    img = landscape()
    box, sky = img[:, 40, 60].clone(), img[:, 2, 2].clone()
    img[:, 30:48, 49] = img[:, 30:48, 80] = (0.5 * (box + sky))[:, None]
    d = pop_up(img, Cameras.create(torch.eye(4), width=128, height=96, fov_deg=60)).depth
    box_depth = float(np.median(d[35:45, 55:75]))
    rim = d[36:46, [49, 80]]  # (its top corners share superpixels with the sky)
    assert np.abs(rim / box_depth - 1).max() < 0.05, rim / box_depth


def test_pop_up_landscape_keeps_a_roof_on_its_wall():
    # a red roof on a cream wall: the roof touches no ground, and standing on its own lowest
    # row it would be farther than its wall, so a camera move would lift it off the house
    img = landscape()
    img[:, 30:70, 50:80] = torch.tensor([0.9, 0.85, 0.7])[:, None, None]  # the wall
    img[:, 18:30, 46:84] = torch.tensor([0.7, 0.1, 0.1])[:, None, None]  # its roof
    scene = pop_up(img, Cameras.create(torch.eye(4), width=128, height=96, fov_deg=60))
    assert (scene.labels[20:28, 50:80] == VERTICAL).all()
    roof, wall = (
        float(np.median(scene.depth[20:28, 50:80])),
        float(np.median(scene.depth[40:60, 55:75])),
    )
    assert abs(roof / wall - 1) < 0.02, (roof, wall)


def test_pop_up_gives_a_close_up_a_smooth_capped_depth():
    # no sky: a sharp, textured subject in the middle of a blurred, smooth background
    g = torch.Generator().manual_seed(2)
    h, w = 96, 128
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.6 + 0.1 * xx, 0.45 + 0.1 * yy, 0.4 + 0.0 * xx])
    subject = ((yy - 0.55) ** 2 + (xx - 0.5) ** 2) < 0.05
    texture = 0.3 * torch.rand(3, h, w, generator=g)
    img = torch.where(subject, 0.3 + texture, img)
    cam = Cameras.create(torch.eye(4), width=w, height=h, fov_deg=60)
    scene = pop_up(img, cam)
    assert not scene.landscape
    d = scene.depth
    assert d.max() / d.min() <= CLOSE_UP_RANGE * 1.01
    assert float(np.median(d[:8])) > 1.8 * float(np.median(d[-8:]))  # top beyond bottom
    sharp = float(np.median(d[subject.numpy()]))
    beside = float(np.median(d[45:60, :12]))  # the blurred background at the same height
    assert sharp < 0.85 * beside


def test_superpixels_follow_colour_edges():
    # a green field and a red wall meeting at a column that is not on SLIC's seed grid
    rgb = np.zeros((96, 128, 3))
    rgb[:, :53] = [0.3, 0.55, 0.2]
    rgb[:, 53:] = [0.8, 0.2, 0.15]
    rgb += 0.02 * np.random.default_rng(0).random((96, 128, 1))
    segments = superpixels(rgb)
    assert len(np.unique(segments)) > 100
    assert not set(np.unique(segments[:, :53])) & set(np.unique(segments[:, 53:]))
