"""Jobs per minute of `dreamjourney batch` with 1 and 2 workers, against a shell loop.

Makes `--jobs` synthetic photos and runs the same journey job on each (offline preset) three
ways, each into a fresh folder:

* `shell loop`: one `dreamjourney journey` process per photo, one after the other (what a
  user without `batch` runs); every process imports torch and loads the compiled rasterizer;
* `batch, N workers`: `run_batch` on a local Ray started by this script (its start is timed
  apart), N long-lived workers that import once and take job after job.

Run from the repository root: `PYTHONPATH=src python benchmarks/bench_batch.py`.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from dreamjourney.batch import load_jobs, run_batch


def make_photos(folder: Path, count: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        a = np.zeros((height, width, 3), np.uint8)
        a[:] = [70, 150, 50]
        a[: height // 2] = [120, 170, 230]
        x = int(rng.integers(0, width // 2))
        a[height // 3 : height // 2 + 8, x : x + width // 5] = [200, 50, 40]
        a += rng.integers(0, 12, a.shape, dtype=np.uint8)
        Image.fromarray(a).save(folder / f"photo{i:03d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--size", default="128x96")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--segments", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import ray

    options = {
        "trajectory": "pan-right",
        "frames": args.frames,
        "segments": args.segments,
        "size": args.size,
    }
    root = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    photos = root / "photos"
    width, height = (int(v) for v in args.size.split("x"))
    make_photos(photos, args.jobs, width, height)
    jobs = load_jobs(photos, options=options)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; ray {ray.__version__}; {args.jobs} journey jobs "
        f"({args.size}, {args.segments} segments of {args.frames} frames, offline preset)"
    )
    rows = []

    t0 = time.perf_counter()
    each = []
    for job in jobs:
        argv = job.argv(root / "loop" / job.id, preset="offline", config=None, device="cpu")
        t1 = time.perf_counter()
        command = [sys.executable, "-m", "dreamjourney", *argv]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        each.append(time.perf_counter() - t1)
    rows.append(("shell loop (a process per job)", None, time.perf_counter() - t0, each))

    for workers in args.workers:
        t0 = time.perf_counter()
        ray.init(
            num_cpus=max(2, workers),
            include_dashboard=False,
            object_store_memory=100 * 2**20,
            log_to_driver=False,
            logging_level="ERROR",
        )
        start = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = run_batch(jobs, root / f"batch{workers}", workers=workers)
        seconds = time.perf_counter() - t0
        ray.shutdown()
        assert summary.counts["done"] == len(jobs), summary.counts
        for job in jobs:  # the same frames as the single command's
            a = (root / "loop" / job.id / "video.mp4").read_bytes()
            assert (root / f"batch{workers}" / job.id / "video.mp4").read_bytes() == a, job.id
        each = [r.seconds or 0.0 for r in summary.jobs]
        rows.append((f"batch, {workers} worker(s)", start, seconds, each))

    print(f"{'':32s} {'Ray start (s)':>13s} {'jobs (s)':>9s} {'jobs/min':>9s} {'s/job':>14s}")
    for name, start, seconds, each in rows:
        started = f"{start:13.1f}" if start is not None else f"{'':13s}"
        spread = f"{min(each):.1f}/{np.median(each):.1f}/{max(each):.1f}"
        print(f"{name:32s} {started} {seconds:9.1f} {60 * len(jobs) / seconds:9.1f} {spread:>14s}")
    print("s/job: min/median/max wall time of one job (a worker's first job includes its start)")


if __name__ == "__main__":
    main()
