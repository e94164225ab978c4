"""Warping images between cameras with known depth (the geometry behind the eval measures).

- `forward_warp`: splat a source RGB-D image into another camera (the geometry engine's exact
  z-buffer, nearest point wins). Holes stay empty.
- `backward_warp`: for every target pixel with depth, fetch the source colour where it projects
  (bilinear), with an occlusion test against the source depth when that is known.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamjourney.camera.cameras import Cameras, pixel_centers
from dreamjourney.scene import rasterize, unproject


def forward_warp(
    image: Tensor, depth: Tensor, source: Cameras, target: Cameras, *, background: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Splat (3, H, W) with z-depth (H, W) from `source` (len 1) into `target` (len 1).

    The geometry engine's exact z-buffer does the work (`dreamjourney.scene.rasterize`).
    Returns the warped image (3, H', W') (`background` on holes), its z-depth (H', W') (0 on
    holes) and the mask (H', W') bool, True where the source surface is seen.
    """
    out = rasterize(unproject(image, depth, source), target, background=background)
    return out.image[0], out.depth[0], out.mask[0]


def backward_warp(
    source_image: Tensor,
    source: Cameras,
    target: Cameras,
    target_depth: Tensor,
    *,
    source_depth: Tensor | None = None,
    depth_tolerance: float = 0.05,
) -> tuple[Tensor, Tensor]:
    """The source colour seen at each target pixel.

    Args:
        source_image: (3, H, W) seen by `source` (len 1).
        target: len 1; `target_depth` (H', W') its z-depth (0 = unknown).
        source_depth: (H, W) z-depth of the source; when given, a target pixel whose point is
            hidden in the source (its depth there differs by more than `depth_tolerance`,
            relative) is not valid.
    Returns:
        warped (3, H', W') and valid (H', W') bool (depth known, in front of and inside the
        source, and not occluded).
    """
    th, tw = target_depth.shape
    sh, sw = source_image.shape[-2:]
    uv = pixel_centers(tw, th, device=target_depth.device).reshape(1, -1, 2)
    points = target.unproject(uv, target_depth.reshape(1, -1))
    uv_s, z_s = source.project(points)
    uv_s, z_s = uv_s[0], z_s[0]
    u, v = uv_s[:, 0], uv_s[:, 1]
    valid = (target_depth.reshape(-1) > 0) & (z_s > 0) & (u >= 0) & (u <= sw) & (v >= 0) & (v <= sh)
    grid = torch.stack([2 * u / sw - 1, 2 * v / sh - 1], dim=-1).reshape(1, th, tw, 2)
    grid = torch.where(valid.reshape(1, th, tw, 1), grid, torch.zeros_like(grid))
    warped = F.grid_sample(
        source_image[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )[0]
    if source_depth is not None:
        seen = F.grid_sample(
            source_depth[None, None],
            grid,
            mode="nearest",
            padding_mode="border",
            align_corners=False,
        ).reshape(-1)
        valid &= (seen > 0) & ((seen - z_s).abs() <= depth_tolerance * z_s)
    return warped, valid.reshape(th, tw)
