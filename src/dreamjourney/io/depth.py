"""Depth files: NumPy `.npy` (or `.npz` with a `depth` array) z-depth, 0 = unknown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dreamjourney.camera.cameras import centre_crop_box
from dreamjourney.errors import InputError


def load_depth(
    path: str | Path, shape: tuple[int, ...] | None = None, *, field: str | None = None
) -> Tensor:
    """Read a z-depth array and check it -> float32 tensor.

    Args:
        shape: the shape it must have, e.g. (H, W) or (T, H, W); a trailing or leading axis of
            size 1 beyond it is dropped. None accepts any 2-D array.
        field: the option or field named in error messages.
    Errors (InputError naming the file): unreadable, not numeric, wrong shape, NaN/inf,
    negative values, or no positive value at all.
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                if "depth" not in data.files:
                    raise InputError(
                        f"no 'depth' array (has {data.files})", source=path, field=field
                    )
                data = data["depth"]
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read depth ({exc})", source=path, field=field) from None
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu":
        raise InputError("depth must be a numeric array", source=path, field=field)
    want = shape if shape is not None else (data.shape[-2:] if data.ndim >= 2 else (-1, -1))
    if data.ndim == len(want) + 1 and 1 in (data.shape[0], data.shape[-1]):
        data = data[0] if data.shape[0] == 1 else data[..., 0]
    if data.shape != tuple(want):
        expected = f"{tuple(want)}" if shape is not None else "(H, W)"
        raise InputError(
            f"depth has shape {data.shape}, expected {expected}", source=path, field=field
        )
    depth = data.astype(np.float32)
    if not np.isfinite(depth).all():
        raise InputError(
            f"depth has {int((~np.isfinite(depth)).sum())} NaN/inf values", source=path, field=field
        )
    if (depth < 0).any():
        raise InputError(
            f"depth has {int((depth < 0).sum())} negative values", source=path, field=field
        )
    if not (depth > 0).any():
        raise InputError("depth is zero everywhere", source=path, field=field)
    return torch.from_numpy(depth)


def fit_depth(depth: Tensor, width: int, height: int) -> Tensor:
    """(h, w) z-depth -> (height, width): the centre crop and resize of `fit_image`, with
    nearest-neighbour sampling so that no depth is blended across an edge."""
    h, w = depth.shape
    if (w, h) == (width, height):
        return depth
    left, top, cw, ch = centre_crop_box(w, h, width / height)
    crop = depth[None, None, top : top + ch, left : left + cw]
    return torch.nn.functional.interpolate(crop, size=(height, width), mode="nearest-exact")[0, 0]
