"""`dreamjourney render`: warp one photo along a camera path, no generation (the dry run).

It writes exactly what a completion model would be given: the partial frames, their hole masks
and depths, the cameras, a preview video and the point cloud.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dreamjourney.camera import Cameras, intrinsics_from_fov
from dreamjourney.camera.formats import load_cameras
from dreamjourney.cli.console import console, err_console, prepare_cpu_rasterizer
from dreamjourney.errors import InputError
from dreamjourney.io.depth import load_depth
from dreamjourney.io.images import load_image
from dreamjourney.pipelines.render import render_path
from dreamjourney.scene import World, heuristic_depth


def render(
    image: Path = typer.Argument(..., help="The photo to fly into."),
    trajectory: str = typer.Option(
        ..., "--trajectory", "-t", help="A preset name or a camera file (any supported format)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    depth: Path | None = typer.Option(
        None,
        "--depth",
        help="A .npy float z-depth (H x W) in the trajectory's units; default: a pop-up "
        "heuristic depth.",
    ),
    fov: float = typer.Option(
        60.0, "--fov", help="Horizontal field of view of the photo, degrees."
    ),
    intrinsics: Path | None = typer.Option(
        None, "--intrinsics", help="A 3x3 K in pixels (.npy, .txt or .json); overrides --fov."
    ),
    frames: int | None = typer.Option(
        None, "--frames", "-n", help="Number of frames (default: the preset's, or all in a file)."
    ),
    padding: int = typer.Option(
        0, "--padding", help="Extra pixels rendered on every side (a wider field of view)."
    ),
    fps: float = typer.Option(24.0, "--fps", help="Frame rate of render.mp4 and frame times."),
) -> None:
    """Render the photo's point cloud along a camera path: frames, hole masks, depth, cameras."""
    if frames is not None and frames < 1:
        raise InputError(f"must be at least 1, got {frames}", field="--frames")
    if padding < 0:
        raise InputError(f"must be >= 0, got {padding}", field="--padding")
    if not fps > 0:
        raise InputError(f"must be > 0, got {fps}", field="--fps")
    photo = load_image(image)
    _, h, w = photo.shape
    K = _read_intrinsics(intrinsics) if intrinsics is not None else _fov_intrinsics(fov, w, h)
    source = Cameras.create(torch.eye(4), width=w, height=h, K=K)
    z = (
        load_depth(depth, (h, w), field="--depth")
        if depth is not None
        else heuristic_depth(photo, source)
    )
    scene_scale = float(z[z > 0].median())
    cameras = _trajectory(trajectory, frames, source, scene_scale, fps)
    if len(cameras) == 0:
        raise InputError("the trajectory has no cameras", source=trajectory, field="--trajectory")

    prepare_cpu_rasterizer()
    world = World()
    world.add_frame(photo, z, source)
    progress = Progress(
        TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, transient=True,
    )  # fmt: skip
    with progress:
        task = progress.add_task("render", total=len(cameras))
        holes = render_path(
            world,
            cameras,
            out,
            padding=padding,
            fps=fps,
            progress=lambda done, _: progress.update(task, completed=done),
        )
    console.print(
        f"{len(cameras)} frames ({cameras.width + 2 * padding}x{cameras.height + 2 * padding}) "
        f"-> {out}; holes {100 * min(holes):.1f}-{100 * max(holes):.1f}% per frame; "
        f"world {len(world):,} points"
    )


def _fov_intrinsics(fov: float, w: int, h: int) -> torch.Tensor:
    if not 0 < fov < 180:
        raise InputError(f"must be in (0, 180) degrees, got {fov}", field="--fov")
    return intrinsics_from_fov(fov, w, h)


def _read_intrinsics(path: Path) -> torch.Tensor:
    """A 3x3 K from .npy, whitespace text, or JSON (a nested list, or {"K": ...})."""
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


def _trajectory(
    spec: str, frames: int | None, source: Cameras, scene_scale: float, fps: float
) -> Cameras:
    """Cameras from a preset (moved in units of the median depth, starting at the photo's
    camera) or a camera file (used as it is: its world frame is the photo's camera)."""
    try:
        from dreamjourney.camera.trajectories import resolve_trajectory
    except ImportError:
        path = Path(spec)
        if not path.exists():
            raise InputError(
                "no such camera file (trajectory presets are not available in this build)",
                source=spec,
                field="--trajectory",
            ) from None
        cameras = load_cameras(path)
        return cameras if frames is None else cameras[:frames]
    return resolve_trajectory(
        spec,
        frames,
        scene_scale=scene_scale,
        width=source.width,
        height=source.height,
        fov_deg=float(source.fov_deg()[0]),
        start=source,
        fps=fps,
    )
