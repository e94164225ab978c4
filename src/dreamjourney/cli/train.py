"""`dreamjourney train ...`: training commands (accelerate; also under `accelerate launch`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dreamjourney.cli.console import console, err_console

app = typer.Typer(
    help="Train the learned models.", no_args_is_help=True, pretty_exceptions_enable=False
)


@app.command("anyview")
def anyview(
    config: Path = typer.Option(
        ..., "--config", "-c", help="Training config (.toml, .json, .yaml): see configs/."
    ),
    output_dir: str | None = typer.Option(None, help="Override the config's output_dir."),
    steps: int | None = typer.Option(None, help="Override the config's number of steps."),
    resume: str | None = typer.Option(
        None, help="'latest' or a checkpoint directory (overrides the config)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Train the learned AnyView model (flow matching, two camera-conditioned streams)."""
    from dreamjourney.training.config import load_train_config

    cfg = load_train_config(config, output_dir=output_dir, steps=steps, resume=resume)
    from dreamjourney.training.anyview import train_anyview  # heavy: only for a valid config

    columns = (
        TextColumn("[bold]anyview[/]"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}  loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, disable=quiet) as bar:
        task = bar.add_task("train", total=cfg.steps, loss="-")

        def report(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, loss=f"{loss:.4f}")

        result = train_anyview(cfg, progress=report)
    if result.resumed_from is not None:
        console.print(f"resumed from {result.resumed_from}", soft_wrap=True)
    for step, loss in result.val_losses:
        console.print(f"validation loss at step {step}: {loss:.4f}")
    console.print(
        f"trained to step {result.step}; pipeline saved to {result.pipeline_dir}", soft_wrap=True
    )
