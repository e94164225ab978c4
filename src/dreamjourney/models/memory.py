"""Accelerator memory the real presets' weights hold at each stage, computed from their configs.

`configs/parameters.json` keeps, for every catalogued model (`realconfigs`) and component, its
exact parameter count and its sequential-offload figure (the most parameters sequential offload
holds at once: a module's own parameters plus those of the modules around it, which stay on
the device while it runs). Both are counted on the meta device from the published configs
(`compute_parameters`; a test checks the file against a fresh count). Bytes use each
component's dtype from `weights.component_dtype`, the table loading itself reads.

A segment runs four stages in turn: depth, completer, captioner, animator. What each holds:

* `none`: every model loaded so far stays on the device; models two roles share count once.
* `model` (the config's `offload = "model"`): only the running stage's model. A diffusion
  pipeline moves one component at a time, but its VAE, which encodes before the transformer
  runs, stays until decoding: the largest other component plus the VAE.
* `sequential`: a diffusion pipeline holds its largest sequential-offload figure; depth and
  captioning models are whole (they offload by model).

These are weights only: activations at the preset's native size come on top (measured by
`benchmarks/gpu_check.py` on a GPU).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch

from dreamjourney.models import realconfigs
from dreamjourney.models.registry import OFFLOAD, ROLES, resolve_specs
from dreamjourney.models.weights import component_dtype

PARAMETERS = realconfigs.CONFIGS / "parameters.json"
STAGES = ("depth", "completer", "captioner", "animator")
"""The order the stages run in within a segment."""

GIB = float(1 << 30)


def _bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def sequential_figure(module: torch.nn.Module) -> int:
    """The most parameters sequential offload holds at once: over all modules, the sum of the
    directly owned parameters of the module and of each module it sits in."""

    def walk(mod: torch.nn.Module, above: int) -> int:
        here = above + sum(p.numel() for p in mod.parameters(recurse=False))
        return max([here, *(walk(child, here) for child in mod.children())])

    return walk(module, 0)


def compute_parameters(
    build: Callable[[str, str], torch.nn.Module] = realconfigs.build_component,
) -> dict[str, dict[str, dict[str, int]]]:
    """model -> component -> `{"parameters": count, "sequential": figure}`.

    build: `(model, component)` -> the component on the meta device (`build_component`).
    """
    table: dict[str, dict[str, dict[str, int]]] = {}
    for model in realconfigs.catalogue():
        table[model] = {}
        for component in realconfigs.components(model):
            module = build(model, component)
            table[model][component] = {
                "parameters": realconfigs.parameter_count(module),
                "sequential": sequential_figure(module),
            }
    return table


@cache
def parameters() -> dict[str, dict[str, dict[str, int]]]:
    """The stored `compute_parameters()` table."""
    return json.loads(PARAMETERS.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Part:
    """One component as a stage holds it: bytes whole and under sequential offload."""

    name: str
    bytes: int
    sequential: int


def _parts(model: str, dtype: torch.dtype) -> list[Part]:
    entry = realconfigs.catalogue()[model]
    pipeline = entry.get("pipeline", "")
    out = []
    for component, counts in parameters()[model].items():
        size = _bytes(component_dtype(pipeline, component, dtype))
        # text encoders of one published source are one model in memory (`ModelStore` shares them)
        if component == "text_encoder":
            name = entry["components"][component]
        else:
            name = f"{model}/{component}"
        out.append(Part(name, counts["parameters"] * size, counts["sequential"] * size))
    return out


def stage_bytes(parts: list[Part], setting: str, diffusion: bool) -> int:
    """What one stage holds while it runs under offload `setting` (see the module docstring)."""
    if setting == "sequential" and diffusion:
        return max(p.sequential for p in parts)
    if setting == "none" or not diffusion:
        return sum(p.bytes for p in parts)
    vae = [p.bytes for p in parts if p.name.endswith("/vae")]
    rest = [p.bytes for p in parts if not p.name.endswith("/vae")]
    return max(rest) + sum(vae)


def preset_table(
    preset: str, dtype: torch.dtype = torch.bfloat16
) -> dict[str, dict[str, float | None]]:
    """offload setting -> stage (and `"peak"`) -> GiB the weights hold, for `preset`.

    A stage whose model has no published config here (or no weights) is None.
    """
    specs = resolve_specs(preset)
    parts: dict[str, list[Part]] = {}
    diffusion: dict[str, bool] = {}
    for role in ROLES:
        spec = specs[role]
        model = (spec or {}).get("model")
        if model in realconfigs.catalogue():
            parts[role] = _parts(model, dtype)
            diffusion[role] = "pipeline" in realconfigs.catalogue()[model]
    table: dict[str, dict[str, float | None]] = {}
    for setting in OFFLOAD:
        row: dict[str, float | None] = {}
        held: dict[str, int] = {}  # setting none: everything loaded so far
        peak = 0
        for stage in STAGES:
            if stage not in parts:
                row[stage] = None
                continue
            now = stage_bytes(parts[stage], setting, diffusion[stage])
            if setting == "none":
                held.update({p.name: p.bytes for p in parts[stage]})
                now = sum(held.values())
            row[stage] = now / GIB
            peak = max(peak, now)
        row["peak"] = peak / GIB
        table[setting] = row
    return table


HEADROOM_GIB = 4.0
"""Left free for activations when saying what fits a card (see `benchmarks/gpu_check.py`)."""

CARD_GIB = 24.0
"""The card the README and `dreamjourney models` say fits or not (an RTX 3090/4090, an L4...)."""


def fits(row: dict[str, Any], card_gib: float = CARD_GIB) -> bool:
    """Whether a `preset_table` row's peak leaves `HEADROOM_GIB` of a `card_gib` card free."""
    return bool(row["peak"] + HEADROOM_GIB <= card_gib)


def fitting_setting(table: dict[str, dict[str, Any]], card_gib: float = CARD_GIB) -> str | None:
    """The least offload (none, model, sequential) that `fits` a `card_gib` card, else None."""
    return next((setting for setting in OFFLOAD if fits(table[setting], card_gib)), None)


def table_rows(presets: list[str], card_gib: float = CARD_GIB) -> list[list[str]]:
    """`[preset, offload, GiB per stage..., peak, fits]` as text for every preset with
    published weights (the preset is named on its first row; fits: yes, or no)."""
    rows = []
    for preset in presets:
        table = preset_table(preset)
        if not table["none"]["peak"]:
            continue  # no published weights: offline, tiny
        for setting, row in table.items():
            cells = ["-" if row[s] is None else f"{row[s]:.1f}" for s in (*STAGES, "peak")]
            name = preset if setting == "none" else ""
            rows.append([name, setting, *cells, "yes" if fits(row, card_gib) else "no"])
    return rows


def markdown_table(presets: list[str], card_gib: float = CARD_GIB) -> str:
    """`table_rows` as the README's Markdown table."""
    head = ["preset", "offload", *STAGES, "peak", f"fits {card_gib:.0f} GiB"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for row in table_rows(presets, card_gib):
        lines.append(
            "| " + " | ".join(f"`{c}`" if c and i == 0 else c for i, c in enumerate(row)) + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # python -m dreamjourney.models.memory: rewrite parameters.json
    PARAMETERS.write_text(json.dumps(compute_parameters(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {PARAMETERS}")
