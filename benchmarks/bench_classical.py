"""Fill quality and speed of the offline completer against plain OpenCV inpainting.

Images: the first frame of every stream of a few `synth_scene`s (checkered walls, floor and
objects, exact ground truth) and the example photo `examples/garden.png`. Each image gets
masks like those a camera move reveals: `border` (a band 15-30% wide along one image side, its
inner edge ragged), `blobs` (a few ellipses, like disocclusions behind objects) and `both`.
Every method fills the same masked images in the same run; the table gives the mean PSNR and
SSIM (`dreamjourney.eval.metrics`, over the hole pixels only), `detail` (band-pass energy of the
fill over that of the truth, in the hole: 1 = as much texture as the truth, 0 = flat paint)
and the median wall time per frame.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_classical.py --seeds 3
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from dreamjourney.data import synth_scene
from dreamjourney.eval.metrics import psnr, ssim
from dreamjourney.io.images import load_image, save_image, to_uint8
from dreamjourney.models.classical import inpaint_frame

Fill = Callable[[Tensor, Tensor], Tensor]


def opencv_fill(method: int) -> Fill:
    """OpenCV inpainting of the whole hole (radius 5)."""

    def fill(frame: Tensor, known: Tensor) -> Tensor:
        holes = (~known).numpy().astype(np.uint8) * 255
        out = torch.from_numpy(cv2.inpaint(to_uint8(frame), holes, 5.0, method))
        return torch.where(known[None], frame, out.permute(2, 0, 1).float() / 255.0)

    return fill


METHODS: dict[str, Fill] = {
    "opencv-telea": opencv_fill(cv2.INPAINT_TELEA),
    "opencv-ns": opencv_fill(cv2.INPAINT_NS),
    "classical, patch 5": lambda frame, known: inpaint_frame(frame, known, patch_size=5),
    "classical (now)": lambda frame, known: inpaint_frame(frame, known),
}


def texture(image: Tensor, where: Tensor) -> float:
    """Mean absolute band-pass (Gaussian blur of 1 minus blur of 4 pixels) of the grey image
    over `where` `(H,W)`: how much texture there is, whatever its phase."""
    grey = image.mean(0).numpy().astype(np.float32)
    band = cv2.GaussianBlur(grey, (0, 0), 1.0) - cv2.GaussianBlur(grey, (0, 0), 4.0)
    return float(np.abs(band)[where.numpy()].mean())


def make_mask(kind: str, h: int, w: int, rng: np.random.Generator) -> Tensor:
    """`(H,W)` bool, True = known: a ragged border band, a few ellipses, or both."""
    known = np.ones((h, w), bool)
    if kind in ("border", "both"):
        side = rng.integers(4)
        length = h if side < 2 else w
        span = w if side < 2 else h
        width = rng.uniform(0.15, 0.3) * span
        edge = width + np.cumsum(rng.normal(0, 1.5, length)).clip(-0.08 * span, 0.08 * span)
        depth = np.arange(span)[None, :] < edge[:, None]  # (length, span): True in the band
        band = {0: depth, 1: depth[:, ::-1], 2: depth.T, 3: depth.T[::-1]}[int(side)]
        known &= ~band
    if kind in ("blobs", "both"):
        canvas = np.zeros((h, w), np.uint8)
        for _ in range(rng.integers(2, 5)):
            centre = (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h))
            axes = (int(rng.uniform(0.04, 0.12) * w), int(rng.uniform(0.04, 0.12) * h))
            cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        known &= canvas == 0
    return torch.from_numpy(known)


def images(seeds: int, width: int, height: int) -> dict[str, Tensor]:
    out = {}
    for seed in range(seeds):
        scene = synth_scene(seed, cameras=2, frames=1, width=width, height=height)
        for name, stream in scene.streams.items():
            out[f"synth{seed}-{name}"] = stream.frames[0]
    photo = Path(__file__).resolve().parents[1] / "examples" / "garden.png"
    image = load_image(photo)
    image = torch.nn.functional.interpolate(image[None], (height, width), mode="area")[0]
    out["garden"] = image.clamp(0, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="synthetic scenes (2 images each)")
    parser.add_argument("--size", default="384x288", help="WxH")
    parser.add_argument("--masks", type=int, default=2, help="masks of each kind per image")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per fill")
    parser.add_argument("--save", type=Path, help="folder for side-by-side PNGs of the fills")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    width, height = (int(v) for v in args.size.split("x"))
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}  size {width}x{height}")
    pictures = images(args.seeds, width, height)
    rng = np.random.default_rng(0)
    cases = [
        (name, kind, img, make_mask(kind, height, width, rng))
        for name, img in pictures.items()
        for kind in ("border", "blobs", "both")
        for _ in range(args.masks)
    ]
    rows: dict[tuple[str, str, str], list[tuple[float, float, float, float]]] = {}
    for case, (name, kind, img, known) in enumerate(cases):
        holes = torch.where(known[None], img, torch.zeros_like(img))
        panels = [holes]
        for method, fill in METHODS.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = fill(holes, known)
                times.append(time.perf_counter() - start)
            assert torch.equal(out[:, known], img[:, known])
            hole = ~known
            p = float(psnr(out[None], img[None], hole)[0])
            s = float(ssim(out[None], img[None], hole)[0])
            detail = texture(out, hole) / texture(img, hole)
            group = "garden" if name == "garden" else "synth"
            rows.setdefault((group, kind, method), []).append(
                (p, s, detail, 1000 * np.median(times))
            )
            panels.append(out)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            save_image(args.save / f"{name}-{kind}-{case}.png", torch.cat([img, *panels], dim=2))
    print("\n| images | mask | method | PSNR (dB) | SSIM | detail | ms/frame |")
    print("|---|---|---|---:|---:|---:|---:|")
    for (group, kind, method), vals in rows.items():
        a = np.array(vals)
        print(
            f"| {group} ({len(a)}) | {kind} | {method} | {a[:, 0].mean():.2f} | "
            f"{a[:, 1].mean():.3f} | {a[:, 2].mean():.2f} | {np.median(a[:, 3]):.0f} |"
        )


if __name__ == "__main__":
    main()
