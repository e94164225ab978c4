"""Speed and quality of the guided completer's hole pre-fill (`telea_fill`) at reduced
resolution against Telea at full resolution (the official DreamJourney pre-fill), same run.

Clip: 81 frames at 832x480 (Wan's native clip) of a smooth colour field with a little texture,
holes as a camera pan reveals them (a band along the right edge growing to 30% of the width)
plus a few disocclusion blobs. Quality: mean absolute error of the filled hole pixels against
the truth, and over the pixels of the 16x16 latent cells that are more than 80% known (the
only cells guidance uses, where a black hole would darken the encoded latent).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_prefill.py
"""

from __future__ import annotations

import argparse
import time

import cv2
import torch
import torch.nn.functional as F

from dreamjourney.models.video_common import telea_fill


def clip(frames: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij"
    )
    base = torch.stack([0.2 + 0.6 * xx, 0.2 + 0.5 * yy, 0.6 - 0.3 * xx * yy])
    texture = F.interpolate(torch.rand(1, 3, height // 8, width // 8, generator=g), (height, width))
    truth = (base + 0.1 * (texture[0] - 0.5)).clamp(0, 1).expand(frames, -1, -1, -1).clone()
    known = torch.ones(frames, height, width, dtype=torch.bool)
    for t in range(frames):
        known[t, :, width - int(0.3 * width * t / max(frames - 1, 1)) :] = False
        for k in range(3):
            cy, cx = height * (k + 1) // 4, width * (k + 1) // 5
            known[t, cy - 20 : cy + 20, cx - 30 : cx + 30] = False
    return truth, known


def mostly_known_pixels(known: torch.Tensor, cell: int = 16) -> torch.Tensor:
    """Pixels of cells more than 80% known that are themselves holes."""
    frac = F.avg_pool2d(known[:, None].float(), cell)
    cells = F.interpolate((frac > 0.8).float(), scale_factor=cell)[:, 0] > 0
    return cells & ~known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--size", default="832x480")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    width, height = (int(v) for v in args.size.split("x"))
    truth, known = clip(args.frames, height, width)
    frames = torch.where(known[:, None], truth, torch.zeros(()))
    holes = ~known
    boundary = mostly_known_pixels(known)
    print(f"{args.frames} frames {width}x{height}, holes {float(holes.float().mean()):.1%}")
    print("variant                      s/clip  ms/frame  MAE holes  MAE mostly-known cells")
    for name, max_side in [("full resolution (official)", 10**9), ("long side 256 (ours)", 256)]:
        t0 = time.perf_counter()
        out = telea_fill(frames, known, max_side=max_side)
        seconds = time.perf_counter() - t0
        err = (out - truth).abs().mean(1)
        print(
            f"{name:27s} {seconds:7.2f} {1000 * seconds / args.frames:9.1f}"
            f" {float(err[holes].mean()):10.4f} {float(err[boundary].mean()):11.4f}"
        )
    black = (frames - truth).abs().mean(1)
    print(
        f"{'no fill (black holes)':27s} {'':7s} {'':9s} {float(black[holes].mean()):10.4f}"
        f" {float(black[boundary].mean()):11.4f}"
    )


if __name__ == "__main__":
    main()
