"""Camera file formats: load any supported file, detected by content; save to any of them.

All converters to and from other conventions live here. Inside dreamjourney every camera is
OpenCV c2w (see `dreamjourney.camera.cameras`).
"""

from __future__ import annotations

from pathlib import Path

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats import native
from dreamjourney.errors import InputError

# name -> (module with `sniff(path) -> bool`, `load(path) -> Cameras`, `save(cams, path, fps)`)
FORMATS = {"native": native}


def detect_format(path: str | Path) -> str:
    """The name of the format of the file at `path`, judged by its content."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or directory", source=path)
    for name, module in FORMATS.items():
        if module.sniff(path):
            return name
    raise InputError(
        f"not a camera file in any supported format ({', '.join(FORMATS)})", source=path
    )


def load_cameras(path: str | Path, *, format: str | None = None) -> Cameras:
    """Load cameras from `path` (format detected by content unless given)."""
    name = format or detect_format(path)
    return _module(name).load(Path(path))


def format_from_suffix(path: str | Path) -> str:
    """The format a file name asks for when none is given explicitly."""
    return "native"


def save_cameras(
    cameras: Cameras, path: str | Path, *, format: str | None = None, fps: float = 24.0
) -> None:
    """Write `cameras` to `path` in `format` (default: from the file name)."""
    _module(format or format_from_suffix(path)).save(cameras, Path(path), fps=fps)


def _module(name: str):
    try:
        return FORMATS[name]
    except KeyError:
        raise InputError(f"unknown camera format {name!r}; known: {', '.join(FORMATS)}") from None
