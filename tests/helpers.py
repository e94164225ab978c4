"""Helpers several test modules share."""

from __future__ import annotations

import sys

import pytest


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: object
) -> tuple[int, str, str]:
    """Run `dreamjourney ARGS` in this process through the console entry point `main()`.

    Returns (exit status, stdout, stderr) of this run alone: what was captured before is dropped.
    """
    from dreamjourney.cli import main

    monkeypatch.setattr(sys, "argv", ["dreamjourney", *map(str, args)])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
