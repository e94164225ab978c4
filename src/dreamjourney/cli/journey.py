"""`dreamjourney journey`: one photo -> a perpetual video along a camera path."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from dreamjourney.cli.console import console, err_console, prepare_cpu_rasterizer, task_bars
from dreamjourney.cli.options import parse_key_values, parse_size
from dreamjourney.errors import InputError

if TYPE_CHECKING:
    from rich.progress import Progress

    from dreamjourney.pipelines.journey import JourneyCallback


def _rich_callback(progress: Progress) -> JourneyCallback:
    """Segments bar, a bar for the steps of the current model call, a line per segment."""
    from dreamjourney.io.rundir import SegmentRecord
    from dreamjourney.pipelines.journey import JourneyCallback

    class RichCallback(JourneyCallback):
        def __init__(self) -> None:
            self.segments = progress.add_task("segments", total=None)
            self.steps = progress.add_task("", total=None, visible=False)
            self._t0 = time.perf_counter()

        def run_start(self, total: int, done: int) -> None:
            progress.start()  # only now: errors found before this print without bars
            progress.update(self.segments, total=total, completed=done)

        def segment_start(self, index: int) -> None:
            progress.update(self.segments, description=f"segment {index}")

        def model_start(self, name: str) -> None:
            progress.reset(self.steps, total=None, description=f"  {name}", visible=True)

        def model_step(self, step: int, total: int) -> None:
            progress.update(self.steps, completed=step, total=total)

        def segment_end(self, record: SegmentRecord) -> None:
            progress.advance(self.segments)
            progress.update(self.steps, visible=False)
            s = record.seconds
            progress.console.print(
                f"segment {record.index}: {record.num_frames} frames "
                f"({record.stage1_frames} stage I + {record.stage2_frames} stage II) in "
                f"{s.get('total', 0):.1f} s (models {s.get('models', 0):.1f} s), "
                f"world {record.world_points:,} points (+{record.points_added:,})",
                highlight=False,
            )

        def finishing(self, what: str) -> None:
            progress.update(self.steps, description=f"  writing {what}", total=None, visible=True)

    return RichCallback()


def journey(
    image: Path = typer.Argument(..., help="The photo to start from (PNG, JPEG, ...)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run directory (created; reopened to resume)."
    ),
    trajectory: str = typer.Option(
        "forward", "--trajectory", "-t", help="A trajectory preset name or a camera file."
    ),
    option: list[str] = typer.Option(
        [], "--set", help="Preset option KEY=VALUE (JSON value), repeatable."
    ),
    path_scale: float | None = typer.Option(
        None,
        "--path-scale",
        help="World units per unit of the camera file (default: fitted to the scene; see the "
        "README).",
    ),
    segments: int | None = typer.Option(
        None, "--segments", "-n", help="Total segments (default 3, or all of a camera file)."
    ),
    frames: int | None = typer.Option(
        None,
        "--frames",
        "-f",
        help="Stage I frames per segment (default: 16, or what fills one clip of the preset's "
        "models; see `dreamjourney models`).",
    ),
    preset: str = typer.Option("offline", "--preset", help="Backends: offline, tiny, wan, ..."),
    config: Path | None = typer.Option(None, "--config", help="Backend config file (overrides)."),
    prompt: str | None = typer.Option(
        None, "--prompt", help="Use this prompt instead of captions."
    ),
    no_motion: bool = typer.Option(False, "--no-motion", help="Skip stage II (animation)."),
    motion_frames: int | None = typer.Option(
        None,
        "--motion-frames",
        help="Animated frames per segment (default: 8, or what fills one clip of the preset's "
        "animator).",
    ),
    size: str | None = typer.Option(
        None,
        "--size",
        help="Frame size WxH (default: the preset models' native size, else the photo's, at "
        "most 512 on its long side).",
    ),
    fov: float | None = typer.Option(
        None,
        "--fov",
        help="Horizontal field of view of the photo, degrees (default: the depth model's "
        "estimate, e.g. Depth Pro's, else 60).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of every generator."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    resume: bool = typer.Option(False, "--resume", help="Continue a run that stopped."),
    extend: int = typer.Option(0, "--extend", help="Add N segments to a finished run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """One photo -> a perpetual video flying along a camera path (DreamJourney)."""
    from dreamjourney.io.images import default_size, load_image
    from dreamjourney.models.registry import NATIVE, load_config
    from dreamjourney.pipelines.journey import JourneyConfig, JourneyPipeline

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"expected cpu or cuda, got {device!r}", field="--device")
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a directory; choose another --out", source=out)
    photo = load_image(image)
    backend_config = load_config(config) if config is not None else None
    native = NATIVE.get((backend_config or {}).get("preset", preset))
    if size:
        width, height = parse_size(size)
    elif native is not None:
        width, height = native.size
    else:
        width, height = default_size(photo.shape[2], photo.shape[1])
    if frames is None:
        frames = native.frames if native is not None else 16
    if motion_frames is None:
        motion_frames = native.motion_frames if native is not None else 8
    pipe = JourneyPipeline.from_preset(preset, config=backend_config, device=device)
    pipe.backends.check_weights()  # a missing model is an error now, not after segment 3
    if pipe.backends.is_noise:
        err_console.print(
            "[bold yellow on red] WARNING [/] preset 'tiny' uses RANDOM-WEIGHT models: "
            "its frames are NOISE. It only exercises the code paths.",
        )
    if device == "cpu":
        prepare_cpu_rasterizer(quiet)
    journey_config = JourneyConfig(
        trajectory=trajectory,
        trajectory_options=parse_key_values(option, option="--set"),
        path_scale=path_scale,
        frames_per_segment=frames,
        motion=not no_motion,
        motion_frames=motion_frames,
        prompt=prompt,
        width=width,
        height=height,
        fov_deg=fov,
    )
    progress = task_bars(quiet, transient=True)
    try:
        result = pipe(
            image,
            out,
            config=journey_config,
            num_segments=segments,
            seed=seed,
            resume=resume,
            extend=extend,
            device=device,
            callback=None if quiet else _rich_callback(progress),
        )
    finally:
        progress.stop()
    if result.path_fit:
        err_console.print(result.path_fit, highlight=False, soft_wrap=True)
    if result.already_complete and not result.segments_made:
        console.print(f"run already complete ({result.run.manifest.num_segments} segments)")
    console.print(f"video: {result.video} ({result.num_frames} frames)", highlight=False)
