"""AnyView's unified scene layout (TRI-ML/AnyView-DVS, AnyViewBench): read and write.

Layout (see shared/FORMATS.md)::

    metadata.json                      info.name, info.storage ("frames" | "videos"), cameras,
                                       resolution [H, W], num_frames, framerate, rgb.extension,
                                       extrinsics.transform ("cam2world" | "world2cam"),
                                       specific.roles {"input": cam, "target": cam}
    rgb/<cam>/0000000000.<ext>         frames storage: one image per frame (10-digit index)
    lowdim/<cam>/0000000000.npz        intrinsics (3x3 px), extrinsics (4x4), timestep, camera
    rgb/<cam>.mp4, lowdim/<cam>.npz    videos storage: stacked (T,3,3), (T,4,4), (T,)

OpenCV axes. `timestep` is a frame index; times are timestep / framerate. Depth is not part of the
layout: we write it as `depth/<cam>/0000000000.npy` (z-depth, float32) and read it back when there.
We write PNG frames (lossless) and record `specific.scene_scale`; readers that do not know these
keys ignore them.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats.validate import check_intrinsics, check_pose, read_json_object
from dreamjourney.data.types import (
    CameraStream,
    Scene4D,
    check_camera_names,
    depth_scale,
    load_frames,
)
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_path, atomic_write_text
from dreamjourney.io.depth import load_depth
from dreamjourney.io.images import save_image
from dreamjourney.io.video import read_video

METADATA = "metadata.json"


def sniff(directory: Path) -> bool:
    return (
        (directory / METADATA).is_file()
        and (directory / "rgb").is_dir()
        and (directory / "lowdim").is_dir()
    )


def _get(meta: dict, dotted: str, default=None):
    value = meta
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def _load_npz(path: Path) -> dict:
    if not path.is_file():
        raise InputError("camera file is missing", source=path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read npz ({exc})", source=path) from None


def _require(data: dict, key: str, path: Path) -> np.ndarray:
    if key not in data:
        raise InputError("is missing", source=path, field=key)
    return np.asarray(data[key])


def load_anyview_scene(directory: str | Path) -> Scene4D:
    """Read a scene in AnyView's unified layout (frames or videos storage)."""
    directory = Path(directory)
    meta_path = directory / METADATA
    if not meta_path.is_file():
        raise InputError(f"not an AnyView scene: {METADATA} is missing", source=directory)
    meta = read_json_object(meta_path)
    names = check_camera_names(meta.get("cameras"), meta_path, "cameras")
    fps = _get(meta, "framerate", 24.0)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise InputError(
            f"must be a positive number, got {fps!r}", source=meta_path, field="framerate"
        )
    storage = _get(meta, "info.storage", "frames")
    if storage not in ("frames", "videos"):
        raise InputError(
            f"must be 'frames' or 'videos', got {storage!r}", source=meta_path, field="info.storage"
        )
    transform = _get(meta, "extrinsics.transform", "cam2world")
    if transform not in ("cam2world", "world2cam"):
        raise InputError(
            f"must be 'cam2world' or 'world2cam', got {transform!r}",
            source=meta_path,
            field="extrinsics.transform",
        )
    ext = str(_get(meta, "rgb.extension", "jpg")).lstrip(".")
    roles = _get(meta, "specific.roles", {}) or {}
    input_camera = roles.get("input", "cam1") if isinstance(roles, dict) else "cam1"
    if input_camera not in names:
        if isinstance(roles, dict) and "input" in roles:
            raise InputError(
                f"{input_camera!r} is not one of the cameras {names}",
                source=meta_path,
                field="specific.roles.input",
            )
        input_camera = names[0]
    streams = {}
    for cam in names:
        load = _load_frames_stream if storage == "frames" else _load_video_stream
        streams[cam] = load(directory, cam, ext, float(fps), transform == "world2cam")
    scale = _get(meta, "specific.scene_scale")
    if not isinstance(scale, (int, float)) or not scale > 0:
        scale = depth_scale(streams[input_camera].depth) or 1.0
    name = _get(meta, "info.name", directory.name)
    return Scene4D(str(name), float(fps), float(scale), input_camera, streams)


def _poses(intrinsics, extrinsics, path: Path, world2cam: bool, prefix: str = ""):
    K = check_intrinsics(intrinsics.tolist(), path, f"{prefix}intrinsics")
    T = check_pose(extrinsics.tolist(), path, f"{prefix}extrinsics")
    return K, torch.linalg.inv(T) if world2cam else T


