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


def _intrinsics(top: dict, frame: dict, path: Path, where: str) -> tuple[int, int, torch.Tensor]:
    def get(key: str) -> Any:
        return frame.get(key, top.get(key))

    size = []
    for key in ("w", "h"):
        value = get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
            raise InputError(
                f"must be a positive image size, got {value!r}", source=path, field=f"{where}{key}"
            )
        size.append(int(value))
    w, h = size
    if get("fl_x") is not None:
        fx = check_number(get("fl_x"), path, f"{where}fl_x", positive=True)
    elif get("camera_angle_x") is not None:
        angle = check_number(get("camera_angle_x"), path, f"{where}camera_angle_x", positive=True)
        fx = 0.5 * w / math.tan(0.5 * angle)
    else:
        raise InputError("needs fl_x or camera_angle_x", source=path, field=f"{where}fl_x")
    fy = check_number(get("fl_y"), path, f"{where}fl_y", positive=True, default=fx)
    cx = check_number(get("cx"), path, f"{where}cx", default=w / 2)
    cy = check_number(get("cy"), path, f"{where}cy", default=h / 2)
    K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return w, h, K


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
        prefix = f"{where}." if any(k in frame for k in ("w", "h", "fl_x")) else ""
        w, h, K = _intrinsics(data, frame, path, prefix)
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
