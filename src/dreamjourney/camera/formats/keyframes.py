"""Keyframe files (`dreamjourney.keyframes/1`, read only): a few cameras -> a smooth path.

```
{"format": "dreamjourney.keyframes/1", "width": 512, "height": 512, "fps": 24,
 "constant_speed": false,               # optional
 "num_frames": 49,                      # optional; default: duration * fps + 1
 "keyframes": [
   {"time": 0.0, "position": [0, 0, 0], "look_at": [0, 0, 1], "fov": 60},
   {"time": 2.0, "position": [1, 0, 0.5], "rotation": [[...], [...], [...]], "focal": 400},
   {"time": 3.0, "c2w": [[...4x4...]]}]}
```

Each keyframe gives its pose as `c2w` (4x4), or `position` plus `look_at` (optional `up`,
default [0, -1, 0]) or `rotation` (3x3 camera-to-world); its lens as `fov` (horizontal
degrees), `focal` (pixels) or `K` (3x3), default fov 60. All OpenCV axes, world units,
seconds (`time` defaults to the keyframe's index). See `dreamjourney.camera.keyframes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dreamjourney.camera.cameras import Cameras, intrinsics_from_fov, look_at
from dreamjourney.camera.formats.validate import (
    check_intrinsics,
    check_matrix,
    check_number,
    check_pose,
    check_rotation,
    read_json,
    sniff_json,
)
from dreamjourney.camera.keyframes import interpolate_path
from dreamjourney.errors import InputError

FORMAT_ID = "dreamjourney.keyframes/1"


def sniff(path: Path) -> bool:
    data = sniff_json(path)
    return isinstance(data, dict) and data.get("format") == FORMAT_ID


def _vector(value: Any, path: Path, field: str) -> torch.Tensor:
    return check_matrix(value, (1, 3), path, field).reshape(3).float()


def _pose(key: dict, path: Path, where: str) -> torch.Tensor:
    if "c2w" in key:
        return check_pose(key["c2w"], path, f"{where}.c2w")
    if "position" not in key:
        raise InputError(
            "needs c2w, or position with look_at or rotation", source=path, field=where
        )
    position = _vector(key["position"], path, f"{where}.position")
    if "look_at" in key:
        target = _vector(key["look_at"], path, f"{where}.look_at")
        up = _vector(key.get("up", [0.0, -1.0, 0.0]), path, f"{where}.up")
        try:
            return look_at(position, target, up.tolist())
        except ValueError as exc:
            raise InputError(str(exc), source=path, field=f"{where}.look_at") from None
    if "rotation" in key:
        R = check_matrix(key["rotation"], (3, 3), path, f"{where}.rotation")
        check_rotation(R, path, f"{where}.rotation")
        c2w = torch.eye(4)
        c2w[:3, :3], c2w[:3, 3] = R.float(), position
        return c2w
    raise InputError("needs look_at or rotation beside position", source=path, field=where)


def _lens(key: dict, width: int, height: int, path: Path, where: str) -> torch.Tensor:
    if "K" in key:
        return check_intrinsics(key["K"], path, f"{where}.K")
    if "focal" in key:
        f = check_number(key["focal"], path, f"{where}.focal", positive=True)
        return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    fov = check_number(key.get("fov"), path, f"{where}.fov", positive=True, default=60.0)
    if fov >= 180:
        raise InputError(f"must be below 180 degrees, got {fov}", source=path, field=f"{where}.fov")
    return intrinsics_from_fov(fov, width, height)


def load_keyframes(path: Path) -> tuple[Cameras, dict[str, Any]]:
    """The keyframes as Cameras (times = key times) and the path options (fps, num_frames,
    constant_speed)."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT_ID:
        raise InputError(f"expected format {FORMAT_ID!r}", source=path, field="format")
    size = []
    for key in ("width", "height"):
        value = data.get(key, 512)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"must be a positive integer, got {value!r}", source=path, field=key)
        size.append(value)
    width, height = size
    keys = data.get("keyframes")
    if not isinstance(keys, list) or len(keys) < 2:
        raise InputError("must be a list of at least two keyframes", source=path, field="keyframes")
    c2ws, Ks, times = [], [], []
    for i, key in enumerate(keys):
        where = f"keyframes[{i}]"
        if not isinstance(key, dict):
            raise InputError("must be an object", source=path, field=where)
        c2ws.append(_pose(key, path, where))
        Ks.append(_lens(key, width, height, path, where))
        times.append(check_number(key.get("time"), path, f"{where}.time", default=float(i)))
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            raise InputError(
                "keyframe times must increase", source=path, field=f"keyframes[{i}].time"
            )
    fps = check_number(data.get("fps"), path, "fps", positive=True, default=24.0)
    num_frames = data.get("num_frames", round((times[-1] - times[0]) * fps) + 1)
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(
            f"must be a positive integer, got {num_frames!r}", source=path, field="num_frames"
        )
    constant_speed = data.get("constant_speed", False)
    if not isinstance(constant_speed, bool):
        raise InputError("must be true or false", source=path, field="constant_speed")
    cameras = Cameras(torch.stack(Ks), torch.stack(c2ws), width, height, torch.tensor(times))
    return cameras, {"fps": fps, "num_frames": num_frames, "constant_speed": constant_speed}


def load(path: Path) -> Cameras:
    keys, options = load_keyframes(path)
    return interpolate_path(keys, options["num_frames"], constant_speed=options["constant_speed"])
