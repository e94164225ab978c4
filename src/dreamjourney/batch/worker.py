"""A batch worker: a long-lived process that runs job after job with its models kept loaded.

Each job is its command line run in-process through the `dreamjourney` commands a job may
name (`jobs.COMMANDS`), registered as the `dreamjourney` app registers them, exactly as the
single command would run it, so a job's run directory holds the same files. (Not the whole
app: its `batch` command starts workers, which would close an import cycle.) The worker keeps
the backends it builds (`registry.keep_backends`), so the weights of the first job stay
loaded for the rest.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JobOutcome:
    """What one run of a job gave.

    ok: the command finished. frames: frames of its video.mp4 (one camera each in cameras.json).
    error: the one-line error otherwise; retry: whether running it again may help (False for
    errors in what the user gave, which would fail the same way).
    worker: host:pid of the process that ran it.
    """

    ok: bool
    frames: int | None = None
    error: str | None = None
    retry: bool = False
    worker: str = ""


class JobWorker:
    """Runs jobs' command lines one at a time (a Ray actor in `dreamjourney.batch.runner`)."""

    def __init__(self) -> None:
        from dreamjourney.models.registry import keep_backends

        keep_backends()
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def ping(self) -> str:
        """host:pid of this worker (answers once the process is up)."""
        return self.name

    def run(self, argv: list[str], out_dir: str) -> JobOutcome:
        """Run `dreamjourney *argv`; `out_dir` is the run directory it writes."""
        import typer

        from dreamjourney.camera.formats import load_cameras
        from dreamjourney.errors import InputError

        try:
            code = _job_commands()(argv, standalone_mode=False, prog_name="dreamjourney")
        except InputError as exc:
            return JobOutcome(False, error=str(exc), worker=self.name)
        except typer.TyperException as exc:  # usage: an unknown option, a bad value
            error = _line(f"{argv[0]}: {exc.format_message()}")
            return JobOutcome(False, error=error, worker=self.name)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)  # into the worker's log
            error = _line(f"{type(exc).__name__}: {exc}")
            return JobOutcome(False, error=error, retry=True, worker=self.name)
        if code:
            error = f"{argv[0]} exited with status {code}"
            return JobOutcome(False, error=error, retry=True, worker=self.name)
        frames = len(load_cameras(Path(out_dir) / "cameras.json"))
        return JobOutcome(True, frames=frames, worker=self.name)


def _job_commands() -> Any:
    """A Typer app of the commands a job runs, `journey` and `anyview`."""
    import typer

    from dreamjourney.cli.anyview import anyview
    from dreamjourney.cli.journey import journey

    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command("journey")(journey)
    app.command("anyview")(anyview)
    return app


def _line(text: str) -> str:
    return " ".join(text.split())
