"""Journey with the `offline` preset: time per segment and per frame, share of time outside
model calls, and peak RAM after 5, 20 and 50 segments.

The memory claim (the world's point budget keeps RAM flat) is checked against a baseline in the
same run: the same journey with an effectively unbounded budget. Each variant runs in its own
process so that its peak RSS is its own.

    PYTHONPATH=src python benchmarks/bench_journey.py [--segments 50] [--size 192x144]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKPOINTS = (5, 20, 50)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(args: argparse.Namespace) -> None:
    """Child process: one journey; prints one JSON line with its measurements."""
    from dreamjourney.pipelines.journey import JourneyConfig, JourneyPipeline

    width, height = (int(v) for v in args.size.split("x"))
    image = Path(__file__).resolve().parents[1] / "examples" / "garden.png"
    config = JourneyConfig(
        trajectory=args.trajectory,
        frames_per_segment=args.frames,
        motion_frames=args.motion_frames,
        width=width,
        height=height,
        max_points=args.max_points,
    )
    checkpoints = {n: None for n in CHECKPOINTS if n <= args.segments}

    class Meter:
        def run_start(self, total: int, done: int) -> None: ...
        def segment_start(self, index: int) -> None: ...
        def model_start(self, name: str) -> None: ...
        def model_step(self, step: int, total: int) -> None: ...
        def finishing(self, what: str) -> None: ...

        def segment_end(self, record) -> None:
            if record.index + 1 in checkpoints:
                checkpoints[record.index + 1] = round(peak_rss_mib(), 1)

    pipe = JourneyPipeline.from_preset("offline")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = pipe(
            image, Path(tmp) / "run", config=config, num_segments=args.segments, callback=Meter()
        )
        wall = time.perf_counter() - t0
        records = result.run.manifest.segments
    seg_seconds = [r.seconds["total"] for r in records]
    model_seconds = sum(r.seconds["models"] for r in records)
    print(
        json.dumps(
            {
                "max_points": args.max_points,
                "wall_s": wall,
                "segment_s": sum(seg_seconds) / len(seg_seconds),
                "frame_s": sum(seg_seconds) / result.num_frames,
                "outside_models": 1 - model_seconds / sum(seg_seconds),
                "world_points": records[-1].world_points,
                "frames": result.num_frames,
                "peak_rss_mib": checkpoints,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--size", default="128x96")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--motion-frames", type=int, default=4)
    parser.add_argument("--trajectory", default="pan-right")
    parser.add_argument("--max-points", type=int, default=40_000, help="the bounded budget")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_variant(args)
        return
    rows = []
    for budget in (args.max_points, 10**9):
        command = [
            sys.executable, __file__, "--child", "--segments", str(args.segments), "--size",
            args.size, "--frames", str(args.frames), "--motion-frames", str(args.motion_frames),
            "--trajectory", args.trajectory, "--max-points", str(budget),
        ]  # fmt: skip
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"journey, offline preset, {args.size}, {args.segments} segments, "
        f"{rows[0]['frames']} output frames, trajectory {args.trajectory!r}"
    )
    header = f"{'world budget':>14} {'s/segment':>10} {'s/frame':>8} {'outside models':>15} {'points':>9}"
    header += "".join(f" {'RSS@' + str(n):>9}" for n in CHECKPOINTS if n <= args.segments)
    print(header + "   (peak RSS, MiB)")
    for row in rows:
        budget = "unbounded" if row["max_points"] >= 10**9 else f"{row['max_points']:,}"
        line = (
            f"{budget:>14} {row['segment_s']:>10.2f} {row['frame_s']:>8.3f} "
            f"{row['outside_models']:>14.0%} {row['world_points']:>9,}"
        )
        line += "".join(f" {v:>9.0f}" for v in row["peak_rss_mib"].values())
        print(line)


if __name__ == "__main__":
    main()
