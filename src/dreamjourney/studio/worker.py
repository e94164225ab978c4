"""`python -m dreamjourney.studio.worker JOB.json`: run one studio job, writing its progress.

It calls the journey pipeline exactly as `dreamjourney journey --resume` does (or, for an
anyview job, `dreamjourney.studio.anyview.run`) and writes
`JOB.progress.json` (atomically) at every segment, model call and model step: state
("running", then "done", "failed" or "cancelled"), segments done of total, the running model
and its step, one line per finished segment. SIGTERM cancels: the pipeline unwinds and the
run directory keeps every finished segment, so starting the job again resumes it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_write_text
from dreamjourney.io.rundir import SegmentRecord
from dreamjourney.pipelines.journey import JourneyCallback, JourneyConfig, JourneyPipeline
from dreamjourney.studio.jobs import JobSpec

# model steps are written at most this often (seconds); every other event at once
STEP_INTERVAL = 0.25


class Cancelled(Exception):
    """SIGTERM arrived."""


# Set by SIGTERM. The handler raises `Cancelled` where the main thread happens to be, and a
# library that calls back into Python from C may swallow it ("Exception ignored in ..."):
# every progress hook raises it again, so the run stops at its next step at the latest.
_cancel_asked = False


class ProgressWriter(JourneyCallback):
    """The pipeline's progress hooks, written to a JSON file the studio's page polls."""

    def __init__(self, path: Path):
        self.path = path
        self.state: dict[str, Any] = {"state": "running", "pid": os.getpid(), "lines": []}
        self._last_step = 0.0

    def write(self, **fields: Any) -> None:
        self.state.update(fields, updated=time.time())
        atomic_write_text(self.path, json.dumps(self.state))

    def _hook(self, **fields: Any) -> None:
        """A progress event: written, unless a cancel was asked (then `Cancelled`)."""
        if _cancel_asked:
            raise Cancelled
        self.write(**fields)

    def run_start(self, total: int, done: int) -> None:
        self._hook(segments_total=total, segments_done=done)

    def segment_start(self, index: int) -> None:
        self._hook(segment=index, model=None, step=0, steps=0)

    def model_start(self, name: str) -> None:
        self._hook(model=name, step=0, steps=0)

    def model_step(self, step: int, total: int) -> None:
        if _cancel_asked:
            raise Cancelled
        now = time.monotonic()
        if now - self._last_step >= STEP_INTERVAL or step == total:
            self._last_step = now
            self._hook(step=step, steps=total)

    def segment_end(self, record: SegmentRecord) -> None:
        line = (
            f"segment {record.index}: {record.num_frames} frames "
            f"({record.stage1_frames} stage I + {record.stage2_frames} stage II) in "
            f"{record.seconds.get('total', 0):.1f} s, world {record.world_points:,} points"
        )
        self._hook(segments_done=record.index + 1, lines=[*self.state["lines"], line], model=None)

    def finishing(self, what: str) -> None:
        self._hook(model=f"writing {what}", step=0, steps=0)


def _cancel(signum: int, frame: Any) -> None:
    global _cancel_asked
    _cancel_asked = True
    raise Cancelled


def run_job(spec_path: Path) -> int:
    """Run the job in `spec_path`; the exit status (0 done, 2 bad input, 3 cancelled, 1 bug)."""
    spec = JobSpec.model_validate_json(spec_path.read_text())
    progress = ProgressWriter(spec_path.with_name(f"{spec.name}.progress.json"))
    signal.signal(signal.SIGTERM, _cancel)
    try:
        progress.write(message="loading the backends")
        if spec.kind == "anyview":
            from dreamjourney.studio import anyview

            anyview.run(Path(spec.image), Path(spec.out), spec.config, preset=spec.preset,
                        seed=spec.seed, device=spec.device, progress=progress)  # fmt: skip
            progress.write(state="done", model=None, message=None)
            return 0
        pipe = JourneyPipeline.from_preset(spec.preset, device=spec.device)
        pipe.backends.check_weights()
        progress.write(message=None)
        result = pipe(
            spec.image,
            spec.out,
            config=JourneyConfig(**spec.config),
            num_segments=spec.segments,
            seed=spec.seed,
            resume=True,
            device=spec.device,
            callback=progress,
        )
    except Cancelled:
        again = "starts it again" if spec.kind == "anyview" else "resumes it"
        progress.write(state="cancelled", model=None, message=f"cancelled; Run {again}")
        return 3
    except InputError as exc:
        progress.write(state="failed", model=None, message=str(exc))
        return 2
    except Exception as exc:  # a bug: the page gets one line, the log the traceback
        traceback.print_exc()
        progress.write(
            state="failed", model=None, message=f"{type(exc).__name__}: {exc} (see the job log)"
        )
        return 1
    progress.write(
        state="done",
        model=None,
        num_frames=result.num_frames,
        message="run already complete" if not result.segments_made else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_job(Path(sys.argv[1])))
