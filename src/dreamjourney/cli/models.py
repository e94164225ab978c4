"""`dreamjourney models`: roles, backends, presets, and which weights are on this machine;
`dreamjourney models convert-anyview`: the released AnyView files as a diffusers folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from dreamjourney.cli.console import console, err_console

app = typer.Typer(invoke_without_command=True)


@app.callback()
def models(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="A backend config (JSON or TOML) whose models are checked too."
    ),
) -> None:
    """List model roles, backends and presets, and which weights are found locally."""
    if ctx.invoked_subcommand is not None:
        return
    from dreamjourney.models.registry import (
        BACKENDS,
        NATIVE,
        PRESETS,
        load_config,
        resolve_specs,
    )
    from dreamjourney.models.weights import find_weights, hf_cache_dir

    backends = Table(title="Roles and backends")
    backends.add_column("role")
    backends.add_column("backend")
    backends.add_column("weights")
    for role, table in BACKENDS.items():
        for name, entry in table.items():
            backends.add_row(role, name, "local weights" if entry.weights else "none")
    console.print(backends)

    sets = {name: resolve_specs(name) for name in PRESETS}
    if config is not None:
        sets[f"config {config.name}"] = resolve_specs("offline", load_config(config))
    presets = Table(title="Presets")
    presets.add_column("preset")
    for role in ("depth", "completer", "animator", "captioner"):
        presets.add_column(role)
    weights: dict[str, str] = {}
    for name, specs in sets.items():
        cells = []
        for spec in specs.values():
            if spec is None:
                cells.append("[dim]off[/]")
                continue
            model = spec.get("model")
            cells.append(spec["name"] + (f"\n[dim]{model}[/]" if model else ""))
            if model:
                weights.setdefault(str(model), name)
        presets.add_row(name, *cells)
    console.print(presets)
    console.print(
        "[yellow]tiny[/]: random weights of the real architectures, built on first use: "
        "every code path runs, the output is noise."
    )

    native = Table(title="Native regime of the real presets (the journey's defaults for them)")
    native.add_column("preset")
    native.add_column("clip size")
    native.add_column("frames per clip")
    native.add_column("journey defaults")
    native.add_column("from")
    for name, regime in NATIVE.items():
        width, height = regime.size
        native.add_row(
            name,
            f"{width}x{height}",
            str(regime.clip_frames),
            f"--size {width}x{height} --frames {regime.frames} "
            f"--motion-frames {regime.motion_frames}",
            regime.note,
        )
    console.print(native)

    _memory_table(list(PRESETS))

    found = Table(title=f"Weights (local directories and the Hugging Face cache {hf_cache_dir()})")
    found.add_column("model")
    found.add_column("first used by")
    found.add_column("found")
    for model, first in weights.items():
        path = find_weights(model)
        status = f"[green]yes[/] {path}" if path else "[red]no[/]"
        if path is None and model.startswith("tiny:"):
            status = "[yellow]built on first use[/]"
        found.add_row(model, first, status)
    console.print(found)


def _memory_table(presets: list[str]) -> None:
    """Per real preset and offload setting: GiB of weights each stage holds on the device."""
    from dreamjourney.models.memory import CARD_GIB, HEADROOM_GIB, STAGES, table_rows

    table = Table(
        title="Accelerator memory held by weights (GiB, bfloat16; computed from the published "
        "configs' parameter counts; activations come on top)"
    )
    for column in ("preset", "offload", *STAGES, "peak", f"fits {CARD_GIB:.0f} GiB"):
        table.add_column(column, justify="left" if column in ("preset", "offload") else "right")
    for row in table_rows(presets):
        fit = "[green]yes[/]" if row[-1] == "yes" else "[red]no[/]"
        table.add_row(*row[:-1], fit)
    console.print(table)
    console.print(
        f'offload: a config\'s `offload = "none"`, `"model"` or `"sequential"` (see the README). '
        f"fits: the weights leave {HEADROOM_GIB:.0f} GiB of a {CARD_GIB:.0f} GiB card for "
        "activations."
    )


@app.command("convert-anyview")
def convert_anyview(
    checkpoint: Path = typer.Argument(..., help="The released anyview_dvs_2b.pt."),
    out: Path = typer.Argument(..., help="New folder for the diffusers pipeline."),
    vae: str | None = typer.Option(
        None,
        help="The Wan2.1 VAE: the release's tokenizer.pth (default: beside CHECKPOINT), a "
        "diffusers VAE folder or a cached hub id such as Wan-AI/Wan2.1-T2V-1.3B-Diffusers.",
    ),
    text_embedding: Path | None = typer.Option(
        None, help="The release's default_text_emb.pt (default: beside CHECKPOINT)."
    ),
) -> None:
    """Convert the released AnyView files into a folder `anyview --method anyview --model` takes."""
    from dreamjourney.pipelines.anyview_official import convert_release

    with err_console.status("converting the AnyView release"):
        convert_release(checkpoint, out, vae=vae, text_embedding=text_embedding)
    console.print(f"wrote {out} (load it with --method anyview --model {out})")
