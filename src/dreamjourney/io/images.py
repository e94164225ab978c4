"""Reading and writing images as float32 tensors in [0, 1], shape (3, H, W).

Reading accepts what people have: 8- and 16-bit, grayscale, palette, RGBA (alpha composited on
white), EXIF-rotated JPEGs. Anything unreadable is an `InputError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from dreamjourney.camera.cameras import centre_crop_box
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_path

MAX_PIXELS = 64_000_000
MAX_SIDE = 512  # default long side of the frames a command renders from a photo


def load_image(path: str | Path, *, min_size: int = 8) -> Tensor:
    """Image file -> (3, H, W) float32 in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such image file" if not path.exists() else "not a file", source=path)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(
                    f"image is {im.width}x{im.height}, over the {MAX_PIXELS // 1_000_000} MP limit; "
                    "resize it first",
                    source=path,
                )
            im.load()
            im = ImageOps.exif_transpose(im)
            array = _to_rgb_float(im)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(
            f"cannot read image ({exc.__class__.__name__}: {exc})", source=path
        ) from None
    h, w = array.shape[:2]
    if min(h, w) < min_size:
        raise InputError(
            f"image is {w}x{h}; both sides must be at least {min_size} pixels", source=path
        )
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _to_rgb_float(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float32)
        a = a / (65535.0 if a.max() > 255 else 255.0)
        return np.repeat(a[..., None], 3, axis=2).clip(0, 1)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        return np.repeat(a[..., None], 3, axis=2).clip(0, 1)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        rgba = np.asarray(im, dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        return rgba[..., :3] * alpha + (1.0 - alpha)
    if im.mode == "RGB" and im.getbands() == ("R", "G", "B"):
        return np.asarray(im, dtype=np.float32) / 255.0
    if im.mode in ("I;16", "RGB;16"):
        return np.asarray(im, dtype=np.float32) / 65535.0
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def to_uint8(image: Tensor) -> np.ndarray:
    """(3, H, W) or (H, W) float in [0, 1] -> (H, W, 3) or (H, W) uint8."""
    a = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return a.transpose(1, 2, 0) if a.ndim == 3 else a


def save_image(path: str | Path, image: Tensor) -> None:
    """Write a (3, H, W) float image or an (H, W) bool/float mask as PNG, atomically."""
    if image.dtype == torch.bool:
        image = image.float()
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")


def default_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """A photo's size scaled down to fit `max_side`, rounded down to multiples of 8."""
    scale = min(1.0, max_side / max(width, height))
    return max(8, int(width * scale) // 8 * 8), max(8, int(height * scale) // 8 * 8)


def fit_image(image: Tensor, width: int, height: int) -> Tensor:
    """(3, h, w) -> (3, height, width): centre crop to the target aspect, then resize
    (`Cameras.fit` does the same to a camera)."""
    _, h, w = image.shape
    if (w, h) == (width, height):
        return image
    left, top, cw, ch = centre_crop_box(w, h, width / height)
    crop = image[None, :, top : top + ch, left : left + cw]
    out = torch.nn.functional.interpolate(
        crop, size=(height, width), mode="bicubic", antialias=True
    )
    return out[0].clamp(0, 1)
