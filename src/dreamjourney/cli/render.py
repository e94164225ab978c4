"""`dreamjourney render`: warp one photo along a camera path, no generation (the dry run).

It writes exactly what a completion model would be given: the partial frames, their hole masks
and depths, the cameras, a preview video and the point cloud.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from dreamjourney.cli.console import console, err_console, prepare_cpu_rasterizer
from dreamjourney.cli.options import parse_key_values, parse_size
from dreamjourney.errors import InputError

if TYPE_CHECKING:
    import torch


def render(
    image: Path = typer.Argument(..., help="The photo to fly into."),
    trajectory: str = typer.Option(
        ..., "--trajectory", "-t", help="A preset name or a camera file (any supported format)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    depth: Path | None = typer.Option(
        None,
        "--depth",
        help="A .npy float z-depth (H x W, the photo's size) in the camera file's units; "
        "default: a pop-up heuristic depth.",
    ),
    size: str | None = typer.Option(
        None,
        "--size",
        help="Frame size WxH (default: the photo's, at most 512 on the long side); the photo "
        "is centre-cropped to its aspect.",
    ),
    fov: float = typer.Option(
        60.0, "--fov", help="Horizontal field of view of the photo, degrees (presets)."
    ),
    intrinsics: Path | None = typer.Option(
        None,
        "--intrinsics",
        help="The photo's 3x3 K in pixels (.npy, .txt or .json); overrides --fov (presets: a "
        "camera file brings its own K).",
    ),
    frames: int | None = typer.Option(
        None, "--frames", "-n", help="Number of frames (default: the preset's, or all in a file)."
    ),
    path_scale: float | None = typer.Option(
        None,
        "--path-scale",
        help="World units per unit of the camera file (default: 1 with --depth, else fitted to "
        "the scene: see the README).",
    ),
    option: list[str] = typer.Option(
        [], "--set", help="Preset option KEY=VALUE (JSON value), repeatable."
    ),
    padding: int = typer.Option(
        0, "--padding", help="Extra pixels rendered on every side (a wider field of view)."
    ),
    fps: float = typer.Option(24.0, "--fps", help="Frame rate of render.mp4 and frame times."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Render the photo's point cloud along a camera path: frames, hole masks, depth, cameras."""
    import torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from dreamjourney.camera import Cameras
    from dreamjourney.camera.path_fit import fit_path
    from dreamjourney.camera.trajectories import PRESETS, resolve_trajectory
    from dreamjourney.io.depth import fit_depth, load_depth
    from dreamjourney.io.images import default_size, fit_image, load_image
    from dreamjourney.io.video import video_size
    from dreamjourney.pipelines.render import render_path
    from dreamjourney.scene import World, heuristic_depth
    from dreamjourney.scene.raster import warn_if_blank

    if frames is not None and frames < 1:
        raise InputError(f"must be at least 1, got {frames}", field="--frames")
    if padding < 0:
        raise InputError(f"must be >= 0, got {padding}", field="--padding")
    if not fps > 0:
        raise InputError(f"must be > 0, got {fps}", field="--fps")
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a directory; choose another --out", source=out)
    photo = load_image(image)
    _, photo_h, photo_w = photo.shape
    given_size = parse_size(size) if size else None
    options = parse_key_values(option, option="--set")
    file_cameras = None
    width, height = given_size or default_size(photo_w, photo_h)
    if trajectory in PRESETS:
        K = (
            _read_intrinsics(intrinsics)
            if intrinsics is not None
            else _fov_intrinsics(fov, photo_w, photo_h)
        )
        photo_camera = Cameras.create(torch.eye(4), width=photo_w, height=photo_h, K=K)
    else:
        if intrinsics is not None:
            raise InputError(
                "a camera file brings its own K; --intrinsics is for presets",
                field="--intrinsics",
            )
        file_cameras = resolve_trajectory(
            trajectory,
            frames,
            scene_scale=1.0,
            width=photo_w,
            height=photo_h,
            fov_deg=fov,
            fps=fps,
            size=given_size,
            options=options,
        )
        if len(file_cameras) == 0:
            raise InputError("the trajectory has no cameras", source=trajectory)
        photo_camera = file_cameras[0]
    z = load_depth(depth, (photo_h, photo_w), field="--depth") if depth is not None else None
    photo = fit_image(photo, width, height)
    source = Cameras(photo_camera.fit(width, height).K, torch.eye(4), width, height, torch.zeros(1))
    z = fit_depth(z, width, height) if z is not None else heuristic_depth(photo, source)
    scene_scale = float(z[z > 0].median())
    if file_cameras is None:
        cameras = resolve_trajectory(
            trajectory,
            frames,
            scene_scale=scene_scale,
            width=width,
            height=height,
            fov_deg=fov,
            start=source,
            fps=fps,
            options=options,
        )
    else:
        same_units = depth is not None and path_scale is None
        fit = fit_path(
            file_cameras,
            source,
            scene_scale=scene_scale,
            path_scale=1.0 if same_units else path_scale,
            given="--depth is in the camera file's units" if same_units else None,
        )
        cameras = fit.cameras
        err_console.print(fit.describe(Path(trajectory).name), highlight=False, soft_wrap=True)

    prepare_cpu_rasterizer(quiet)
    world = World()
    world.add_frame(photo, z, source)
    progress = Progress(
        TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, transient=True, disable=quiet,
    )  # fmt: skip
    with progress:
        task = progress.add_task("render", total=len(cameras))
        dry = render_path(
            world,
            cameras,
            out,
            padding=padding,
            fps=fps,
            progress=lambda done, _: progress.update(task, completed=done),
        )
    known, holes = dry.known, dry.holes
    w, h = width + 2 * padding, height + 2 * padding
    vw, vh = video_size(w, h)
    encoded = f" (render.mp4 {vw}x{vh}: H.264 needs even sides)" if (vw, vh) != (w, h) else ""
    console.print(
        f"{len(cameras)} frames ({w}x{h}){encoded} -> {out}; holes "
        f"{100 * float(holes.min()):.1f}-{100 * float(holes.max()):.1f}% per frame; "
        f"world {len(world):,} points",
        highlight=False,
        soft_wrap=True,
    )
    warn_if_blank(
        known,
        what="rendered frames",
        hint="try a smaller --path-scale" if file_cameras is not None else "try a shorter path",
    )


def _fov_intrinsics(fov: float, w: int, h: int) -> torch.Tensor:
    from dreamjourney.camera import intrinsics_from_fov

    if not 0 < fov < 180:
        raise InputError(f"must be in (0, 180) degrees, got {fov}", field="--fov")
    return intrinsics_from_fov(fov, w, h)


def _read_intrinsics(path: Path) -> torch.Tensor:
    """A 3x3 K from .npy, whitespace text, or JSON (a nested list, or {"K": ...})."""
    import numpy as np
    import torch

    try:
        if path.suffix == ".npy":
            value = np.load(path, allow_pickle=False)
        elif path.suffix == ".json":
            data = json.loads(path.read_text())
            value = np.asarray(data["K"] if isinstance(data, dict) else data, dtype=np.float64)
        else:
            value = np.loadtxt(path)
        K = np.asarray(value, dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"cannot read intrinsics ({exc})", source=path, field="--intrinsics"
        ) from None
    if K.shape != (3, 3):
        raise InputError(f"intrinsics must be 3x3, got shape {K.shape}", source=path)
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError("intrinsics need finite values and positive focal lengths", source=path)
    if not np.allclose(K[2], [0, 0, 1]):
        raise InputError(f"the last row of K must be [0, 0, 1], got {K[2].tolist()}", source=path)
    return torch.from_numpy(K).float()
