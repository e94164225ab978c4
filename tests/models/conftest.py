"""Fixtures for the model backend tests: tiny random models built once per session.

Nothing here may reach the network: the hub is switched offline before anything imports it.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A session directory that `tiny:` models are built into (`$DREAMJOURNEY_TINY_DIR`)."""
    root = tmp_path_factory.mktemp("tiny-models")
    old = os.environ.get("DREAMJOURNEY_TINY_DIR")
    os.environ["DREAMJOURNEY_TINY_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("DREAMJOURNEY_TINY_DIR", None)
    else:
        os.environ["DREAMJOURNEY_TINY_DIR"] = old


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
