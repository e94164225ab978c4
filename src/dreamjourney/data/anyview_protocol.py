"""The input side of the released AnyView model and of AnyViewBench, as published.

Both the `anyview` pipeline and the benchmark use these rules, so that a prediction and its ground
truth land on the same grid:

- Clip length: 1 + 4k frames, at most 41 (the longest such prefix of a clip is used).
- Grid: two snapping stages. The long side is scaled to 2/3 of the final long side (384 for 576)
  and both sides snap to a multiple of 16; then the long side is scaled to the final size (576)
  and both sides snap again. Snapping goes to the nearest multiple, a remainder of exactly 8
  rounds down. 16:9 -> 576x304, 4:3 -> 576x432, 1920x1280 -> 576x384, 1920x886 -> 576x256.
- Pixels are resized once, from the native frame to the grid, with PIL's Lanczos filter on 8-bit
  RGB (as the published code reads its frames), then back to [0, 1].
- Plücker moments are multiplied by a per-dataset scale: 1/16 for driving data, 1/32 for Kubric,
  1/8 for everything else.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dreamjourney.io.images import to_uint8

MAX_FRAMES = 41
TEMPORAL_STRIDE = 4
LONG_SIDE = 576
GRID = 16

DEFAULT_MOMENT_SCALE = 1 / 8
# Dataset-name prefixes and their moment scales (AnyView's per-dataset table).
MOMENT_SCALES: dict[str, float] = {
    "argoverse": 1 / 16,
    "ddad": 1 / 16,
    "lyft": 1 / 16,
    "pd4d": 1 / 16,
    "waymo": 1 / 16,
    "kubric": 1 / 32,
}


def clip_length(num_frames: int, max_frames: int = MAX_FRAMES) -> int:
    """The longest 1 + 4k frame count that fits in `num_frames` and `max_frames` (at least 1)."""
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_frames}")
    n = min(num_frames, max_frames)
    return 1 + (n - 1) // TEMPORAL_STRIDE * TEMPORAL_STRIDE


def _snap(value: float) -> int:
    """Nearest multiple of 16, a remainder of exactly 8 rounding down; at least 16."""
    q = value / GRID
    n = math.floor(q)
    return max(GRID, GRID * (n + (1 if q - n > 0.5 else 0)))


def snap_shape(width: int, height: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """(width, height) of the model grid for a native frame size (see the module docstring)."""
    for side in (long_side * 2 // 3, long_side):
        scale = side / max(width, height)
        width, height = _snap(width * scale), _snap(height * scale)
    return width, height


def resize_lanczos(frames: Tensor, width: int, height: int) -> Tensor:
    """(T, 3, H, W) float in [0, 1] -> (T, 3, height, width), PIL Lanczos on 8-bit RGB.

    Frames read from 8-bit files round-trip exactly through the 8-bit conversion; the same size
    is returned unchanged.
    """
    if tuple(frames.shape[-2:]) == (height, width):
        return frames.float()
    out = [
        np.asarray(Image.fromarray(to_uint8(f)).resize((width, height), Image.Resampling.LANCZOS))
        for f in frames
    ]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def moment_scale_for(dataset: str | None) -> float:
    """AnyView's moment scale for a dataset or split name (e.g. "waymo_FL" -> 1/16)."""
    name = (dataset or "").lower()
    for prefix, scale in MOMENT_SCALES.items():
        if name.startswith(prefix):
            return scale
    return DEFAULT_MOMENT_SCALE
