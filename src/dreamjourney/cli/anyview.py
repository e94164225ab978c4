"""`dreamjourney anyview`: one video of a dynamic scene -> the same moments from another camera path."""

from __future__ import annotations

from pathlib import Path

import typer

from dreamjourney.cli.console import console, err_console, prepare_cpu_rasterizer
from dreamjourney.cli.options import parse_key_values, parse_size
from dreamjourney.errors import InputError, warn_input


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

    from dreamjourney.camera.formats import load_cameras
    from dreamjourney.camera.keyframes import resample_to_clip
    from dreamjourney.io.clips import load_clip
    from dreamjourney.io.depth import load_depth
    from dreamjourney.io.video import video_size

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
    from dreamjourney.pipelines.anyview_run import (
        prepare_input,
        run_geometry,
        target_cameras,
        write_results,
    )

    backends = build_backends(preset, config=_load_config(config), device=device)
    if backends.is_noise:
        err_console.print("[bold yellow]preset 'tiny': random weights, the output is noise[/]")

    cams_in = None
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
    given_depth = load_depth(depth, (num_frames, height, width)) if depth is not None else None
    inp = prepare_input(
        clip, fps, backends, cameras=cams_in, depth=given_depth,
        every_frame=method == "geometry", fov=fov,
    )  # fmt: skip
    if inp.how is not None:
        _say(f"input depth: {inp.how}")
    target = target_cameras(
        trajectory,
        inp.cameras,
        scene_scale=inp.scene_scale,
        frame=target_frame or ("world" if input_cameras is not None else "relative"),
        path_scale=path_scale,
        same_units=input_cameras is not None,
        options=parse_key_values(option, option="--set"),
        fov=fov,
        say=_say,
    )

    out.mkdir(parents=True, exist_ok=True)
    if method == "geometry":
        if device == "cpu":
            prepare_cpu_rasterizer(quiet)
        generator = torch.Generator().manual_seed(seed)
        output = run_geometry(backends, inp, target, out, generator=generator).frames
    elif method == "learned":
        from dreamjourney.pipelines.anyview_learned import learned_method

        # the benchmark's method: the model sees camera moves in units of the scene scale,
        # as in training
        learned = learned_method(
            model,
            preset=preset,
            num_inference_steps=steps or 25,
            seed=seed,
            scene_scale=inp.scene_scale,
            device=device,
        )
        output = learned(clip, inp.cameras, target, input_depth=inp.depth)
        write_results(out, clip, output, target, fps)
    else:
        from dreamjourney.models.weights import MemoryOptions
        from dreamjourney.pipelines.anyview_official import load_anyview_official

        memory = MemoryOptions(dtype=dtype, cpu_offload=cpu_offload, vae_tiling=vae_tiling)
        released = load_anyview_official(model, preset=preset, device=device, memory=memory)
        result = released(
            clip, inp.cameras, target, moment_scale=moment_scale,
            num_inference_steps=steps or 35, seed=seed, long_side=resolution,
        )  # fmt: skip
        output = result.frames
        write_results(out, clip, output, result.cameras, fps)
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
