"""The studio's HTTP side (FastAPI): the page, its JSON API, uploads and workspace files.

Every error a user can cause is an `InputError`: the API answers it with status 400 (413 for
an upload over the limit) and `{"error": "<one line>"}`, which the page shows; a path with no
route (404) or a wrong method (405) is answered the same way. A bug answers
500 with one line too; its traceback goes to the server's log, never to the page.
"""

from __future__ import annotations

import logging
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dreamjourney.camera import Cameras
from dreamjourney.camera.formats import WRITABLE, load_cameras, save_cameras
from dreamjourney.camera.trajectories import PRESETS
from dreamjourney.errors import InputError
from dreamjourney.io.rundir import Manifest
from dreamjourney.models.registry import PRESETS as BACKEND_PRESETS
from dreamjourney.studio.session import Studio
from dreamjourney.studio.viewer import Viewer
from dreamjourney.studio.workspace import UploadTooLarge

log = logging.getLogger("dreamjourney.studio")

# the bundled examples of a source checkout (not part of an installed wheel): a photo, and a
# 16-frame clip of a `dreamjourney data synth` scene (README, "anyview in the studio")
_EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"
EXAMPLES = {"photo": _EXAMPLES_DIR / "garden.png", "video": _EXAMPLES_DIR / "clip.mp4"}
EXPORT_NAMES = {
    "native": "cameras.json",
    "nerfstudio": "camera_path.json",
    "re10k": "cameras.txt",
    "colmap": "colmap",
}
RESULTS = (
    "video.mp4",
    "side_by_side.mp4",
    "contact_sheet.png",
    "trajectory.png",
    "cameras.json",
    "world.ply",
)
_STATIC = {
    "studio.js": "text/javascript",
    "studio.css": "text/css",
}


