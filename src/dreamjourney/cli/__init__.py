"""The `dreamjourney` command: a thin Typer app over the pipelines.

Every subcommand lives in its own module and is registered below. User errors
(`dreamjourney.errors.InputError`) and OS errors (a path that is a file, permission denied, a
full disk) become one line on stderr and exit status 2; `InputWarning`s one line each. The
command modules import torch and the pipelines inside the commands, so `--help` and
`--version` answer without loading them.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TextIO

import typer
from rich.markup import escape

import dreamjourney
from dreamjourney.cli.console import err_console
from dreamjourney.errors import InputError, InputWarning
from dreamjourney.threads import configure_threads

app = typer.Typer(
    name="dreamjourney",
    help="Camera-controlled generative video of 3D and 4D scenes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dreamjourney {dreamjourney.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Camera-controlled generative video of 3D and 4D scenes."""


from dreamjourney.cli import data, eval  # noqa: E402
from dreamjourney.cli.anyview import anyview  # noqa: E402
from dreamjourney.cli.batch import batch  # noqa: E402
from dreamjourney.cli.journey import journey  # noqa: E402
from dreamjourney.cli.models import app as models_app  # noqa: E402
from dreamjourney.cli.render import render  # noqa: E402
from dreamjourney.cli.studio import studio  # noqa: E402
from dreamjourney.cli.train import app as train_app  # noqa: E402
from dreamjourney.cli.trajectory import app as trajectory_app  # noqa: E402

# In the order a user meets them.
app.command("journey")(journey)
app.command("anyview")(anyview)
app.command("render")(render)
app.command("batch")(batch)
app.add_typer(trajectory_app, name="trajectory")
app.command("studio")(studio)
app.add_typer(models_app, name="models")
app.add_typer(data.app, name="data")
app.add_typer(eval.app, name="eval")
app.add_typer(train_app, name="train")


def main() -> None:
    """Entry point of the console script."""
    configure_threads()  # before any command imports torch
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default", InputWarning)
            warnings.showwarning = _show_warning
            app()
    except InputError as exc:
        _error(str(exc))
    except OSError as exc:
        _error(_os_error_line(exc))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


def _error(line: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    sys.exit(2)


def _os_error_line(exc: OSError) -> str:
    """'PATH: what went wrong' for an OSError (the paths it names, its strerror)."""
    what = exc.strerror or str(exc) or type(exc).__name__
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(os.fsdecode(p) for p in paths)
    return f"{where}: {what}" if where else what


_show_other_warning = warnings.showwarning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    if issubclass(category, InputWarning):
        err_console.print(
            f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True
        )
    else:
        _show_other_warning(message, category, filename, lineno, file, line)
