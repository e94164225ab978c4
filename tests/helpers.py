"""Helpers several test modules share."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from dreamjourney.pipelines.journey import JourneyConfig


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


def small_journey_config(**overrides: Any) -> JourneyConfig:
    """A journey small enough for the CPU: pan right at 64x48, 5 frames a segment of which 3
    move, lifting every 2nd frame; `overrides` set any other field or replace these."""
    return JourneyConfig(
        **{
            "trajectory": "pan-right",
            "width": 64,
            "height": 48,
            "frames_per_segment": 5,
            "motion_frames": 3,
            "lift_stride": 2,
            **overrides,
        }
    )
