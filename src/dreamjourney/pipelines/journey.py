"""DreamJourney: one photo -> a perpetual video along a camera path, with moving objects.

For each segment:

* Stage I: lay out the segment's cameras (a preset continues from where the last segment
  ended; a trajectory file is cut into segments), render partial frames and hole masks from
  the world, complete them with the video completer, estimate the depth of completed frames,
  align it (robust scale and shift) to the rendered depth on known pixels and add only the
  newly revealed pixels to the world.
* Stage II (unless motion is off or there is no animator): caption the last view (or use the
  given prompt), animate it with the camera fixed, and fold the last animated frame back into
  the world, replacing the part of the view that moved.

A segment starts from the world state saved on disk at its start (`state/world_KKKK.npz`) and
uses a generator seeded from (seed, segment index), so a resumed run makes the same frames as
an uninterrupted one. Frames stream to disk: memory holds one segment's frames at a time.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from dreamjourney.camera import Cameras
from dreamjourney.camera.formats import load_cameras, save_cameras
from dreamjourney.camera.path_fit import PathFit, fit_path
from dreamjourney.camera.trajectories import PRESETS as TRAJECTORY_PRESETS
from dreamjourney.camera.trajectories import keep_clear, make_trajectory, resolve_trajectory
from dreamjourney.errors import InputError, warn_input
from dreamjourney.io.atomic import atomic_write_text
from dreamjourney.io.images import default_size, fit_image, load_image, save_image
from dreamjourney.io.plots import plot_trajectory
from dreamjourney.io.rundir import RunDir, RunInputs, SegmentRecord, sha256_file
from dreamjourney.io.video import concat_videos, iter_video, write_video
from dreamjourney.models.protocols import CompletionContext
from dreamjourney.models.registry import Backends, build_backends
from dreamjourney.scene import World, align_depth
from dreamjourney.scene.holes import far_side
from dreamjourney.scene.magnified import soften_magnified
from dreamjourney.scene.raster import BLANK_HOLES, blank_frames

# Below this share of known pixels a frame's depth is scaled to the scene instead of aligned.
MIN_KNOWN_FRACTION = 0.02
# A frame's depth is aligned on at most this many of its known pixels (cost: see align_depth).
ALIGN_SAMPLES = 20_000
# A pixel moved in stage II when any channel changed by more than this.
MOTION_THRESHOLD = 0.08
# Aligned depth is clamped to this factor beyond the known depths of the view (their 2nd and
# 98th percentiles), or of the scene scale when too little is known: a bad fit never throws
# points far outside what any camera could plausibly see.
DEPTH_RANGE_FACTOR = 4.0
DEFAULT_FOV_DEG = 60.0
CONTACT_SHEET_GRID = (4, 3)


@dataclass(frozen=True)
class JourneyConfig:
    """Everything that decides the frames of a run (stored in the manifest and checked on resume).

    trajectory: a preset name (continued segment after segment) or the path of a camera file
        (cut into segments of `frames_per_segment`; its first camera is the photo's view, its
        K centre-cropped to the frame's aspect, its unit scaled by `path_scale`).
    trajectory_options: preset options (`make_trajectory`'s keyword arguments).
    path_scale: world units per unit of a camera file; None: fitted to the scene
        (`dreamjourney.camera.path_fit`).
    frames_per_segment: stage I frames per segment.
    motion / motion_frames: run stage II and how many animated frames it adds to the video.
    prompt: used instead of captions when given.
    width, height: frame size in pixels; the photo is centre-cropped and resized to it.
    fov_deg: horizontal field of view of the photo's camera (presets only); None: the depth
        model's estimate when it gives a focal length (Depth Pro), else 60 degrees.
    fps: frame rate of the videos; output frame n is at time (n + 1) / fps, the photo at 0.
    lift_stride: besides the last frame, every `lift_stride`-th completed frame is lifted.
    max_points: the world's point budget.
    """

    trajectory: str = "forward"
    trajectory_options: dict[str, Any] = field(default_factory=dict)
    path_scale: float | None = None
    frames_per_segment: int = 16
    motion: bool = True
    motion_frames: int = 8
    prompt: str | None = None
    width: int = 512
    height: int = 384
    fov_deg: float | None = None
    fps: float = 24.0
    lift_stride: int = 8
    max_points: int = 2_000_000


class JourneyCallback:
    """Progress hooks the pipeline calls; every hook does nothing here (the CLI subclasses this
    to draw Rich bars)."""

    def run_start(self, total: int, done: int) -> None:
        """`total` segments in this run, `done` of them already finished."""

    def segment_start(self, index: int) -> None:
        """Segment `index` begins."""

    def model_start(self, name: str) -> None:
        """A model call named `name` begins."""

    def model_step(self, step: int, total: int) -> None:
        """Step `step` of `total` inside the current model call."""

    def segment_end(self, record: SegmentRecord) -> None:
        """A segment is done and on disk."""

    def finishing(self, what: str) -> None:
        """The run writes its final outputs (`what`)."""


@dataclass
class PhotoLift:
    """The photo lifted into a new world (`JourneyPipeline.lift_photo`)."""

    world: World
    camera: Cameras  # (1,) the photo's camera, at time 0 and the origin
    fov_deg: float  # the run's horizontal field of view (the camera's, without a camera file)


@dataclass
class JourneyResult:
    """Where a run's outputs are and what this call did."""

    run: RunDir
    video: Path
    num_frames: int
    segments_made: list[int]
    already_complete: bool
    path_fit: str | None = None
    blank_frames: int = 0


def segment_seed(seed: int, index: int) -> int:
    """A 63-bit seed for segment `index` of a run seeded with `seed` (independent streams)."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


class JourneyPipeline:
    """The DreamJourney method over any set of backends (depth, completer, animator, captioner).

    Components are the registry's `Backends`; the pipeline never imports a concrete backend.
    Call it with a photo and an output directory; see `__call__`.
    """

    def __init__(self, backends: Backends):
        self.backends = backends
        self._model_seconds = 0.0
        self._scene_scale = 1.0
        self._callback: JourneyCallback = JourneyCallback()

    @classmethod
    def from_preset(
        cls, preset: str = "offline", *, config: dict | None = None, device: str = "cpu"
    ) -> JourneyPipeline:
        """Build the backends of a registry preset (weights load on first use)."""
        return cls(build_backends(preset, config=config, device=device))

    # ================================================================= entry point
    def __call__(
        self,
        image: str | Path,
        out_dir: str | Path,
        *,
        config: JourneyConfig | None = None,
        num_segments: int | None = None,
        seed: int = 0,
        resume: bool = False,
        extend: int = 0,
        device: str = "cpu",
        callback: JourneyCallback | None = None,
    ) -> JourneyResult:
        """Make (or continue) a run in `out_dir` from the photo at `image`.

        Args:
            image: path of the photo (its content hash identifies the run).
            out_dir: run directory; created, or reopened if it holds a run of the same photo,
                config and seed (anything else is refused with an `InputError`).
            config: what decides the frames; default `JourneyConfig()` with the photo's size.
            num_segments: total segments wanted (default 3, or what the run directory says;
                a trajectory file defaults to as many as it holds).
            seed: seeds every generator (segment k uses `segment_seed(seed, k)`).
            resume: continue a run that stopped before its last segment.
            extend: add this many segments to the run.
            device: recorded in the manifest (backends are built for it).
            callback: progress hooks.

        Returns:
            A `JourneyResult`; frames are in `out_dir/video.mp4`, one camera per frame in
            `out_dir/cameras.json`.
        """
        self._callback = callback or JourneyCallback()
        image_path = Path(image)
        photo = load_image(image_path)
        photo_size = (photo.shape[2], photo.shape[1])
        if config is None:
            width, height = default_size(*photo_size)
            config = JourneyConfig(width=width, height=height)
        _validate(config, num_segments, extend)
        self._check_clip_lengths(config)
        photo = fit_image(photo, config.width, config.height)
        file_cameras = self._trajectory_file_cameras(config)
        inputs = RunInputs(
            image=str(image_path.resolve()),
            image_sha256=sha256_file(image_path),
            image_size=photo_size,
            trajectory_sha256=file_cameras.digest() if file_cameras is not None else None,
        )
        identity = self._identity(config, file_cameras)
        max_segments = (
            math.ceil((len(file_cameras) - 1) / config.frames_per_segment)
            if file_cameras is not None
            else None
        )
        default_segments = max_segments if max_segments is not None else 3
        run = RunDir.open(
            out_dir,
            inputs=inputs,
            config=identity,
            seed=seed,
            num_segments=num_segments or default_segments,
        )
        manifest = run.manifest
        start = run.resume_point()
        if not run.created and start < manifest.num_segments and not resume:
            raise InputError(
                f"holds an unfinished run ({start} of {manifest.num_segments} segments done); "
                "pass --resume to continue it",
                source=run.root,
            )
        # asking for fewer segments than are done keeps them all
        target = max((num_segments or manifest.num_segments) + extend, start)
        if max_segments is not None and target > max_segments:
            raise InputError(
                f"the trajectory file holds {len(file_cameras or [])} cameras: enough for "
                f"{max_segments} segments of {config.frames_per_segment} frames, not {target}",
                field="--segments",
            )
        already_complete = start >= target and run.video_path.is_file()
        run.remove_partial_files()
        manifest.num_segments = target
        manifest.backends = dict(self.backends.info)
        manifest.device = device
        run.save()

        self._callback.run_start(target, min(start, target))
        made: list[int] = []
        if start == 0 and not run.world_state_path(0).is_file():
            self._initialise(run, photo, config, file_cameras)
        self._scene_scale = float(manifest.scene_scale or 1.0)
        placed = self._place_path(run, config, file_cameras) if file_cameras is not None else None
        path = placed.cameras if placed is not None else None
        for index in range(start, target):
            self._callback.segment_start(index)
            record = self._segment(run, index, config, seed, path, photo)
            made.append(index)
            self._callback.segment_end(record)
        if made or not already_complete:
            num_frames = self._write_outputs(run, config)
        else:
            num_frames = sum(s.num_frames for s in manifest.segments[:target])
        records = manifest.segments[:target]
        blank = sum(r.blank_frames for r in records)
        if blank:
            warn_input(
                f"{blank} of {sum(r.stage1_frames for r in records)} rendered frames were >= "
                f"{100 * BLANK_HOLES:.0f}% holes (segments "
                f"{', '.join(str(r.index) for r in records if r.blank_frames)}): the camera "
                "saw little of the world there; for a camera file try a smaller --path-scale",
                source=run.root,
            )
        return JourneyResult(
            run,
            run.video_path,
            num_frames,
            made,
            already_complete,
            path_fit=placed.describe(Path(config.trajectory).name) if placed else None,
            blank_frames=blank,
        )

    # ================================================================= setup
    def _check_clip_lengths(self, config: JourneyConfig) -> None:
        """Refuse, before any work, clips longer than a model with a fixed frame count holds.

        Stage II asks its animator for `motion_frames + 1` frames (the first repeats the view).
        """
        checks: list[tuple[Any, int, int, str]] = [
            (self.backends.completer, config.frames_per_segment, 0, "--frames")
        ]
        if config.motion and self.backends.animator is not None:
            checks.append((self.backends.animator, config.motion_frames, 1, "--motion-frames"))
        for backend, asked, extra, flag in checks:
            max_frames = getattr(backend, "max_frames", None)
            limit = max_frames() if max_frames is not None else None
            if limit is not None and asked + extra > limit:
                raise InputError(
                    f"the model {getattr(backend, 'model_id', '?')} samples a fixed number of "
                    f"frames: at most {limit - extra} here, not {asked}",
                    field=flag,
                )

    def _identity(self, config: JourneyConfig, file_cameras: Cameras | None) -> dict[str, Any]:
        values = asdict(config)
        if file_cameras is not None:
            values["trajectory"] = "file"
        # the resolved backends decide the frames; the device they run on is not compared
        values["backends"] = {k: v for k, v in self.backends.info.items() if k != "device"}
        return values

    @staticmethod
    def _trajectory_file_cameras(config: JourneyConfig) -> Cameras | None:
        spec = config.trajectory
        if spec in TRAJECTORY_PRESETS:
            make_trajectory(spec, 2, **config.trajectory_options)  # bad options fail now
            return None
        # a camera file; anything else -> InputError naming the presets
        cameras = resolve_trajectory(
            spec,
            None,
            scene_scale=1.0,
            width=config.width,
            height=config.height,
            fov_deg=config.fov_deg or DEFAULT_FOV_DEG,
            fps=config.fps,
            size=(config.width, config.height),
            options=config.trajectory_options,
        )
        if len(cameras) < 2:
            raise InputError(
                "needs at least 2 cameras (the photo's view and one more)", source=spec
            )
        return cameras

    def _place_path(self, run: RunDir, config: JourneyConfig, cameras: Cameras) -> PathFit:
        """The camera file's path in the photo's world (`fit_path`); the scale chosen for the
        run is kept in the manifest, so a resumed run flies the same path."""
        manifest = run.manifest
        kept = manifest.path_scale
        placed = fit_path(
            cameras,
            first_camera(config, cameras, manifest.fov_deg),
            scene_scale=self._scene_scale,
            path_scale=kept if kept is not None else config.path_scale,
            given="chosen when the run started" if kept is not None else None,
        )
        if kept is None:
            manifest.path_scale = placed.scale
            run.save()
        return placed

    def _initialise(
        self, run: RunDir, photo: Tensor, config: JourneyConfig, file_cameras: Cameras | None
    ) -> None:
        """Lift the photo into a new world, fix its field of view, the scene scale and the
        first prompt."""
        self._scene_scale = 1.0
        lift = self.lift_photo(photo, config, file_cameras)
        run.manifest.fov_deg = lift.fov_deg
        run.manifest.scene_scale = float(lift.world.median_depth(lift.camera))
        run.manifest.input_prompt = config.prompt or self._caption(photo)
        lift.world.save(run.world_state_path(0))  # atomic
        run.save()

    def lift_photo(
        self, photo: Tensor, config: JourneyConfig, file_cameras: Cameras | None = None
    ) -> PhotoLift:
        """The world a run starts from: `photo` (3, H, W), already fitted to the config's
        size, lifted at time 0 with the depth backend's depth from the photo's camera
        (`first_camera`), whose field of view is the config's, else the one the depth model
        infers from the photo (its focal length), else `DEFAULT_FOV_DEG`. The studio shows and
        previews this world; its `median_depth(camera)` is the scene scale."""
        estimate = self._timed("depth", lambda: self.backends.depth.estimate(photo))
        fov = config.fov_deg
        if fov is None and estimate.focal_px is not None:
            fov = math.degrees(2 * math.atan(0.5 * config.width / estimate.focal_px))
        fov = fov or DEFAULT_FOV_DEG
        camera = first_camera(config, file_cameras, fov)
        world = World(max_points=config.max_points)
        world.add_frame(photo, estimate.depth, camera, time=0.0, new_only=False, observed=True)
        return PhotoLift(world, camera, fov)

    # ================================================================= one segment
    def _segment(
        self,
        run: RunDir,
        index: int,
        config: JourneyConfig,
        seed: int,
        file_cameras: Cameras | None,
        photo: Tensor,
    ) -> SegmentRecord:
        t_start = time.perf_counter()
        self._model_seconds = 0.0
        manifest = run.manifest
        generator = torch.Generator().manual_seed(segment_seed(seed, index))
        previous = manifest.segments[index - 1] if index > 0 else None
        first_frame = previous.first_frame + previous.num_frames if previous else 0
        start_camera = (
            load_cameras(run.segment_dir(index - 1) / "cameras.json")[-1]
            if index > 0
            else first_camera(config, file_cameras, manifest.fov_deg)
        )
        world = World.load(run.world_state_path(index))
        # the complete view the clip continues from, as the video shows it (read back from disk
        # so that a resumed run sees the same pixels)
        start_view = photo if previous is None else _last_frame(run, previous, config)
        cameras = self._segment_cameras(index, config, start_camera, file_cameras, seed, world)
        times = (first_frame + 1 + torch.arange(len(cameras))) / config.fps
        cameras = cameras.with_times(times)
        added = 0
        prompt_in = config.prompt or (previous.prompt if previous else manifest.input_prompt) or ""
        folder = run.segment_dir(index)

        # ---- stage I: render, complete, lift
        rendered = world.render(cameras)
        keyframes = lift_schedule(len(cameras), config.lift_stride)
        # the completer may lift keyframes into a copy of the world as it fills them (a copy:
        # a completer may return other frames than it lifted, and then the world lifts those)
        trial = copy.deepcopy(world)
        lifted: dict[int, tuple[Tensor, Tensor]] = {}
        lifts: list[int] = []  # points each lift added to the trial world, in order
        current = rendered

        def rerender(i: int, frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            nonlocal current
            depth = self._fill_depth(frame, current.depth[i], current.mask[i])
            lifts.append(trial.add_frame(frame, depth, cameras[i], time=float(times[i])))
            lifted[i] = (frame, depth)
            current = trial.render(cameras)
            return current.image, current.mask, current.depth

        context = CompletionContext(
            cameras=cameras,
            depths=rendered.depth,
            keyframes=keyframes,
            rerender=rerender,
            start_view=start_view,
        )
        completed = self._timed(
            "complete",
            lambda: self.backends.completer.complete(
                rendered.image,
                rendered.mask,
                prompt=prompt_in,
                context=context,
                generator=generator,
                progress=self._callback.model_step,
            ),
        )
        # splats seen from nearer than they were lifted from are blocks: smoothed in the frames
        # shown, as the last render of the world (with the completer's lifts) draws them; the
        # world keeps the completed frames' own pixels (and the lifts the completer made)
        shown = soften_magnified(completed, current, trial.cloud, cameras)
        write_video(folder / "render.mp4", rendered.image, fps=config.fps)
        write_video(
            folder / "mask.mp4",
            rendered.mask.float()[:, None].expand(-1, 3, -1, -1),
            fps=config.fps,
        )
        write_video(folder / "completed.mp4", shown, fps=config.fps)
        last = len(cameras) - 1
        # what the completer lifted, in its order (keyframes and any frame it filled besides),
        # then the keyframes it did not need to. Where it lifted each frame once and returned
        # them as lifted, the trial world holds those lifts already, made the same way: it
        # becomes the world (lifting them into `world` again would give the same points)
        if len(lifts) == len(lifted) and all(
            torch.equal(frame, completed[i]) for i, (frame, _) in lifted.items()
        ):
            world, added = trial, sum(lifts)
            to_lift = [i for i in keyframes if i not in lifted]
        else:
            to_lift = list(dict.fromkeys([*lifted, *keyframes]))
        for i in to_lift:
            frame = completed[i]
            if i in lifted and torch.equal(lifted[i][0], frame):
                depth = lifted[i][1]
            else:
                target = world.render(cameras[i])
                depth = self._fill_depth(frame, target.depth[0], target.mask[0])
            added += world.add_frame(frame, depth, cameras[i], time=float(times[i]), new_only=True)
        t_stage1 = time.perf_counter() - t_start

        # ---- stage II: caption, animate, fold back
        view = shown[last]
        prompt_out = config.prompt or self._caption(view)
        frame_cameras = cameras
        stage2 = 0
        animator = self.backends.animator
        if config.motion and animator is not None:
            animated = self._timed(
                "animate",
                lambda: animator.animate(
                    view,
                    prompt_out,
                    config.motion_frames + 1,
                    generator=generator,
                    progress=self._callback.model_step,
                ),
            )[1:]
            stage2 = animated.shape[0]
            write_video(folder / "animated.mp4", animated, fps=config.fps)
            still = cameras[last]
            t2 = float(times[-1]) + (1 + torch.arange(stage2)) / config.fps
            still_cameras = Cameras(
                still.K.repeat(stage2, 1, 1),
                still.c2w.repeat(stage2, 1, 1),
                still.width,
                still.height,
                t2,
            )
            frame_cameras = Cameras.cat([cameras, still_cameras])
            added += self._fold_back(world, view, animated[-1], still_cameras[-1])
        else:
            (folder / "animated.mp4").unlink(missing_ok=True)
        atomic_write_text(
            folder / "prompt.txt", f"completion: {prompt_in}\nanimation: {prompt_out}\n"
        )
        save_cameras(frame_cameras, folder / "cameras.json", format="native", fps=config.fps)

        record = SegmentRecord(
            index=index,
            first_frame=first_frame,
            stage1_frames=len(cameras),
            stage2_frames=stage2,
            prompt=prompt_out,
            points_added=added,
            world_points=len(world),
            blank_frames=len(blank_frames(rendered.mask)),
            seconds={
                "stage1": round(t_stage1, 3),
                "stage2": round(time.perf_counter() - t_start - t_stage1, 3),
                "models": round(self._model_seconds, 3),
                "total": round(time.perf_counter() - t_start, 3),
            },
        )
        world.save(run.world_state_path(index + 1))  # atomic
        run.mark_done(record)
        run.drop_old_states(keep=index + 1)
        return record

    def _segment_cameras(
        self,
        index: int,
        config: JourneyConfig,
        start: Cameras,
        file_cameras: Cameras | None,
        seed: int,
        world: World,
    ) -> Cameras:
        """The segment's cameras: the file's next ones, or the preset continued from `start`;
        a preset that flies towards what it sees is shortened where it would pass through the
        nearest surface of the world ahead (`keep_clear`)."""
        n = config.frames_per_segment
        if file_cameras is not None:
            return file_cameras[1 + index * n : 1 + (index + 1) * n]
        scale = self._scene_scale
        path = make_trajectory(
            config.trajectory,
            n + 1,
            scene_scale=scale,
            width=config.width,
            height=config.height,
            fov_deg=config.fov_deg or DEFAULT_FOV_DEG,
            start=start,
            seed=segment_seed(seed, index),
            fps=config.fps,
            **config.trajectory_options,
        )
        if TRAJECTORY_PRESETS[config.trajectory].approaches:
            path = keep_clear(path, world.render(path[0]).depth[0])
        return path[1:]

    # ================================================================= geometry helpers
    def _aligned_depth(self, frame: Tensor, target: Tensor, known: Tensor) -> Tensor:
        """Depth of `frame` (3, H, W), aligned to the rendered depth `target` (H, W) on the
        `known` (H, W) pixels -> (H, W) z-depth in world units, within a plausible range.

        The estimate is fitted with a robust scale and shift in the space where it is right up
        to those (`DepthResult.space`: disparity for Depth Anything, depth for metric models);
        with too few known pixels it is only scaled, to put its median at the scene scale.
        """
        estimate = self._timed("depth", lambda: self.backends.depth.estimate(frame))
        pred = estimate.depth
        if known.float().mean() < MIN_KNOWN_FRACTION:
            valid = pred[pred > 0]
            scale = self._scene_scale / float(valid.median()) if valid.numel() else 1.0
            aligned = pred * scale
        else:
            aligned = align_depth(
                pred, target, known, space=estimate.space, max_samples=ALIGN_SAMPLES
            ).aligned
        return self._plausible(aligned, target, known)

    def _fill_depth(self, frame: Tensor, target: Tensor, known: Tensor) -> Tensor:
        """`_aligned_depth` of a completed `frame` (3, H, W); where the completer fills holes
        with the background it copies (`fills_background`), no hole pixel is nearer than the
        far side of its hole (`far_side` of the rendered depth `target` (H, W) on the `known`
        (H, W) pixels): the depth estimated on the fill itself (a copied texture reads as
        near to a focus cue) would stand it in front of the background it continues."""
        depth = self._aligned_depth(frame, target, known)
        if getattr(self.backends.completer, "fills_background", False) and bool(known.any()):
            far = far_side(known.cpu().numpy(), target.float().cpu().numpy())
            behind = torch.maximum(depth, torch.from_numpy(far).to(depth))
            depth = torch.where(known, depth, behind)
        return depth

    def _plausible(self, depth: Tensor, target: Tensor, known: Tensor) -> Tensor:
        """Clamp aligned z-depth into `DEPTH_RANGE_FACTOR` times beyond the known depths (their
        2nd-98th percentiles), or beyond the scene scale when too little is known; 0 (no
        depth) stays 0."""
        reference = target[known & (target > 0)]
        if reference.numel() >= 16 and float(known.float().mean()) >= MIN_KNOWN_FRACTION:
            low, high = torch.quantile(reference.float(), torch.tensor([0.02, 0.98])).tolist()
        else:
            low = high = self._scene_scale
        clamped = depth.clamp(low / DEPTH_RANGE_FACTOR, high * DEPTH_RANGE_FACTOR)
        return torch.where(depth > 0, clamped, depth)

    def _fold_back(self, world: World, before: Tensor, after: Tensor, camera: Cameras) -> int:
        """Replace the part of the view that moved during stage II with its last animated state;
        returns the number of points added."""
        moved = (after - before).abs().amax(0) > MOTION_THRESHOLD
        moved = F.max_pool2d(moved[None, None].float(), 5, stride=1, padding=2)[0, 0] > 0
        if not moved.any():
            return 0
        target = world.render(camera)
        depth = self._aligned_depth(after, target.depth[0], target.mask[0] & ~moved)
        return world.add_frame(
            after, depth, camera, time=float(camera.times[0]), new_only=True, dynamic_mask=moved
        )

    # ================================================================= model calls
    def _caption(self, image: Tensor) -> str:
        return self._timed("caption", lambda: self.backends.captioner.caption(image)).prompt

    def _timed(self, name: str, call: Callable[[], Any]) -> Any:
        self._callback.model_start(name)
        t0 = time.perf_counter()
        try:
            return call()
        finally:
            self._model_seconds += time.perf_counter() - t0

    # ================================================================= final outputs
    def _write_outputs(self, run: RunDir, config: JourneyConfig) -> int:
        """video.mp4, cameras.json, world.ply, contact_sheet.png from the segments on disk."""
        manifest = run.manifest
        records = manifest.segments[: manifest.num_segments]
        total = sum(r.num_frames for r in records)
        self._callback.finishing("video.mp4")
        cols, rows = CONTACT_SHEET_GRID
        picks = set(np.linspace(0, total - 1, cols * rows).round().astype(int).tolist())
        sheet: list[Tensor] = []
        count = 0
        clips = _run_clips(run, records)
        joined = concat_videos(run.video_path, clips)  # the segments' own packets, not re-encoded
        for clip in clips:
            for frame in iter_video(clip):
                if count in picks:
                    sheet.append(frame)
                count += 1
        if joined != total or count != total:
            raise RuntimeError(
                f"video.mp4 has {joined} frames ({count} decoded), the manifest counts {total}"
            )
        self._callback.finishing("cameras.json")
        cameras = Cameras.cat(
            [load_cameras(run.segment_dir(r.index) / "cameras.json") for r in records]
        )
        save_cameras(cameras, run.cameras_path, format="native", fps=config.fps)
        self._callback.finishing("world.ply")
        world = World.load(run.world_state_path(len(records)))
        world.save_ply(run.ply_path)
        save_image(run.contact_sheet_path, contact_sheet(sheet, cols))
        self._callback.finishing("trajectory.png")
        plot_trajectory(
            cameras,
            run.trajectory_plot_path,
            points=(world.cloud.points, world.cloud.colors),
            title=f"journey: {len(records)} segments, {count} frames",
        )
        return count


def lift_schedule(num_frames: int, stride: int) -> tuple[int, ...]:
    """The frames of a segment lifted into the world, in order: every `stride`-th frame
    counted back from the last, earliest first (e.g. 16 frames, stride 4: 3, 7, 11, 15)."""
    return tuple(range((num_frames - 1) % stride, num_frames, stride))


def first_camera(
    config: JourneyConfig, file_cameras: Cameras | None, fov_deg: float | None
) -> Cameras:
    """The photo's camera, at time 0 and the origin: the K of the file's first camera, else the
    run's field of view (`fov_deg`, fixed when the run began; older runs: the config's)."""
    if file_cameras is not None:
        K = file_cameras[0].fit(config.width, config.height).K
        camera = Cameras(K, torch.eye(4), config.width, config.height, torch.zeros(1))
    else:
        fov = fov_deg or config.fov_deg or DEFAULT_FOV_DEG
        camera = Cameras.create(torch.eye(4), width=config.width, height=config.height, fov_deg=fov)
    return camera.with_times([0.0])


def _last_frame(run: RunDir, record: SegmentRecord, config: JourneyConfig) -> Tensor:
    """The last frame (3, H, W) segment `record` added to the video, decoded from its clip."""
    folder = run.segment_dir(record.index)
    clip = folder / ("animated.mp4" if record.stage2_frames else "completed.mp4")
    last = deque(iter_video(clip), maxlen=1)
    if not last:
        raise InputError("has no frames; delete the run or the segment to redo it", source=clip)
    return last[0][:, : config.height, : config.width]


def _run_clips(run: RunDir, records: list[SegmentRecord]) -> list[Path]:
    """The segment clips that make up a run's video, in video order."""
    clips = []
    for record in records:
        folder = run.segment_dir(record.index)
        clips.append(folder / "completed.mp4")
        if record.stage2_frames:
            clips.append(folder / "animated.mp4")
    return clips


def contact_sheet(frames: list[Tensor], cols: int, gap: int = 4) -> Tensor:
    """Frames (3, H, W) in a grid of `cols` columns on white -> (3, H', W')."""
    rows = math.ceil(len(frames) / cols)
    _, h, w = frames[0].shape
    sheet = torch.ones(3, rows * h + (rows + 1) * gap, cols * w + (cols + 1) * gap)
    for i, frame in enumerate(frames):
        r, c = divmod(i, cols)
        top, left = gap + r * (h + gap), gap + c * (w + gap)
        sheet[:, top : top + h, left : left + w] = frame
    return sheet


def _validate(config: JourneyConfig, num_segments: int | None, extend: int) -> None:
    checks = [
        (config.frames_per_segment >= 1, "--frames", "must be at least 1"),
        (config.motion_frames >= 1, "--motion-frames", "must be at least 1"),
        (config.width >= 8 and config.height >= 8, "--size", "both sides must be at least 8"),
        (
            config.fov_deg is None or 0 < config.fov_deg < 180,
            "--fov",
            "must be between 0 and 180 degrees",
        ),
        (num_segments is None or num_segments >= 1, "--segments", "must be at least 1"),
        (extend >= 0, "--extend", "must not be negative"),
    ]
    for ok, option, message in checks:
        if not ok:
            raise InputError(message, field=option)
