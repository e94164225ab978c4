"""Camera file formats: load any supported file, detected by content; save to any of them.

All converters to and from other conventions live here. Inside dreamjourney every camera is
OpenCV c2w (see `dreamjourney.camera.cameras`).

| name         | read | write | recognised by                                             |
|--------------|------|-------|-----------------------------------------------------------|
| `native`     | yes  | yes   | JSON with `"format": "dreamjourney.cameras/1"`             |
| `keyframes`  | yes  |       | JSON with `"format": "dreamjourney.keyframes/1"`           |
| `nerfstudio` | yes  | yes   | JSON with a `camera_path` list (camera_path.json)          |
| `transforms` | yes  |       | JSON with `frames[].transform_matrix` (transforms.json)     |
| `colmap`     | yes  | yes   | a directory (or its images.txt) with cameras.txt+images.txt |
| `re10k`      | yes  | yes   | a .txt whose lines (after the first) hold 19 numbers       |
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats import colmap, keyframes, native, nerfstudio, re10k, transforms
from dreamjourney.camera.formats.validate import read_json
from dreamjourney.errors import InputError

# name -> module with `sniff(path) -> bool`, `load(path) -> Cameras` and, when writable,
# `save(cams, path, fps=)`. Detection tries them in this order.
FORMATS: dict[str, ModuleType] = {
    "native": native,
    "keyframes": keyframes,
    "nerfstudio": nerfstudio,
    "transforms": transforms,
    "colmap": colmap,
    "re10k": re10k,
}
WRITABLE = tuple(name for name, module in FORMATS.items() if hasattr(module, "save"))


def detect_format(path: str | Path) -> str:
    """The name of the format of the file at `path`, judged by its content."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or directory", source=path)
    for name, module in FORMATS.items():
        if module.sniff(path):
            return name
    if path.suffix.lower() == ".json":
        data = read_json(path)  # says why a broken JSON file is broken
        if isinstance(data, dict) and "format" in data:
            raise InputError(
                f"unknown camera format {data['format']!r}", source=path, field="format"
            )
    raise InputError(
        f"not a camera file in any supported format ({', '.join(FORMATS)})", source=path
    )


def load_cameras(
    path: str | Path, *, format: str | None = None, size: tuple[int, int] | None = None
) -> Cameras:
    """Load cameras from `path` (format detected by content unless given).

    `size` (width, height) is the image size for a file that states none and whose images are
    not beside it (a `transforms.json` without w/h); other files ignore it.
    """
    name = format or detect_format(path)
    if name == "transforms":
        return transforms.load(Path(path), size=size)
    return _module(name).load(Path(path))


def format_from_suffix(path: str | Path) -> str:
    """The format a file name asks for when none is given explicitly.

    `*camera_path.json` -> nerfstudio, other `.json` -> native, `.txt` -> re10k (but
    `cameras.txt` / `images.txt` -> colmap), no suffix (a directory) -> colmap.
    """
    path = Path(path)
    name, suffix = path.name.lower(), path.suffix.lower()
    if name.endswith("camera_path.json"):
        return "nerfstudio"
    if name in ("cameras.txt", "images.txt") or suffix == "":
        return "colmap"
    if suffix == ".txt":
        return "re10k"
    if suffix == ".json":
        return "native"
    raise InputError(
        f"cannot tell the camera format from the suffix {suffix!r}; give one of "
        f"{', '.join(WRITABLE)}",
        source=path,
    )


def save_cameras(
    cameras: Cameras, path: str | Path, *, format: str | None = None, fps: float = 24.0
) -> None:
    """Write `cameras` to `path` in `format` (default: from the file name)."""
    name = format or format_from_suffix(path)
    module = _module(name)
    if name not in WRITABLE:
        raise InputError(
            f"format {name!r} can be read but not written; writable: {', '.join(WRITABLE)}"
        )
    module.save(cameras, Path(path), fps=fps)


def _module(name: str) -> ModuleType:
    try:
        return FORMATS[name]
    except KeyError:
        raise InputError(f"unknown camera format {name!r}; known: {', '.join(FORMATS)}") from None
