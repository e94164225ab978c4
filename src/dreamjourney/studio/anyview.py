"""The studio's anyview mode: a video's input, its first frame's world, the preview and the
run, all through `dreamjourney.pipelines.anyview_run` (what `dreamjourney anyview` runs).

The target path is a trajectory preset started at the input camera (as `anyview -t PRESET`).
A run writes that path as a native camera file and runs `anyview --method geometry
--target-frame world -t FILE` on it in a worker, so it flies exactly the path shown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import torch

from dreamjourney.camera import Cameras
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_write_text
from dreamjourney.io.clips import load_clip
from dreamjourney.io.images import save_image
from dreamjourney.models.registry import Backends, build_backends
from dreamjourney.pipelines.anyview_geometry import AnyViewGeometryPipeline
from dreamjourney.pipelines.anyview_run import AnyViewInput, prepare_input, target_cameras
from dreamjourney.scene import World
from dreamjourney.studio.workspace import refusal


class RunProgress(Protocol):
    """What a run reports to (the worker's `ProgressWriter`)."""

    def write(self, **fields: Any) -> None: ...

    def model_step(self, step: int, total: int) -> None: ...


DEFAULT_FOV = 60.0  # degrees, as `anyview` without `--fov`


def load_input(
    video: Path,
    backends: Backends,
    *,
    frames: int,
    size: tuple[int, int] | None,
    fov: float | None,
    name: str,
) -> AnyViewInput:
    """The first `frames` frames of `video` (resized to `size`, width x height), a static
    input camera and every frame's depth, as `anyview --method geometry` finds them. A video
    that cannot be read is refused by `name`, its name in the workspace."""
    try:
        clip, fps = load_clip(video, max_frames=frames, size=size)
    except InputError as exc:
        raise refusal(exc, video, "video", name) from None
    return prepare_input(clip, fps, backends, fov=fov or DEFAULT_FOV)


def first_world(inp: AnyViewInput) -> World:
    """Frame 0 lifted with its depth from the input camera: the cloud the 3D view shows."""
    world = World()
    world.add_frame(inp.clip[0], inp.first_depth, inp.cameras[:1], time=0.0, new_only=False)
    return world


def preset_path(
    inp: AnyViewInput, preset: str, options: dict[str, Any], fov: float | None
) -> Cameras:
    """The target cameras of a trajectory preset, one per input frame."""
    return target_cameras(
        preset, inp.cameras, scene_scale=inp.scene_scale, options=options, fov=fov or DEFAULT_FOV
    )


def write_preview(inp: AnyViewInput, target: Cameras, out: Path) -> list[float]:
    """The input warped to `target` (the geometry method's render and mask, before completion)
    into `out`: `frames/NNNNNN.png`, `masks/NNNNNN.png` (white = known), `cameras.json`;
    returns the share of hole pixels of every frame."""
    from dreamjourney.camera.formats import save_cameras

    if inp.depth is None:
        raise ValueError("the warp needs every frame's depth (prepare_input(every_frame=True))")
    render, mask = AnyViewGeometryPipeline.warp(inp.clip, inp.cameras, target, inp.depth)
    for t in range(len(render)):
        save_image(out / "frames" / f"{t:06d}.png", render[t])
        save_image(out / "masks" / f"{t:06d}.png", mask[t])
    save_cameras(target, out / "cameras.json", fps=inp.fps)
    holes = [round(h, 6) for h in (1 - mask.float().mean(dim=(1, 2))).tolist()]
    atomic_write_text(out / "holes.json", json.dumps(holes))
    return holes


def run(
    video: Path,
    out: Path,
    config: dict[str, Any],
    *,
    preset: str,
    seed: int,
    device: str,
    progress: RunProgress,
) -> None:
    """`anyview --method geometry --target-frame world -t config["trajectory"]` on the first
    `config["frames"]` frames of `video` into `out`; `progress` is the worker's
    `ProgressWriter` (its `model_step` follows the completion's steps)."""
    from dreamjourney.pipelines.anyview_run import run_geometry

    if (out / "side_by_side.mp4").is_file():  # written last: the run is complete
        progress.write(segments_total=1, segments_done=1, message="run already complete")
        return
    size = config.get("size")
    backends = build_backends(preset, device=device)
    backends.check_weights()
    inp = load_input(
        video, backends, frames=config["frames"], size=(size[0], size[1]) if size else None,
        fov=config.get("fov"), name=video.name,
    )  # fmt: skip
    target = target_cameras(
        config["trajectory"], inp.cameras, scene_scale=inp.scene_scale, frame="world"
    )
    progress.write(segments_total=1, segments_done=0, model="completion", step=0, steps=0)
    generator = torch.Generator().manual_seed(seed)
    run_geometry(backends, inp, target, out, generator=generator, progress=progress.model_step)
    progress.write(segments_done=1, lines=[f"anyview: {len(target)} frames"], model=None)