def _load_frames_stream(directory: Path, cam: str, ext: str, fps: float, w2c: bool):
    rgb_dir, low_dir = directory / "rgb" / cam, directory / "lowdim" / cam
    frame_paths = sorted(rgb_dir.glob(f"*.{ext}"))
    if not frame_paths:
        raise InputError(f"no *.{ext} frames", source=rgb_dir)
    Ks, c2ws, times = [], [], []
    for i, frame in enumerate(frame_paths):
        npz_path = low_dir / f"{frame.stem}.npz"
        data = _load_npz(npz_path)
        K, c2w = _poses(
            _require(data, "intrinsics", npz_path),
            _require(data, "extrinsics", npz_path),
            npz_path,
            w2c,
        )
        step = float(data["timestep"]) if "timestep" in data else float(i)
        Ks.append(K)
        c2ws.append(c2w)
        times.append(step / fps)
    frames = load_frames(frame_paths)
    h, w = frames.shape[-2:]
    cameras = Cameras(torch.stack(Ks), torch.stack(c2ws), w, h, torch.tensor(times))
    depth_paths = [directory / "depth" / cam / f"{p.stem}.npy" for p in frame_paths]
    depth = None
    if all(p.is_file() for p in depth_paths):
        depth = torch.stack([load_depth(p, (h, w)) for p in depth_paths])
    return CameraStream(cam, frames, cameras, depth)


def _load_video_stream(directory: Path, cam: str, ext: str, fps: float, w2c: bool):
    video_path, npz_path = directory / "rgb" / f"{cam}.mp4", directory / "lowdim" / f"{cam}.npz"
    frames, _ = read_video(video_path)
    data = _load_npz(npz_path)
    intr, extr = _require(data, "intrinsics", npz_path), _require(data, "extrinsics", npz_path)
    t = frames.shape[0]
    if intr.shape != (t, 3, 3) or extr.shape != (t, 4, 4):
        raise InputError(
            f"expected intrinsics ({t},3,3) and extrinsics ({t},4,4) for {t} video frames, got "
            f"{intr.shape} and {extr.shape}",
            source=npz_path,
        )
    poses = [_poses(intr[i], extr[i], npz_path, w2c, f"[{i}].") for i in range(t)]
    steps = np.asarray(data["timestep"], dtype=np.float64) if "timestep" in data else np.arange(t)
    cameras = Cameras(
        torch.stack([p[0] for p in poses]),
        torch.stack([p[1] for p in poses]),
        frames.shape[-1],
        frames.shape[-2],
        torch.as_tensor(steps.reshape(-1)[:t] / fps, dtype=torch.float32),
    )
    return CameraStream(cam, frames, cameras, None)


def write_anyview(scene: Scene4D, directory: Path) -> None:
    """Write `scene` in the frames storage of AnyView's unified layout (PNG frames)."""
    sizes = {(s.height, s.width) for s in scene.streams.values()}
    targets = [c for c in scene.camera_names if c != scene.input_camera]
    for stream in scene.streams.values():
        c2w = stream.cameras.c2w.double().numpy()
        K = stream.cameras.K.double().numpy()
        steps = np.round(stream.cameras.times.double().numpy() * scene.fps).astype(np.int64)
        for i in range(len(stream)):
            stem = f"{i:010d}"
            save_image(directory / "rgb" / stream.name / f"{stem}.png", stream.frames[i])
            with atomic_path(directory / "lowdim" / stream.name / f"{stem}.npz") as tmp:
                np.savez(
                    tmp,
                    intrinsics=K[i],
                    extrinsics=c2w[i],
                    timestep=steps[i],
                    camera=np.array(stream.name),
                )
            if stream.depth is not None:
                with atomic_path(directory / "depth" / stream.name / f"{stem}.npy") as tmp:
                    np.save(tmp, stream.depth[i].float().numpy())
    meta = {
        "info": {"name": scene.name, "storage": "frames"},
        "cameras": scene.camera_names,
        "resolution": list(next(iter(sizes))) if len(sizes) == 1 else None,
        "num_frames": max(len(s) for s in scene.streams.values()),
        "framerate": scene.fps,
        "rgb": {"extension": "png"},
        "extrinsics": {"transform": "cam2world"},
        "specific": {
            "roles": {"input": scene.input_camera, "target": targets[0] if targets else None},
            "scene_scale": scene.scene_scale,
        },
    }
    atomic_write_text(directory / METADATA, json.dumps(meta, indent=1))
