"""`dreamjourney studio`: the local web app (path editor over the world, preview, run)."""

from __future__ import annotations

from pathlib import Path

import typer

from dreamjourney.cli.console import console
from dreamjourney.errors import InputError


def studio(
    workspace: Path = typer.Option(
        Path("."), "--workspace", "-w", help="The only folder the studio reads and writes."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to serve on (127.0.0.1: this machine only)."
    ),
    port: int = typer.Option(7860, "--port", "-p", help="Port of the page (0: any free one)."),
    viewer_port: int | None = typer.Option(
        None, "--viewer-port", help="Port of the 3D view (default: the next free one)."
    ),
    upload_limit: float = typer.Option(200.0, "--upload-limit", help="Largest upload, in MB."),
) -> None:
    """Draw the camera path over the world in a browser, preview it, run the journey."""
    if not 0 <= port <= 65535:
        raise InputError(f"must be in 0..65535, got {port}", field="--port")
    if not upload_limit > 0:
        raise InputError(f"must be > 0, got {upload_limit}", field="--upload-limit")
    if workspace.exists() and not workspace.is_dir():
        raise InputError("is a file, not a directory", source=workspace, field="--workspace")
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
        import viser  # noqa: F401
    except ImportError as exc:
        raise InputError(
            f"the studio needs {exc.name}: pip install 'dreamjourney[studio]'"
        ) from None
    from dreamjourney.studio import serve

    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[bold yellow]note:[/] serving on {host}: anyone who reaches this address can read "
            "and write the workspace",
        )
    serve(
        workspace,
        host=host,
        port=port,
        viewer_port=viewer_port,
        upload_limit=int(upload_limit * 2**20),
        on_ready=lambda url: console.print(
            f"dreamjourney studio: {url} (workspace {workspace.resolve()}; Ctrl+C stops)",
            highlight=False,
        ),
    )
