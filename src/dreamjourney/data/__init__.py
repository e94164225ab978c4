"""Ground truth: the 4D scene format, adapters for public layouts, and a synthetic scene generator."""

from dreamjourney.data.anyview import load_anyview_scene
from dreamjourney.data.dycheck import load_dycheck_scene
from dreamjourney.data.loaders import detect_layout, find_scenes, load_any_scene
from dreamjourney.data.scene import load_scene, save_scene
from dreamjourney.data.synth import synth_scene
from dreamjourney.data.types import CameraStream, Scene4D

__all__ = [
    "CameraStream",
    "Scene4D",
    "detect_layout",
    "find_scenes",
    "load_any_scene",
    "load_anyview_scene",
    "load_dycheck_scene",
    "load_scene",
    "save_scene",
    "synth_scene",
]
