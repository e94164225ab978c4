"""`dreamjourney anyview`: one video of a dynamic scene -> the same moments from another camera path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from dreamjourney.cli.console import console, err_console, prepare_cpu_rasterizer
from dreamjourney.cli.options import parse_key_values, parse_size
from dreamjourney.errors import InputError, warn_input

if TYPE_CHECKING:
    from torch import Tensor

    from dreamjourney.camera import Cameras


def anyview(
    video: Path = typer.Argument(..., help="Input video file, or a folder of frames (PNG/JPG)."),
    trajectory: str = typer.Option(
        ..., "--trajectory", "-t", help="Target camera path: a preset name or a camera file."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    method: str = typer.Option(
        "geometry",
        help="geometry (training-free), learned (our AnyView-style model) or anyview (the "
        "released AnyView model).",
    ),
    input_cameras: Path | None = typer.Option(
        None,
        help="Cameras of the input video (any camera format; another count than the video's "
        "frames is resampled to them); default: a static camera.",
    ),
    target_frame: str | None = typer.Option(
        None,
        help="world: a target camera file is in the input cameras' world; relative: its first "
        "camera is the first input camera's. Default: world with --input-cameras, else relative.",
    ),
    path_scale: float | None = typer.Option(
        None,
        "--path-scale",
        help="Input world units per unit of the target camera file (default: 1 with "
        "--input-cameras, else fitted to the scene; see the README).",
    ),
    option: list[str] = typer.Option(
        [], "--set", help="Preset option KEY=VALUE (JSON value), repeatable."
    ),
    depth: Path | None = typer.Option(
        None, help="Input z-depth, .npy (T,H,W) in the units of the input cameras (geometry)."
    ),
    preset: str = typer.Option("offline", help="Model preset for depth and completion."),
    config: Path | None = typer.Option(None, help="Model config file (JSON/TOML)."),
    model: str | None = typer.Option(
        None,
        help="learned: a trained pipeline (folder or hub id); anyview: anyview_dvs_2b.pt (with "
        "tokenizer.pth and default_text_emb.pt beside it) or a converted folder.",
    ),
    frames: int | None = typer.Option(None, min=1, help="Use the first N frames."),
    size: str | None = typer.Option(None, help="Resize the input to WxH."),
    fov: float = typer.Option(60.0, help="Horizontal field of view of a default input camera."),
    steps: int | None = typer.Option(
        None, min=1, help="Denoising steps (learned: 25, anyview: 35 as released)."
    ),
    moment_scale: float = typer.Option(
        1 / 8,
        help="anyview: Plücker moment scale (1/8 most scenes, 1/16 driving, 1/32 Kubric), "
        "for cameras in metres.",
    ),
    resolution: int = typer.Option(
        576, help="anyview: long side of the model's grid in pixels (576 as released)."
    ),
    dtype: str | None = typer.Option(
        None, help="anyview: bfloat16 (default, as released) or float32."
    ),
    cpu_offload: bool = typer.Option(
        False, help="anyview: keep each model on the CPU until it runs (needs --device cuda)."
    ),
    vae_tiling: bool = typer.Option(False, help="anyview: encode and decode in spatial tiles."),
    seed: int = typer.Option(0, help="Random seed."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Re-film a dynamic video from a new camera path (AnyView)."""
    import torch

    from dreamjourney.camera.formats import load_cameras, save_cameras
    from dreamjourney.camera.keyframes import resample_to_clip
    from dreamjourney.data.types import depth_scale
    from dreamjourney.io.clips import load_clip
    from dreamjourney.io.depth import load_depth
    from dreamjourney.io.video import video_size, write_video

    if method not in ("geometry", "learned", "anyview"):
        raise InputError(
            f"unknown method {method!r}; use geometry, learned or anyview", field="--method"
        )
    if target_frame not in (None, "relative", "world"):
        raise InputError("must be 'relative' or 'world'", field="--target-frame")
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", source=out)
    clip, fps = load_clip(video, max_frames=frames, size=parse_size(size) if size else None)
    num_frames, _, height, width = clip.shape
    times = torch.arange(num_frames) / fps

    from dreamjourney.models.registry import build_backends

    backends = build_backends(preset, config=_load_config(config), device=device)
    if backends.is_noise:
        err_console.print("[bold yellow]preset 'tiny': random weights, the output is noise[/]")

    depth_result = None
    if input_cameras is not None:
        file_cameras = load_cameras(input_cameras, size=(width, height))
        cams_in, how = resample_to_clip(file_cameras, times)
        if how != "one per frame":
            _say(f"input cameras: {len(file_cameras)} in the file, taken {how} for the "
                 f"video's {num_frames} frames")  # fmt: skip
        if abs(cams_in.width * height - cams_in.height * width) > max(width, height):
            warn_input(
                f"the cameras are for {cams_in.width}x{cams_in.height} images but the video is "
                f"{width}x{height}: their K is scaled to the video, stretching it",
                source=input_cameras,
            )
        cams_in = cams_in.resize(width, height)
    else:
        depth_result = backends.depth.estimate(clip[0])
        cams_in = _static_camera(num_frames, width, height, fps, fov, depth_result.focal_px)

    from dreamjourney.pipelines.anyview_geometry import AnyViewGeometryPipeline

    geometry = AnyViewGeometryPipeline(backends.depth, backends.completer)
    input_depth = None
    if depth is not None:
        input_depth = load_depth(depth, (num_frames, height, width))
        first_depth = input_depth[0]
    elif method == "geometry":
        estimated = geometry.estimate_depth(clip, cams_in, metric_cameras=input_cameras is not None)
        _say(f"input depth: {estimated.how}")
        input_depth = estimated.depth
        first_depth = input_depth[0]
    else:
        first_depth = (depth_result or backends.depth.estimate(clip[0])).depth
    scene_scale = depth_scale(first_depth) or 1.0
    target = _target_cameras(
        trajectory,
        cams_in,
        scene_scale=scene_scale,
        frame=target_frame or ("world" if input_cameras is not None else "relative"),
        path_scale=path_scale,
        same_units=input_cameras is not None,
        options=parse_key_values(option, option="--set"),
        fov=fov,
    )

    out.mkdir(parents=True, exist_ok=True)
    if method == "geometry":
        from dreamjourney.scene.raster import warn_if_blank

        if device == "cpu":
            prepare_cpu_rasterizer(quiet)
        generator = torch.Generator().manual_seed(seed)
        result = geometry(clip, cams_in, target, input_depth=input_depth, generator=generator)
        output = result.frames
        write_video(out / "render.mp4", result.render, fps=fps)
        write_video(out / "mask.mp4", result.mask.float()[:, None].expand(-1, 3, -1, -1), fps=fps)
        warn_if_blank(
            result.mask,
            what="target views (input warped to the target cameras)",
            hint="the target cameras see little of what the input saw (check --path-scale "
            "and --target-frame)",
        )
    elif method == "learned":
        from dreamjourney.pipelines.anyview_learned import learned_method

        # the benchmark's method: the model sees camera moves in units of the scene scale,
        # as in training
        learned = learned_method(
            model,
            preset=preset,
            num_inference_steps=steps or 25,
            seed=seed,
            scene_scale=scene_scale,
            device=device,
        )
        output = learned(clip, cams_in, target, input_depth=input_depth)
    else:
        from dreamjourney.models.weights import MemoryOptions
        from dreamjourney.pipelines.anyview_official import load_anyview_official

        memory = MemoryOptions(dtype=dtype, cpu_offload=cpu_offload, vae_tiling=vae_tiling)
        released = load_anyview_official(model, preset=preset, device=device, memory=memory)
        result = released(
            clip, cams_in, target, moment_scale=moment_scale, num_inference_steps=steps or 35,
            seed=seed, long_side=resolution,
        )  # fmt: skip
        output, target = result.frames, result.cameras
    write_video(out / "video.mp4", output, fps=fps)
    save_cameras(target, out / "cameras.json", fps=fps)
    write_video(out / "side_by_side.mp4", _side_by_side(clip, output), fps=fps)
    h, w = output.shape[-2:]
    stored = video_size(w, h)
    padded = (
        f" (stored {stored[0]}x{stored[1]}: H.264 needs even sides)" if stored != (w, h) else ""
    )
    console.print(
        f"wrote {out / 'video.mp4'} ({num_frames} frames, {w}x{h}{padded}, {method})",
        highlight=False,
        soft_wrap=True,
    )


