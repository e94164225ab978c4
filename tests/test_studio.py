"""`dreamjourney studio` served for real: HTTP-level refusals (path traversal, bad uploads),
cancel and resume of a run, and the whole page driven in headless Chromium (Debian's
`chromium`, driven by Playwright; no browser is downloaded).

Screenshots of every step go to docs/studio/ when DREAMJOURNEY_SCREENSHOTS=1.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import torch

from dreamjourney.camera.formats import load_cameras
from dreamjourney.cli import main
from dreamjourney.io.images import load_image
from dreamjourney.io.video import read_video, write_video

STUDIO_EXTRA = "the studio extra is not installed (pip install -e '.[studio]')"
for _module in ("fastapi", "uvicorn", "viser"):
    pytest.importorskip(_module, reason=f"{STUDIO_EXTRA}: no {_module}")

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = REPO / "docs" / "studio" if os.environ.get("DREAMJOURNEY_SCREENSHOTS") else None
UPLOAD_LIMIT_MB = 1


class Server:
    """A `dreamjourney studio` process on a free port, and raw HTTP calls to it."""

    def __init__(self, workspace: Path, log: Path):
        self.workspace = workspace
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dreamjourney", "studio", "--workspace", str(workspace),
             "--port", "0", "--upload-limit", str(UPLOAD_LIMIT_MB)],
            stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, env=env,
        )  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: [lines.put(x) for x in stdout], daemon=True).start()
        deadline = time.monotonic() + 180
        while True:
            line = lines.get(timeout=max(1.0, deadline - time.monotonic()))
            match = re.search(r"dreamjourney studio: (http://\S+)", line)
            if match:
                self.url = match[1]
                break
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "", parts.port or 0

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        """`path` is sent exactly as given (no client-side normalisation of `..`)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        status, raw = self.request(method, path, data, {"Content-Type": "application/json"})
        return status, json.loads(raw)

    def wait_run(self, name: str, until: Any, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, run = self.json("GET", f"/api/runs/{name}")
            assert status == 200, run
            if until(run):
                return run
            time.sleep(0.2)
        raise AssertionError(f"run {name} did not get there: {run}")

    def worker_pid(self, name: str, segments_done: int = 0, timeout: float = 180) -> int:
        """The process id of run `name`'s worker, once the run has begun and has done
        `segments_done` segments."""
        path = self.workspace / "studio" / "jobs" / f"{name}.progress.json"
        deadline = time.monotonic() + timeout
        while True:
            try:
                progress = json.loads(path.read_text())
            except (OSError, ValueError):
                progress = {}
            if "pid" in progress and progress.get("segments_done", -1) >= segments_done:
                return int(progress["pid"])
            assert time.monotonic() < deadline, progress
            time.sleep(0.01)

    @contextlib.contextmanager
    def held(self, pid: int) -> Iterator[None]:
        """Worker `pid` stopped (SIGSTOP) for the block: whatever it does lands mid-run."""
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    (root / "ws").mkdir()
    (root / "outside.txt").write_text("not yours")
    srv = Server(root / "ws", root / "server.log")
    yield srv
    srv.stop()
    log = srv.log.read_text()
    assert "Traceback" not in log, log  # nothing a user did raised past the API


def settings(server: Server, **changes: Any) -> dict:
    status, state = server.json("GET", "/api/state")
    assert status == 200
    body = {**state["settings"], **changes}
    status, state = server.json("PUT", "/api/state", body)
    assert status == 200, state
    return state


# ---------------------------------------------------------------------- HTTP refusals
def test_files_outside_the_workspace_are_refused(server):
    (server.workspace / "note.txt").write_text("inside")
    os.symlink(server.workspace.parent, server.workspace / "up")
    assert server.request("GET", "/files/note.txt") == (200, b"inside")
    refusals = {
        "/files/../outside.txt": "'..' is refused",
        "/files/%2e%2e/outside.txt": "'..' is refused",
        "/files/a/%2E%2E/%2e%2e/outside.txt": "'..' is refused",
        f"/files/{server.workspace.parent}/outside.txt": "absolute paths are refused",
        "/files/up/outside.txt": "leads outside the workspace",
        "/files/..%5coutside.txt": "not a workspace path",
    }
    for path, message in refusals.items():
        status, body = server.request("GET", path)
        assert status == 400, (path, status, body)
        assert message in json.loads(body)["error"], (path, body)
        assert b"not yours" not in body
    for endpoint, body in [
        ("/api/camera-file", {"path": "../outside.txt"}),
        ("/api/camera-file", {"path": "up/outside.txt"}),
    ]:
        status, answer = server.json("POST", endpoint, body)
        assert status == 400 and "outside.txt" in answer["error"], answer
    # run names are looked up in the studio's job folder, never used as paths
    for method, path, code, message in [
        ("GET", "/api/runs/..", 400, "..: no such run"),
        ("GET", "/api/runs/.hidden", 400, ".hidden: no such run"),
        ("POST", "/api/runs/../resume", 400, "..: no such run"),
        ("GET", "/api/runs/..%2F..%2Foutside", 404, "/api/runs/../../outside: Not Found"),
        ("GET", "/api/runs/..%2Fjobs%2Fx/cameras", 404, "Not Found"),
        ("DELETE", "/api/state", 405, "/api/state: Method Not Allowed"),
    ]:
        status, body = server.request(method, path)
        assert status == code and message in json.loads(body)["error"], (path, status, body)
    status, state = server.json("GET", "/api/state")
    status, answer = server.json("PUT", "/api/state", {**state["settings"], "input": "../x.png"})
    assert status == 400 and "'..' is refused" in answer["error"]
    assert "up/outside.txt" not in [f["path"] for f in server.json("GET", "/api/files")[1]]


def test_bad_uploads_get_a_message_and_leave_nothing(server, tmp_path):
    mp4 = tmp_path / "clip.mp4"
    write_video(mp4, torch.rand(12, 3, 32, 32), fps=12)
    truncated = mp4.read_bytes()[: mp4.stat().st_size // 2]
    over = b"\0" * (UPLOAD_LIMIT_MB * 2**20 + 1)
    cases = [
        ("photo.png", b"<html>not a png</html>", 400, "photo.png: not a valid photo file"),
        ("clip.mp4", truncated, 400, "clip.mp4: not a valid video file"),
        ("big.png", over, 413, "larger than the upload limit of 1 MB"),
        ("..%2Fescape.png", b"x", 400, "file names may hold only"),
        ("tool.sh", b"echo", 400, "unsupported file type"),
    ]
    for name, payload, code, message in cases:
        status, body = server.request("POST", f"/api/upload?name={name}", payload)
        assert status == code, (name, status, body)
        assert message in json.loads(body)["error"], (name, body)
    # a chunked upload (no Content-Length: http.client chunks an iterable) is cut off too
    chunks = iter([over[:600_000], over[600_000:]])
    status, body = server.request("POST", "/api/upload?name=big2.png", chunks)  # type: ignore[arg-type]
    assert status == 413, body
    uploads = server.workspace / "uploads"
    assert not uploads.exists() or sorted(p.name for p in uploads.iterdir()) == []
    # the studio's own folders, when a symlink leads them out, are refused too
    elsewhere = server.workspace.parent / "elsewhere"
    elsewhere.mkdir()
    for link, request in [("uploads", "/api/upload?name=clip.mp4"), ("examples", "/api/example")]:
        if (server.workspace / link).is_dir():
            (server.workspace / link).rmdir()  # empty
        os.symlink(elsewhere, server.workspace / link)
        try:
            status, body = server.request("POST", request, mp4.read_bytes())
        finally:
            (server.workspace / link).unlink()
        assert status == 400, (link, body)
        assert "leads outside the workspace" in json.loads(body)["error"], (link, body)
        assert list(elsewhere.iterdir()) == [], link
    status, body = server.request("POST", "/api/upload?name=clip.mp4", mp4.read_bytes())
    assert status == 200 and json.loads(body) == {"path": "uploads/clip.mp4", "kind": "video"}
    assert (uploads / "clip.mp4").read_bytes() == mp4.read_bytes()


def test_cli_refuses_a_bad_or_busy_port(tmp_path, monkeypatch, capsys):
    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["dreamjourney", "studio", "-w", str(tmp_path), *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        return int(exit_info.value.code or 0), capsys.readouterr().err.strip()

    assert run("--port", "70000") == (2, "error: --port: must be in 0..65535, got 70000")
    assert run("--upload-limit", "0") == (2, "error: --upload-limit: must be > 0, got 0.0")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        message = f"error: --port: cannot listen on 127.0.0.1:{port} (Address already in use)"
        assert run("--port", str(port)) == (2, message)


# ---------------------------------------------------------------------- the page in Chromium
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run must install Debian's chromium")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="the browser tests need playwright (pip install -e '.[dev]'); it drives the "
        "system Chromium and downloads no browser",
    )
    with sync_api.sync_playwright() as p:
        # Playwright gives the browser a fresh temporary profile (--user-data-dir) of its own
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# viser warns that WebGL runs in software (true in headless Chromium): close it for pictures
CLOSE_WEBGL_NOTE = """() => {
  for (const b of document.querySelectorAll(".mantine-Notification-closeButton")) {
    const note = b.closest(".mantine-Notification-root");
    if (note && note.textContent.includes("Software WebGL")) b.click();
  }
}"""


# the page's controls are inert until its start() has read the state and listens for edits
PAGE_READY = "!document.querySelector('#controls').inert"


def shot(page, name: str, *, full_page: bool = False) -> None:
    """Save the page (the window, or all of it) as docs/studio/`name`.png, when asked to."""
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(1500)  # let the 3D view draw
        for frame in page.frames[1:]:
            frame.evaluate(CLOSE_WEBGL_NOTE)
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def set_value(page, selector: str, value: Any, event: str = "change") -> None:
    page.locator(selector).evaluate(
        f"(e, v) => {{ e.value = v; e.dispatchEvent(new Event('{event}')); }}", str(value)
    )


def test_the_controls_wait_until_the_page_listens(server, browser):
    """Until the page has read the server's state it has no listeners: an edit made then was
    lost without a word (the width set first in the test below, once in a while)."""
    page = browser.new_page()
    page.set_default_timeout(60_000)
    held: list[Any] = []
    page.route("**/api/runs", lambda route: held.append(route))  # start() reads them last
    page.goto(server.url)
    deadline = time.monotonic() + 30
    while not held:
        assert time.monotonic() < deadline, "the page did not ask for the runs"
        page.wait_for_timeout(100)
    assert page.evaluate("document.querySelector('#controls').inert")
    held[0].continue_()
    page.wait_for_function(PAGE_READY)
    page.close()


def test_a_late_poll_answer_does_not_undo_an_edit(server, browser):
    """The page polls the state each second; an answer sent before an edit and arriving after
    it carries the older settings and must not put them back in the controls (it did: a
    width typed before opening the example photo could be lost, and the path laid out at the
    photo's size)."""
    page = browser.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.url)
    page.wait_for_function(PAGE_READY)
    stale = server.json("GET", "/api/state")[1]
    width = 136 if stale["settings"]["width"] != 136 else 144
    set_value(page, "#width", width)
    deadline = time.monotonic() + 10
    while server.json("GET", "/api/state")[1]["settings"]["width"] != width:
        assert time.monotonic() < deadline, "the width did not reach the server"
        time.sleep(0.1)

    served: list[str] = []

    def late_answer(route):
        if route.request.method == "GET" and not served:
            served.append(route.request.url)
            route.fulfill(status=200, content_type="application/json", body=json.dumps(stale))
        else:
            route.continue_()

    page.route("**/api/state", late_answer)
    page.wait_for_function("document.querySelector('#width').value !== ''")
    deadline = time.monotonic() + 10
    while not served:  # the next poll, within a second
        assert time.monotonic() < deadline, "the page did not poll the state"
        page.wait_for_timeout(100)
    page.wait_for_timeout(300)  # the answer is shown, if it is going to be
    assert page.locator("#width").input_value() == str(width)
    page.close()


def test_the_page_from_photo_to_results(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(90_000)  # a busy machine: each step's own work takes seconds
    page.goto(server.url)
    page.wait_for_function(PAGE_READY)
    assert page.locator("#viewer").get_attribute("src").startswith("http://127.0.0.1:")
    shot(page, "01-page")

    # open the bundled example at 128x96 (set first: no lift at the default size), 2 segments
    # of 8 frames
    for selector, value in [("#width", 128), ("#height", 96), ("#segments", 2), ("#frames", 8)]:
        set_value(page, selector, value)
    page.click("#example-photo")
    page.wait_for_function(
        "document.querySelector('#path-summary').textContent.startsWith('17 cameras at 128x96')"
    )
    shot(page, "02-example")

    # a preset, and one of its sliders
    page.select_option("#preset", "arc-right")
    page.wait_for_function("document.querySelector('#options input[data-key=sweep_deg]') !== null")
    set_value(page, "#options input[data-key=sweep_deg]", 30, event="input")
    page.wait_for_function("document.querySelector('#options output').textContent === '30'")
    deadline = time.monotonic() + 10
    while server.json("GET", "/api/state")[1]["settings"]["path"]["options"] != {"sweep_deg": 30}:
        assert time.monotonic() < deadline, "the slider did not reach the server"
        time.sleep(0.1)
    shot(page, "03-preset")

    # a keyframe at the timeline's frame 8, then moved 0.3 to the right
    set_value(page, "#timeline", 8, event="input")
    page.click("#add-keyframe")
    page.wait_for_function("document.querySelectorAll('#keyframes tbody tr').length === 3")
    x = page.locator("#keyframes tbody tr:nth-child(2) input[data-field='position.0']")
    old_x = float(x.input_value())
    x.fill(str(old_x + 0.3))
    x.press("Tab")
    deadline = time.monotonic() + 10
    while True:
        path = server.json("GET", "/api/state")[1]["settings"]["path"]
        if path["keyframes"][1]["position"][0] == pytest.approx(old_x + 0.3):
            break
        assert time.monotonic() < deadline, f"the moved keyframe did not reach the server: {path}"
        time.sleep(0.1)
    assert path["mode"] == "keyframes"
    shot(page, "04-keyframes")
    page.click("#fly")
    page.wait_for_function(
        "document.querySelector('#timeline-label').textContent === "
        "'flying the 3D view along 17 cameras'"
    )

    # preview: frames and hole shares appear
    page.click("#preview-button")
    page.wait_for_function(
        "document.querySelectorAll('#hole-bars div').length === 17", timeout=120_000
    )
    page.wait_for_function("document.querySelector('#preview-frame').naturalWidth === 128")
    assert re.search(r"holes \d+\.\d%", page.text_content("#hole-share"))
    page.evaluate("document.querySelector('#play').click()")  # pause on a frame for the picture
    set_value(page, "#timeline", 16, event="input")
    page.wait_for_function(
        "document.querySelector('#hole-share').textContent.startsWith('frame 16')"
    )
    shot(page, "05-preview")

    # run, and reload the page while it runs (the worker held still, so that the reload lands
    # mid-run on any machine): the page finds the run again and follows it to the end
    page.click("#run-button")
    # held only once the worker itself says it runs: a worker stopped while it starts up
    # (imports take long on a busy machine) stays "starting" through the reload
    page.wait_for_function(
        "/run .*: running/.test(document.querySelector('#run-status').textContent)"
    )
    name = server.json("GET", "/api/runs")[1][0]["name"]
    with server.held(server.worker_pid(name)):
        page.reload()
        page.wait_for_function(
            "/: running, [01] of 2 segments done/.test("
            "document.querySelector('#run-status').textContent)"
        )
        assert page.text_content("#run-status").startswith(f"run {name}: running")
        shot(page, "06-running-after-reload")
    page.wait_for_function(
        "document.querySelector('#run-status').dataset.state === 'done'", timeout=180_000
    )
    assert "2 of 2 segments done" in page.text_content("#run-status")
    page.wait_for_function("document.querySelector('#contact-sheet').naturalWidth > 0")
    shot(page, "07-results", full_page=True)

    # downloads: the video and the cameras as a nerfstudio camera path
    run = server.json("GET", "/api/runs")[1][0]
    folder = server.workspace / run["run"]
    with page.expect_download() as download:
        page.click("#download-video")
    assert Path(download.value.path()).read_bytes() == (folder / "video.mp4").read_bytes()
    assert page.input_value("#camera-format") == "nerfstudio"
    with page.expect_download() as download:
        page.click("#download-cameras")
    assert download.value.suggested_filename == "camera_path.json"
    saved = tmp_path / "camera_path.json"
    download.value.save_as(saved)
    assert "camera_path" in json.loads(saved.read_text())
    downloaded, run_cameras = load_cameras(saved), load_cameras(folder / "cameras.json")
    assert len(downloaded) == len(run_cameras) == 16
    assert torch.allclose(downloaded.c2w, run_cameras.c2w, atol=1e-5)
    # the run flew the path the page showed (the preview's cameras, frame 0 = the photo)
    preview_dir = server.workspace / server.json("POST", "/api/preview")[1]["dir"]
    shown = load_cameras(preview_dir / "cameras.json")
    assert torch.allclose(run_cameras.c2w, shown.c2w[1:], atol=1e-5)

    # every writable format, read back (COLMAP comes as a zip of its text model)
    for fmt in ("native", "re10k", "colmap"):
        status, body = server.request("GET", f"/api/runs/{run['name']}/cameras?format={fmt}")
        assert status == 200, body
        target = tmp_path / fmt
        target.mkdir()
        if fmt == "colmap":
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                archive.extractall(target)
            cameras = load_cameras(target)
        else:
            name = {"native": "cameras.json", "re10k": "cameras.txt"}[fmt]
            (target / name).write_bytes(body)
            cameras = load_cameras(target / name)
        assert torch.allclose(cameras.c2w, run_cameras.c2w, atol=1e-4), fmt
    status, body = server.request("GET", f"/api/runs/{run['name']}/cameras?format=ply")
    assert status == 400 and "unknown format" in json.loads(body)["error"]

    # a bad upload: a message in the page
    page.set_input_files(
        "#upload",
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG broken"}],
    )
    page.wait_for_function("!document.querySelector('#message').hidden")
    assert "broken.png: not a valid photo file" in page.text_content("#message")
    shot(page, "08-bad-upload")

    # anyview: the example clip (its first 6 frames at 128x96) along the preset path, previewed
    # and run; the result and the input beside it are shown
    page.click("#mode-preset")
    set_value(page, "#video_frames", 6)
    page.click("#example-video")
    page.wait_for_function(
        "document.querySelector('#path-summary').textContent.startsWith("
        "'6 target cameras at 128x96')"
    )
    assert page.is_hidden("#segments") and page.is_visible("#video_frames")
    page.click("#preview-button")
    page.wait_for_function("document.querySelectorAll('#hole-bars div').length === 6")
    page.wait_for_function("document.querySelector('#preview-frame').naturalWidth === 128")
    page.click("#run-button")
    page.wait_for_function(
        "/run clip-anyview-.*: done/.test(document.querySelector('#run-status').textContent)"
    )
    page.wait_for_function("document.querySelector('#side-video').readyState >= 2")
    assert page.is_visible("#download-side") and page.is_hidden("#contact-sheet")
    shot(page, "09-anyview", full_page=True)
    page.close()


# ---------------------------------------------------------------------- runs over HTTP
# segments of the run to cancel: a tiny segment takes a few ms, so many of them leave the test
# time to catch the run after its first one on a busy machine
SEGMENTS = 40


def test_cancel_keeps_finished_segments_and_resume_finishes(server):
    assert server.json("POST", "/api/example")[0] == 200
    settings(server, input="examples/garden.png", width=32, height=24, segments=SEGMENTS, frames=2,
             path={"mode": "preset", "preset": "pan-left"})  # fmt: skip
    status, run = server.json("POST", "/api/run")
    assert status == 200 and run["state"] in ("starting", "running"), run
    name = run["name"]
    # hold the worker still once a segment is done, so the cancel lands mid-run on any machine
    with server.held(server.worker_pid(name, segments_done=1)):
        status, run = server.json("POST", f"/api/runs/{name}/cancel")
        assert status == 200
    run = server.wait_run(name, lambda r: r["state"] != "running" and not r["alive"])
    assert run["state"] == "cancelled", run
    done = run["segments_done"]
    assert 1 <= done < SEGMENTS, run
    folder = server.workspace / "runs" / name
    assert not list(folder.rglob("*.tmp*")), "a cancelled run leaves no partial file"
    status, run = server.json("POST", f"/api/runs/{name}/resume")
    run = server.wait_run(name, lambda r: r["state"] in ("done", "failed") and not r["alive"])
    assert run["state"] == "done" and run["segments_done"] == SEGMENTS, run
    frames, _ = read_video(folder / "video.mp4")
    assert len(frames) == SEGMENTS * 2


def test_anyview_preview_and_run_are_the_commands(server, tmp_path, monkeypatch):
    """A video opens in anyview mode: the preview is the warped input with its holes, the run
    writes exactly what `dreamjourney anyview --method geometry` writes for the same path."""
    status, opened = server.json("POST", "/api/example?kind=video")
    assert (status, opened) == (200, {"path": "examples/clip.mp4", "kind": "video"})
    state = settings(server, input="examples/clip.mp4", video_frames=6, width=None, height=None,
                     path={"mode": "preset", "preset": "orbit", "options": {}, "keyframes": []})  # fmt: skip
    path = state["path"]
    assert (path["kind"], path["frames"], path["width"], path["height"], path["fps"]) == (
        "video", 6, 192, 144, 12.0
    )  # fmt: skip
    assert path["world_points"] == 192 * 144  # frame 0 lifted, every pixel

    status, preview = server.json("POST", "/api/preview")
    assert status == 200, preview
    assert (preview["frames"], preview["width"], preview["fps"]) == (6, 192, 12.0)
    holes = preview["holes"]
    assert holes[0] == 0.0  # the orbit starts at the input camera: nothing is missing;
    assert min(holes[1:-1]) > 0.05 and holes[-1] == 0.0  # a full circle: back at the start
    mask = load_image(server.workspace / preview["dir"] / "masks" / "000003.png", min_size=1)
    assert float(1 - mask[0].mean()) == pytest.approx(holes[3], abs=1e-3)

    status, answer = server.json("POST", "/api/keyframes", {"frame": 2})
    assert status == 400 and "a video's target path is a trajectory preset" in answer["error"]

    status, run = server.json("POST", "/api/run")
    assert status == 200, run
    run = server.wait_run(
        run["name"], lambda r: r["state"] in ("done", "failed") and not r["alive"]
    )
    assert run["state"] == "done" and run["segments_done"] == 1, run
    assert {"video.mp4", "side_by_side.mp4", "cameras.json"} <= set(run["results"])
    folder = server.workspace / run["run"]

    cli = tmp_path / "cli"
    argv = ["dreamjourney", "anyview", str(server.workspace / "examples" / "clip.mp4"),
            "-t", "orbit", "--frames", "6", "-o", str(cli), "-q"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with contextlib.suppress(SystemExit):
        main()
    for name in ("video.mp4", "side_by_side.mp4", "render.mp4", "mask.mp4", "cameras.json"):
        assert (folder / name).read_bytes() == (cli / name).read_bytes(), name

    status, body = server.request("GET", f"/api/runs/{run['name']}/cameras?format=nerfstudio")
    assert status == 200
    (tmp_path / "camera_path.json").write_bytes(body)
    downloaded = load_cameras(tmp_path / "camera_path.json")
    assert torch.allclose(downloaded.c2w, load_cameras(cli / "cameras.json").c2w, atol=1e-5)

    # a truncated video in the workspace: a message, never a traceback (the server's log is
    # checked when the module ends)
    clip = (server.workspace / "examples" / "clip.mp4").read_bytes()
    (server.workspace / "cut.mp4").write_bytes(clip[: len(clip) // 2])
    state = settings(server, input="cut.mp4")
    assert "cut.mp4: not a valid video file" in state["path"]["error"], state
    status, answer = server.json("POST", "/api/preview")
    assert status == 400 and "cut.mp4: not a valid video file" in answer["error"], answer
