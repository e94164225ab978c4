"""Speed of the synthetic scene generator (`dreamjourney.data.synth_scene`).

Measures a 256x256, 4-camera, 24-frame scene, and, as the baseline in the same run, the same
ray caster fed one camera at a time instead of all cameras of a time step in one batch.

    PYTHONPATH=src python benchmarks/synth_speed.py [--frames 24] [--size 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from dreamjourney.data import synth_scene
from dreamjourney.data.synth import _Renderer, make_cameras


def per_camera(seed: int, cameras: int, frames: int, size: int) -> None:
    """The baseline: one render call per camera and time step."""
    rng = np.random.default_rng(seed)
    renderer = _Renderer(rng)
    times = torch.arange(frames, dtype=torch.float32) / 24.0
    for cams in make_cameras(rng, cameras, times, size, size, 60.0).values():
        origins, dirs = cams.rays()
        for k in range(frames):
            renderer.render(origins[k].reshape(-1, 3), dirs[k].reshape(-1, 3), float(times[k]))


def measure(fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds (CPU time is what a busy machine can't inflate)."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rays = args.cameras * args.frames * args.size**2
    batched = measure(
        lambda: synth_scene(
            0, cameras=args.cameras, frames=args.frames, width=args.size, height=args.size
        ),
        args.repeat,
    )
    baseline = measure(lambda: per_camera(0, args.cameras, args.frames, args.size), args.repeat)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {rays / 1e6:.1f} M rays")
    print(f"median of {args.repeat}:                              wall s   CPU s")
    print(f"synth_scene (cameras batched per time step): {batched[0]:7.2f} {batched[1]:7.2f}")
    print(f"baseline (one camera per render call):       {baseline[0]:7.2f} {baseline[1]:7.2f}")


if __name__ == "__main__":
    main()
