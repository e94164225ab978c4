"""Rendering speed: 1M points into 512x512 and 720x480, against a NumPy `np.minimum.at` z-buffer.

Not a test. Run: `PYTHONPATH=src python benchmarks/bench_render.py [--threads N]`. Prints one
table; the figures for this machine are in benchmarks/README.md.

Each timing is the median over REPEATS runs, the two renderers taking turns, of both wall time
and this process's CPU time (user + system). On a shared machine the wall time swings with the
load of other processes; the CPU time is the work done, and with one thread the steadier figure.
"""

from __future__ import annotations

import argparse
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


def timed(*fns: Callable[[], object], repeats: int = REPEATS) -> list[tuple[float, float]]:
    """(wall ms, CPU ms) medians of each of `fns`, after one warm-up call each."""
    for fn in fns:
        fn()
    walls: list[list[float]] = [[] for _ in fns]
    cpus: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, wall, cpu in zip(fns, walls, cpus, strict=True):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall.append((time.perf_counter() - w0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(walls, cpus, strict=True)]


def synthetic_frame(size: int) -> tuple[torch.Tensor, torch.Tensor, Cameras]:
    """A size x size photo of a wavy surface 2.5-4 units away, and its z-depth."""
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


VIEWS = {
    # a step sideways and back: splats stay about a pixel wide
    "side": ((0.3, -0.2, -0.3), (0.0, 0.0, 3.0)),
    # a step forward: the surface comes nearer and most splats cover 2-4 pixels
    "forward": ((0.3, -0.2, 0.2), (0.0, 0.0, 3.0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    threads = parser.parse_args().threads
    if threads is not None:
        torch.set_num_threads(threads)
    image, depth, cam = synthetic_frame(1000)
    cloud = unproject(image, depth, cam)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"numpy {np.__version__}; {len(cloud):,} points (a 1000x1000 frame)"
    )
    print(
        "view          size     rasterize wall / CPU ms   numpy wall / CPU ms   speed-up (CPU)  holes: ours / numpy"
    )
    pts, cols = np.ascontiguousarray(cloud.points.numpy().T), cloud.colors.numpy()
    for name, (eye, target) in VIEWS.items():
        for width, height in [(512, 512), (720, 480)]:
            view = Cameras.create(
                look_at(torch.tensor(eye), torch.tensor(target)),
                width=width,
                height=height,
                fov_deg=60.0,
            )
            K, w2c = view.K[0].numpy(), view.w2c[0].numpy()
            (ours_w, ours_c), (base_w, base_c) = timed(
                lambda: rasterize(cloud, view),  # noqa: B023
                lambda: numpy_zbuffer(pts, cols, K, w2c, width, height),  # noqa: B023
            )
            holes = 1 - rasterize(cloud, view).mask.float().mean().item()
            base_holes = np.isinf(numpy_zbuffer(pts, cols, K, w2c, width, height)[1]).mean()
            print(
                f"{name:8s} {width:4d}x{height:<4d}   {ours_w:8.1f} / {ours_c:6.1f}"
                f"            {base_w:8.1f} / {base_c:6.1f}      {base_w / ours_w:4.2f}x "
                f"({base_c / ours_c:4.2f}x)   {100 * holes:5.2f}% / {100 * base_holes:5.2f}%"
            )

    frame_image, frame_depth, frame_cam = synthetic_frame(512)
    pixels = 512 * 512

    def fuse_into_empty() -> None:
        World().add_frame(frame_image, frame_depth, frame_cam)

    ((wall, cpu),) = timed(fuse_into_empty, repeats=3)
    print(
        f"unproject+fuse, {pixels:,} px into an empty world: {pixels / wall / 1e3:.2f} M points/s "
        f"wall ({pixels / cpu / 1e3:.2f} M/s CPU)"
    )
    world = World()
    world.add_frame(frame_image, frame_depth, frame_cam)
    moved = Cameras.create(
        look_at(torch.tensor([0.4, 0.0, 0.0]), torch.tensor([0.4, 0.0, 3.0])),
        width=512,
        height=512,
        fov_deg=60.0,
    )
    ((wall, cpu),) = timed(lambda: world.add_frame(frame_image, frame_depth, moved), repeats=3)
    print(
        f"render + unproject + fuse of a moved {pixels:,} px view into a {len(world):,}-point "
        f"world: {wall:.1f} ms wall ({cpu:.1f} ms CPU), {pixels / wall / 1e3:.2f} M px/s"
    )


if __name__ == "__main__":
    main()
