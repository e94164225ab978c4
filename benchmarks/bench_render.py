"""Rendering speed: 1M points into 512x512 and 720x480 with both rasterizer kernels (compiled
and torch), against a NumPy `np.minimum.at` z-buffer; and a world fused along a forward
journey, rendered after a further forward move.

Not a test. Run: `PYTHONPATH=src python benchmarks/bench_render.py [--threads N] [--before REV]`.
Prints the tables; the figures for this machine are in benchmarks/README.md. `--before REV`
also times `scene/raster.py` as it was at git revision REV on the journey views (same run,
taking turns) and checks that both render the same pixels.

Each timing is the median over REPEATS runs, the two renderers taking turns, of both wall time
and this process's CPU time (user + system). On a shared machine the wall time swings with the
load of other processes; the CPU time is the work done, and with one thread the steadier figure.
"""

from __future__ import annotations

import os

# NumPy's OpenBLAS threads spin for a while after each product; on 2 cores they would compete
# with the renderer timed next. The baseline's one product is 3x3 @ 3xP: a thread is plenty.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import importlib.util
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numba
import numpy as np
import torch
import torch.nn.functional as F

from dreamjourney.camera import Cameras, look_at
from dreamjourney.camera.trajectories import make_trajectory
from dreamjourney.io.images import load_image
from dreamjourney.scene import PointCloud, World, heuristic_depth, rasterize, unproject

REPO = Path(__file__).resolve().parents[1]

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


def raster_at(rev: str) -> ModuleType:
    """`dreamjourney.scene.raster` as it was at git revision `rev`, imported under another name."""
    code = subprocess.run(
        ["git", "show", f"{rev}:src/dreamjourney/scene/raster.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    name = f"raster_{rev}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(code, f"{rev}:raster.py", "exec"), module.__dict__)
    return module


def journey_world(segments: int = 2) -> tuple[World, Cameras]:
    """The example photo at 512x384 lifted with the heuristic depth, then `segments` forward
    segments (8 frames, half the scene scale each, as `dreamjourney journey` lays them out)
    in which frames 4 and 8 add their newly seen pixels (the photo again, its heuristic depth
    scaled to the rendered one) as the pipeline adds completed frames. Returns the world and
    the cameras of the next segment."""
    photo = load_image(REPO / "examples" / "garden.png")
    photo = F.interpolate(photo[None], size=(384, 512), mode="area")[0]
    camera = Cameras.create(torch.eye(4), width=512, height=384, fov_deg=60.0)
    world = World()
    world.add_frame(photo, heuristic_depth(photo, camera), camera, new_only=False)
    scale = world.median_depth(camera)

    def segment(start: Cameras) -> Cameras:
        return make_trajectory("forward", 9, scene_scale=scale, width=512, height=384, start=start)[
            1:
        ]

    for _ in range(segments):
        cams = segment(camera)
        for i in (3, 7):
            seen = world.render(cams[i])
            depth = heuristic_depth(photo, cams[i])
            known = seen.mask[0]
            depth *= seen.depth[0][known].median() / depth[known].median()
            world.add_frame(photo, depth, cams[i], new_only=True)
        camera = cams[-1]
    return world, segment(camera)


def bench_journey(before: ModuleType | None) -> None:
    world, cams = journey_world()
    cloud = world.cloud
    print(
        f"\nfused journey world ({len(cloud):,} points), 512x384, the next forward segment"
        + ("" if before is None else f" (before: raster.py at {before.__name__})")
    )
    print(
        "frame   in front   centre in image   rasterize wall / CPU ms   before wall / CPU ms   same"
    )
    for i in (0, 3, 7):
        view = cams[i]
        fns: list[Callable[[], object]] = [lambda: rasterize(cloud, view)]  # noqa: B023
        if before is not None:
            fns.append(lambda: before.rasterize(cloud, view))  # noqa: B023
        times = timed(*fns, repeats=3)
        uv, z = view.project(cloud.points)
        front = z[0] > 0
        inside = front & (uv[0] >= 0).all(-1) & (uv[0, :, 0] < 512) & (uv[0, :, 1] < 384)
        row = f"{i + 1:5d}   {front.sum().item():8,d}   {inside.sum().item():15,d}"
        row += f"   {times[0][0]:10.1f} / {times[0][1]:6.1f}"
        if before is not None:
            a, b = rasterize(cloud, view), before.rasterize(cloud, view)
            same = torch.equal(a.index, b.index) and torch.equal(a.image, b.image)
            row += f"         {times[1][0]:8.1f} / {times[1][1]:6.1f}     {same}"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--before", default=None, help="git revision whose raster.py to time on the journey views"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    before = None if args.before is None else raster_at(args.before)
    if before is not None:
        before.__name__ = args.before
    image, depth, cam = synthetic_frame(1000)
    cloud = unproject(image, depth, cam)
    start = time.perf_counter()
    rasterize(cloud, Cameras.create(torch.eye(4), width=8, height=8, fov_deg=60.0))
    first = time.perf_counter() - start
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"numba {numba.__version__}, numpy {np.__version__}; {len(cloud):,} points (a 1000x1000 "
        f"frame); first render (compile, or load numba's cache) {first:.1f} s"
    )
    print(
        "wall / CPU ms per frame; 'new cloud' includes making its columns; speed-up: wall, NumPy "
        "over compiled"
    )
    print(
        "view     size       compiled        new cloud       torch kernel    numpy           "
        "speed-up  same  holes"
    )
    pts, cols = np.ascontiguousarray(cloud.points.numpy().T), cloud.colors.numpy()
    fields = (cloud.points, cloud.colors, cloud.radii, cloud.times, cloud.axes)
    for name, (eye, target) in VIEWS.items():
        for width, height in [(512, 512), (720, 480)]:
            view = Cameras.create(
                look_at(torch.tensor(eye), torch.tensor(target)),
                width=width,
                height=height,
                fov_deg=60.0,
            )
            K, w2c = view.K[0].numpy(), view.w2c[0].numpy()

            times = timed(
                lambda: rasterize(cloud, view),  # noqa: B023
                # a new cloud object: its columns are made in the call
                lambda: rasterize(PointCloud(*fields), view),  # noqa: B023
                lambda: rasterize(cloud, view, kernel="torch"),  # noqa: B023
                lambda: numpy_zbuffer(pts, cols, K, w2c, width, height),  # noqa: B023
            )
            ours, theirs = rasterize(cloud, view), rasterize(cloud, view, kernel="torch")
            same = torch.equal(ours.index, theirs.index)
            holes = 1 - ours.mask.float().mean().item()
            row = f"{name:8s} {width:4d}x{height:<4d}"
            for wall, cpu in times:
                row += f"  {wall:5.1f} / {cpu:5.1f}"
            print(f"{row}   {times[3][0] / times[0][0]:5.1f}x  {same!s:5s} {100 * holes:5.2f}%")

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
    bench_journey(before)


if __name__ == "__main__":
    main()
