"""Open a scene in any supported layout, and find the scenes under a folder."""

from __future__ import annotations

from pathlib import Path

from dreamjourney.data import anyview, dycheck
from dreamjourney.data.scene import SCENE_FILE, load_scene
from dreamjourney.data.types import Scene4D
from dreamjourney.errors import InputError


def _native(directory: Path) -> bool:
    """scene.json beside per-camera folders holding cameras.json (DyCheck scenes have a
    scene.json of their own, but no such folder)."""
    return (directory / SCENE_FILE).is_file() and any(
        (child / "cameras.json").is_file() for child in directory.iterdir() if child.is_dir()
    )


# Each layout is recognised by the folders that make it, not by a file name that another
# layout shares (DyCheck also holds scene.json and metadata.json).
LAYOUTS = {
    "native": (_native, load_scene),
    "anyview": (anyview.sniff, anyview.load_anyview_scene),
    "dycheck": (dycheck.sniff, dycheck.load_dycheck_scene),
}


def detect_layout(directory: str | Path) -> str | None:
    """The layout of the scene in `directory`, or None if it is not a scene."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    for name, (sniff, _) in LAYOUTS.items():
        if sniff(directory):
            return name
    return None


def load_any_scene(directory: str | Path) -> Scene4D:
    """Load a native, AnyView or DyCheck scene, detected from the files present."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError("no such scene directory", source=directory)
    layout = detect_layout(directory)
    if layout is None:
        raise InputError(
            "not a scene: expected scene.json + camera folders with cameras.json (native), "
            "metadata.json + rgb/ + lowdim/ (AnyView) or camera/<cam>_<time>.json (DyCheck)",
            source=directory,
        )
    return LAYOUTS[layout][1](directory)


def find_scenes(root: Path) -> list[tuple[str, Path]]:
    """(dataset, scene dir) for `root` being a scene, a folder of scenes or a folder of those."""
    if not root.is_dir():
        raise InputError("no such directory", source=root)
    if detect_layout(root):
        return [(root.parent.name or "scenes", root)]
    children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [(root.name, p) for p in children if detect_layout(p)]
    for child in children:
        if not detect_layout(child):
            found += [
                (child.name, p)
                for p in sorted(child.iterdir())
                if p.is_dir() and not p.name.startswith(".") and detect_layout(p)
            ]
    if not found:
        raise InputError("holds no scenes in any known layout", source=root)
    return found
