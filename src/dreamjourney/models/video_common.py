"""Shared plumbing of the video diffusion backends: frame-count and size rounding, conversions."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from dreamjourney.io.images import to_uint8
from dreamjourney.models.protocols import Progress


def valid_frame_count(n: int, temporal: int) -> int:
    """The smallest count >= `n` of the form `temporal * k + 1` that a causal video VAE accepts."""
    return ((max(n, 1) - 1 + temporal - 1) // temporal) * temporal + 1


def working_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """`(height, width)` rounded to the nearest multiple of `multiple` (at least one multiple)."""
    return (
        max(multiple, round(height / multiple) * multiple),
        max(multiple, round(width / multiple) * multiple),
    )


def resize_video(frames: Tensor, height: int, width: int) -> Tensor:
    """`(T,3,h,w)` -> `(T,3,height,width)`, bilinear with antialiasing; a no-op at the same size."""
    if frames.shape[-2:] == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bilinear", antialias=True).clamp(0, 1)


def resize_masks(masks: Tensor, height: int, width: int) -> Tensor:
    """`(T,h,w)` bool -> `(T,height,width)`: a pixel stays known only if all it covers was known."""
    if masks.shape[-2:] == (height, width):
        return masks
    holes = F.interpolate((~masks)[:, None].float(), size=(height, width), mode="area")
    return holes[:, 0] == 0


def to_pil(image: Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(image))


def pipeline_frames(output: Any) -> Tensor:
    """`(T,3,H,W)` float in [0,1] from a diffusers video pipeline called with `output_type="pt"`."""
    frames = output.frames
    frames = frames[0] if isinstance(frames, (list, tuple)) or frames.ndim == 5 else frames
    return torch.as_tensor(frames).float().clamp(0, 1)


def step_callback(progress: Progress | None, total: int) -> Any:
    """A diffusers `callback_on_step_end` that reports `progress(step + 1, total)`."""
    if progress is None:
        return None

    def callback(pipe: Any, step: int, timestep: Any, kwargs: dict) -> dict:
        progress(step + 1, total)
        return {}

    return callback
