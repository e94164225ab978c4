"""Coloured, time-stamped point clouds and lifting an image with its depth into one.

Every point lifted from an image carries a footprint: a small parallelogram on its surface,
spanned by half the world steps to its neighbouring pixels (measured on the same surface, so a
slanted surface gets an elongated footprint, never one that bridges a depth edge), and its
radius (the longer half-axis). The rasterizer projects the footprint into each view, so a
surface stays closed when seen from nearer or at another angle, while the gap behind a
foreground edge stays open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from dreamjourney.camera import Cameras, pixel_centers
from dreamjourney.scene import raster_cpu

# Footprint half-axes are this share of the steps to the neighbouring pixels: the
# parallelograms then tile the surface (and the screen boxes around them cover it).
FOOTPRINT_FACTOR = 0.51
# Points beside a depth edge or a hole get a footprint of about their own pixel cell, so
# silhouettes do not grow.
EDGE_FOOTPRINT_FACTOR = 0.55
# Beside a depth edge, a neighbour more than this many fronto-parallel pixels away is across it.
MAX_SLANT = 8.0
# Three samples lie on one smooth surface if the cosine between their two steps is at least
# this (a plane at any slant gives 1; a depth edge beside a surface facing the camera about 0).
COLLINEAR = 0.9
# ... and if the longer step is at most this many times the shorter one. A silhouette seen at a
# grazing angle has collinear steps too (both run along the viewing ray), but the step across
# it to the background is far longer: without this test its footprint would reach back to the
# background and smear the object over the scene in every other view.
MAX_STEP_RATIO = 3.0


@dataclass
class PointCloud:
    """P points.

    Attributes:
        points: (P, 3) world xyz.
        colors: (P, C) float in [0, 1] (C = 3 for RGB).
        radii: (P,) world-space footprint radius (same units as `points`).
        times: (P,) seconds at which each point was observed.
        axes: optional (P, 2, 3) world-space half-axes of each point's footprint, a small
            parallelogram on its surface (from `unproject`: the steps to the neighbouring pixels,
            scaled). With them a splat's size on screen follows the surface's slant in every
            view; without them it is a sphere of radius `radii`.

    A cloud is never modified in place: every operation returns a new one. So the layout the
    CPU rasterizer reads (`columns`) is made once per cloud and kept.
    """

    points: Tensor
    colors: Tensor
    radii: Tensor
    times: Tensor
    axes: Tensor | None = None
    _columns: Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = self.points.shape[0]
        if (
            self.points.shape != (p, 3)
            or self.colors.ndim != 2
            or self.colors.shape[0] != p
            or self.radii.shape != (p,)
            or self.times.shape != (p,)
            or (self.axes is not None and self.axes.shape != (p, 2, 3))
        ):
            axes = None if self.axes is None else tuple(self.axes.shape)
            raise ValueError(
                f"PointCloud: points {tuple(self.points.shape)}, colors {tuple(self.colors.shape)}, "
                f"radii {tuple(self.radii.shape)}, times {tuple(self.times.shape)}, axes {axes} "
                "disagree"
            )

    @classmethod
    def empty(cls, channels: int = 3, device: torch.device | str | None = None) -> PointCloud:
        return cls(
            torch.zeros(0, 3, device=device),
            torch.zeros(0, channels, device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, 2, 3, device=device),
        )

    @classmethod
    def cat(cls, clouds: Sequence[PointCloud]) -> PointCloud:
        """Concatenate; footprint axes are kept if every non-empty cloud has them."""
        if not clouds:
            raise ValueError("PointCloud.cat needs at least one cloud")
        with_axes = [c for c in clouds if len(c) or c.axes is not None]
        keep_axes = bool(with_axes) and all(c.axes is not None for c in with_axes)
        out = cls(
            torch.cat([c.points for c in clouds]),
            torch.cat([c.colors for c in clouds]),
            torch.cat([c.radii for c in clouds]),
            torch.cat([c.times for c in clouds]),
            torch.cat([c.axes for c in with_axes if c.axes is not None]) if keep_axes else None,
        )
        # the world grows by a frame at a time: where the first cloud's `columns` are made, the
        # others' are appended to them rather than all made again
        parts = [c for c in clouds if len(c)]
        if parts and parts[0]._columns is not None:
            columns = [c.columns() for c in parts]
            if all(len(col) == (10 if keep_axes else 4) for col in columns):
                out._columns = torch.cat(columns, dim=1)
        return out

    def __len__(self) -> int:
        return self.points.shape[0]

    def __getitem__(self, index: Tensor | slice) -> PointCloud:
        """Select points by a (P,) bool mask, an index tensor or a slice."""
        return PointCloud(
            self.points[index],
            self.colors[index],
            self.radii[index],
            self.times[index],
            None if self.axes is None else self.axes[index],
        )

    def to(self, device: torch.device | str) -> PointCloud:
        return PointCloud(
            self.points.to(device),
            self.colors.to(device),
            self.radii.to(device),
            self.times.to(device),
            None if self.axes is None else self.axes.to(device),
        )

    @property
    def device(self) -> torch.device:
        return self.points.device

    def columns(self) -> Tensor:
        """(4, P) float32 rows x, y, z, radius, or (10, P) with the footprint half-axes after
        them, on the CPU: what the compiled CPU rasterizer reads. Made on first use, then kept."""
        if self._columns is None:
            self._columns = raster_cpu.columns(self.points, self.radii, self.axes)
        return self._columns


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
    axes = _footprint_axes(xyz, z, valid, camera)
    t = float(camera.times[0]) if time is None else float(time)
    flat = valid.reshape(-1)
    axes = axes.reshape(-1, 2, 3)[flat]
    return PointCloud(
        points=xyz.reshape(-1, 3)[flat],
        colors=image.to(device).float().reshape(c, -1).T[flat],
        radii=axes.norm(dim=-1).amax(dim=-1),
        times=torch.full((int(flat.sum()),), t, device=device),
        axes=axes,
    )


def _footprint_axes(xyz: Tensor, z: Tensor, valid: Tensor, camera: Cameras) -> Tensor:
    """(H, W, 2, 3) footprint half-axes: world steps to the neighbouring pixels along x and y.

    Where a pixel's steps to both neighbours on an axis point the same way (it lies on one
    smooth surface, however slanted), the longer step is the axis, so the footprint reaches
    halfway to both neighbours. Elsewhere the pixel is on a depth edge or beside a hole: the
    step to its nearer neighbour if that is at most MAX_SLANT fronto-parallel pixels (z / f),
    else one fronto-parallel pixel, with the tighter EDGE_FOOTPRINT_FACTOR, so silhouettes do
    not grow. Every step to a neighbouring pixel projects to exactly one pixel in the source
    view, so the source view renders its own image whatever the slant.
    """
    rotation = camera.c2w[0, :3, :3]

    def axis(dim: int, f: float) -> tuple[Tensor, Tensor]:
        base = z / f
        n = xyz.shape[dim]
        diff = xyz.narrow(dim, 1, n - 1) - xyz.narrow(dim, 0, n - 1)
        both = valid.narrow(dim, 1, n - 1) & valid.narrow(dim, 0, n - 1)
        diff = torch.where(both[..., None], diff, torch.nan)
        pad = torch.full_like(diff.narrow(dim, 0, 1), torch.nan)
        before = torch.cat([pad, diff], dim=dim)  # step from the previous pixel
        after = torch.cat([diff, pad], dim=dim)  # step to the next pixel
        len_before = before.norm(dim=-1).nan_to_num(torch.inf)
        len_after = after.norm(dim=-1).nan_to_num(torch.inf)
        cos = (before * after).sum(-1) / (len_before * len_after)
        ratio = torch.maximum(len_before, len_after) / torch.minimum(len_before, len_after)
        smooth = (cos.nan_to_num(-1.0) >= COLLINEAR) & (ratio <= MAX_STEP_RATIO)
        before_nearer = (len_before <= len_after)[..., None]
        nearer = torch.where(before_nearer, before, after)
        farther = torch.where(before_nearer, after, before)
        near_len = torch.minimum(len_before, len_after)
        flat = rotation[:, 1 - dim] * base[..., None]  # one fronto-parallel pixel, in world
        edge_vec = torch.where((near_len <= MAX_SLANT * base)[..., None], nearer, flat)
        vec = torch.where(smooth[..., None], farther, edge_vec)
        too_short = ~(vec.norm(dim=-1) >= base)  # also catches NaN
        return torch.where(too_short[..., None], flat, vec), ~smooth

    fx, fy = float(camera.fx[0]), float(camera.fy[0])
    ax, edge_x = axis(1, fx)
    ay, edge_y = axis(0, fy)
    factor = torch.where(edge_x | edge_y, EDGE_FOOTPRINT_FACTOR, FOOTPRINT_FACTOR)
    return torch.stack([ax, ay], dim=-2) * factor[..., None, None]
