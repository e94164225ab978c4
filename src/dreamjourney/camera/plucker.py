"""Plücker ray maps: the per-pixel camera encoding used by CameraCtrl and AnyView.

For every pixel, the ray through it has unit direction d and origin o (the camera centre),
both expressed in a reference frame; its moment is m = o x d. The map stacks six channels.

Two published layouts differ only in details, so both are parameters:

- AnyView: integer pixel coordinates (`pixel_offset=0.0`), order [d, m], moments multiplied by
  a per-dataset scale and clamped to [-1, 1]; poses relative to the first target camera.
- CameraCtrl: pixel centres (`pixel_offset=0.5`), order [m, d].

Our default is AnyView's layout with pixel centres and no moment scaling.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dreamjourney.camera.cameras import Cameras


def plucker_rays(
    cameras: Cameras,
    *,
    reference_c2w: Tensor | None = None,
    order: str = "dm",
    pixel_offset: float = 0.5,
    moment_scale: float = 1.0,
    clamp: float | None = None,
) -> Tensor:
    """Plücker ray maps of a batch of cameras.

    Args:
        cameras: N cameras (OpenCV axes, c2w poses).
        reference_c2w: (4, 4) pose whose frame the rays are expressed in (e.g. the first target
            camera, as AnyView does); None keeps world coordinates.
        order: "dm" for [direction, moment] (AnyView) or "md" for [moment, direction] (CameraCtrl).
        pixel_offset: 0.5 samples pixel centres, 0.0 integer pixel coordinates.
        moment_scale: multiplies the moments (AnyView: 1/16 driving, 1/32 Kubric, 1/8 otherwise);
            equivalently, divides translations by a scene scale.
        clamp: if given, moments are clamped to [-clamp, clamp] after scaling.

    Returns:
        (N, 6, H, W) float32: channels 0-2 and 3-5 are d and m in the order asked for.
        d is a unit vector; m = o x d, so |m| is the distance from the reference origin to the ray.
    """
    if order not in ("dm", "md"):
        raise ValueError(f"order must be 'dm' or 'md', got {order!r}")
    cams = cameras if reference_c2w is None else cameras.relative_to(reference_c2w)
    origins, dirs = cams.rays(offset=pixel_offset)
    moments = torch.linalg.cross(origins, dirs, dim=-1) * moment_scale
    if clamp is not None:
        moments = moments.clamp(-clamp, clamp)
    parts = (dirs, moments) if order == "dm" else (moments, dirs)
    return torch.cat(parts, dim=-1).permute(0, 3, 1, 2).contiguous()
