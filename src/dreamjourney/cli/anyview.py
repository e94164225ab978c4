"""`dreamjourney anyview`: one video of a dynamic scene -> the same moments from another camera path."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from dreamjourney.camera import Cameras
from dreamjourney.camera.formats import load_cameras, save_cameras
from dreamjourney.camera.trajectories import PRESETS, make_trajectory
from dreamjourney.cli.console import console, err_console, prepare_cpu_rasterizer
from dreamjourney.cli.options import parse_size
from dreamjourney.data.types import depth_scale
from dreamjourney.errors import InputError
from dreamjourney.io.clips import load_clip
from dreamjourney.io.depth import load_depth
from dreamjourney.io.video import write_video


def anyview(
    video: Path = typer.Argument(..., help="Input video file, or a folder of frames (PNG/JPG)."),
    trajectory: str = typer.Option(
        ..., "--trajectory", "-t", help="Target camera path: a preset name or a camera file."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    method: str = typer.Option(
        "geometry", help="geometry (training-free) or learned (AnyView model)."
    ),
    input_cameras: Path | None = typer.Option(
        None, help="Cameras of the input video (any camera format); default: a static camera."
    ),
    target_frame: str = typer.Option(
        "relative",
        help="relative: a target camera file is relative to the first input camera; world: as is.",
    ),
    depth: Path | None = typer.Option(
        None, help="Input z-depth, .npy (T,H,W) in the units of the input cameras (geometry)."
    ),
    preset: str = typer.Option("offline", help="Model preset for depth and completion."),
    config: Path | None = typer.Option(None, help="Model config file (JSON/TOML)."),
    model: str | None = typer.Option(None, help="AnyView model: hub id or local path (learned)."),
    frames: int | None = typer.Option(None, min=1, help="Use the first N frames."),
    size: str | None = typer.Option(None, help="Resize the input to WxH."),
    fov: float = typer.Option(60.0, help="Horizontal field of view of a default input camera."),
    steps: int = typer.Option(25, min=1, help="Denoising steps (learned method)."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Re-film a dynamic video from a new camera path (AnyView)."""
    if method not in ("geometry", "learned"):
        raise InputError(f"unknown method {method!r}; use geometry or learned", field="--method")
    if target_frame not in ("relative", "world"):
        raise InputError("must be 'relative' or 'world'", field="--target-frame")
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", source=out)
    clip, fps = load_clip(video, max_frames=frames, size=parse_size(size) if size else None)
    num_frames, _, height, width = clip.shape

    from dreamjourney.models.registry import build_backends

    backends = build_backends(preset, config=_load_config(config), device=device)
    if backends.is_noise:
        err_console.print("[bold yellow]preset 'tiny': random weights, the output is noise[/]")

    depth_result = None
    if input_cameras is not None:
        cams_in = load_cameras(input_cameras)
        if len(cams_in) != num_frames:
            raise InputError(
                f"has {len(cams_in)} cameras but the video has {num_frames} frames",
                source=input_cameras,
            )
        cams_in = cams_in.resize(width, height).with_times(torch.arange(num_frames) / fps)
    else:
        depth_result = backends.depth.estimate(clip[0])
        cams_in = _static_camera(num_frames, width, height, fps, fov, depth_result.focal_px)

    input_depth = None
    if depth is not None:
        input_depth = load_depth(depth, (num_frames, height, width))
        first_depth = input_depth[0]
    else:
        first_depth = (depth_result or backends.depth.estimate(clip[0])).depth
    scene_scale = depth_scale(first_depth) or 1.0
    target = _target_cameras(
        trajectory, cams_in, num_frames, scene_scale, target_frame, width, height, fov
    )

    out.mkdir(parents=True, exist_ok=True)
    if method == "geometry":
        from dreamjourney.pipelines.anyview_geometry import AnyViewGeometryPipeline

        pipe = AnyViewGeometryPipeline(backends.depth, backends.completer)
        if device == "cpu":
            prepare_cpu_rasterizer()
        generator = torch.Generator().manual_seed(seed)
        result = pipe(clip, cams_in, target, input_depth=input_depth, generator=generator)
        output = result.frames
        write_video(out / "render.mp4", result.render, fps=fps)
        write_video(out / "mask.mp4", result.mask.float()[:, None].expand(-1, 3, -1, -1), fps=fps)
    else:
        from dreamjourney.pipelines.anyview_learned import learned_method

        # the benchmark's method: the model sees camera moves in units of the scene scale,
        # as in training
        learned = learned_method(
            model,
            preset=preset,
            num_inference_steps=steps,
            seed=seed,
            scene_scale=scene_scale,
            device=device,
        )
        output = learned(clip, cams_in, target, input_depth=input_depth)
    write_video(out / "video.mp4", output, fps=fps)
    save_cameras(target, out / "cameras.json", fps=fps)
    write_video(out / "side_by_side.mp4", torch.cat([clip, output.to(clip)], dim=-1), fps=fps)
    console.print(f"wrote {out / 'video.mp4'} ({num_frames} frames, {width}x{height}, {method})")


def _load_config(path: Path | None) -> dict | None:
    if path is None:
        return None
    from dreamjourney.models.registry import load_config

    return load_config(path)


def _static_camera(
    num_frames: int, width: int, height: int, fps: float, fov: float, focal_px: float | None
) -> Cameras:
    """A camera at the origin for every frame; focal from depth estimation when it gives one."""
    c2w = torch.eye(4).expand(num_frames, 4, 4)
    times = torch.arange(num_frames) / fps
    if focal_px is None:
        return Cameras.create(c2w, width=width, height=height, fov_deg=fov, times=times)
    K = torch.tensor([[focal_px, 0, width / 2], [0, focal_px, height / 2], [0, 0, 1.0]])
    return Cameras.create(c2w, width=width, height=height, K=K, times=times)


def _target_cameras(
    spec: str,
    cams_in: Cameras,
    num_frames: int,
    scene_scale: float,
    target_frame: str,
    width: int,
    height: int,
    fov: float,
) -> Cameras:
    """The target path at the input's times: a preset starting at the first input camera, or a file."""
    if spec in PRESETS:
        target = make_trajectory(
            spec,
            num_frames,
            scene_scale=scene_scale,
            width=width,
            height=height,
            fov_deg=fov,
            start=cams_in[0],
        )
    else:
        path = Path(spec)
        if not path.exists():
            raise InputError(
                f"is neither a preset ({', '.join(sorted(PRESETS))}) nor an existing file",
                field="--trajectory",
            )
        target = load_cameras(path)
        if len(target) != num_frames:
            raise InputError(
                f"has {len(target)} cameras but the video has {num_frames} frames", source=path
            )
        if target_frame == "relative":
            target = target.transform(cams_in.c2w[0])
        target = (
            target.resize(width, height)
            if (target.width, target.height) != (width, height)
            else target
        )
    return target.with_times(cams_in.times)
