"""Splats a render magnifies are smoothed (scene.magnified), on a lifted checkerboard."""

from __future__ import annotations

import torch

from dreamjourney.camera import Cameras
from dreamjourney.scene.magnified import soften_magnified, splat_width
from dreamjourney.scene.pointcloud import unproject
from dreamjourney.scene.raster import rasterize


def _checkerboard_wall(size: int = 64):
    """A checkerboard of 4 px squares lifted as a wall at depth 2 from a camera at the origin:
    its cloud and that camera."""
    rows = torch.arange(size)[:, None] // 4
    cols = torch.arange(size)[None, :] // 4
    board = ((rows + cols) % 2).float().expand(3, size, size).contiguous()
    camera = Cameras.create(torch.eye(4), width=size, height=size, fov_deg=60)
    cloud = unproject(board, torch.full((size, size), 2.0), camera)
    return cloud, camera


def _moved_forward(camera: Cameras, z: float) -> Cameras:
    c2w = torch.eye(4)
    c2w[2, 3] = z
    return Cameras.create(c2w, width=camera.width, height=camera.height, K=camera.K[0])


def test_splats_seen_from_where_they_were_lifted_are_left_as_they_are():
    cloud, camera = _checkerboard_wall()
    out = rasterize(cloud, camera)
    width = splat_width(out, cloud, camera)
    # a pixel's footprint, a little over a pixel so that neighbours close up
    assert ((width[out.mask] > 1.0) & (width[out.mask] < 1.2)).all()
    assert torch.equal(soften_magnified(out.image, out, cloud, camera), out.image)


def test_magnified_splats_are_interpolated_not_drawn_as_blocks():
    # 4x nearer: each board pixel is a 4 px block; smoothed, the squares' edges take the
    # grey levels between black and white that a zoomed picture shows
    cloud, camera = _checkerboard_wall()
    near = _moved_forward(camera, 1.5)
    out = rasterize(cloud, near)
    assert out.mask.all()
    width = splat_width(out, cloud, near)
    assert ((width > 4.0) & (width < 4.8)).all()
    blocky = out.image
    assert ((blocky > 0.05) & (blocky < 0.95)).float().mean() < 0.01  # only black and white
    soft = soften_magnified(blocky, out, cloud, near)
    assert ((soft > 0.05) & (soft < 0.95)).float().mean() > 0.3
    assert abs(float(soft.mean() - blocky.mean())) < 0.02  # a blur, no new brightness


def test_what_the_render_did_not_cover_is_left_and_not_averaged_in():
    cloud, camera = _checkerboard_wall()
    near = _moved_forward(camera, 1.5)
    out = rasterize(cloud, near)
    frames = out.image.clone()
    frames[..., :, 32:] = 0.5  # what a completer painted where the render showed nothing
    out.mask[..., :, 32:] = False
    soft = soften_magnified(frames, out, cloud, near)
    assert torch.equal(soft[..., :, 32:], frames[..., :, 32:])  # holes are left as they are
    # and the board is averaged only with itself: its grey paint does not bleed in
    assert abs(float(soft[..., :, :28].mean() - frames[..., :, :28].mean())) < 0.03
