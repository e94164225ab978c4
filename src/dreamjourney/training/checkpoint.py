"""Our part of a training checkpoint: the step counter and the EMA weights, never pickled.

accelerate's `save_state` writes the model (safetensors), the optimizer, the LR schedule and the
RNG states into `checkpoints/step-NNNNNNN/` and reads them back with
`torch.load(weights_only=True)`, which rebuilds tensors and plain containers only. What we add
is `ema.safetensors` (the EMA weights by parameter name, when EMA is on) and, written last,
`trainer_state.json`:

    {"format": "dreamjourney.train-checkpoint/1", "step": 1200, "ema_optimization_step": 1200}

A directory without a valid `trainer_state.json` is not a checkpoint: "latest" passes over it (a
save cut short) and an explicit resume directory is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dreamjourney.camera.formats.validate import read_json_object
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_path, atomic_write_text

FORMAT = "dreamjourney.train-checkpoint/1"
STATE_FILE = "trainer_state.json"
EMA_FILE = "ema.safetensors"
PREFIX = "step-"


@dataclass(frozen=True)
class TrainerState:
    """step: optimizer steps done; ema_step: the EMA's own step count (None without EMA)."""

    step: int
    ema_step: int | None = None


def checkpoint_dir(root: Path, step: int) -> Path:
    return root / f"{PREFIX}{step:07d}"


def save_trainer_state(directory: Path, step: int, ema: Any | None, names: Sequence[str]) -> None:
    """Write `ema`'s weights (a diffusers `EMAModel` over the parameters called `names`, in
    order) and then `trainer_state.json` into the checkpoint `directory`."""
    from safetensors.torch import save_file

    ema_step = None
    if ema is not None:
        tensors = {
            name: p.detach().cpu().contiguous()
            for name, p in zip(names, ema.shadow_params, strict=True)
        }
        with atomic_path(directory / EMA_FILE) as tmp:
            save_file(tensors, str(tmp))
        ema_step = int(ema.optimization_step)
    state = {"format": FORMAT, "step": step, "ema_optimization_step": ema_step}
    atomic_write_text(directory / STATE_FILE, json.dumps(state, indent=1))


def _count(value: Any, path: Path, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"must be a step count, got {value!r}", source=path, field=field)
    return value


def read_trainer_state(directory: Path) -> TrainerState:
    """The state saved in checkpoint `directory`; `InputError` if it is not one of ours."""
    path = directory / STATE_FILE
    if not path.is_file():
        raise InputError(
            f"not a dreamjourney training checkpoint ({STATE_FILE} is missing); resume from a "
            f"checkpoints/{PREFIX}NNNNNNN directory of `dreamjourney train anyview`, or 'latest'",
            source=directory,
        )
    data = read_json_object(path)
    if data.get("format") != FORMAT:
        raise InputError(
            f"expected {FORMAT!r}, got {data.get('format')!r}", source=path, field="format"
        )
    ema_step = data.get("ema_optimization_step")
    return TrainerState(
        _count(data.get("step"), path, "step"),
        None if ema_step is None else _count(ema_step, path, "ema_optimization_step"),
    )


def load_ema(
    directory: Path, state: TrainerState, ema: Any, names: Sequence[str], device: torch.device
) -> None:
    """Restore `ema` (over the parameters called `names`) from checkpoint `directory`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = directory / EMA_FILE
    if not path.is_file() or state.ema_step is None:
        raise InputError(
            "the config keeps an EMA but this checkpoint has none (trained with ema.enabled = "
            "false?)",
            source=directory,
        )
    try:
        tensors = load_file(str(path), device=str(device))
    except (OSError, SafetensorError) as exc:
        raise InputError(f"cannot read: {exc}", source=path) from None
    shadow = [tensors.get(name) for name in names]
    for name, kept, current in zip(names, shadow, ema.shadow_params, strict=True):
        if kept is None or kept.shape != current.shape:
            found = "missing" if kept is None else f"of shape {tuple(kept.shape)}"
            raise InputError(
                f"EMA weight {name} is {found}, the model's is {tuple(current.shape)} (a "
                "checkpoint of another model config?)",
                source=path,
            )
    ema.load_state_dict({"optimization_step": state.ema_step, "shadow_params": shadow})


def list_checkpoints(root: Path) -> list[Path]:
    """The complete checkpoints under `root` (those with a `trainer_state.json`), oldest first."""
    found = [
        p
        for p in root.glob(f"{PREFIX}*")
        if p.is_dir() and p.name[len(PREFIX) :].isdigit() and (p / STATE_FILE).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))
