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
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dreamjourney.camera.formats import native as native_cameras
from dreamjourney.camera.formats.validate import check_number, read_json_object
from dreamjourney.data.anyview import write_anyview
from dreamjourney.data.types import CameraStream, Scene4D, check_camera_names, load_frames
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_path, atomic_write_text
from dreamjourney.io.depth import load_depth
from dreamjourney.io.images import save_image

FORMAT_ID = "dreamjourney.scene/1"
SCENE_FILE = "scene.json"

# --------------------------------------------------------------------------- native reader


def load_scene(directory: str | Path) -> Scene4D:
    """Read a native scene directory (see the module docstring)."""
    directory = Path(directory)
    meta_path = directory / SCENE_FILE
    if not meta_path.is_file():
        raise InputError(f"not a scene directory: {SCENE_FILE} is missing", source=directory)
    meta = read_json_object(meta_path)
    if meta.get("format") != FORMAT_ID:
        raise InputError(
            f"expected {FORMAT_ID!r}, got {meta.get('format')!r}", source=meta_path, field="format"
        )
    name = meta.get("name", directory.name)
    if not isinstance(name, str):
        raise InputError(f"must be a string, got {name!r}", source=meta_path, field="name")
    fps = check_number(meta.get("fps"), meta_path, "fps", positive=True)
    scale = check_number(meta.get("scene_scale"), meta_path, "scene_scale", positive=True)
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
