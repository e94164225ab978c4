"""COLMAP text model: a directory with `cameras.txt` and `images.txt` (`points3D.txt` unused).

`cameras.txt`: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...`` in pixels (SIMPLE_PINHOLE, PINHOLE,
SIMPLE_RADIAL, RADIAL, OPENCV; distortion is dropped with a warning). `images.txt`: two lines per image,
``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` (world-to-camera, Hamilton quaternion scalar
first, OpenCV axes) then a line of 2D points (may be empty). Images are ordered by NAME and
placed at i / 24 s (COLMAP stores no times). We write one PINHOLE camera per image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from dreamjourney.camera.cameras import Cameras
from dreamjourney.errors import InputError, warn_input
from dreamjourney.io.atomic import atomic_write_text

# model -> indices of (fx, fy, cx, cy) in PARAMS (fy = fx for one-focal models)
MODELS = {
    "SIMPLE_PINHOLE": (0, 0, 1, 2),
    "PINHOLE": (0, 1, 2, 3),
    "SIMPLE_RADIAL": (0, 0, 1, 2),
    "RADIAL": (0, 0, 1, 2),
    "OPENCV": (0, 1, 2, 3),
}
_MIN_PARAMS = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8}
# model -> names of its distortion parameters, which follow the pinhole ones in PARAMS
DISTORTION = {"SIMPLE_RADIAL": ("k",), "RADIAL": ("k1", "k2"), "OPENCV": ("k1", "k2", "p1", "p2")}


def model_dir(path: Path) -> Path | None:
    """The directory holding cameras.txt and images.txt that `path` names, or None."""
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.name not in ("cameras.txt", "images.txt"):
        return None
    if (folder / "cameras.txt").is_file() and (folder / "images.txt").is_file():
        return folder
    return None


def sniff(path: Path) -> bool:
    return model_dir(path) is not None


def _floats(fields: list[str], path: Path, field: str) -> list[float]:
    try:
        values = [float(x) for x in fields]
    except ValueError:
        raise InputError("not all fields are numbers", source=path, field=field) from None
    if not all(np.isfinite(values)):
        raise InputError("contains NaN or infinite values", source=path, field=field)
    return values


def _read_cameras(path: Path) -> dict[int, tuple[int, int, torch.Tensor]]:
    cameras = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"line {n}"
        if len(fields) < 4 or fields[1] not in MODELS:
            raise InputError(
                f"expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS with MODEL one of {', '.join(MODELS)}",
                source=path,
                field=where,
            )
        model = fields[1]
        try:
            cam_id, width, height = int(fields[0]), int(fields[2]), int(fields[3])
        except ValueError:
            raise InputError(
                "CAMERA_ID, WIDTH and HEIGHT must be integers", source=path, field=where
            ) from None
        params = _floats(fields[4:], path, where)
        if len(params) < _MIN_PARAMS[model] or width < 1 or height < 1:
            raise InputError(
                f"too few parameters for {model} or bad size", source=path, field=where
            )
        fx, fy, cx, cy = (params[i] for i in MODELS[model])
        if fx <= 0 or fy <= 0:
            raise InputError("focal lengths must be positive", source=path, field=where)
        K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        cameras[cam_id] = (width, height, K)
        names = DISTORTION.get(model, ())
        coefficients = params[_MIN_PARAMS[model] - len(names) : _MIN_PARAMS[model]]
        if any(c != 0 for c in coefficients):
            values = ", ".join(f"{k}={v:.3g}" for k, v in zip(names, coefficients, strict=True))
            warn_input(
                f"{model} lens distortion ({values}) is ignored: cameras here are pinholes; "
                "undistort the images (colmap image_undistorter) for exact geometry",
                source=path,
                field=where,
            )
    if not cameras:
        raise InputError("no cameras", source=path)
    return cameras


def load(path: Path) -> Cameras:
    folder = model_dir(path)
    if folder is None:
        raise InputError("expected a COLMAP text model (cameras.txt and images.txt)", source=path)
    intrinsics = _read_cameras(folder / "cameras.txt")
    images_path = folder / "images.txt"
    lines = images_path.read_text().splitlines()
    images = []
    n = 0
    while n < len(lines):
        fields = lines[n].split()
        if not fields or fields[0].startswith("#"):
            n += 1
            continue
        where = f"line {n + 1}"
        if len(fields) < 10:
            raise InputError(
                "expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME",
                source=images_path,
                field=where,
            )
        pose = _floats(fields[1:8], images_path, where)
        quat = np.array(pose[:4])
        if not 0.9 < np.linalg.norm(quat) < 1.1:
            raise InputError(
                f"quaternion is not unit length (|q| = {np.linalg.norm(quat):.3g})",
                source=images_path,
                field=where,
            )
        cam_id = int(fields[8]) if fields[8].lstrip("-").isdigit() else None
        if cam_id not in intrinsics:
            raise InputError(f"unknown CAMERA_ID {fields[8]}", source=images_path, field=where)
        images.append((" ".join(fields[9:]), quat, np.array(pose[4:]), cam_id))
        n += 2  # the next line holds the image's 2D points
    if not images:
        raise InputError("no images", source=images_path)
    images.sort(key=lambda im: im[0])
    sizes = {intrinsics[im[3]][:2] for im in images}
    if len(sizes) > 1:
        raise InputError(
            f"images have different sizes {sorted(sizes)}", source=folder / "cameras.txt"
        )
    ((width, height),) = sizes
    R = Rotation.from_quat(np.stack([im[1] for im in images]), scalar_first=True).as_matrix()
    t = np.stack([im[2] for im in images])
    c2w = np.tile(np.eye(4), (len(images), 1, 1))
    c2w[:, :3, :3] = R.transpose(0, 2, 1)
    c2w[:, :3, 3] = -np.einsum("nji,nj->ni", R, t)
    K = torch.stack([intrinsics[im[3]][2] for im in images])
    times = torch.arange(len(images), dtype=torch.float32) / 24.0
    return Cameras(K, torch.from_numpy(c2w).float(), width, height, times)


def save(cameras: Cameras, path: Path, *, fps: float = 24.0) -> None:
    """Write `path`/cameras.txt, images.txt and an empty points3D.txt (`path` is a directory)."""
    folder = path.parent if path.name in ("cameras.txt", "images.txt") else path
    if folder.exists() and not folder.is_dir():
        raise InputError("a COLMAP model is a directory; this is a file", source=folder)
    folder.mkdir(parents=True, exist_ok=True)
    K, w2c = cameras.K.double(), cameras.w2c.double().numpy()
    quat = Rotation.from_matrix(w2c[:, :3, :3]).as_quat(scalar_first=True)
    cam_lines = ["# CAMERA_ID MODEL WIDTH HEIGHT fx fy cx cy"]
    img_lines = ["# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME", "# POINTS2D (empty)"]
    for i in range(len(cameras)):
        fx, fy, cx, cy = (
            float(K[i, 0, 0]),
            float(K[i, 1, 1]),
            float(K[i, 0, 2]),
            float(K[i, 1, 2]),
        )
        cam_lines.append(
            f"{i + 1} PINHOLE {cameras.width} {cameras.height} {fx!r} {fy!r} {cx!r} {cy!r}"
        )
        pose = " ".join(repr(float(x)) for x in (*quat[i], *w2c[i, :3, 3]))
        img_lines += [f"{i + 1} {pose} {i + 1} frame_{i:06d}.png", ""]
    atomic_write_text(folder / "cameras.txt", "\n".join(cam_lines) + "\n")
    atomic_write_text(folder / "images.txt", "\n".join(img_lines) + "\n")
    atomic_write_text(folder / "points3D.txt", "# POINT3D_ID X Y Z R G B ERROR TRACK[]\n")
