"""Clips from a video file, a folder of frames or one image, as (T, 3, H, W) float32 in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.io.images import load_image
from dreamjourney.io.video import read_video

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in name order."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_clip(
    path: str | Path,
    *,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    fps: float = 24.0,
    field: str | None = None,
) -> tuple[Tensor, float]:
    """Read a video file, a folder of frames or a single image -> (frames (T,3,H,W), fps).

    `size` (width, height) resizes every frame (area interpolation when shrinking), before
    frames of a folder are checked for a common size (so a folder of mixed sizes works with
    it); frames from images have no frame rate of their own and get `fps`. `field` names the
    option or argument in error messages.
    """
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)[:max_frames]
        if not files:
            raise InputError("folder holds no image frames", source=path, field=field)
        images = [_resized(load_image(f, min_size=1)[None], size)[0] for f in files]
        shapes = {tuple(im.shape) for im in images}
        if len(shapes) > 1:
            raise InputError(
                f"frames differ in size: {sorted(shapes)}; give --size WxH to resize them",
                source=path,
                field=field,
            )
        clip = torch.stack(images)
    elif not path.exists():
        raise InputError("no such file or folder", source=path, field=field)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        clip = load_image(path, min_size=1)[None]
    else:
        clip, fps = read_video(path, max_frames=max_frames)
    return _resized(clip, size), fps


def _resized(clip: Tensor, size: tuple[int, int] | None) -> Tensor:
    """(T, 3, H, W) -> (T, 3, height, width) for size (width, height); None keeps it."""
    if size is None or (clip.shape[-1], clip.shape[-2]) == size:
        return clip
    mode = "area" if size[0] < clip.shape[-1] else "bilinear"
    return torch.nn.functional.interpolate(clip, size=(size[1], size[0]), mode=mode).clamp(0, 1)
