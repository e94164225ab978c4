"""`dreamjourney studio`: a local web app to draw the camera path over the world, preview the
dry run along it, run the journey (a photo) or anyview (a video) and fetch the results.

The page (FastAPI, plain HTML and JavaScript) holds the controls, the preview player and the
results; the 3D view (viser) runs its own server on a second port and is embedded in the page.
Both call the same pipelines and camera code as the CLI (see `session`).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

from dreamjourney.errors import InputError


def serve(
    workspace: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    viewer_port: int | None = None,
    upload_limit: int | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the studio on http://host:port until interrupted.

    Args:
        workspace: the only folder the studio reads and writes (created).
        host, port: where the page is served (port 0: any free port).
        viewer_port: the 3D view's port (default: the next free one after `port`).
        upload_limit: the largest upload in bytes (default `DEFAULT_UPLOAD_LIMIT`).
        on_ready: called with the page's URL once the server listens.
    """
    sock = _listen(host, port)  # a busy port is refused before the slow imports
    port = sock.getsockname()[1]

    import uvicorn

    from dreamjourney.scene import raster_cpu
    from dreamjourney.studio.app import create_app
    from dreamjourney.studio.session import Studio
    from dreamjourney.studio.viewer import Viewer
    from dreamjourney.studio.workspace import DEFAULT_UPLOAD_LIMIT, Workspace

    space = Workspace(workspace, upload_limit=upload_limit or DEFAULT_UPLOAD_LIMIT)
    viewer = Viewer(host, viewer_port if viewer_port is not None else port + 1)
    studio = Studio(space, on_change=viewer.show)
    viewer.show(studio)
    # numba compiles the rasterizer on the first run after an install: not on the first click
    threading.Thread(target=raster_cpu.warm_up, daemon=True).start()
    config = uvicorn.Config(create_app(studio, viewer), log_level="warning")
    server = uvicorn.Server(config)
    if on_ready is not None:
        url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
        threading.Thread(target=_when_started, args=(server, on_ready, url), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        viewer.stop()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(
            f"cannot listen on {host}:{port} ({exc.strerror})", field="--port"
        ) from None
    sock.listen(64)
    return sock


def _when_started(server: object, on_ready: Callable[[str], None], url: str) -> None:
    import time

    while not getattr(server, "started", False):
        time.sleep(0.05)
    on_ready(url)
