"""CPU thread settings against a loaded machine: seconds per journey segment (`make run`'s job).

Torch's intra-op pool and numba's parallel loops (the CPU rasterizer) share one OpenMP runtime
(libgomp). Its threads spin at every barrier, and on a machine whose cores are busy with other
work a descheduled team member stalls the whole team. Each setting runs `make run`'s journey
(`examples/garden.png`, offline preset, pan-left, 384x288, 16 frames a segment) in a fresh
process while `--load` busy processes compete for the CPUs, settings taking turns, and reports
the median seconds per segment (segments after the first; the first includes numba's loading).
The machine's own load (other users) adds to `--load`; the load average is printed.

    PYTHONPATH=src python benchmarks/bench_threads.py [--load 2] [--rounds 3] [--segments 3]

Settings: `torch default` (no variable set: torch and numba use every core, OpenMP spins),
`OMP_NUM_THREADS=1` (the issue's workaround), `OMP_WAIT_POLICY=PASSIVE` (threads sleep at
barriers), and `dreamjourney` (what the CLI sets up: `dreamjourney.threads.configure_threads`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {
    "torch default": {},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "dreamjourney": {"BENCH_CONFIGURE": "1"},
}
CLEARED = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def run_child(segments: int) -> None:
    """Child process: one journey; prints one JSON line."""
    if os.environ.get("BENCH_CONFIGURE"):
        from dreamjourney.threads import configure_threads

        configure_threads()
    import torch

    from dreamjourney.pipelines.journey import JourneyConfig, JourneyPipeline

    image = Path(__file__).resolve().parents[1] / "examples" / "garden.png"
    config = JourneyConfig(
        trajectory="pan-left", frames_per_segment=16, motion=False, width=384, height=288
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = JourneyPipeline.from_preset("offline")(
            image, Path(tmp) / "run", config=config, num_segments=segments
        )
        seconds = [r.seconds["total"] for r in result.run.manifest.segments]
    print(json.dumps({"seconds": seconds, "torch_threads": torch.get_num_threads()}))


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=int, default=2, help="busy processes running meanwhile")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each setting")
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.segments)
        return
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    load = [busy() for _ in range(args.load)]
    per_segment: dict[str, list[float]] = {name: [] for name in SETTINGS}
    threads: dict[str, int] = {}
    try:
        names = list(SETTINGS)
        for round_ in range(args.rounds):  # settings take turns, each round starting elsewhere
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                extra = SETTINGS[name]
                cmd = [sys.executable, __file__, "--child", "--segments", str(args.segments)]
                proc = subprocess.run(
                    cmd, env={**base, **extra}, capture_output=True, text=True, check=True
                )
                line = json.loads(proc.stdout.strip().splitlines()[-1])
                per_segment[name] += line["seconds"][1:]
                threads[name] = line["torch_threads"]
    finally:
        for p in load:
            p.kill()
    print(
        f"{os.cpu_count()} CPUs, {args.load} busy processes, load average "
        f"{os.getloadavg()[0]:.1f} at the end, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print(
        f"{'setting':>26}  {'torch threads':>13}  {'s/segment median':>16}  {'min':>6}  {'max':>6}"
    )
    for name, values in per_segment.items():
        print(
            f"{name:>26}  {threads[name]:>13}  {statistics.median(values):>16.2f}  "
            f"{min(values):>6.2f}  {max(values):>6.2f}"
        )


if __name__ == "__main__":
    main()
