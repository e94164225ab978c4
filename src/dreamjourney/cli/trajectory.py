"""`dreamjourney trajectory make | convert | preview`: camera paths as files and pictures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from dreamjourney.cli.console import console, err_console
from dreamjourney.cli.options import parse_key_values, parse_size
from dreamjourney.errors import InputError

if TYPE_CHECKING:
    from dreamjourney.camera.cameras import Cameras

app = typer.Typer(
    help="Make, convert and preview camera paths (presets such as forward, orbit, journey; "
    "camera files in any supported format).",
    no_args_is_help=True,
)
DEFAULT_SIZE = "512x512"


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
    size: str | None,
    fov: float,
    fps: float,
    seed: int,
    options: list[str],
) -> Cameras:
    from dreamjourney.camera.trajectories import resolve_trajectory

    image_size = parse_size(size) if size is not None else None
    width, height = image_size or parse_size(DEFAULT_SIZE)
    return resolve_trajectory(
        spec,
        frames,
        scene_scale=scene_scale,
        width=width,
        height=height,
        fov_deg=fov,
        seed=seed,
        fps=fps,
        size=image_size,
        options=parse_key_values(options, option="--set"),
    )


PRESET_ARG = typer.Argument(..., help="A preset name or a camera / keyframe file.")
FRAMES = typer.Option(
    None, "--frames", "-n", help="Frames (default: 2 s of a preset; a file's own count)."
)
SCALE = typer.Option(1.0, "--scene-scale", help="Unit of distance: the median scene depth.")
SIZE = typer.Option(
    None,
    "--size",
    help=f"Image size WxH of the start camera (default {DEFAULT_SIZE}); for a camera file that "
    "states no size and has no images beside it, its image size.",
)
FOV = typer.Option(60.0, "--fov", help="Horizontal field of view of the start camera, degrees.")
FPS = typer.Option(24.0, "--fps", help="Frames per second (times of the frames).")
SEED = typer.Option(0, "--seed", help="Seed of random presets (wander).")
SET = typer.Option([], "--set", help="Preset option KEY=VALUE (JSON value), repeatable.")
FORMAT = typer.Option(
    None,
    "--format",
    help="Output format: a writable format's name (default: from the file name).",
)


@app.command("make")
def make(
    preset: str = PRESET_ARG,
    out: Path = typer.Option(..., "--out", "-o", help="Camera file (or COLMAP directory)."),
    frames: int | None = FRAMES,
    scene_scale: float = SCALE,
    size: str | None = SIZE,
    fov: float = FOV,
    fps: float = FPS,
    seed: int = SEED,
    option: list[str] = SET,
    format: str | None = FORMAT,
) -> None:
    """Lay out a camera path from a preset (or a keyframe file) and write it."""
    from dreamjourney.camera.formats import save_cameras

    cameras = _path_from(preset, frames, scene_scale, size, fov, fps, seed, option)
    save_cameras(cameras, out, format=format, fps=fps)
    console.print(f"wrote {len(cameras)} cameras to {out}", highlight=False)


@app.command("convert")
def convert(
    src: Path = typer.Argument(..., help="Camera file in any supported format."),
    out: Path = typer.Argument(..., help="Output file (or COLMAP directory)."),
    format: str | None = FORMAT,
    size: str | None = typer.Option(
        None, "--size", help="Image size WxH of a camera file that states none."
    ),
) -> None:
    """Convert a camera file between formats (input detected by content)."""
    from dreamjourney.camera.formats import (
        detect_format,
        format_from_suffix,
        load_cameras,
        nerfstudio,
        save_cameras,
    )

    name = detect_format(src)
    cameras = load_cameras(src, format=name, size=parse_size(size) if size else None)
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
    size: str | None = SIZE,
    fov: float = FOV,
    fps: float = FPS,
    seed: int = SEED,
    option: list[str] = SET,
    up: str | None = typer.Option(
        None,
        "--up",
        help="The world's up axis, e.g. +z or -y (default: from the cameras: -y for our own "
        "paths, +z for nerfstudio, instant-ngp and Blender scenes).",
    ),
) -> None:
    """Draw a path seen from above and from the side, with camera frusta along it."""
    from dreamjourney.io.plots import axis_label, parse_up, plot_trajectory, up_axis

    try:
        up_axis_given = parse_up(up) if up is not None else None
    except ValueError as exc:
        raise InputError(str(exc), field="--up") from None
    cameras = _path_from(spec, frames, scene_scale, size, fov, fps, seed, option)
    chosen = up_axis_given or up_axis(cameras)
    plot_trajectory(cameras, out, title=f"{Path(spec).name}: {len(cameras)} cameras", up=chosen)
    how = "given" if up_axis_given else "from the cameras"
    console.print(f"wrote {out} (up = {axis_label(chosen)}, {how})", highlight=False)
