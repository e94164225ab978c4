"""Coloured, time-stamped point clouds and lifting an image with its depth into one.

Every point carries a world-space footprint radius: half the spacing between the surface
samples around it (measured between neighbouring pixels on the same surface, so a slanted
surface gets an elongated footprint, never one that bridges a depth edge). The rasterizer turns
it into a screen-space splat size, so a surface stays closed when seen from nearer or at another
angle, while the gap behind a foreground edge stays open.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dreamjourney.camera import Cameras, pixel_centers

# Square splats must cover a rotated sampling grid: the farthest point of a unit grid cell from
# its nearest sample is 1/sqrt(2) in the max-norm, so the half-size is that times the spacing.
FOOTPRINT_FACTOR = 1.0 / math.sqrt(2.0) + 0.01
# Points beside a depth edge or a hole get a footprint of exactly their own pixel cell, so
# silhouettes do not grow.
EDGE_FOOTPRINT_FACTOR = 0.55
# Neighbour spacing more than this many times the fronto-parallel pixel size is a depth edge.
MAX_SLANT = 8.0


@dataclass
class PointCloud:
    """P points.

    Attributes:
        points: (P, 3) world xyz.
        colors: (P, C) float in [0, 1] (C = 3 for RGB).
        radii: (P,) world-space footprint radius (same units as `points`).
        times: (P,) seconds at which each point was observed.
    """

    points: Tensor
    colors: Tensor
    radii: Tensor
    times: Tensor

    def __post_init__(self) -> None:
        p = self.points.shape[0]
        if (
            self.points.shape != (p, 3)
            or self.colors.ndim != 2
            or self.colors.shape[0] != p
            or self.radii.shape != (p,)
            or self.times.shape != (p,)
        ):
            raise ValueError(
                f"PointCloud: points {tuple(self.points.shape)}, colors {tuple(self.colors.shape)}, "
                f"radii {tuple(self.radii.shape)}, times {tuple(self.times.shape)} disagree"
            )

    @classmethod
    def empty(cls, channels: int = 3, device: torch.device | str | None = None) -> PointCloud:
        return cls(
            torch.zeros(0, 3, device=device),
            torch.zeros(0, channels, device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, device=device),
        )

    @classmethod
    def cat(cls, clouds: Sequence[PointCloud]) -> PointCloud:
        if not clouds:
            raise ValueError("PointCloud.cat needs at least one cloud")
        return cls(
            torch.cat([c.points for c in clouds]),
            torch.cat([c.colors for c in clouds]),
            torch.cat([c.radii for c in clouds]),
            torch.cat([c.times for c in clouds]),
        )

    def __len__(self) -> int:
        return self.points.shape[0]

    def __getitem__(self, index: Tensor | slice) -> PointCloud:
        """Select points by a (P,) bool mask, an index tensor or a slice."""
        return PointCloud(
            self.points[index], self.colors[index], self.radii[index], self.times[index]
        )

    def to(self, device: torch.device | str) -> PointCloud:
        return PointCloud(
            self.points.to(device),
            self.colors.to(device),
            self.radii.to(device),
            self.times.to(device),
        )

    @property
    def device(self) -> torch.device:
        return self.points.device


def unproject(
    image: Tensor,
    depth: Tensor,
    camera: Cameras,
    *,
    depth_kind: str = "z",
    mask: Tensor | None = None,
    time: float | None = None,
) -> PointCloud:
    """Lift every pixel with depth into the world.

    Args:
        image: (C, H, W) colours in [0, 1] at the camera's size.
        depth: (H, W) z-depth (or ray distance with `depth_kind="ray"`); <= 0 or non-finite
            means no depth.
        camera: one camera (a batch of length 1).
        mask: (H, W) bool, False skips a pixel.
        time: seconds stamped on the points (default: the camera's time).
    Returns:
        A PointCloud of the kept pixels, in row-major pixel order.
    """
    if len(camera) != 1:
        raise ValueError(f"unproject needs one camera, got {len(camera)}")
    c, h, w = image.shape
    if depth.shape != (h, w) or (camera.width, camera.height) != (w, h):
        raise ValueError(
            f"unproject: image {tuple(image.shape)}, depth {tuple(depth.shape)} and camera "
            f"{camera.width}x{camera.height} disagree"
        )
    device = depth.device
    camera = camera.to(device)
    depth = depth.float()
    valid = torch.isfinite(depth) & (depth > 0)
    if mask is not None:
        valid &= mask.to(device=device, dtype=torch.bool)
    depth = torch.where(valid, depth, torch.zeros_like(depth))
    uv = pixel_centers(w, h, device=device).reshape(1, -1, 2)
    xyz = camera.unproject(uv, depth.reshape(1, -1), depth_kind=depth_kind)[0].reshape(h, w, 3)
    z = camera.world_to_camera(xyz.reshape(-1, 3))[0, :, 2].reshape(h, w)
    radii = _footprint_radii(xyz, z, valid, camera.fx.item(), camera.fy.item())
    t = float(camera.times[0]) if time is None else float(time)
    flat = valid.reshape(-1)
    return PointCloud(
        points=xyz.reshape(-1, 3)[flat],
        colors=image.to(device).float().reshape(c, -1).T[flat],
        radii=radii.reshape(-1)[flat],
        times=torch.full((int(flat.sum()),), t, device=device),
    )


def _footprint_radii(xyz: Tensor, z: Tensor, valid: Tensor, fx: float, fy: float) -> Tensor:
    """(H, W) world footprint radius from the spacing to the nearer neighbour along each axis.

    The spacing is at least one fronto-parallel pixel (z / f) and at most MAX_SLANT of them, so a
    neighbour across a depth edge never widens a point.
    """
    inf = torch.tensor(float("inf"), device=xyz.device)

    def spacing(dim: int, f: float) -> tuple[Tensor, Tensor]:
        base = z / f
        step = (
            xyz.narrow(dim, 1, xyz.shape[dim] - 1) - xyz.narrow(dim, 0, xyz.shape[dim] - 1)
        ).norm(dim=-1)
        both = valid.narrow(dim, 1, valid.shape[dim] - 1) & valid.narrow(
            dim, 0, valid.shape[dim] - 1
        )
        step = torch.where(both, step, inf)
        pad_shape = list(step.shape)
        pad_shape[dim] = 1
        pad = torch.full(pad_shape, float("inf"), device=xyz.device)
        before = torch.cat([pad, step], dim=dim)  # distance to the previous pixel
        after = torch.cat([step, pad], dim=dim)  # distance to the next pixel
        nearest = torch.minimum(before, after)
        edge = torch.maximum(before, after) > MAX_SLANT * base
        nearest = torch.where(nearest > MAX_SLANT * base, base, nearest)
        return torch.maximum(nearest, base), edge

    sx, edge_x = spacing(1, fx)
    sy, edge_y = spacing(0, fy)
    factor = torch.where(edge_x | edge_y, EDGE_FOOTPRINT_FACTOR, FOOTPRINT_FACTOR)
    return factor * torch.maximum(sx, sy)
