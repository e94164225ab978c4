"""The steps of `dreamjourney anyview` that the studio shares with the command: the input's
cameras and depth, the target path, the geometry method's run and the files it writes.

Every tensor of a clip is (T, 3, H, W) in [0, 1]; depth is (T, H, W) z-depth in the units of
the input cameras; cameras are OpenCV c2w.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from dreamjourney.camera import Cameras
from dreamjourney.data.types import depth_scale
from dreamjourney.models.registry import Backends
from dreamjourney.pipelines.anyview_geometry import AnyViewGeometryOutput, AnyViewGeometryPipeline


@dataclass
class AnyViewInput:
    """The input clip as the methods see it.

    clip: (T, 3, H, W); fps: its frame rate; cameras: its T cameras; depth: (T, H, W) of every
    frame (the geometry method), else None; first_depth: (H, W) of frame 0; how: how `depth`
    was found, in words (None when it was given or not needed).
    """

    clip: Tensor
    fps: float
    cameras: Cameras
    depth: Tensor | None
    first_depth: Tensor
    how: str | None = None

    @property
    def scene_scale(self) -> float:
        """The median depth of frame 0 (1 when it has none): what a preset path moves by."""
        return depth_scale(self.first_depth) or 1.0


def prepare_input(
    clip: Tensor,
    fps: float,
    backends: Backends,
    *,
    cameras: Cameras | None = None,
    depth: Tensor | None = None,
    every_frame: bool = True,
    fov: float = 60.0,
) -> AnyViewInput:
    """The input's cameras and depth, as `anyview` finds them.

    Args:
        clip: (T, 3, H, W) in [0, 1], at `fps`.
        backends: the preset's models (its depth estimator is used).
        cameras: the T input cameras in a unit of their own (a camera file), or None for a
            static camera at the origin, its focal from the depth model (else `fov` degrees).
        depth: (T, H, W) given input depth in the cameras' units, or None to estimate it.
        every_frame: estimate the depth of every frame (the geometry method), else of frame 0.
    """
    num_frames, _, height, width = clip.shape
    first = None
    if cameras is None:
        first = backends.depth.estimate(clip[0])
        cameras = static_camera(num_frames, width, height, fps, fov, first.focal_px)
    if depth is not None:
        return AnyViewInput(clip, fps, cameras, depth, depth[0])
    if every_frame:
        geometry = AnyViewGeometryPipeline(backends.depth, backends.completer)
        estimated = geometry.estimate_depth(clip, cameras, metric_cameras=first is None)
        return AnyViewInput(clip, fps, cameras, estimated.depth, estimated.depth[0], estimated.how)
    if first is None:
        first = backends.depth.estimate(clip[0])
    return AnyViewInput(clip, fps, cameras, None, first.depth)


def static_camera(
    num_frames: int, width: int, height: int, fps: float, fov: float, focal_px: float | None
) -> Cameras:
    """A camera at the origin for every frame; focal `focal_px` when given, else `fov` degrees."""
    c2w = torch.eye(4).expand(num_frames, 4, 4)
    times = torch.arange(num_frames) / fps
    if focal_px is None:
        return Cameras.create(c2w, width=width, height=height, fov_deg=fov, times=times)
    K = torch.tensor([[focal_px, 0, width / 2], [0, focal_px, height / 2], [0, 0, 1.0]])
    return Cameras.create(c2w, width=width, height=height, K=K, times=times)


def target_cameras(
    spec: str,
    cams_in: Cameras,
    *,
    scene_scale: float,
    frame: str = "relative",
    path_scale: float | None = None,
    same_units: bool = False,
    options: dict | None = None,
    fov: float = 60.0,
    say: Callable[[str], None] = lambda line: None,
) -> Cameras:
    """The target path at the input's times.

    A preset starts at the first input camera and moves by the scene scale. A camera file keeps
    its aspect and K (scaled to at most the input's long side), is resampled to the input's
    frames, and is either in the input cameras' world ("world"; translations times
    `path_scale` if given) or placed at the first input camera ("relative", `fit_path`; the
    default scale is 1 when the file shares the input cameras' unit, `same_units`, else fitted).
    What was done with a camera file is told to `say`, in one line.
    """
    from dreamjourney.camera.keyframes import resample_to_clip
    from dreamjourney.camera.path_fit import fit_path
    from dreamjourney.camera.trajectories import PRESETS, make_trajectory, resolve_trajectory

    options = options or {}
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
        say(f"target camera file {name}: " + "; ".join(notes))
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
    say(placed.describe(name) + "; " + "; ".join(notes))
    return placed.cameras.with_times(times)


def run_geometry(
    backends: Backends,
    inp: AnyViewInput,
    target: Cameras,
    out: Path,
    *,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnyViewGeometryOutput:
    """`anyview --method geometry`: warp and complete, then write `render.mp4` (the warped
    input), `mask.mp4` (white = known) and `write_results`' files into `out`. Warns
    (`InputWarning`) when the target cameras see almost nothing of the input."""
    from dreamjourney.io.video import write_video
    from dreamjourney.scene.raster import warn_if_blank

    geometry = AnyViewGeometryPipeline(backends.depth, backends.completer)
    result = geometry(
        inp.clip, inp.cameras, target, input_depth=inp.depth, generator=generator,
        progress=progress,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_video(out / "render.mp4", result.render, fps=inp.fps)
    write_video(out / "mask.mp4", result.mask.float()[:, None].expand(-1, 3, -1, -1), fps=inp.fps)
    warn_if_blank(
        result.mask,
        what="target views (input warped to the target cameras)",
        hint="the target cameras see little of what the input saw (check --path-scale "
        "and --target-frame)",
    )
    write_results(out, inp.clip, result.frames, target, inp.fps)
    return result


def write_results(out: Path, clip: Tensor, output: Tensor, target: Cameras, fps: float) -> None:
    """Every method's files: `video.mp4` (the output), `cameras.json` (the target cameras,
    native) and `side_by_side.mp4` (input | output)."""
    from dreamjourney.camera.formats import save_cameras
    from dreamjourney.io.video import write_video

    out.mkdir(parents=True, exist_ok=True)
    write_video(out / "video.mp4", output, fps=fps)
    save_cameras(target, out / "cameras.json", fps=fps)
    write_video(out / "side_by_side.mp4", side_by_side(clip, output), fps=fps)


def side_by_side(clip: Tensor, output: Tensor) -> Tensor:
    """Input | output, the input resized to the output's height (keeping its aspect)."""
    h = output.shape[-2]
    if clip.shape[-2] != h:
        w = max(1, round(clip.shape[-1] * h / clip.shape[-2]))
        clip = torch.nn.functional.interpolate(clip, size=(h, w), mode="area").clamp(0, 1)
    return torch.cat([clip, output.to(clip)], dim=-1)
