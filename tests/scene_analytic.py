"""An analytic scene for geometry tests: a textured, slanted back plane and a box in front of it.

Everything is ray-traced in closed form (ray-plane and ray-box slab intersections), independently
of the rasterizer under test.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dreamjourney.camera import Cameras

PLANE_N = torch.tensor([0.15, -0.1, 1.0])  # points x on the plane satisfy n . x = PLANE_D
PLANE_D = 4.0
BOX_MIN = torch.tensor([-0.6, -0.5, 2.0])
BOX_MAX = torch.tensor([0.4, 0.5, 2.6])


def texture(points: Tensor, on_box: Tensor) -> Tensor:
    """(P, 3) smooth colours of world points; the box and the plane have different palettes."""
    x, y, z = points.unbind(-1)
    plane = torch.stack(
        [
            0.5 + 0.25 * torch.sin(2.0 * x + 0.5 * y),
            0.5 + 0.25 * torch.cos(1.7 * y - 0.3 * x),
            0.4 + 0.2 * torch.sin(1.3 * (x + y)),
        ],
        dim=-1,
    )
    box = torch.stack(
        [
            0.8 + 0.1 * torch.sin(3.0 * y + 2.0 * z),
            0.25 + 0.15 * torch.cos(3.0 * x + 2.5 * z),
            0.2 + 0.1 * torch.sin(2.0 * (x - y)),
        ],
        dim=-1,
    )
    return torch.where(on_box[:, None], box, plane)


def trace(origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rays (R, 3) -> hit distance t along `dirs` (inf if none), hit points, hit-the-box flag."""
    n = PLANE_N
    denom = dirs @ n
    t_plane = (PLANE_D - origins @ n) / denom
    t_plane = torch.where((denom.abs() > 1e-9) & (t_plane > 0), t_plane, torch.inf)
    inv = 1.0 / torch.where(dirs.abs() > 1e-12, dirs, torch.full_like(dirs, 1e-12))
    t1 = (BOX_MIN - origins) * inv
    t2 = (BOX_MAX - origins) * inv
    t_near = torch.minimum(t1, t2).amax(-1)
    t_far = torch.maximum(t1, t2).amin(-1)
    hit_box = (t_near <= t_far) & (t_near > 0)
    t_box = torch.where(hit_box, t_near, torch.inf)
    on_box = t_box < t_plane
    t = torch.minimum(t_box, t_plane)
    return t, origins + t[:, None] * dirs, on_box


def render_truth(cameras: Cameras) -> tuple[Tensor, Tensor]:
    """Ray-traced (N, 3, H, W) image and (N, H, W) z-depth at pixel centres."""
    origins, dirs = cameras.rays()
    n, h, w, _ = dirs.shape
    _, hits, on_box = trace(origins.reshape(-1, 3), dirs.reshape(-1, 3))
    image = texture(hits, on_box).reshape(n, h, w, 3).permute(0, 3, 1, 2).contiguous()
    z = cameras.world_to_camera(hits.reshape(n, -1, 3))[..., 2].reshape(n, h, w)
    return image, z


def seen_from(points: Tensor, camera: Cameras) -> Tensor:
    """(P,) bool: world points in `camera`'s image and not occluded from it (exact)."""
    uv, z = camera.project(points)
    uv, z = uv[0], z[0]
    inside = (
        (z > 0)
        & (uv[:, 0] >= 0)
        & (uv[:, 0] < camera.width)
        & (uv[:, 1] >= 0)
        & (uv[:, 1] < camera.height)
    )
    centre = camera.centers[0].expand_as(points)
    dist = (points - centre).norm(dim=-1)
    t, _, _ = trace(centre, (points - centre) / dist[:, None])
    return inside & (t >= dist * (1 - 1e-4))
