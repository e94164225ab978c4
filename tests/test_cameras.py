import math

import pytest
import torch

from dreamjourney.camera import Cameras, intrinsics_from_fov, look_at, plucker_rays


def one_camera(c2w=None, width=64, height=48, fov=60.0):
    return Cameras.create(
        torch.eye(4) if c2w is None else c2w, width=width, height=height, fov_deg=fov
    )


def test_point_on_axis_projects_to_principal_point():
    cam = one_camera()
    uv, z = cam.project(torch.tensor([[0.0, 0.0, 5.0]]))
    assert torch.allclose(uv[0, 0], torch.tensor([32.0, 24.0]))
    assert z.item() == pytest.approx(5.0)


def test_opencv_axes_right_and_down():
    cam = one_camera()
    uv, _ = cam.project(torch.tensor([[1.0, 0.0, 5.0], [0.0, 1.0, 5.0]]))
    assert uv[0, 0, 0] > 32 and uv[0, 0, 1] == pytest.approx(24.0)  # +x is right
    assert uv[0, 1, 1] > 24 and uv[0, 1, 0] == pytest.approx(32.0)  # +y is down


def test_fov_axes():
    K = intrinsics_from_fov(90.0, 200, 100, axis="horizontal")
    assert K[0, 0].item() == pytest.approx(100.0)
    K = intrinsics_from_fov(90.0, 200, 100, axis="vertical")
    assert K[1, 1].item() == pytest.approx(50.0)
    cam = Cameras.create(torch.eye(4), width=200, height=100, K=K)
    assert cam.fov_deg("vertical").item() == pytest.approx(90.0, abs=1e-4)


def test_project_unproject_round_trip_with_skewless_offcentre_K():
    K = torch.tensor([[80.0, 0, 30.0], [0, 90.0, 20.0], [0, 0, 1]])
    c2w = look_at(torch.tensor([1.0, -0.5, -3.0]), torch.tensor([0.0, 0.0, 1.0]))
    cam = Cameras.create(c2w, width=64, height=48, K=K)
    uv = torch.rand(1, 100, 2) * torch.tensor([64.0, 48.0])
    depth = torch.rand(1, 100) * 10 + 0.1
    pts = cam.unproject(uv, depth)
    uv2, z2 = cam.project(pts)
    assert torch.allclose(uv2, uv, atol=1e-3) and torch.allclose(z2, depth, atol=1e-4)
    pts_ray = cam.unproject(uv, depth, depth_kind="ray")
    assert torch.allclose((pts_ray[0] - cam.centers[0]).norm(dim=-1), depth[0], atol=1e-4)


def test_look_at_identity_and_target_at_centre():
    c2w = look_at(torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(c2w, torch.eye(4), atol=1e-6)
    target = torch.tensor([2.0, 1.0, 3.0])
    cam = one_camera(look_at(torch.tensor([-1.0, -2.0, -4.0]), target))
    uv, _ = cam.project(target[None])
    assert torch.allclose(uv[0, 0], torch.tensor([32.0, 24.0]), atol=1e-4)


def test_w2c_is_inverse_and_indexing():
    c2w = torch.stack([look_at(torch.randn(3), torch.randn(3) + 5) for _ in range(4)])
    cams = Cameras.create(c2w, width=32, height=32, fov_deg=50)
    assert torch.allclose(cams.w2c @ cams.c2w, torch.eye(4).expand(4, 4, 4), atol=1e-5)
    assert len(cams[1]) == 1 and len(cams[-1]) == 1 and len(cams[1:3]) == 2
    assert torch.equal(cams[-1].c2w[0], c2w[-1])
    both = Cameras.cat([cams[:2], cams[2:]])
    assert torch.equal(both.c2w, cams.c2w) and torch.equal(both.times, cams.times)


def test_resize_and_pad_keep_geometry():
    cam = one_camera(width=64, height=48)
    point = torch.tensor([[0.3, -0.2, 2.0]])
    uv, _ = cam.project(point)
    uv_half, _ = cam.resize(32, 24).project(point)
    assert torch.allclose(uv_half, uv / 2, atol=1e-5)
    uv_pad, _ = cam.pad(8).project(point)
    assert torch.allclose(uv_pad, uv + 8, atol=1e-5)
    assert cam.pad(8).width == 80 and cam.pad(8).fov_deg() > cam.fov_deg()


def test_plucker_shapes_units_and_moment():
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    cams = Cameras.create(c2w, width=8, height=6, fov_deg=60)
    rays = plucker_rays(cams)
    assert rays.shape == (1, 6, 6, 8)
    d, m = rays[0, :3], rays[0, 3:]
    assert torch.allclose(d.norm(dim=0), torch.ones(6, 8), atol=1e-5)
    assert torch.allclose((d * m).sum(0), torch.zeros(6, 8), atol=1e-5)  # m is orthogonal to d
    rel = plucker_rays(cams, reference_c2w=c2w)
    assert torch.allclose(rel[0, 3:], torch.zeros(3, 6, 8), atol=1e-6)  # origin at reference
    swapped = plucker_rays(cams, order="md")
    assert torch.equal(swapped[:, :3], rays[:, 3:])
    clamped = plucker_rays(cams, moment_scale=10.0, clamp=1.0)
    assert clamped[:, 3:].abs().max() <= 1.0 and math.isclose(
        clamped[:, :3].norm(dim=1).mean().item(), 1.0, rel_tol=1e-5
    )


def test_digest_tells_cameras_apart_not_dtypes():
    cams = Cameras.create(
        torch.stack([torch.eye(4), look_at([1.0, 0.0, 0.0], [0.0, 0.0, 2.0])]),
        width=64, height=48, fov_deg=60.0,
    )  # fmt: skip
    digest = cams.digest()
    assert len(digest) == 64 and digest == cams.digest()
    same = Cameras(cams.K.double(), cams.c2w.double(), 64, 48, cams.times.double())
    assert same.digest() == digest
    moved = cams.c2w.clone()
    moved[1, 0, 3] += 1e-4
    others = [
        Cameras(cams.K, moved, 64, 48, cams.times),
        cams.with_times([0.0, 0.5]),
        Cameras(cams.K, cams.c2w, 64, 49, cams.times),
        cams.resize(32, 24),
    ]
    assert len({digest, *(c.digest() for c in others)}) == 5
