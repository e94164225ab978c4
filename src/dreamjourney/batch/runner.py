"""Run a batch of jobs on Ray: one long-lived worker per GPU (or CPU slot), jobs handed out one
at a time to whichever worker is free.

* Ray is local by default (a private instance started here and stopped at the end), a cluster
  with `address`; from Python, a Ray that is already initialised is used as it is.
* A job that fails is run again up to `retries` times, unless its error is in what the user
  gave (a corrupt photo fails the same way every time); then it is recorded as failed with
  its one-line error, and the other jobs go on.
* A worker that dies mid-job (killed, out of memory, its node lost) is restarted by Ray; its
  job goes back in the queue and the next worker resumes it from its run directory (journey
  runs are resumable segment by segment and make the same frames; anyview jobs start again).
* `batch.json` in the output folder is rewritten after every job. A rerun skips the jobs it
  records as done (same command line and inputs, outputs present) and starts no Ray at all
  when nothing is left.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dreamjourney.batch.jobs import Job
from dreamjourney.batch.summary import BatchSummary, JobRecord
from dreamjourney.batch.worker import JobOutcome, JobWorker
from dreamjourney.errors import InputError

# Jobs and outcomes are a few hundred bytes: the object store only needs its minimum.
LOCAL_OBJECT_STORE_BYTES = 100 * 2**20


class BatchCallback:
    """Progress hooks; every hook does nothing here (the CLI subclasses this to draw a bar)."""

    def start(self, total: int, skipped: int) -> None:
        """`total` jobs in the batch, `skipped` of them already done."""

    def workers(self, count: int, device: str) -> None:
        """`count` workers are being started on `device`."""

    def job_retry(self, job: Job, error: str, attempt: int) -> None:
        """Run `attempt` of `job` failed with `error`; it is queued again."""

    def job_end(self, record: JobRecord) -> None:
        """A job is done or has failed for good."""


def run_batch(
    jobs: list[Job],
    out_dir: str | Path,
    *,
    source: str = "",
    preset: str = "offline",
    config: str | Path | None = None,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    retries: int = 2,
    callback: BatchCallback | None = None,
) -> BatchSummary:
    """Run `jobs` into `out_dir/<job id>/` and return the summary written to `out_dir/batch.json`.

    Args:
        jobs: from `load_jobs`.
        out_dir: the batch's folder (created); each job's run directory is `out_dir/<id>`.
        source: what the jobs came from (recorded in the summary).
        preset, config: the backends of every job (`--preset`, `--config` of the commands).
        address: a Ray cluster's address (`auto`, `HOST:PORT`, `ray://HOST:10001`); None
            starts a local Ray.
        workers: how many workers (default: one per `gpus_per_worker` GPUs of the cluster,
            or 1 without GPUs).
        gpus_per_worker: GPUs each worker reserves, at most 1 (a fraction shares a GPU between
            workers); default 1 when the cluster has GPUs, else 0 (the jobs run on the CPU).
        retries: runs of a failed job after the first (worker deaths count too).
        callback: progress hooks.
    """
    callback = callback or BatchCallback()
    out_dir = Path(out_dir)
    _check_options(workers, gpus_per_worker, retries)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("is a file, not a directory; choose another --out", source=out_dir)
    config_path = str(Path(config).resolve()) if config is not None else None
    summary = BatchSummary.open(out_dir, jobs, source=source, preset=preset, config=config_path)
    todo = [job for job in jobs if not _finished(summary.record(job.id), out_dir / job.id)]
    if not todo:
        callback.start(len(jobs), len(jobs))
        return summary
    ray = _import_ray()  # before the progress starts: without Ray, no bar
    callback.start(len(jobs), len(jobs) - len(todo))
    out_dir.mkdir(parents=True, exist_ok=True)
    summary.save(out_dir)
    with _ray_session(ray, address, workers):
        gpus = _gpus_per_worker(ray, gpus_per_worker)
        count = min(len(todo), workers or _default_workers(ray, gpus))
        device = "cuda" if gpus > 0 else "cpu"
        callback.workers(count, device)
        actor = ray.remote(JobWorker).options(
            num_cpus=1, num_gpus=gpus, max_restarts=-1, max_task_retries=0
        )
        pool = [actor.remote() for _ in range(count)]
        _schedule(ray, pool, todo, out_dir, summary, preset, config_path, device, retries, callback)
    return summary


def _schedule(
    ray: Any,
    pool: list[Any],
    todo: list[Job],
    out_dir: Path,
    summary: BatchSummary,
    preset: str,
    config: str | None,
    device: str,
    retries: int,
    callback: BatchCallback,
) -> None:
    """Hand the queued jobs to free workers until every job is done or failed for good.

    In flight are job runs and pings: a worker whose process died is pinged, and takes jobs
    again once the ping returns from its restarted process (never while Ray restarts it)."""
    from ray.exceptions import RayError

    queue = deque(todo)
    free = deque(range(len(pool)))
    flight: dict[Any, tuple[int, Job | None, float]] = {}
    for job in todo:
        summary.record(job.id).attempts = 0
        summary.record(job.id).seconds = 0.0
    while queue or any(running is not None for _, running, _ in flight.values()):
        while queue and free:
            w, job = free.popleft(), queue.popleft()
            argv = job.argv(out_dir / job.id, preset=preset, config=config, device=device)
            flight[pool[w].run.remote(argv, str(out_dir / job.id))] = (w, job, time.perf_counter())
        if not flight:  # every worker is lost for good
            for job in queue:
                _end(summary.record(job.id), JobOutcome(False, error="no worker left to run it"))
                callback.job_end(summary.record(job.id))
            summary.save(out_dir)
            return
        [ref], _ = ray.wait(list(flight), num_returns=1)
        w, running, started = flight.pop(ref)
        try:
            outcome = ray.get(ref)
        except RayError as exc:
            if running is None:
                continue  # a ping: the worker cannot be restarted and takes no more jobs
            outcome = JobOutcome(False, error=f"worker lost: {_first_line(exc)}", retry=True)
            # answered by the restarted process (retried while Ray restarts it)
            flight[pool[w].ping.options(max_task_retries=-1).remote()] = (w, None, 0.0)
        else:
            free.append(w)
            if running is None:
                continue
        record = summary.record(running.id)
        record.attempts += 1
        record.seconds = round((record.seconds or 0.0) + time.perf_counter() - started, 3)
        if not outcome.ok and outcome.retry and record.attempts <= retries:
            callback.job_retry(running, outcome.error or "", record.attempts)
            queue.append(running)
            continue
        _end(record, outcome)
        summary.save(out_dir)
        callback.job_end(record)


def _end(record: JobRecord, outcome: JobOutcome) -> None:
    record.status = "done" if outcome.ok else "failed"
    record.frames = outcome.frames
    record.error = outcome.error
    record.worker = outcome.worker or record.worker


def _finished(record: JobRecord, run_dir: Path) -> bool:
    return record.status == "done" and (run_dir / "video.mp4").is_file()


def _check_options(workers: int | None, gpus_per_worker: float | None, retries: int) -> None:
    if workers is not None and workers < 1:
        raise InputError("must be at least 1", field="--workers")
    if gpus_per_worker is not None and not 0 <= gpus_per_worker <= 1:
        raise InputError(
            "must be between 0 and 1: a worker runs its models on one GPU "
            "(a fraction lets workers share one)",
            field="--gpus-per-worker",
        )
    if retries < 0:
        raise InputError("must not be negative", field="--retries")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            "needs Ray: pip install 'dreamjourney[cluster]'", field="dreamjourney batch"
        ) from None
    return ray


@contextmanager
def _ray_session(ray: Any, address: str | None, workers: int | None) -> Iterator[None]:
    """Ray as it is when already initialised, else a cluster at `address` or a new local Ray
    (stopped on exit)."""
    if ray.is_initialized():
        yield
        return
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        options |= {
            "num_cpus": max(os.cpu_count() or 1, workers or 1),
            "include_dashboard": False,
            "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
        }
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"cannot connect to Ray at {address}" if address else "cannot start Ray"
        raise InputError(f"{where} ({_first_line(exc)})", field="--address") from None
    try:
        yield
    finally:
        ray.shutdown()


def _gpus_per_worker(ray: Any, requested: float | None) -> float:
    available = float(ray.cluster_resources().get("GPU", 0))
    if requested is None:
        return 1.0 if available else 0.0
    if requested > 0 and not available:
        raise InputError(
            "the Ray cluster has no GPUs; use --gpus-per-worker 0 to run on CPUs",
            field="--gpus-per-worker",
        )
    return requested


def _default_workers(ray: Any, gpus: float) -> int:
    if gpus <= 0:
        return 1
    return max(1, int(float(ray.cluster_resources().get("GPU", 0)) / gpus + 1e-9))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(text[0].split()) if text else type(exc).__name__
