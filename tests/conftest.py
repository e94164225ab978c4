"""Fixtures shared by every test module.

Nothing here may reach the network: the hub is switched offline before anything imports it.
`tiny:` models are built into one temporary directory per session (never `~/.cache`), for
in-process tests and for the commands they start as subprocesses alike.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest


@pytest.fixture(scope="session", autouse=True)
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session directory `tiny:` models are built into (`$DREAMJOURNEY_TINY_DIR`)."""
    root = tmp_path_factory.mktemp("tiny-models")
    old = os.environ.get("DREAMJOURNEY_TINY_DIR")
    os.environ["DREAMJOURNEY_TINY_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("DREAMJOURNEY_TINY_DIR", None)
    else:
        os.environ["DREAMJOURNEY_TINY_DIR"] = old


class ChatHandler(BaseHTTPRequestHandler):
    """A local OpenAI-compatible `/chat/completions` endpoint.

    Answers `answer` with HTTP 200, or `error` (a JSON body) with HTTP `status`; records each
    request's path, Authorization header and JSON body in `requests`.
    """

    requests: ClassVar[list[dict[str, Any]]] = []
    status = 200
    answer = ""
    error: ClassVar[dict[str, Any]] = {"error": "boom"}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.requests.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        reply = {"choices": [{"message": {"role": "assistant", "content": cls.answer}}]}
        data = json.dumps(reply if cls.status == 200 else cls.error).encode()
        self.send_response(cls.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def chat_server() -> Iterator[tuple[str, type[ChatHandler]]]:
    """(base URL ending in /v1, handler class to configure and inspect) of a fresh server."""
    ChatHandler.requests = []
    ChatHandler.status = 200
    ChatHandler.answer = ""
    ChatHandler.error = {"error": "boom"}
    server = HTTPServer(("127.0.0.1", 0), ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", ChatHandler
    server.shutdown()
    server.server_close()
