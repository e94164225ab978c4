"""`dreamjourney trajectory make | convert | preview`: camera paths as files and pictures."""

from __future__ import annotations

from pathlib import Path

import typer

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.formats import (
    WRITABLE,
    detect_format,
    format_from_suffix,
    load_cameras,
    nerfstudio,
    save_cameras,
)
from dreamjourney.camera.trajectories import PRESETS, make_trajectory, resolve_trajectory
from dreamjourney.cli.console import console, err_console
from dreamjourney.cli.options import parse_key_values, parse_size
from dreamjourney.errors import InputError

app = typer.Typer(
    help="Make, convert and preview camera paths. Presets: " + ", ".join(PRESETS) + ".",
    no_args_is_help=True,
)


def fps_of(cameras: Cameras, default: float = 24.0) -> float:
    """The frame rate implied by the cameras' times (their median spacing), else `default`."""
    if len(cameras) < 2:
        return default
    step = float(cameras.times.diff().median())
    return round(1.0 / step, 3) if step > 0 else default


def _path_from(
    spec: str,
    frames: int | None,
    scene_scale: float,
    size: str,
    fov: float,
    fps: float,
    seed: int,
    options: list[str],
) -> Cameras:
    width, height = parse_size(size)
    if options:
        if spec not in PRESETS:
            raise InputError("--set applies to presets only", source=spec, field="--set")
        return make_trajectory(
            spec,
            frames if frames is not None else round(2 * fps) + 1,
            scene_scale=scene_scale,
            width=width,
            height=height,
            fov_deg=fov,
            seed=seed,
            fps=fps,
            **parse_key_values(options, option="--set"),
        )
    return resolve_trajectory(
        spec,
        frames,
        scene_scale=scene_scale,
        width=width,
        height=height,
        fov_deg=fov,
        seed=seed,
        fps=fps,
    )


PRESET_ARG = typer.Argument(..., help="A preset name or a camera / keyframe file.")
FRAMES = typer.Option(
    None, "--frames", "-n", help="Frames (default: 2 s of a preset; a file's own count)."
)
SCALE = typer.Option(1.0, "--scene-scale", help="Unit of distance: the median scene depth.")
SIZE = typer.Option("512x512", "--size", help="Image size WxH of the start camera.")
FOV = typer.Option(60.0, "--fov", help="Horizontal field of view of the start camera, degrees.")
FPS = typer.Option(24.0, "--fps", help="Frames per second (times of the frames).")
SEED = typer.Option(0, "--seed", help="Seed of random presets (wander).")
SET = typer.Option([], "--set", help="Preset option KEY=VALUE (JSON value), repeatable.")
FORMAT = typer.Option(
    None, "--format", help=f"One of {', '.join(WRITABLE)} (default: from the file name)."
)


@app.command("make")
def make(
    preset: str = PRESET_ARG,
    out: Path = typer.Option(..., "--out", "-o", help="Camera file (or COLMAP directory)."),
    frames: int | None = FRAMES,
    scene_scale: float = SCALE,
    size: str = SIZE,
    fov: float = FOV,
    fps: float = FPS,
    seed: int = SEED,
    option: list[str] = SET,
    format: str | None = FORMAT,
) -> None:
    """Lay out a camera path from a preset (or a keyframe file) and write it."""
    cameras = _path_from(preset, frames, scene_scale, size, fov, fps, seed, option)
    save_cameras(cameras, out, format=format, fps=fps)
    console.print(f"wrote {len(cameras)} cameras to {out}", highlight=False)


@app.command("convert")
def convert(
    src: Path = typer.Argument(..., help="Camera file in any supported format."),
    out: Path = typer.Argument(..., help="Output file (or COLMAP directory)."),
    format: str | None = FORMAT,
) -> None:
    """Convert a camera file between formats (input detected by content)."""
    name = detect_format(src)
    cameras = load_cameras(src, format=name)
    target = format or format_from_suffix(out)
    if target == "nerfstudio" and (loss := nerfstudio.lost_in_conversion(cameras)):
        err_console.print(f"warning: {loss}", highlight=False, markup=False)
    save_cameras(cameras, out, format=target, fps=fps_of(cameras))
    console.print(f"converted {len(cameras)} cameras ({name}) to {out}", highlight=False)


@app.command("preview")
def preview(
    spec: str = typer.Argument(..., help="A camera file (any format) or a preset name."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write."),
    frames: int | None = FRAMES,
    scene_scale: float = SCALE,
    size: str = SIZE,
    fov: float = FOV,
    fps: float = FPS,
    seed: int = SEED,
    option: list[str] = SET,
) -> None:
    """Draw a path seen from above and from the side, with camera frusta along it."""
    from dreamjourney.io.plots import plot_trajectory

    cameras = _path_from(spec, frames, scene_scale, size, fov, fps, seed, option)
    plot_trajectory(cameras, out, title=f"{Path(spec).name}: {len(cameras)} cameras")
    console.print(f"wrote {out}", highlight=False)
