"""Camera conditioning of the AnyView model: Plücker ray maps on the model's token grid.

Both streams' cameras are re-anchored so that the first target camera is the identity (as
AnyView does), translations are divided by the scene scale, moments are multiplied by the
layout's `moment_scale` and optionally clamped. The maps are sampled on the model's input grid:
the latent grid for a VAE (pixel size / spatial compression, one camera per latent frame) or
the pixel grid in pixel space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from dreamjourney.camera import Cameras, plucker_rays


@dataclass(frozen=True)
class PluckerLayout:
    """How ray maps are laid out (defaults: AnyView's published layout).

    Attributes:
        order: "dm" [direction, moment] (AnyView) or "md" (CameraCtrl).
        pixel_offset: 0.0 integer pixel coordinates (AnyView), 0.5 pixel centres (CameraCtrl).
        moment_scale: multiplies the moments after translations were divided by the scene scale
            (AnyView: 1/8 for most data, 1/16 driving, 1/32 Kubric).
        clamp: moments are clamped to [-clamp, clamp]; None disables it.
    """

    order: str = "dm"
    pixel_offset: float = 0.0
    moment_scale: float = 0.125
    clamp: float | None = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def latent_frame_indices(num_frames: int, temporal_stride: int) -> Tensor:
    """Which video frame's camera stands for each latent frame.

    A causal video VAE with temporal stride s (Wan, CogVideoX: 4) maps 1 + s*k frames to 1 + k
    latent frames: latent 0 is frame 0 alone, latent j >= 1 covers frames s*(j-1)+1 .. s*j; we
    use the last frame of each group, s*j. Stride 1 (pixel space) is the identity.

    Returns:
        (F,) long indices into the video frames.
    """
    if temporal_stride == 1:
        return torch.arange(num_frames)
    if (num_frames - 1) % temporal_stride:
        raise ValueError(
            f"a video VAE with temporal stride {temporal_stride} needs 1 + {temporal_stride}k "
            f"frames, got {num_frames}"
        )
    return torch.arange((num_frames - 1) // temporal_stride + 1) * temporal_stride


def ray_maps(
    input_cameras: Cameras,
    target_cameras: Cameras,
    *,
    input_grid: tuple[int, int],
    target_grid: tuple[int, int] | None = None,
    temporal_stride: int = 1,
    scene_scale: float = 1.0,
    layout: PluckerLayout | None = None,
) -> tuple[Tensor, Tensor]:
    """Plücker ray maps of both streams on a (F, grid_height, grid_width) token grid.

    Args:
        input_cameras, target_cameras: T cameras each (one per video frame), any image size.
        input_grid: (width, height) of the input stream's grid (latent or pixel cells).
        target_grid: (width, height) of the target stream's grid; None = `input_grid`.
        temporal_stride: video frames per latent frame (see `latent_frame_indices`).
        scene_scale: world units per unit of scene (e.g. median depth); translations are divided
            by it.
        layout: ray layout; None = `PluckerLayout()`.

    Returns:
        input_rays, target_rays: (6, F, height, width) float32 each, on their grids.
    """
    layout = layout or PluckerLayout()
    if scene_scale <= 0:
        raise ValueError(f"scene_scale must be positive, got {scene_scale}")
    reference = target_cameras.c2w[0]
    maps = []
    for cams, size in ((input_cameras, input_grid), (target_cameras, target_grid or input_grid)):
        idx = latent_frame_indices(len(cams), temporal_stride)
        grid = cams[idx.tolist()].resize(*size)
        rays = plucker_rays(
            grid,
            reference_c2w=reference,
            order=layout.order,
            pixel_offset=layout.pixel_offset,
            moment_scale=layout.moment_scale / scene_scale,
            clamp=layout.clamp,
        )
        maps.append(rays.transpose(0, 1))
    return maps[0], maps[1]
