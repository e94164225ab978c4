"""DyCheck iPhone layout (KAIR-BAIR/dycheck), read only.

    camera/<camid>_<time:05d>.json   orientation (3x3 w2c rotation), position (camera centre),
                                     focal_length, pixel_aspect_ratio, principal_point [cx, cy],
                                     image_size [W, H], skew, radial/tangential distortion
    rgb/<k>x/<camid>_<time>.png      frames at 1/k resolution (camera values are for 1x)
    depth/<k>x/<camid>_<time>.npy    optional z-depth (H, W, 1)
    extra.json                       fps (30 if absent)

One stream per camera id (camera "0" is the input, as DyCheck trains on it), frames in time
order, time = time id / fps. The smallest factor k present under rgb/ is used. Distortion other
than zero is refused (undistort first): our cameras are pinhole. `splits/` is not read: every
camera JSON with its frame becomes part of a stream.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import Tensor

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats.validate import (
    check_matrix,
    check_rotation,
    read_json,
    read_json_object,
)
from dreamjourney.data.types import CameraStream, Scene4D, depth_scale, load_frames
from dreamjourney.errors import InputError
from dreamjourney.io.depth import load_depth

FRAME_NAME = re.compile(r"^(?P<cam>[A-Za-z0-9]+)_(?P<time>\d+)$")


def sniff(directory: Path) -> bool:
    """camera/ holding <camid>_<time>.json files (the frames may be missing: loading says so)."""
    camera = directory / "camera"
    return camera.is_dir() and any(FRAME_NAME.match(p.stem) for p in camera.glob("*.json"))


def _number(data: dict, key: str, path: Path, *, positive: bool = False) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"must be a finite number, got {value!r}", source=path, field=key)
    if positive and value <= 0:
        raise InputError(f"must be positive, got {value!r}", source=path, field=key)
    return float(value)


def read_camera(path: Path) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """One DyCheck camera JSON -> K (3, 3), c2w (4, 4) (OpenCV) and the 1x size (W, H)."""
    data = read_json_object(path)
    R = check_matrix(data.get("orientation"), (3, 3), path, "orientation")
    check_rotation(R, path, "orientation")
    position = check_matrix(data.get("position"), (1, 3), path, "position").reshape(3)
    f = _number(data, "focal_length", path, positive=True)
    aspect = (
        _number(data, "pixel_aspect_ratio", path, positive=True)
        if "pixel_aspect_ratio" in data
        else 1.0
    )
    skew = _number(data, "skew", path) if "skew" in data else 0.0
    pp = check_matrix(data.get("principal_point"), (1, 2), path, "principal_point").reshape(2)
    size = data.get("image_size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise InputError(
            f"must be [W, H] positive integers, got {size!r}", source=path, field="image_size"
        )
    for key in ("radial_distortion", "tangential_distortion"):
        if key in data and data[key] is not None:
            values = check_matrix(data[key], (1, len(data[key])), path, key) if data[key] else None
            if values is not None and bool((values.abs() > 1e-6).any()):
                raise InputError(
                    "non-zero distortion is not supported; undistort first", source=path, field=key
                )
    K = torch.tensor(
        [[f, skew, pp[0]], [0.0, f * aspect, pp[1]], [0.0, 0.0, 1.0]], dtype=torch.float32
    )
    c2w = torch.eye(4)
    c2w[:3, :3] = R.T.float()
    c2w[:3, 3] = position.float()
    return K, c2w, (size[0], size[1])


def load_dycheck_scene(directory: str | Path) -> Scene4D:
    """Read a DyCheck iPhone scene directory (see the module docstring)."""
    directory = Path(directory)
    camera_dir = directory / "camera"
    if not camera_dir.is_dir():
        raise InputError("not a DyCheck scene: camera/ is missing", source=directory)
    factors = sorted(
        int(p.name[:-1])
        for p in (directory / "rgb").glob("*x")
        if p.name[:-1].isdigit() and p.is_dir()
    )
    if not factors:
        raise InputError("no rgb/<k>x folder", source=directory / "rgb")
    factor = factors[0]
    rgb_dir = directory / "rgb" / f"{factor}x"
    depth_dir = directory / "depth" / f"{factor}x"
    fps = 30.0
    if (directory / "extra.json").is_file():
        extra = read_json(directory / "extra.json")
        if isinstance(extra, dict) and "fps" in extra:
            fps = _number(extra, "fps", directory / "extra.json", positive=True)
    by_camera: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted(camera_dir.glob("*.json")):
        match = FRAME_NAME.match(path.stem)
        if match is None:
            raise InputError("camera file name must be <camid>_<time>.json", source=path)
        by_camera.setdefault(match["cam"], []).append((int(match["time"]), path))
    if not by_camera:
        raise InputError("holds no camera JSON files", source=camera_dir)
    streams = {}
    for cam in sorted(by_camera, key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c)):
        entries = sorted(by_camera[cam])
        cams = [read_camera(p) for _, p in entries]
        sizes = {c[2] for c in cams}
        if len(sizes) != 1:
            raise InputError(f"camera {cam} changes image size: {sorted(sizes)}", source=camera_dir)
        ((w1, h1),) = sizes
        frame_paths = [rgb_dir / f"{p.stem}.png" for _, p in entries]
        for p in frame_paths:
            if not p.is_file():
                raise InputError("frame image is missing", source=p)
        w, h = round(w1 / factor), round(h1 / factor)
        cameras = Cameras(
            torch.stack([c[0] for c in cams]),
            torch.stack([c[1] for c in cams]),
            w1,
            h1,
            torch.tensor([t / fps for t, _ in entries]),
        ).resize(w, h)
        frames = load_frames(frame_paths, w, h)
        depth_paths = [depth_dir / f"{p.stem}.npy" for _, p in entries]
        depth = None
        if all(p.is_file() for p in depth_paths):
            depth = torch.stack([load_depth(p, (h, w)) for p in depth_paths])
        streams[cam] = CameraStream(cam, frames, cameras, depth)
    input_camera = "0" if "0" in streams else next(iter(streams))
    first = streams[input_camera]
    scale = depth_scale(first.depth) or float(
        first.cameras.centers.norm(dim=-1).median().clamp_min(1e-6)
    )
    return Scene4D(directory.name, fps, scale, input_camera, streams)
