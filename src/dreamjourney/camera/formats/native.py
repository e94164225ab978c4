"""The native `cameras.json` (format "dreamjourney.cameras/1"), OpenCV c2w, K in pixels."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats.validate import check_intrinsics, check_pose, read_json
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_write_text

FORMAT_ID = "dreamjourney.cameras/1"


def sniff(path: Path) -> bool:
    if path.is_dir() or path.suffix.lower() != ".json":
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT_ID


def load(path: Path) -> Cameras:
    data = read_json(path)
    if data.get("format") != FORMAT_ID:
        raise InputError(f"expected format {FORMAT_ID!r}", source=path, field="format")
    if data.get("convention", "opencv") != "opencv":
        raise InputError("only the 'opencv' convention is defined", source=path, field="convention")
    width, height = data.get("width"), data.get("height")
    for key, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"must be a positive integer, got {value!r}", source=path, field=key)
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError("must be a non-empty list", source=path, field="frames")
    fps = float(data.get("fps", 24.0))
    c2ws, Ks, times = [], [], []
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise InputError("must be an object", source=path, field=f"frames[{i}]")
        c2ws.append(check_pose(frame.get("c2w"), path, f"frames[{i}].c2w"))
        Ks.append(check_intrinsics(frame.get("K"), path, f"frames[{i}].K"))
        time = frame.get("time", i / fps)
        if not isinstance(time, (int, float)) or time != time:
            raise InputError(
                f"must be a number, got {time!r}", source=path, field=f"frames[{i}].time"
            )
        times.append(float(time))
    return Cameras(torch.stack(Ks), torch.stack(c2ws), width, height, torch.tensor(times))


def to_dict(cameras: Cameras, *, fps: float = 24.0) -> dict:
    return {
        "format": FORMAT_ID,
        "convention": "opencv",
        "width": cameras.width,
        "height": cameras.height,
        "fps": fps,
        "frames": [
            {
                "index": i,
                "time": float(cameras.times[i]),
                "c2w": cameras.c2w[i].double().tolist(),
                "K": cameras.K[i].double().tolist(),
            }
            for i in range(len(cameras))
        ],
    }


def save(cameras: Cameras, path: Path, *, fps: float = 24.0) -> None:
    atomic_write_text(path, json.dumps(to_dict(cameras, fps=fps), indent=1))