def create_app(studio: Studio, viewer: Viewer | None = None) -> FastAPI:
    """The studio's app over `studio` (and its 3D `viewer`, when there is one)."""
    app = FastAPI(title="dreamjourney studio", docs_url=None, redoc_url=None)
    workspace = studio.workspace

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        status = 413 if isinstance(exc, UploadTooLarge) else 400
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # no such route (404), a wrong method (405), ...: one line, like every other error
        return JSONResponse(
            {"error": f"{request.url.path}: {exc.detail}"},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("studio: %s %s failed", request.method, request.url.path)
        return JSONResponse(
            {"error": f"internal error ({type(exc).__name__}); see the studio's log"},
            status_code=500,
        )

    # ---------------------------------------------------------------- page
    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return _static("index.html")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in _STATIC:
            raise InputError("no such file", source=name)
        return Response(_static(name), media_type=_STATIC[name])

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "workspace": str(workspace.root),
            "trajectory_presets": {
                name: {"help": p.help, "defaults": p.defaults} for name, p in PRESETS.items()
            },
            "backends": list(BACKEND_PRESETS),
            "formats": list(WRITABLE),
            "upload_limit": workspace.upload_limit,
            "viewer_port": viewer.port if viewer is not None else None,
            "examples": [kind for kind, path in EXAMPLES.items() if path.is_file()],
        }

    # ---------------------------------------------------------------- workspace
    @app.get("/api/files")
    def files() -> list[dict[str, Any]]:
        return workspace.list_inputs()

    @app.get("/files/{path:path}")
    def file(path: str, download: bool = False) -> FileResponse:
        target = workspace.resolve(path)
        if not target.is_file():
            raise InputError("not a file", source=path)
        return FileResponse(target, filename=target.name if download else None)

    @app.post("/api/upload")
    async def upload(request: Request, name: str) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > workspace.upload_limit:
            raise UploadTooLarge(
                f"larger than the upload limit of {workspace.upload_limit / 2**20:g} MB",
                source=name,
            )
        path, kind = await workspace.save_upload(name, request.stream())
        return {"path": path, "kind": kind}

    @app.post("/api/example")
    def example(kind: str = "photo") -> dict[str, Any]:
        if kind not in EXAMPLES:
            raise InputError(f"no example {kind!r}; one of {', '.join(EXAMPLES)}", field="kind")
        source = EXAMPLES[kind]
        if not source.is_file():
            raise InputError("the bundled examples are only in a source checkout")
        target = workspace.resolve(f"examples/{source.name}", must_exist=False)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return {"path": workspace.relative(target), "kind": kind}

    # ---------------------------------------------------------------- settings and path
    @app.get("/api/state")
    def state() -> dict[str, Any]:
        return studio.state()

    @app.put("/api/state")
    async def put_state(request: Request) -> dict[str, Any]:
        return studio.update(await _json(request))

    @app.post("/api/keyframes")
    async def add_keyframe(request: Request) -> dict[str, Any]:
        body = await _json(request)
        return studio.add_keyframe(_int(body, "frame"))

    @app.post("/api/camera-file")
    async def camera_file(request: Request) -> dict[str, Any]:
        body = await _json(request)
        return studio.load_camera_file(str(body.get("path", "")))

    @app.post("/api/scrub")
    async def scrub(request: Request) -> dict[str, Any]:
        frame = _int(await _json(request), "frame")
        preview = studio.last_preview()
        image = preview / "frames" / f"{frame:06d}.png" if preview is not None else None
        if viewer is not None:
            viewer.set_cursor(frame, str(image) if image is not None and image.is_file() else None)
        return {"frame": frame}

    @app.post("/api/fly")
    def fly() -> dict[str, Any]:
        frames = viewer.fly(studio.fps()) if viewer is not None else 0
        return {"frames": frames}

    @app.post("/api/preview")
    def preview() -> dict[str, Any]:
        return studio.preview()

    @app.get("/api/preview")
    def last_preview() -> dict[str, Any]:
        return studio.last_preview_result() or {}

    @app.get("/api/path/cameras")
    def path_cameras(format: str = "native") -> FileResponse:
        cameras = studio.cameras()
        key = f"path-{studio.version}"
        return _export(cameras, format, workspace.studio_dir / "exports" / key, studio.fps())

    # ---------------------------------------------------------------- runs
    @app.post("/api/run")
    def run() -> dict[str, Any]:
        studio.run()
        return run_status(studio.run_spec().name)

    @app.get("/api/runs")
    def runs() -> list[dict[str, Any]]:
        return [run_status(name) for name in studio.jobs.names()]

    @app.get("/api/runs/{name}")
    def run_status(name: str) -> dict[str, Any]:
        status = studio.jobs.status(name)
        out = Path(status["out"])
        manifest = out / "manifest.json"
        if manifest.is_file():
            m = Manifest.model_validate_json(manifest.read_text())
            status.setdefault("segments_total", m.num_segments)
            status["segments_done"] = m.done_segments
        status["run"] = workspace.relative(out) if out.is_dir() else None
        status["results"] = {
            name: workspace.relative(out / name)
            for name in RESULTS
            if status["state"] == "done" and (out / name).is_file()
        }
        del status["out"]
        return status

    @app.post("/api/runs/{name}/cancel")
    def cancel(name: str) -> dict[str, Any]:
        studio.jobs.cancel(name)
        return run_status(name)

    @app.post("/api/runs/{name}/resume")
    def resume(name: str) -> dict[str, Any]:
        studio.jobs.start(studio.jobs.spec(name))
        return run_status(name)

    @app.get("/api/runs/{name}/cameras")
    def run_cameras(name: str, format: str = "native") -> FileResponse:
        status = run_status(name)
        if "cameras.json" not in status["results"]:
            raise InputError("the run has no cameras.json yet", source=name)
        path = workspace.resolve(status["results"]["cameras.json"])
        folder = workspace.studio_dir / "exports" / name
        fps = float(studio.jobs.spec(name).config.get("fps", 24.0))
        return _export(load_cameras(path), format, folder, fps)

    return app


def _export(cameras: Cameras, format: str, folder: Path, fps: float) -> FileResponse:
    """`cameras` written in `format` into `folder`, as a download (COLMAP as a zip)."""
    if format not in EXPORT_NAMES:
        raise InputError(f"unknown format; one of {', '.join(EXPORT_NAMES)}", field="format")
    target = folder / EXPORT_NAMES[format]
    save_cameras(cameras, target, format=format, fps=fps)
    if format == "colmap":
        target = Path(shutil.make_archive(str(target), "zip", root_dir=target))
    return FileResponse(target, filename=target.name)


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InputError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"must be an integer, got {value!r}", field=key)
    return value


def _static(name: str) -> str:
    return resources.files("dreamjourney.studio").joinpath("static").joinpath(name).read_text()
