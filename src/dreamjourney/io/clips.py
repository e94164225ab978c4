"""Clips from a video file or a folder of frames, as (T, 3, H, W) float32 in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.io.images import load_image
from dreamjourney.io.video import read_video

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in name order."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def load_clip(
    path: str | Path,
    *,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    fps: float = 24.0,
) -> tuple[Tensor, float]:
    """Read a video file or a folder of frames -> (frames (T,3,H,W), fps).

    `size` (width, height) resizes every frame (area interpolation when shrinking); a folder of
    frames has no frame rate of its own and gets `fps`.
    """
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)[:max_frames]
        if not files:
            raise InputError("folder holds no PNG or JPEG frames", source=path)
        images = [load_image(f) for f in files]
        shapes = {tuple(im.shape) for im in images}
        if len(shapes) > 1:
            raise InputError(f"frames differ in size: {sorted(shapes)}", source=path)
        clip = torch.stack(images)
    else:
        clip, fps = read_video(path, max_frames=max_frames)
    if size is not None and (clip.shape[-1], clip.shape[-2]) != size:
        clip = torch.nn.functional.interpolate(
            clip, size=(size[1], size[0]), mode="area" if size[0] < clip.shape[-1] else "bilinear"
        ).clamp(0, 1)
    return clip, fps
