"""`dreamjourney data`: make synthetic 4D scenes, convert scenes between layouts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress

from dreamjourney.cli.console import console, err_console
from dreamjourney.cli.options import parse_size
from dreamjourney.errors import InputError

app = typer.Typer(help="4D scenes with ground truth: generate and convert.", no_args_is_help=True)

LAYOUT_HELP = "native (scene.json + per-camera folders) or anyview (AnyView's unified layout)."


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise InputError(f"must be at least 1, got {value}", field=name)
    return value


@app.command()
def synth(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder to write scene_000, scene_001, ... into."
    ),
    scenes: int = typer.Option(1, "--scenes", help="Number of scenes."),
    cameras: int = typer.Option(4, "--cameras", help="Cameras per scene."),
    frames: int = typer.Option(24, "--frames", help="Frames per camera."),
    size: str = typer.Option("256x256", "--size", help="Frame size WxH."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first scene (scene i uses seed + i)."),
    layout: str = typer.Option("native", "--layout", help=LAYOUT_HELP),
    fps: float = typer.Option(24.0, "--fps", help="Frame rate."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Render procedural dynamic scenes with exact depth from several cameras."""
    from dreamjourney.data import save_scene, synth_scene

    width, height = parse_size(size)
    for value, name in ((scenes, "--scenes"), (cameras, "--cameras"), (frames, "--frames")):
        _positive(value, name)
    if layout not in ("native", "anyview"):
        raise InputError(f"must be native or anyview, got {layout!r}", field="--layout")
    if fps <= 0:
        raise InputError(f"must be positive, got {fps}", field="--fps")
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a directory; choose another --out", source=out)
    targets = [out / f"scene_{i:03d}" for i in range(scenes)]
    for target in targets:  # refuse before rendering anything rather than halfway through
        if target.exists() and any(target.iterdir()):
            raise InputError("exists and is not empty; choose another --out", source=target)
    with Progress(console=err_console, transient=True, disable=quiet) as progress:
        task = progress.add_task("rendering scenes", total=scenes)
        for i, target in enumerate(targets):
            scene = synth_scene(
                seed + i, cameras=cameras, frames=frames, width=width, height=height, fps=fps
            )
            save_scene(scene, target, layout=layout)
            progress.advance(task)
    console.print(f"wrote {scenes} scene(s) ({layout} layout) to {out}")


@app.command()
def convert(
    source: Path = typer.Argument(
        ..., help="A scene folder in any layout (native, AnyView, DyCheck)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="New scene folder."),
    layout: str = typer.Option("native", "--layout", help=LAYOUT_HELP),
) -> None:
    """Read a scene in any supported layout and write it in another."""
    from dreamjourney.data import load_any_scene, save_scene

    scene = load_any_scene(source)
    save_scene(scene, out, layout=layout)
    console.print(
        f"{scene.name}: {len(scene.streams)} cameras (input {scene.input_camera}) -> {out}"
    )
