"""nerfstudio / instant-ngp `transforms.json` (read only).

Intrinsics in pixels at the top level or per frame (`fl_x`, `fl_y`, `cx`, `cy`, `w`, `h`, or
instant-ngp's `camera_angle_x` in radians); `frames[].transform_matrix` is a nested 4x4 c2w
in OpenGL axes. Distortion coefficients are ignored (our cameras are pinholes).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats.nerfstudio import GL_TO_CV
from dreamjourney.camera.formats.validate import check_number, check_pose, read_json, sniff_json
from dreamjourney.errors import InputError


def sniff(path: Path) -> bool:
    data = sniff_json(path)
    frames = data.get("frames") if isinstance(data, dict) else None
    return (
        isinstance(frames, list)
        and bool(frames)
        and isinstance(frames[0], dict)
        and "transform_matrix" in frames[0]
    )


def _intrinsics(top: dict, frame: dict, path: Path, index: int) -> tuple[int, int, torch.Tensor]:
    """Per-frame values override the top level; errors name where the value came from."""

    def get(key: str) -> tuple[Any, str]:
        if key in frame:
            return frame[key], f"frames[{index}].{key}"
        return top.get(key), key

    def number(key: str, **kwargs: Any) -> float:
        value, field = get(key)
        return check_number(value, path, field, **kwargs)

    w, h = (number(key, positive=True) for key in ("w", "h"))
    if get("fl_x")[0] is not None:
        fx = number("fl_x", positive=True)
    elif get("camera_angle_x")[0] is not None:
        fx = 0.5 * w / math.tan(0.5 * number("camera_angle_x", positive=True))
    else:
        raise InputError("needs fl_x or camera_angle_x", source=path, field="fl_x")
    fy = number("fl_y", positive=True, default=fx)
    cx, cy = number("cx", default=w / 2), number("cy", default=h / 2)
    K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return round(w), round(h), K


def load(path: Path) -> Cameras:
    data = read_json(path)
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise InputError("must be a non-empty list", source=path, field="frames")
    c2ws, Ks, times, sizes = [], [], [], set()
    for i, frame in enumerate(frames):
        where = f"frames[{i}]"
        if not isinstance(frame, dict):
            raise InputError("must be an object", source=path, field=where)
        c2ws.append(check_pose(frame.get("transform_matrix"), path, f"{where}.transform_matrix"))
        w, h, K = _intrinsics(data, frame, path, i)
        sizes.add((w, h))
        Ks.append(K)
        times.append(check_number(frame.get("time"), path, f"{where}.time", default=i / 24.0))
    if len(sizes) > 1:
        raise InputError(
            f"frames have different image sizes {sorted(sizes)}", source=path, field="w"
        )
    ((width, height),) = sizes
    return Cameras(
        torch.stack(Ks), torch.stack(c2ws) @ GL_TO_CV, width, height, torch.tensor(times)
    )
