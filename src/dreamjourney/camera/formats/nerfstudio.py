"""nerfstudio `camera_path.json` (what its viewer exports and `ns-render` reads).

Entries hold `camera_to_world` (16 numbers, row-major 4x4 c2w, OpenGL axes: y up, z backward)
and `fov`, the VERTICAL field of view in degrees; the principal point is the image centre and
pixels are square. Converting: c2w_opencv = c2w_opengl @ diag(1, -1, -1, 1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from dreamjourney.camera.cameras import Cameras, intrinsics_from_fov
from dreamjourney.camera.formats.validate import check_pose, read_json, sniff_json
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_write_text

GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def sniff(path: Path) -> bool:
    data = sniff_json(path)
    return isinstance(data, dict) and isinstance(data.get("camera_path"), list)


def _positive_int(data: dict, key: str, path: Path) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"must be a positive integer, got {value!r}", source=path, field=key)
    return value


def load(path: Path) -> Cameras:
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("must be a JSON object", source=path)
    camera_type = data.get("camera_type", "perspective")
    if camera_type != "perspective":
        raise InputError(
            f"only perspective cameras are supported, got {camera_type!r}",
            source=path,
            field="camera_type",
        )
    width, height = (
        _positive_int(data, "render_width", path),
        _positive_int(data, "render_height", path),
    )
    entries = data.get("camera_path")
    if not isinstance(entries, list) or not entries:
        raise InputError("must be a non-empty list", source=path, field="camera_path")
    fps = data.get("fps", 24.0)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise InputError(f"must be a positive number, got {fps!r}", source=path, field="fps")
    c2ws, Ks, render_times = [], [], []
    for i, entry in enumerate(entries):
        where = f"camera_path[{i}]"
        if not isinstance(entry, dict):
            raise InputError("must be an object", source=path, field=where)
        c2ws.append(check_pose(entry.get("camera_to_world"), path, f"{where}.camera_to_world"))
        fov = entry.get("fov")
        if isinstance(fov, bool) or not isinstance(fov, (int, float)) or not 0 < fov < 180:
            raise InputError(
                f"must be a vertical field of view in (0, 180) degrees, got {fov!r}",
                source=path,
                field=f"{where}.fov",
            )
        Ks.append(intrinsics_from_fov(float(fov), width, height, axis="vertical"))
        render_times.append(entry.get("render_time"))
    c2w = torch.stack(c2ws) @ GL_TO_CV
    if all(isinstance(t, (int, float)) and math.isfinite(t) for t in render_times):
        seconds = data.get("seconds", (len(entries) - 1) / fps)
        times = torch.tensor(render_times, dtype=torch.float32) * float(seconds)
    else:
        times = torch.arange(len(entries), dtype=torch.float32) / float(fps)
    return Cameras(torch.stack(Ks), c2w, width, height, times)


def lost_in_conversion(cameras: Cameras) -> str | None:
    """What writing `cameras` in this format loses (None when nothing): it stores one fov."""
    K = cameras.K.double()
    centre = torch.tensor([cameras.width / 2, cameras.height / 2], dtype=K.dtype)
    off_centre = float((K[:, :2, 2] - centre).abs().max())
    aspect = float((K[:, 0, 0] / K[:, 1, 1] - 1).abs().max())
    if off_centre > 0.5 or aspect > 1e-4:
        return (
            f"nerfstudio camera paths assume square pixels and a centred principal point; "
            f"the principal point moves by up to {off_centre:.1f} px and fx/fy differ by "
            f"up to {100 * aspect:.2f}%"
        )
    return None


def to_dict(cameras: Cameras, *, fps: float = 24.0) -> dict:
    """Vertical fov from fy; cx, cy are assumed at the image centre (nerfstudio has no field)."""
    c2w_gl = cameras.c2w.double() @ GL_TO_CV.double()
    fov = cameras.fov_deg("vertical").double()
    t = cameras.times.double()
    seconds = float(t[-1] - t[0]) if len(cameras) > 1 else 0.0
    render_time = ((t - t[0]) / seconds).tolist() if seconds > 0 else None
    path = []
    for i in range(len(cameras)):
        entry = {
            "camera_to_world": c2w_gl[i].reshape(-1).tolist(),
            "fov": float(fov[i]),
            "aspect": cameras.width / cameras.height,
        }
        if render_time is not None:
            entry["render_time"] = render_time[i]
        path.append(entry)
    return {
        "camera_type": "perspective",
        "render_height": cameras.height,
        "render_width": cameras.width,
        "fps": fps,
        "seconds": seconds,
        "keyframes": [],
        "camera_path": path,
    }


def save(cameras: Cameras, path: Path, *, fps: float = 24.0) -> None:
    atomic_write_text(path, json.dumps(to_dict(cameras, fps=fps), indent=1))
