"""The native 4D scene format: several cameras filming one dynamic scene, with known poses.

On disk (format "dreamjourney.scene/1")::

    scene.json                 {"format", "name", "fps", "scene_scale", "input_camera", "cameras"}
    <camera>/cameras.json      native camera file: K, c2w (OpenCV) and time per frame
    <camera>/rgb/00000.png     one PNG per frame, in camera-file order
    <camera>/depth.npy         optional (T, H, W) float32 z-depth, 0 = no depth

Camera names are folder names. Every camera has its own frame count and times; the cameras of a
synthetic scene share the same times.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats import native as native_cameras
from dreamjourney.camera.formats.validate import read_json
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_path, atomic_write_text
from dreamjourney.io.depth import load_depth
from dreamjourney.io.images import load_image, save_image

FORMAT_ID = "dreamjourney.scene/1"
SCENE_FILE = "scene.json"
CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class CameraStream:
    """What one camera saw.

    Attributes:
        name: the camera's name (a valid folder name).
        frames: (T, 3, H, W) float32 in [0, 1].
        cameras: T cameras (K, c2w, times in seconds) of size W x H.
        depth: (T, H, W) float32 z-depth (0 = no depth), or None.
    """

    name: str
    frames: Tensor
    cameras: Cameras
    depth: Tensor | None = None

    def __post_init__(self) -> None:
        t = self.frames.shape[0]
        if self.frames.ndim != 4 or self.frames.shape[1] != 3:
            raise ValueError(f"stream {self.name!r}: frames must be (T,3,H,W), got {self.shape}")
        if len(self.cameras) != t:
            raise ValueError(f"stream {self.name!r}: {t} frames but {len(self.cameras)} cameras")
        if (self.cameras.width, self.cameras.height) != (self.width, self.height):
            raise ValueError(
                f"stream {self.name!r}: frames are {self.width}x{self.height}, cameras "
                f"{self.cameras.width}x{self.cameras.height}"
            )
        if self.depth is not None and tuple(self.depth.shape) != (t, self.height, self.width):
            raise ValueError(
                f"stream {self.name!r}: depth {tuple(self.depth.shape)} does not match frames "
                f"{self.shape}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.frames.shape)

    @property
    def width(self) -> int:
        return int(self.frames.shape[-1])

    @property
    def height(self) -> int:
        return int(self.frames.shape[-2])

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass
class Scene4D:
    """A dynamic scene filmed by several cameras.

    Attributes:
        name: a label for tables.
        fps: frame rate of the streams (frames per second).
        scene_scale: a typical distance in the scene (world units; the input camera's median
            depth for scenes made here), the unit that trajectory presets move in.
        input_camera: the name of the camera whose video a novel-view method is given.
        streams: camera name -> stream, in a stable order.
    """

    name: str
    fps: float
    scene_scale: float
    input_camera: str
    streams: dict[str, CameraStream] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_camera not in self.streams:
            raise ValueError(
                f"scene {self.name!r}: input camera {self.input_camera!r} is not one of "
                f"{list(self.streams)}"
            )

    @property
    def camera_names(self) -> list[str]:
        return list(self.streams)


# --------------------------------------------------------------------------- native reader


def _check_number(value, path: Path, field: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"must be a finite number, got {value!r}", source=path, field=field)
    if positive and value <= 0:
        raise InputError(f"must be positive, got {value!r}", source=path, field=field)
    return float(value)


def check_camera_names(value, path: Path, field: str) -> list[str]:
    """A non-empty list of unique camera names that are valid folder names."""
    if not isinstance(value, list) or not value:
        raise InputError("must be a non-empty list of camera names", source=path, field=field)
    for i, name in enumerate(value):
        if not isinstance(name, str) or not CAMERA_NAME.match(name):
            raise InputError(
                f"camera name {name!r} must be letters, digits, '_', '-' or '.'",
                source=path,
                field=f"{field}[{i}]",
            )
    if len(set(value)) != len(value):
        raise InputError("camera names must be unique", source=path, field=field)
    return list(value)


def load_frames(paths: list[Path], width: int | None = None, height: int | None = None) -> Tensor:
    """Image files that must all be width x height (default: the first one's size) -> (T, 3, H, W)."""
    frames = []
    for p in paths:
        img = load_image(p, min_size=1)
        if width is None or height is None:
            height, width = img.shape[1:]
        if tuple(img.shape[1:]) != (height, width):
            raise InputError(
                f"image is {img.shape[2]}x{img.shape[1]}, expected {width}x{height}", source=p
            )
        frames.append(img)
    return torch.stack(frames)


def load_scene(directory: str | Path) -> Scene4D:
    """Read a native scene directory (see the module docstring)."""
    directory = Path(directory)
    meta_path = directory / SCENE_FILE
    if not meta_path.is_file():
        raise InputError(f"not a scene directory: {SCENE_FILE} is missing", source=directory)
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise InputError("must be a JSON object", source=meta_path)
    if meta.get("format") != FORMAT_ID:
        raise InputError(
            f"expected {FORMAT_ID!r}, got {meta.get('format')!r}", source=meta_path, field="format"
        )
    name = meta.get("name", directory.name)
    if not isinstance(name, str):
        raise InputError(f"must be a string, got {name!r}", source=meta_path, field="name")
    fps = _check_number(meta.get("fps"), meta_path, "fps")
    scale = _check_number(meta.get("scene_scale"), meta_path, "scene_scale")
    names = check_camera_names(meta.get("cameras"), meta_path, "cameras")
    input_camera = meta.get("input_camera")
    if input_camera not in names:
        raise InputError(
            f"{input_camera!r} is not one of the cameras {names}",
            source=meta_path,
            field="input_camera",
        )
    streams = {cam: _load_stream(directory / cam, cam) for cam in names}
    return Scene4D(name, fps, scale, input_camera, streams)


def _load_stream(folder: Path, name: str) -> CameraStream:
    cam_file = folder / "cameras.json"
    if not cam_file.is_file():
        raise InputError("camera file is missing", source=cam_file)
    cameras = native_cameras.load(cam_file)
    frame_paths = sorted((folder / "rgb").glob("*.png"))
    if len(frame_paths) != len(cameras):
        raise InputError(
            f"{len(frame_paths)} PNG frames but {len(cameras)} cameras in {cam_file.name}",
            source=folder / "rgb",
        )
    frames = load_frames(frame_paths, cameras.width, cameras.height)
    depth_path = folder / "depth.npy"
    depth = None
    if depth_path.exists():
        depth = load_depth(depth_path, (len(cameras), cameras.height, cameras.width))
    return CameraStream(name, frames, cameras, depth)


# --------------------------------------------------------------------------- writers


def scene_metadata(scene: Scene4D) -> dict:
    return {
        "format": FORMAT_ID,
        "name": scene.name,
        "fps": scene.fps,
        "scene_scale": scene.scene_scale,
        "input_camera": scene.input_camera,
        "cameras": scene.camera_names,
    }


def _write_native(scene: Scene4D, directory: Path) -> None:
    for stream in scene.streams.values():
        folder = directory / stream.name
        native_cameras.save(stream.cameras, folder / "cameras.json", fps=scene.fps)
        for i, frame in enumerate(stream.frames):
            save_image(folder / "rgb" / f"{i:05d}.png", frame)
        if stream.depth is not None:
            with atomic_path(folder / "depth.npy") as tmp:
                np.save(tmp, stream.depth.float().numpy())
    atomic_write_text(directory / SCENE_FILE, json.dumps(scene_metadata(scene), indent=1))


def save_scene(
    scene: Scene4D, directory: str | Path, *, layout: str = "native", overwrite: bool = False
) -> Path:
    """Write `scene` to `directory` in `layout` ("native" or "anyview").

    The scene is written to a temporary folder beside `directory` and moved into place when
    complete, so a failure leaves nothing half-written. An existing non-empty `directory` is an
    `InputError` unless `overwrite`, in which case it is replaced only after the new one is done.
    """
    from dreamjourney.data.anyview import write_anyview

    writers = {"native": _write_native, "anyview": write_anyview}
    if layout not in writers:
        raise InputError(f"unknown layout {layout!r}; known: {', '.join(writers)}", field="layout")
    for name in scene.streams:
        check_camera_names([name], Path(directory), "cameras")
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        if not overwrite:
            raise InputError("exists and is not empty; choose another folder", source=directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        writers[layout](scene, tmp)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            tmp.rename(directory)
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            tmp.rename(directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory
