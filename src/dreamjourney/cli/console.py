"""Rich consoles shared by the commands (stdout for results, stderr for progress and errors)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

PIPE_WIDTH = 1000

console = Console()
if not console.is_terminal:
    # a pipe or a file: lines as long as they need (whole model ids, paths), not 80 columns
    console = Console(width=PIPE_WIDTH)
err_console = Console(stderr=True)


def prepare_cpu_rasterizer(quiet: bool = False) -> None:
    """Load the compiled CPU rasterizer before a command's progress bars start, saying why the
    first run after an install waits (numba compiles it then, about 10 s)."""
    from dreamjourney.scene import raster_cpu  # numba: only for the commands that render

    message = "loading the CPU rasterizer (compiled on the first run after an install: ~10 s)"
    with nullcontext() if quiet else err_console.status(message):
        raster_cpu.warm_up()


def task_bars(quiet: bool, *, transient: bool = False) -> Progress:
    """Progress bars on stderr, one a task: its description, the bar, done/total and the time
    elapsed; none when `quiet`, and gone once stopped when `transient`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
        transient=transient,
    )
