"""Draw the bundled example photo `garden.png`: a procedural garden landscape (512x384).

Sky gradient with a sun and clouds, three ranges of hills, a textured meadow with a path,
trees and two houses, drawn far to near. Deterministic: `python examples/make_example.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 512, 384
HORIZON = 200


def smooth_noise(rng: np.random.Generator, n: int, scales: tuple[int, ...]) -> np.ndarray:
    """1-D sum of interpolated random octaves, (n,) in about [-1, 1]."""
    x = np.arange(n)
    out = np.zeros(n)
    for i, s in enumerate(scales):
        knots = rng.uniform(-1, 1, n // s + 2)
        out += np.interp(x / s, np.arange(knots.size), knots) / (i + 1)
    return out / sum(1 / (i + 1) for i in range(len(scales)))


def sky(rng: np.random.Generator) -> np.ndarray:
    y = np.linspace(0, 1, H)[:, None, None]
    top, bottom = np.array([70, 130, 210]), np.array([200, 225, 245])
    img = np.broadcast_to(top + (bottom - top) * y, (H, W, 3)).astype(np.float64).copy()
    yy, xx = np.mgrid[:H, :W]
    sun = np.exp(-(((xx - 400) ** 2 + (yy - 70) ** 2) / (2 * 40.0**2)))
    img += sun[..., None] * np.array([60, 50, 10])
    img[((xx - 400) ** 2 + (yy - 70) ** 2) < 22**2] = [255, 245, 200]
    for cx, cy, r in [(110, 60, 28), (150, 55, 22), (180, 66, 18), (300, 100, 20), (330, 96, 16)]:
        cloud = np.exp(-(((xx - cx) / 1.6) ** 2 + (yy - cy) ** 2) / (2 * r**2))
        img += (255 - img) * cloud[..., None] * 0.8
    return img


def hills(img: np.ndarray, rng: np.random.Generator) -> None:
    x = np.arange(W)
    yy = np.arange(H)[:, None]
    ranges = [
        (150, 25, (120, 150, 170), (40, 90)),
        (172, 20, (80, 130, 95), (30, 60)),
        (190, 14, (70, 125, 60), (20, 40)),
    ]
    for base, amp, colour, scales in ranges:
        ridge = base + amp * smooth_noise(rng, W, scales)
        inside = yy >= ridge[None, :]
        shade = 1 - 0.15 * np.clip((yy - ridge[None, :]) / 40, 0, 1)
        layer = np.array(colour)[None, None] * shade[..., None]
        img[inside] = layer[inside]
    del x


def meadow(img: np.ndarray, rng: np.random.Generator) -> None:
    rows = np.arange(HORIZON, H)
    t = ((rows - HORIZON) / (H - HORIZON))[:, None, None]
    near, far = np.array([70, 150, 45]), np.array([110, 160, 70])
    base = far + (near - far) * t
    grain = rng.normal(0, 1, (H - HORIZON, W, 1)) * (6 + 18 * t)
    stripes = 8 * np.sin(np.arange(W)[None, :, None] * 0.05 + rows[:, None, None] * 0.4) * t
    img[HORIZON:] = base + grain + stripes
    for r in rows:  # a path that widens toward the viewer
        k = (r - HORIZON) / (H - HORIZON)
        centre = 256 + 60 * k**1.5
        half = 4 + 70 * k**1.2
        lo, hi = int(centre - half), int(centre + half)
        img[r, max(lo, 0) : min(hi, W)] = np.array([190, 165, 120]) + rng.normal(0, 8, (1, 3))


def tree(
    draw: ImageDraw.ImageDraw, x: int, ground: int, size: float, rng: np.random.Generator
) -> None:
    trunk_w, trunk_h = max(2, int(6 * size)), int(28 * size)
    draw.rectangle(
        [x - trunk_w // 2, ground - trunk_h, x + trunk_w // 2, ground], fill=(95, 65, 40)
    )
    r = int(24 * size)
    for dx, dy, shade in [(-0.5, -0.2, 0.85), (0.5, -0.2, 0.9), (0, -0.8, 1.0), (0, -0.3, 0.95)]:
        cx, cy = x + dx * r, ground - trunk_h + dy * r
        g = int(rng.integers(100, 140) * shade)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(40, g, 45))


def house(
    draw: ImageDraw.ImageDraw, x: int, ground: int, size: float, wall: tuple, roof: tuple
) -> None:
    w, h = int(70 * size), int(45 * size)
    draw.rectangle([x, ground - h, x + w, ground], fill=wall)
    draw.polygon(
        [
            (x - 6 * size, ground - h),
            (x + w / 2, ground - h - 35 * size),
            (x + w + 6 * size, ground - h),
        ],
        fill=roof,
    )
    draw.rectangle([x + w * 0.4, ground - h * 0.6, x + w * 0.6, ground], fill=(90, 60, 40))
    for wx in (0.12, 0.72):
        draw.rectangle(
            [x + w * wx, ground - h * 0.75, x + w * (wx + 0.16), ground - h * 0.45],
            fill=(170, 210, 235),
        )


def main(path: Path = Path(__file__).with_name("garden.png")) -> None:
    rng = np.random.default_rng(7)
    img = sky(rng)
    hills(img, rng)
    meadow(img, rng)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.6)
    )
    draw = ImageDraw.Draw(im)
    house(draw, 120, 215, 0.8, (225, 210, 180), (160, 60, 50))
    house(draw, 318, 224, 0.9, (240, 235, 225), (90, 90, 110))
    for x, ground, size in [
        (40, 212, 0.8),
        (90, 218, 0.9),
        (226, 206, 0.6),
        (415, 214, 0.8),
        (460, 230, 1.3),
        (60, 300, 2.2),
        (475, 335, 2.4),
    ]:
        tree(draw, x, ground, size, rng)
    im.save(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
