"""Rich consoles shared by the commands (stdout for results, stderr for progress and errors)."""

from contextlib import nullcontext

from rich.console import Console

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
