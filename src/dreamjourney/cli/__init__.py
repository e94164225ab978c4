"""The `dreamjourney` command: a thin Typer app over the pipelines.

Every subcommand lives in its own module and is registered below. User errors
(`dreamjourney.errors.InputError`) become one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from dreamjourney import __version__
from dreamjourney.cli.console import err_console
from dreamjourney.errors import InputError

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
        typer.echo(f"dreamjourney {__version__}")
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
from dreamjourney.cli.models import models  # noqa: E402
from dreamjourney.cli.render import render  # noqa: E402
from dreamjourney.cli.train import app as train_app  # noqa: E402
from dreamjourney.cli.trajectory import app as trajectory_app  # noqa: E402

# In the order a user meets them.
app.command("journey")(journey)
app.command("anyview")(anyview)
app.command("render")(render)
app.command("batch")(batch)
app.add_typer(trajectory_app, name="trajectory")
app.command("models")(models)
app.add_typer(data.app, name="data")
app.add_typer(eval.app, name="eval")
app.add_typer(train_app, name="train")


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except InputError as exc:
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
