"""Checks shared by the camera-file readers; each failure names the file and the field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dreamjourney.errors import InputError

ORTHONORMAL_TOL = 1e-3


def read_json(path: Path) -> Any:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", source=path) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"not valid JSON ({exc})", source=path) from None


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object (dict) in the file at `path`; anything else is an `InputError`."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("must be a JSON object", source=path)
    return data


def check_matrix(value: Any, shape: tuple[int, int], path: Path, field: str) -> Tensor:
    """A nested list (or flat list of the right length) -> finite float64 tensor of `shape`."""
    try:
        t = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise InputError(
            f"must be a {shape[0]}x{shape[1]} matrix of numbers", source=path, field=field
        ) from None
    if t.numel() != shape[0] * shape[1] or (t.ndim == 2 and tuple(t.shape) != shape) or t.ndim > 2:
        raise InputError(
            f"must be {shape[0]}x{shape[1]}, got shape {tuple(t.shape)}", source=path, field=field
        )
    if not bool(torch.isfinite(t).all()):
        raise InputError("contains NaN or infinite values", source=path, field=field)
    return t.reshape(shape)


def check_rotation(R: Tensor, path: Path, field: str) -> None:
    err = (R.T @ R - torch.eye(3, dtype=R.dtype)).abs().max().item()
    if err > ORTHONORMAL_TOL or math.isnan(err):
        raise InputError(
            f"rotation is not orthonormal (max |R^T R - I| = {err:.3g})", source=path, field=field
        )
    if torch.linalg.det(R).item() < 0:
        raise InputError("rotation is a reflection (det < 0)", source=path, field=field)


def check_pose(value: Any, path: Path, field: str) -> Tensor:
    """A 4x4 rigid pose; returns float32."""
    T = check_matrix(value, (4, 4), path, field)
    if not torch.allclose(T[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=T.dtype), atol=1e-6):
        raise InputError("last row must be [0, 0, 0, 1]", source=path, field=field)
    check_rotation(T[:3, :3], path, field)
    return T.float()


def check_intrinsics(value: Any, path: Path, field: str) -> Tensor:
    """A 3x3 pinhole K with positive focal lengths; returns float32."""
    K = check_matrix(value, (3, 3), path, field)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError("focal lengths must be positive", source=path, field=field)
    if not torch.allclose(K[2], torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype)) or K[1, 0] != 0:
        raise InputError(
            "must be upper triangular with last row [0, 0, 1]", source=path, field=field
        )
    return K.float()


def sniff_json(path: Path) -> Any:
    """The parsed content of a `.json` file, or None when it is not one (for format sniffing)."""
    if path.is_dir() or path.suffix.lower() != ".json":
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def check_number(
    value: Any, path: Path, field: str, *, positive: bool = False, default: float | None = None
) -> float:
    """A finite number (positive if asked); `default` when the value is missing (None)."""
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"must be a finite number, got {value!r}", source=path, field=field)
    if positive and value <= 0:
        raise InputError(f"must be positive, got {value!r}", source=path, field=field)
    return float(value)
