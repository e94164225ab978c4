"""No secret in any output: a captioner key reaches its endpoint and nothing else.

A key is planted in a backend config; the run directory (every file), stdout and stderr must not
hold it, and a run whose key changes must still resume and extend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from dreamjourney.models.registry import build_backends, is_secret
from helpers import run_main

ANSWER = json.dumps({"objects": [{"name": "sea", "motion": "high", "sentence": "Waves roll in."}]})


def journey(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`dreamjourney journey ARGS` in this process -> (exit status, stdout + stderr)."""
    code, out, err = run_main(monkeypatch, capsys, "journey", *args)
    return code, out + err


def files_holding(root: Path, secret: str) -> list[str]:
    return [
        str(p.relative_to(root))
        for p in sorted(root.rglob("*"))
        if p.is_file() and secret.encode() in p.read_bytes()
    ]


def test_planted_key_is_in_no_output_and_a_new_key_resumes(
    tmp_path, chat_server, monkeypatch, capsys
):
    url, server = chat_server
    server.answer = ANSWER
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)).save(photo)
    keys = ["sk-planted-1b7e0c5d9a", "sk-rotated-93f2aa6e71"]
    configs = []
    for i, key in enumerate(keys):
        configs.append(tmp_path / f"config{i}.json")
        configs[-1].write_text(
            json.dumps({"captioner": {"name": "openai", "base_url": url, "api_key": key}})
        )
    run = tmp_path / "run"
    common = ["--out", str(run), "--frames", "2", "--size", "32x24", "-q"]
    code, output = journey(monkeypatch, capsys, str(photo), *common, "--segments", "1",
                           "--config", str(configs[0]))  # fmt: skip
    assert code == 0, output
    # the key did its job: every caption request carried it
    assert server.requests and {r["auth"] for r in server.requests} == {f"Bearer {keys[0]}"}
    assert "Waves roll in." in json.loads((run / "manifest.json").read_text())["input_prompt"]
    assert files_holding(run, keys[0]) == [] and keys[0] not in output
    # a new key is the same run: it extends (no "different config" refusal)
    code, more = journey(monkeypatch, capsys, str(photo), *common, "--extend", "1",
                         "--config", str(configs[1]))  # fmt: skip
    assert code == 0, more
    assert server.requests[-1]["auth"] == f"Bearer {keys[1]}"
    manifest = json.loads((run / "manifest.json").read_text())
    assert [s["status"] for s in manifest["segments"]] == ["done", "done"]
    assert manifest["backends"]["roles"]["captioner"] == {"name": "openai", "base_url": url}
    for key in keys:
        assert files_holding(run, key) == []
        assert key not in output + more


def test_refused_key_is_not_quoted_in_the_error(tmp_path, chat_server, monkeypatch, capsys):
    url, server = chat_server
    key = "sk-refused-5c0ffee42d"
    server.status = 401
    server.error = {"error": {"message": f"Incorrect API key provided: {key}."}}
    (tmp_path / "c.json").write_text(
        json.dumps({"captioner": {"name": "openai", "base_url": url, "api_key": key}})
    )
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 24), (90, 120, 200)).save(photo)
    code, output = journey(monkeypatch, capsys, str(photo), "--out", str(tmp_path / "run"),
                           "--config", str(tmp_path / "c.json"), "--size", "32x24", "-q")  # fmt: skip
    assert code == 2 and "HTTP 401" in output and "Incorrect API key provided" in output
    assert key not in output
    assert files_holding(tmp_path / "run", key) == []


def test_credential_options_are_left_out_of_the_backend_info():
    credentials = ("api_key", "hf_token", "client_secret", "password")
    assert [is_secret(o) for o in credentials] == [True] * 4
    assert [is_secret(o) for o in ("max_new_tokens", "base_url", "model")] == [False] * 3
    spec = {"name": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k-123"}
    backends = build_backends(config={"captioner": spec})
    assert backends.captioner.api_key == "k-123"  # the backend gets it ...
    assert "k-123" not in json.dumps(backends.info)  # ... the description does not
