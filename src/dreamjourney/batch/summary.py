"""`batch.json`: what happened to every job of a batch, rewritten atomically after each job."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from dreamjourney.batch.jobs import SUMMARY_NAME, Job
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_write_text

SUMMARY_FORMAT = "dreamjourney.batch/1"


class JobRecord(BaseModel):
    """One job's state. `status` is "done" only once its command finished without an error."""

    id: str
    command: str
    input: str
    key: str = Field(description="digest of the job's command line and inputs (Job.key)")
    status: Literal["pending", "done", "failed"] = "pending"
    attempts: int = Field(default=0, description="runs started by the last batch that ran it")
    seconds: float | None = Field(default=None, description="wall time of those runs")
    frames: int | None = Field(default=None, description="frames of its video.mp4")
    error: str | None = Field(default=None, description="the last run's one-line error")
    worker: str | None = Field(default=None, description="host:pid of the last run's worker")


class BatchSummary(BaseModel):
    """The content of `batch.json`."""

    format: Literal["dreamjourney.batch/1"] = "dreamjourney.batch/1"
    jobs_source: str
    preset: str
    config: str | None = None
    updated: str = ""
    counts: dict[str, int] = Field(default_factory=dict)
    jobs: list[JobRecord] = Field(default_factory=list)
    _by_id: dict[str, JobRecord] = PrivateAttr(default_factory=dict)

    @classmethod
    def open(
        cls, out_dir: Path, jobs: list[Job], *, source: str, preset: str, config: str | None
    ) -> BatchSummary:
        """The summary of `jobs` in `out_dir`: records of an earlier run of the same job (same
        id and key) are kept, every other job starts pending."""
        path = out_dir / SUMMARY_NAME
        old: dict[str, JobRecord] = {}
        if path.is_file():
            old = {r.id: r for r in cls._read(path).jobs}
        records = []
        for job in jobs:
            key = job.key(preset=preset, config=config)
            record = old.get(job.id)
            if record is None or record.key != key:
                record = JobRecord(id=job.id, command=job.command, input=job.input, key=key)
            records.append(record)
        summary = cls(jobs_source=source, preset=preset, config=config, jobs=records)
        summary.tally()
        return summary

    @staticmethod
    def _read(path: Path) -> BatchSummary:
        try:
            return BatchSummary.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, ValidationError) as exc:
            first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else exc
            raise InputError(
                f"not a {SUMMARY_FORMAT} summary ({first}); move it away to start afresh",
                source=path,
            ) from None

    def model_post_init(self, context: Any) -> None:
        self._by_id = {r.id: r for r in self.jobs}

    def record(self, job_id: str) -> JobRecord:
        """The record of job `job_id`."""
        return self._by_id[job_id]

    def tally(self) -> None:
        """Count the jobs done, failed and pending into `counts`."""
        self.counts = {s: sum(r.status == s for r in self.jobs) for s in ("done", "failed")}
        self.counts["pending"] = len(self.jobs) - self.counts["done"] - self.counts["failed"]

    def save(self, out_dir: Path) -> None:
        """Write `out_dir/batch.json` atomically."""
        self.tally()
        self.updated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        atomic_write_text(out_dir / SUMMARY_NAME, self.model_dump_json(indent=1))
