"""Fixtures for the model backend tests: tiny random models built once per session (into the
session directory of `tests/conftest.py`'s `tiny_root`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_model(tiny_root: Path) -> Callable[[str], str]:
    """`tiny_model(name)` -> the local directory of a tiny model, built and saved on first use.

    Backends get this directory as their `model`, exactly as a user passes a local path.
    """
    from dreamjourney.models.tiny import ensure_tiny

    return lambda name: str(ensure_tiny(name))


@pytest.fixture
def masked_clip() -> tuple[torch.Tensor, torch.Tensor]:
    """A 9-frame 64x64 clip of smooth gradients with a hole that grows to the right."""
    t, h, w = 9, 64, 64
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frames = torch.stack([torch.stack([xx, yy, (xx + yy) / 2 * (1 - i / 20)]) for i in range(t)])
    masks = torch.ones(t, h, w, dtype=torch.bool)
    for i in range(1, t):
        masks[i, :, w - 4 * i :] = False
    return frames, masks
