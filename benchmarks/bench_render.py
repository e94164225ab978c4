"""Rendering speed: 1M points into 512x512 and 720x480, against a NumPy `np.minimum.at` z-buffer.

Not a test. Run: `PYTHONPATH=src python benchmarks/bench_render.py`. Prints one table; the
figures for this machine are in benchmarks/README.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from dreamjourney.camera import Cameras, look_at
from dreamjourney.scene import World, rasterize, unproject

REPEATS = 7


def timed(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Median wall time of `fn` in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def synthetic_frame(size: int) -> tuple[torch.Tensor, torch.Tensor, Cameras]:
    """A size x size photo of a wavy surface 2-4 units away, and its z-depth."""
    cam = Cameras.create(torch.eye(4), width=size, height=size, fov_deg=60.0)
    v, u = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    depth = 3.0 + 0.5 * torch.sin(7 * u) * torch.cos(5 * v) + 0.5 * v
    image = torch.stack([u, v, 0.5 + 0.5 * torch.sin(20 * u * v)])
    return image, depth, cam


def numpy_zbuffer(
    points_t: np.ndarray,
    colors: np.ndarray,
    K: np.ndarray,
    w2c: np.ndarray,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: project (points as a (3, P) array, NumPy's fast layout for this product),
    cull, one pixel per point, `np.minimum.at` z-buffer, then a winner pass."""
    uvw = (K @ w2c[:3, :3]) @ points_t + (K @ w2c[:3, 3])[:, None]
    z = uvw[2]
    front = z > 1e-6
    uvw, z = uvw[:, front], z[front]
    u = np.floor(uvw[0] / z).astype(np.int64)
    v = np.floor(uvw[1] / z).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    pix = v[inside] * width + u[inside]
    zi = z[inside]
    zbuf = np.full(width * height, np.inf, dtype=np.float32)
    np.minimum.at(zbuf, pix, zi)
    win = zi == zbuf[pix]
    image = np.zeros((width * height, 3), dtype=np.float32)
    image[pix[win]] = colors[front][inside][win]
    return image, zbuf


def main() -> None:
    torch.manual_seed(0)
    image, depth, cam = synthetic_frame(1000)
    cloud = unproject(image, depth, cam)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}"
    )
    print(f"points: {len(cloud):,}")
    pts, cols = np.ascontiguousarray(cloud.points.numpy().T), cloud.colors.numpy()
    for width, height in [(512, 512), (720, 480)]:
        view = Cameras.create(
            look_at(torch.tensor([0.3, -0.2, 0.2]), torch.tensor([0.0, 0.0, 3.0])),
            width=width,
            height=height,
            fov_deg=60.0,
        )
        K, w2c = view.K[0].numpy(), view.w2c[0].numpy()
        base = timed(lambda: numpy_zbuffer(pts, cols, K, w2c, width, height))  # noqa: B023
        ours = timed(lambda: rasterize(cloud, view))  # noqa: B023
        holes = 1 - rasterize(cloud, view).mask.float().mean().item()
        print(
            f"{width}x{height}: rasterize {ours:6.1f} ms/frame, numpy minimum.at {base:6.1f} "
            f"ms/frame, speed-up {base / ours:4.2f}x, holes {100 * holes:.2f}%"
        )

    world_image, world_depth, world_cam = synthetic_frame(512)
    n_points = 512 * 512

    def fuse_into_empty() -> None:
        World().add_frame(world_image, world_depth, world_cam)

    ms = timed(fuse_into_empty, repeats=3)
    print(
        f"unproject+fuse (empty world, {n_points:,} px): {n_points / ms * 1e3 / 1e6:.2f} M points/s"
    )

    world = World()
    world.add_frame(world_image, world_depth, world_cam)
    moved = Cameras.create(
        look_at(torch.tensor([0.4, 0.0, 0.0]), torch.tensor([0.4, 0.0, 3.0])),
        width=512,
        height=512,
        fov_deg=60.0,
    )
    ms = timed(lambda: world.add_frame(world_image, world_depth, moved, new_only=True), repeats=3)
    print(
        f"render+unproject+fuse of a new view into a {len(world):,}-point world: {ms:.1f} ms "
        f"({n_points / ms * 1e3 / 1e6:.2f} M px/s)"
    )


if __name__ == "__main__":
    main()
