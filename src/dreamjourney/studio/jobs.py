"""Runs started from the studio: one worker process per run, its progress in a file.

A job is `jobs/NAME.json` (the spec), `jobs/NAME.progress.json` (written by the worker,
`dreamjourney.studio.worker`, atomically at every step) and `jobs/NAME.log` (its output). The
run itself is an ordinary run directory, so a job that was cancelled, killed or lost with the
server resumes from its last finished segment when started again (the pipeline's `--resume`).
Cancel sends SIGTERM: the worker unwinds (no half-written file is kept) and says "cancelled".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_write_text

# seconds a cancelled worker has to unwind before it is killed
CANCEL_GRACE = 20.0


class JobSpec(BaseModel):
    """What a worker runs: `JourneyPipeline.from_preset(preset)(image, out, config=...)`, or
    for `kind` "anyview" `dreamjourney.studio.anyview.run(image, out, config, ...)` (`image`
    is then the video)."""

    name: str
    kind: Literal["journey", "anyview"] = "journey"
    image: str
    out: str
    preset: str
    config: dict[str, Any]
    segments: int
    seed: int
    device: str = "cpu"


class Jobs:
    """The jobs in `folder`: start, status, cancel. Workers outlive a page (and the server)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def spec_path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def progress_path(self, name: str) -> Path:
        return self.folder / f"{name}.progress.json"

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def names(self) -> list[str]:
        """Jobs on disk, the most recently updated first."""
        if not self.folder.is_dir():
            return []
        # a hidden name is a file being written atomically (`.NAME.progress.<random>.tmp.json`)
        specs = [
            p
            for p in self.folder.glob("*.json")
            if not p.name.endswith(".progress.json") and not p.name.startswith(".")
        ]

        def updated(spec: Path) -> float:
            progress = spec.with_name(f"{spec.stem}.progress.json")
            return (progress if progress.exists() else spec).stat().st_mtime

        return [p.stem for p in sorted(specs, key=updated, reverse=True)]

    def spec(self, name: str) -> JobSpec:
        path = self.spec_path(name)
        if not path.is_file() or "/" in name or name.startswith("."):
            raise InputError("no such run", source=name)
        return JobSpec.model_validate_json(path.read_text())

    def start(self, spec: JobSpec) -> None:
        """Start a worker for `spec` unless one is running for it already."""
        with self._lock:
            if self._alive(spec.name):
                return
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.spec_path(spec.name), spec.model_dump_json(indent=1))
            atomic_write_text(
                self.progress_path(spec.name),
                json.dumps({"state": "starting", "lines": [], "message": "starting the worker"}),
            )
            with open(self.log_path(spec.name), "ab") as log:
                self._procs[spec.name] = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dreamjourney.studio.worker",
                        str(self.spec_path(spec.name)),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def status(self, name: str) -> dict[str, Any]:
        """The worker's last progress, with `state` "stopped" for a worker that died without
        saying how (killed, or lost with the server): resumable like "cancelled"."""
        spec = self.spec(name)
        try:
            progress = json.loads(self.progress_path(name).read_text())
        except (OSError, ValueError):
            progress = {"state": "stopped", "lines": []}
        alive = self._alive(name, progress.get("pid"))
        if progress.get("state") in ("starting", "running") and not alive:
            progress["state"] = "stopped"
        return {**progress, "name": name, "alive": alive, "out": spec.out}

    def cancel(self, name: str) -> dict[str, Any]:
        """Ask the worker of `name` to stop (SIGTERM; killed after `CANCEL_GRACE` seconds)."""
        self.spec(name)
        with self._lock:
            proc = self._procs.get(name)
            pid = proc.pid if proc is not None else self._pid(name)
            if pid is not None and self._alive(name, pid):
                _signal_group(pid, signal.SIGTERM)
                timer = threading.Timer(
                    CANCEL_GRACE,
                    lambda: self._alive(name, pid) and _signal_group(pid, signal.SIGKILL),
                )
                timer.daemon = True
                timer.start()
        return self.status(name)

    def wait(self, name: str, timeout: float | None = None) -> int | None:
        """Wait for the worker this server started for `name`; its exit status."""
        proc = self._procs.get(name)
        return None if proc is None else proc.wait(timeout)

    def _pid(self, name: str) -> int | None:
        try:
            pid = json.loads(self.progress_path(name).read_text()).get("pid")
        except (OSError, ValueError):
            return None
        return pid if isinstance(pid, int) else None

    def _alive(self, name: str, pid: int | None = None) -> bool:
        proc = self._procs.get(name)
        if proc is not None:
            return proc.poll() is None
        if pid is None:
            return False
        # a worker started by an earlier server: its pid, if that process still runs it
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"dreamjourney.studio.worker" in cmdline and name.encode() in cmdline


def _signal_group(pid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