def _say(line: str) -> None:
    err_console.print(line, highlight=False, soft_wrap=True)


def _load_config(path: Path | None) -> dict | None:
    if path is None:
        return None
    from dreamjourney.models.registry import load_config

    return load_config(path)


def _static_camera(
    num_frames: int, width: int, height: int, fps: float, fov: float, focal_px: float | None
) -> Cameras:
    """A camera at the origin for every frame; focal from depth estimation when it gives one."""
    import torch

    from dreamjourney.camera import Cameras

    c2w = torch.eye(4).expand(num_frames, 4, 4)
    times = torch.arange(num_frames) / fps
    if focal_px is None:
        return Cameras.create(c2w, width=width, height=height, fov_deg=fov, times=times)
    K = torch.tensor([[focal_px, 0, width / 2], [0, focal_px, height / 2], [0, 0, 1.0]])
    return Cameras.create(c2w, width=width, height=height, K=K, times=times)


def _target_cameras(
    spec: str,
    cams_in: Cameras,
    *,
    scene_scale: float,
    frame: str,
    path_scale: float | None,
    same_units: bool,
    options: dict,
    fov: float,
) -> Cameras:
    """The target path at the input's times.

    A preset starts at the first input camera and moves by the scene scale. A camera file keeps
    its aspect and K (scaled to at most the input's long side), is resampled to the input's
    frames, and is either in the input cameras' world ("world"; translations times
    `path_scale` if given) or placed at the first input camera ("relative", `fit_path`; the
    default scale is 1 when the file shares the input cameras' unit, `same_units`, else fitted).
    """

    from dreamjourney.camera import Cameras
    from dreamjourney.camera.keyframes import resample_to_clip
    from dreamjourney.camera.path_fit import fit_path
    from dreamjourney.camera.trajectories import PRESETS, make_trajectory, resolve_trajectory

    times = cams_in.times
    if spec in PRESETS:
        return make_trajectory(
            spec,
            len(cams_in),
            scene_scale=scene_scale,
            width=cams_in.width,
            height=cams_in.height,
            fov_deg=fov,
            start=cams_in[0],
            **options,
        ).with_times(times)
    file_cameras = resolve_trajectory(
        spec,
        None,
        scene_scale=scene_scale,
        width=cams_in.width,
        height=cams_in.height,
        fov_deg=fov,
        size=(cams_in.width, cams_in.height),
        options=options,
    )
    target, how = resample_to_clip(file_cameras, times)
    shrink = min(1.0, max(cams_in.width, cams_in.height) / max(target.width, target.height))
    width, height = max(1, round(target.width * shrink)), max(1, round(target.height * shrink))
    target = target.fit(width, height)
    name = Path(spec).name
    notes = [f"{len(file_cameras)} in the file, taken {how} for the video's {len(times)} frames"]
    if (width, height) != (cams_in.width, cams_in.height):
        notes.append(f"output {width}x{height}: the file's aspect and K (the input is "
                     f"{cams_in.width}x{cams_in.height})")  # fmt: skip
    if frame == "world":
        if path_scale is not None and path_scale != 1.0:
            c2w = target.c2w.clone()
            c2w[:, :3, 3] *= path_scale
            target = Cameras(target.K, c2w, width, height, times)
        notes.append(
            "in the input cameras' world"
            + (f", translations x{path_scale:.4g}" if path_scale not in (None, 1.0) else "")
        )
        _say(f"target camera file {name}: " + "; ".join(notes))
        return target
    start = Cameras(target.K[:1], cams_in.c2w[:1], width, height, times[:1])
    shared = path_scale is None and same_units
    placed = fit_path(
        target,
        start,
        scene_scale=scene_scale,
        path_scale=1.0 if shared else path_scale,
        given="the file is in the input cameras' unit" if shared else None,
    )
    _say(placed.describe(name) + "; " + "; ".join(notes))
    return placed.cameras.with_times(times)


def _side_by_side(clip: Tensor, output: Tensor) -> Tensor:
    """Input | output, the input resized to the output's height (keeping its aspect)."""
    import torch

    h = output.shape[-2]
    if clip.shape[-2] != h:
        w = max(1, round(clip.shape[-1] * h / clip.shape[-2]))
        clip = torch.nn.functional.interpolate(clip, size=(h, w), mode="area").clamp(0, 1)
    return torch.cat([clip, output.to(clip)], dim=-1)
