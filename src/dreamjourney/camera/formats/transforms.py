"""nerfstudio / instant-ngp `transforms.json` (read only).

Intrinsics in pixels at the top level or per frame (`fl_x`, `fl_y`, `cx`, `cy`, `w`, `h`, or
instant-ngp's `camera_angle_x` in radians); `frames[].transform_matrix` is a nested 4x4 c2w
in OpenGL axes. Without `w` and `h` (NeRF's Blender scenes) the size is read from the first
frame's image (`file_path`, relative to the JSON, with or without its suffix), else taken from
`size`. Distortion coefficients are dropped with a warning (our cameras are pinholes).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats.nerfstudio import GL_TO_CV
from dreamjourney.camera.formats.validate import check_number, check_pose, read_json, sniff_json
from dreamjourney.errors import InputError, warn_input

DISTORTION = ("k1", "k2", "k3", "k4", "p1", "p2")
IMAGE_SUFFIXES = ("", ".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


def sniff(path: Path) -> bool:
    data = sniff_json(path)
    frames = data.get("frames") if isinstance(data, dict) else None
    return (
        isinstance(frames, list)
        and bool(frames)
        and isinstance(frames[0], dict)
        and "transform_matrix" in frames[0]
    )


def _image_size(data: dict, path: Path, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """(w, h) for a file that does not state them: its first frame's image, else `size`."""
    frame = data["frames"][0]
    name = frame.get("file_path") if isinstance(frame, dict) else None
    tried = [path.parent / f"{name}{suffix}" for suffix in IMAGE_SUFFIXES] if name else []
    for candidate in tried:
        if candidate.is_file():
            from PIL import Image  # only for files that lack w/h

            try:
                with Image.open(candidate) as im:
                    return im.size
            except OSError as exc:
                raise InputError(f"cannot read the frame image ({exc})", source=candidate) from None
    if size is not None:
        return size
    raise InputError(
        f"has no w/h and its first image {name!r} is not beside it; give the image size with "
        "--size WxH",
        source=path,
        field="w",
    )


def _intrinsics(
    top: dict, frame: dict, path: Path, index: int, size: tuple[int, int] | None
) -> tuple[int, int, torch.Tensor]:
    """Per-frame values override the top level; errors name where the value came from."""

    def get(key: str) -> tuple[Any, str]:
        if key in frame:
            return frame[key], f"frames[{index}].{key}"
        return top.get(key), key

    def number(key: str, **kwargs: Any) -> float:
        value, field = get(key)
        return check_number(value, path, field, **kwargs)

    if get("w")[0] is None and get("h")[0] is None and size is not None:
        w, h = float(size[0]), float(size[1])
    else:
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


def load(path: Path, *, size: tuple[int, int] | None = None) -> Cameras:
    """`size` (w, h) is used only when the file states no w/h and its images are not found."""
    data = read_json(path)
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise InputError("must be a non-empty list", source=path, field="frames")
    first = frames[0] if isinstance(frames[0], dict) else {}
    if not any(key in where for where in (data, first) for key in ("w", "h")):
        size = _image_size(data, path, size)
    _warn_distortion(data, frames, path)
    c2ws, Ks, times, sizes = [], [], [], set()
    for i, frame in enumerate(frames):
        where = f"frames[{i}]"
        if not isinstance(frame, dict):
            raise InputError("must be an object", source=path, field=where)
        c2ws.append(check_pose(frame.get("transform_matrix"), path, f"{where}.transform_matrix"))
        w, h, K = _intrinsics(data, frame, path, i, size)
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


def _warn_distortion(top: dict, frames: list, path: Path) -> None:
    """Say which non-zero distortion coefficients our pinhole cameras drop."""
    dropped: dict[str, Any] = {}
    for where in [top, *(f for f in frames if isinstance(f, dict))]:
        for key in DISTORTION:
            value = where.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0:
                dropped.setdefault(key, value)
    if dropped:
        values = ", ".join(f"{k}={v:.3g}" for k, v in dropped.items())
        warn_input(
            f"lens distortion ({values}) is ignored: cameras here are pinholes; undistort the "
            "images for exact geometry",
            source=path,
        )
