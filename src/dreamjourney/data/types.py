"""What every scene layout reads into: camera streams and 4D scenes, and the checks they share.

The layouts (`scene` native, `anyview`, `dycheck`) and the synthetic generator all build these
types; keeping them here lets each layout module depend on this one alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from dreamjourney.camera.cameras import Cameras
from dreamjourney.errors import InputError
from dreamjourney.io.images import load_image

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


def depth_scale(depth: Tensor | None) -> float | None:
    """The scene scale a depth map gives: the median positive z-depth of `depth` (H, W), or of
    its first frame for a (T, H, W) video, as `Scene4D.scene_scale` is defined. None without
    depth or when that frame has no positive depth."""
    if depth is None:
        return None
    first = depth[0] if depth.ndim == 3 else depth
    valid = first[first > 0]
    return float(valid.median()) if valid.numel() else None
