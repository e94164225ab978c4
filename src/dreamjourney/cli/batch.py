"""`dreamjourney batch`: many journey / anyview jobs on Ray, each in its own run directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from dreamjourney.cli.console import console, err_console, task_bars
from dreamjourney.cli.options import parse_key_values

if TYPE_CHECKING:  # the batch package imports torch: `--help` must not
    from rich.progress import Progress

    from dreamjourney.batch.jobs import Job
    from dreamjourney.batch.runner import BatchCallback
    from dreamjourney.batch.summary import JobRecord


def _rich_callback(progress: Progress) -> BatchCallback:
    """A bar over jobs and a line per finished, failed or retried job."""
    from dreamjourney.batch.runner import BatchCallback

    class RichCallback(BatchCallback):
        def __init__(self) -> None:
            self.progress = progress
            self.task = progress.add_task("jobs", total=None)

        def start(self, total: int, skipped: int) -> None:
            if skipped:
                self.progress.console.print(f"{skipped} of {total} jobs already done")
            self.progress.update(self.task, total=total, completed=skipped)

        def workers(self, count: int, device: str) -> None:
            # the bar starts once Ray and the options are good: an error before is its one line
            self.progress.console.print(f"starting {count} worker(s) on {device}")
            self.progress.start()

        def job_retry(self, job: Job, error: str, attempt: int) -> None:
            self.progress.console.print(
                f"[yellow]{escape(job.id)}[/]: run {attempt} failed ({escape(error)}); again",
                highlight=False,
            )

        def job_end(self, record: JobRecord) -> None:
            self.progress.advance(self.task)
            if record.status == "done":
                line = f"{escape(record.id)}: {record.frames} frames in {record.seconds:.1f} s"
            else:
                line = f"[bold red]{escape(record.id)} failed:[/] {escape(record.error or '')}"
            self.progress.console.print(line, highlight=False, soft_wrap=True)

    return RichCallback()


def batch(
    jobs: Path = typer.Argument(
        ..., help="A folder of photos (journey) and videos (anyview), or a JSONL file of jobs."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Batch folder: one run directory per job, and batch.json."
    ),
    preset: str = typer.Option("offline", "--preset", help="Backends of every job."),
    config: Path | None = typer.Option(None, "--config", help="Backend config file (overrides)."),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster address (auto, HOST:PORT); default: a local Ray."
    ),
    gpus_per_worker: float | None = typer.Option(
        None,
        "--gpus-per-worker",
        help="GPUs per worker, at most 1 (default: 1 with GPUs, else 0 = CPU).",
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Workers (default: one per GPU, or 1 without GPUs)."
    ),
    retries: int = typer.Option(2, "--retries", help="Runs of a failed job after the first."),
    trajectory: str | None = typer.Option(
        None, "--trajectory", "-t", help="Trajectory of jobs that give none."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of jobs that give none."),
    sets: list[str] = typer.Option(
        [],
        "--set",
        help="[COMMAND.]KEY=VALUE: an option of every job (of COMMAND's), e.g. journey.segments=4.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Run many journey / anyview jobs on Ray (local, or a cluster with --address)."""
    from dreamjourney.batch.jobs import load_jobs, resolve_path
    from dreamjourney.batch.runner import run_batch

    options, command_options = _options(sets)
    if trajectory is not None:
        options["trajectory"] = resolve_path(Path.cwd(), trajectory)
    if seed is not None:
        options["seed"] = seed
    job_list = load_jobs(jobs, options=options, command_options=command_options)
    progress = task_bars(quiet)
    try:
        summary = run_batch(
            job_list,
            out,
            source=str(jobs),
            preset=preset,
            config=config,
            address=address,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
            retries=retries,
            callback=None if quiet else _rich_callback(progress),
        )
    finally:
        if progress.live.is_started:  # stopping a bar never started prints a blank line
            progress.stop()
    done, failed = summary.counts["done"], summary.counts["failed"]
    summary_path = out / "batch.json"  # one line, never wrapped: scripts read the path
    console.print(
        f"{done} of {len(job_list)} jobs done: {summary_path}", highlight=False, soft_wrap=True
    )
    if failed:
        err_console.print(f"[bold red]{failed} job(s) failed[/] (errors in batch.json)")
        raise typer.Exit(1)


def _options(pairs: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """`--set` pairs -> (options of every job, {command: options of its jobs}); relative paths
    are made absolute here, where they are relative to the current folder."""
    from dreamjourney.batch.jobs import COMMANDS, resolve_path

    everyone: dict[str, Any] = {}
    per_command: dict[str, dict[str, Any]] = {c: {} for c in COMMANDS}
    for pair in pairs:
        prefix, dot, rest = pair.partition(".")
        target, text = (
            (per_command[prefix], rest) if dot and prefix in COMMANDS else (everyone, pair)
        )
        for key, value in parse_key_values([text], option="--set").items():
            target[key] = resolve_path(Path.cwd(), value) if isinstance(value, str) else value
    return everyone, per_command
