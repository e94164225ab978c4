"""What the studio page edits (settings, the camera path) and what it asks for (the path, the
preview, a run), on top of the same code as the CLI.

* The photo is fitted and lifted into a world by `JourneyPipeline.lift_photo`, the scene
  scale is that world's median depth: both exactly as a journey run starts (the field of
  view: the set one, else the depth model's, else 60 degrees).
* A preset path is `make_trajectory` over the whole run (segments x frames + 1 cameras,
  frame 0 = the photo's camera); a keyframe path is a `dreamjourney.keyframes/1` file
  (`WORKSPACE/studio/keyframes.json`, usable with the CLI) read by `load_cameras` and placed
  by `fit_path` at scale 1, as the journey places a camera file: keyframe 0 is the photo's
  view (at the origin, looking along +z), the others are where they are. A camera file opened
  for editing is placed by `fit_path`'s default rule, as `journey --trajectory FILE` does.
* Preview is `render_path`, the `dreamjourney render` dry run, of that path.
* Run writes the path as a native camera file and runs the journey pipeline on it in a
  worker process (`dreamjourney.studio.jobs`): the run flies exactly the path shown.
* A video (anyview) goes through `dreamjourney.studio.anyview`: its first frame's world, a
  preset target path, the warped input as the preview, `anyview --method geometry` as the run.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, ValidationError, field_validator

from dreamjourney.camera import Cameras
from dreamjourney.camera.formats import load_cameras, save_cameras
from dreamjourney.camera.formats.keyframes import FORMAT_ID as KEYFRAMES_FORMAT
from dreamjourney.camera.path_fit import fit_path
from dreamjourney.camera.trajectories import PRESETS, make_trajectory
from dreamjourney.errors import InputError
from dreamjourney.io.atomic import atomic_write_text
from dreamjourney.io.images import default_size, fit_image, load_image
from dreamjourney.io.plots import spread
from dreamjourney.io.rundir import sha256_file
from dreamjourney.models.registry import PRESETS as BACKEND_PRESETS
from dreamjourney.pipelines.anyview_run import AnyViewInput
from dreamjourney.pipelines.journey import JourneyConfig, JourneyPipeline, first_camera
from dreamjourney.pipelines.render import render_path
from dreamjourney.scene import World
from dreamjourney.studio import anyview
from dreamjourney.studio.jobs import Jobs, JobSpec
from dreamjourney.studio.workspace import SUFFIXES, Workspace

MAX_KEYFRAMES = 32
VIDEO_PATHS = "a video's target path is a trajectory preset (keyframes are for photos)"
FIRST_KEY_IS_THE_PHOTO = (
    "keyframe 0 is the photo's view: position 0 0 0, looking along +z (move the others)"
)
# a camera file loaded for editing becomes at most this many keyframes
KEYS_FROM_FILE = 8


class Keyframe(BaseModel):
    """One key of a keyframe path: OpenCV world coordinates (the photo's camera at the origin
    looking along +z, world up -y), horizontal field of view in degrees, time in seconds."""

    time: float
    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    fov: float = Field(default=60.0, gt=0, lt=180)


class PathSpec(BaseModel):
    """The camera path: a trajectory preset with its options, or keyframes."""

    mode: Literal["preset", "keyframes"] = "preset"
    preset: str = "forward"
    options: dict[str, Any] = Field(default_factory=dict)
    keyframes: list[Keyframe] = Field(default_factory=list, max_length=MAX_KEYFRAMES)

    @field_validator("preset")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in PRESETS:
            raise ValueError(f"unknown trajectory preset {name!r}; presets: {', '.join(PRESETS)}")
        return name


class Settings(BaseModel):
    """Everything the page sets. `width`/`height` None: the photo's size, at most 512 px;
    `fov` None: the depth model's, else 60 degrees (as `journey` without `--fov`)."""

    input: str | None = None
    backends: str = "offline"
    width: int | None = Field(default=None, ge=8, le=2048)
    height: int | None = Field(default=None, ge=8, le=2048)
    fov: float | None = Field(default=None, gt=0, lt=180)
    segments: int = Field(default=2, ge=1, le=100)
    frames: int = Field(default=16, ge=1, le=256)
    motion: bool = True
    motion_frames: int = Field(default=8, ge=1, le=256)
    video_frames: int = Field(default=16, ge=1, le=256)  # anyview: the first N of a video
    prompt: str | None = Field(default=None, max_length=2000)
    seed: int = Field(default=0, ge=0, lt=2**63)
    fps: float = Field(default=24.0, gt=0, le=240)
    device: str = "cpu"
    path: PathSpec = Field(default_factory=PathSpec)

    @field_validator("backends")
    @classmethod
    def _backends(cls, name: str) -> str:
        if name not in BACKEND_PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {', '.join(BACKEND_PRESETS)}")
        return name

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"expected cpu or cuda, got {device!r}")
        return device

    @property
    def num_frames(self) -> int:
        """Stage I cameras of the whole run, the photo's camera included."""
        return self.segments * self.frames + 1


def parse_settings(data: Any) -> Settings:
    """Settings from the page's JSON; a refusal is one line naming the field."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(message, field=where) from None


@dataclass
class Lifted:
    """The photo's world as a run starts it."""

    photo: torch.Tensor  # (3, H, W) fitted to the run's size
    camera: Cameras  # (1,) the photo's camera
    world: World
    scale: float  # median depth seen from `camera`


class Studio:
    """The studio's state and actions; thread-safe (one lock), shared by all open pages.

    Args:
        workspace: where everything is read and written.
        on_change: called (outside the lock) after the path or the world changed, with this
            studio; the 3D viewer redraws from `scene()`.
    """

    def __init__(self, workspace: Workspace, *, on_change: Callable[[Studio], None] | None = None):
        self.workspace = workspace
        self.jobs = Jobs(workspace.studio_dir / "jobs")
        self.on_change = on_change
        self._lock = threading.RLock()
        self._pipelines: dict[tuple[str, str], JourneyPipeline] = {}
        self._lifted: dict[str, Lifted] = {}
        self._video: tuple[str, AnyViewInput] | None = None
        self._scene: tuple[Lifted, Cameras] | None = None
        self._preview: tuple[int, Path] | None = None
        self.version = 0
        self.settings = self._load_state()

    # ------------------------------------------------------------------ settings
    @property
    def _state_path(self) -> Path:
        return self.workspace.studio_dir / "state.json"

    def _load_state(self) -> Settings:
        try:
            return Settings.model_validate_json(self._state_path.read_text())
        except (OSError, ValueError):
            return Settings()

    def update(self, data: Any) -> dict[str, Any]:
        """Replace the settings with the page's (validated); returns `state()`."""
        settings = parse_settings(data)
        keys = settings.path.keyframes
        if settings.path.mode == "keyframes" and keys and not _at_the_photo(keys[0]):
            raise InputError(FIRST_KEY_IS_THE_PHOTO, field="keyframes")
        with self._lock:
            if settings.input is not None:
                self._input_path(settings.input)  # refuse a bad input before keeping it
            self.settings = settings
            self._changed()
        self._notify()
        return self.state()

    def _changed(self) -> None:
        self._scene = None
        self.version += 1
        atomic_write_text(self._state_path, self.settings.model_dump_json(indent=1))

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def state(self) -> dict[str, Any]:
        """Settings, the path's summary (or why there is none) and the version."""
        with self._lock:
            summary: dict[str, Any] = {"frames": self.settings.num_frames, "kind": "photo"}
            if self.settings.input is not None:
                try:
                    summary["kind"] = self.kind()
                    lifted, cameras = self._current()
                    summary.update(
                        frames=len(cameras),
                        fps=self.fps(),
                        width=cameras.width,
                        height=cameras.height,
                        scene_scale=round(lifted.scale, 6),
                        length=round(_path_length(cameras), 6),
                        world_points=len(lifted.world),
                    )
                except InputError as exc:
                    summary["error"] = str(exc)
            return {
                "version": self.version,
                "settings": self.settings.model_dump(),
                "path": summary,
            }

    # ------------------------------------------------------------------ the photo's world
    def _input_path(self, relative: str) -> Path:
        path = self.workspace.resolve(relative)
        if SUFFIXES.get(path.suffix.lower()) not in ("photo", "video"):
            raise InputError(
                "the studio opens a photo (PNG, JPEG, ...: journey) or a video (MP4, ...: anyview)",
                source=relative,
            )
        return path

    def kind(self) -> str:
        """What the input is: "photo" (journey) or "video" (anyview)."""
        return SUFFIXES[self._input_path(self.settings.input or "").suffix.lower()]

    def size(self) -> tuple[int, int]:
        """The run's (width, height)."""
        if self.settings.input is not None and self.kind() == "video":
            clip = self._video_input().clip
            return clip.shape[-1], clip.shape[-2]
        photo = self._photo()
        w, h = default_size(photo.shape[2], photo.shape[1])
        return self.settings.width or w, self.settings.height or h

    def _photo(self) -> torch.Tensor:
        if self.settings.input is None:
            raise InputError("open a photo or a video first", field="input")
        return load_image(self._input_path(self.settings.input))

    def pipeline(self) -> JourneyPipeline:
        """The journey pipeline of the chosen backends (built once; weights load on use)."""
        key = (self.settings.backends, self.settings.device)
        if key not in self._pipelines:
            self._pipelines[key] = JourneyPipeline.from_preset(key[0], device=key[1])
        return self._pipelines[key]

    def journey_config(self, trajectory: str) -> JourneyConfig:
        """The journey's config for the settings; a camera file `trajectory` is taken at scale
        1 (the studio's paths are in world units)."""
        s = self.settings
        width, height = self.size()
        return JourneyConfig(
            trajectory=trajectory,
            path_scale=1.0,
            frames_per_segment=s.frames,
            motion=s.motion,
            motion_frames=s.motion_frames,
            prompt=s.prompt or None,
            width=width,
            height=height,
            fov_deg=s.fov,
            fps=s.fps,
        )

    def _lift(self, keys: Cameras | None) -> Lifted:
        """The photo's world as a run starts it: for a preset path (`keys` None), else for
        the camera path `keys` (its first camera's K is the photo's). The last two are kept."""
        s = self.settings
        config = self.journey_config("forward")
        camera = first_camera(config, keys, None).digest() if keys is not None else "preset"
        key = _digest(sha256_file(self._input_path(s.input or "")), s.backends, str(s.fov),
                      f"{config.width}x{config.height}", camera)  # fmt: skip
        if key not in self._lifted:
            photo = fit_image(self._photo(), config.width, config.height)
            lift = self.pipeline().lift_photo(photo, config, keys)
            lifted = Lifted(photo, lift.camera, lift.world, lift.world.median_depth(lift.camera))
            self._lifted = {**dict(list(self._lifted.items())[-1:]), key: lifted}
        return self._lifted[key]

    # ------------------------------------------------------------------ the path
    @property
    def keyframes_path(self) -> Path:
        return self.workspace.studio_dir / "keyframes.json"

    def cameras(self) -> Cameras:
        """The run's stage I cameras, frame 0 the photo's camera (OpenCV c2w)."""
        return self._current()[1]

    def _current(self) -> tuple[Lifted, Cameras]:
        """The world the path starts from, and the path (made once per change)."""
        with self._lock:
            if self._scene is None:
                self._scene = self._layout()
            return self._scene

    def _video_input(self) -> AnyViewInput:
        """The video's first frames, input camera and depth (the last one is kept)."""
        s = self.settings
        path = self._input_path(s.input or "")
        size = (s.width, s.height) if s.width and s.height else None
        key = _digest(sha256_file(path), s.backends, s.device, str(s.fov), str(size),
                      str(s.video_frames))  # fmt: skip
        if self._video is None or self._video[0] != key:
            backends = self.pipeline().backends
            inp = anyview.load_input(path, backends, frames=s.video_frames, size=size,
                                     fov=s.fov, name=s.input or "")  # fmt: skip
            self._video = (key, inp)
        return self._video[1]

    def _video_layout(self) -> tuple[Lifted, Cameras]:
        s = self.settings
        if s.path.mode != "preset":
            raise InputError(VIDEO_PATHS, field="path")
        inp = self._video_input()
        world = anyview.first_world(inp)
        lifted = Lifted(inp.clip[0], inp.cameras[:1], world, inp.scene_scale)
        return lifted, anyview.preset_path(inp, s.path.preset, s.path.options, s.fov)

    def _layout(self) -> tuple[Lifted, Cameras]:
        if self.kind() == "video":
            return self._video_layout()
        s = self.settings
        width, height = self.size()
        if s.path.mode == "preset":
            lifted = self._lift(None)
            return lifted, make_trajectory(
                s.path.preset,
                s.num_frames,
                scene_scale=lifted.scale,
                start=lifted.camera,
                seed=s.seed,
                fps=s.fps,
                **s.path.options,
            )
        if len(s.path.keyframes) < 2:
            raise InputError("a keyframe path needs at least two keyframes", field="keyframes")
        self._write_keyframes(width, height)
        keys = load_cameras(self.keyframes_path)
        lifted = self._lift(keys)
        placed = fit_path(keys, lifted.camera, scene_scale=lifted.scale, path_scale=1.0)
        return lifted, placed.cameras

    def _write_keyframes(self, width: int, height: int) -> None:
        s = self.settings
        data = {
            "format": KEYFRAMES_FORMAT,
            "width": width,
            "height": height,
            "fps": s.fps,
            "num_frames": s.num_frames,
            "keyframes": [k.model_dump() for k in s.path.keyframes],
        }
        atomic_write_text(self.keyframes_path, json.dumps(data, indent=1))

    def scene(self) -> tuple[Lifted, Cameras] | None:
        """The world the path starts from and the path, or None while there is none."""
        with self._lock:
            if self.settings.input is None:
                return None
            try:
                return self._current()
            except InputError:
                return None

    def keyframe_at(self, frame: int) -> Keyframe:
        """A keyframe for camera `frame` of the current path: its centre, a look-at point one
        scene scale ahead, its horizontal fov."""
        with self._lock:
            cameras = self.cameras()
            frame = min(max(frame, 0), len(cameras) - 1)
            camera = cameras[frame]
            return _keyframe(camera, self._current()[0].scale)

    def add_keyframe(self, frame: int) -> dict[str, Any]:
        """Insert a keyframe at camera `frame` of the current path. The first one turns a
        preset path into keyframes (its start, the new key unless it is the start or the
        end, and its end), so the path does not jump."""
        with self._lock:
            if self.kind() == "video":
                raise InputError(VIDEO_PATHS, field="keyframes")
            lifted, cameras = self._current()
            frame = min(max(frame, 0), len(cameras) - 1)
            path = self.settings.path
            scale = lifted.scale
            if path.mode == "preset":
                picks = sorted({0, frame, len(cameras) - 1})
                keys = [_keyframe(cameras[i], scale) for i in picks]
            else:
                key = _keyframe(cameras[frame], scale)
                keys = [k for k in path.keyframes if not math.isclose(k.time, key.time)]
                keys = sorted([*keys, key], key=lambda k: k.time)
            if len(keys) > MAX_KEYFRAMES:
                raise InputError(f"at most {MAX_KEYFRAMES} keyframes", field="keyframes")
            new_path = path.model_copy(update={"mode": "keyframes", "keyframes": keys})
            self.settings = self.settings.model_copy(update={"path": new_path})
            self._changed()
        self._notify()
        return self.state()

    def move_keyframe(self, index: int, position: np.ndarray, rotation: np.ndarray) -> None:
        """Move keyframe `index` to `position` (3,) looking along `rotation`'s (3, 3) +z axis,
        keeping its look-at distance (what a gizmo drag in the 3D view does)."""
        with self._lock:
            keys = list(self.settings.path.keyframes)
            if not 0 < index < len(keys):
                raise InputError(
                    f"no keyframe {index}" if index else FIRST_KEY_IS_THE_PHOTO, field="keyframes"
                )
            key = keys[index]
            distance = float(np.linalg.norm(np.subtract(key.look_at, key.position))) or 1.0
            target = np.asarray(position, dtype=float) + distance * np.asarray(rotation)[:, 2]
            keys[index] = key.model_copy(
                update={"position": tuple(map(float, position)), "look_at": tuple(target)}
            )
            path = self.settings.path.model_copy(update={"keyframes": keys})
            self.settings = self.settings.model_copy(update={"path": path})
            self._changed()
        self._notify()

    def load_camera_file(self, relative: str) -> dict[str, Any]:
        """Open a camera file (any supported format) for editing: placed in the photo's world
        as `journey --trajectory FILE` places it (`fit_path`'s default scale), up to
        `KEYS_FROM_FILE` of its cameras, evenly spread, become keyframes (their roll is not
        kept)."""
        path = self.workspace.resolve(relative)
        cameras = load_cameras(path)
        if len(cameras) < 2:
            raise InputError("needs at least 2 cameras to make a path", source=relative)
        with self._lock:
            if self.kind() == "video":
                raise InputError(VIDEO_PATHS, source=relative)
            lifted = self._lift(None)
            cameras = fit_path(cameras, lifted.camera, scene_scale=lifted.scale).cameras
            scale = lifted.scale
            picks = spread(len(cameras), KEYS_FROM_FILE)
            times = cameras.times[torch.from_numpy(picks)].double().numpy()
            if not (np.diff(times) > 0).all():  # an untimed file (COLMAP): keys by index
                times = picks.astype(float)
            keys = [
                _keyframe(cameras[int(i)], scale).model_copy(update={"time": float(t - times[0])})
                for i, t in zip(picks, times, strict=True)
            ]
            new_path = self.settings.path.model_copy(
                update={"mode": "keyframes", "keyframes": keys}
            )
            self.settings = self.settings.model_copy(update={"path": new_path})
            self._changed()
        self._notify()
        return self.state()

    # ------------------------------------------------------------------ preview and run
    def preview(self) -> dict[str, Any]:
        """The dry run along the path (frames, masks, depth; cached by content): where its
        files are and the share of hole pixels of every frame."""
        with self._lock:
            lifted, cameras = self._current()
            video = self.kind() == "video"
            key = _digest(
                cameras.digest(),
                lifted.world.cloud.points.numpy().tobytes(),
                lifted.world.cloud.colors.numpy().tobytes(),
                self._video[0] if video and self._video is not None else "",  # every frame
            )[:16]
            out = self.workspace.studio_dir / "previews" / key
            holes_file = out / "holes.json"
            if not holes_file.is_file() and video:
                anyview.write_preview(self._video_input(), cameras, out)
            elif not holes_file.is_file():
                holes = render_path(lifted.world, cameras, out, fps=self.settings.fps).holes
                atomic_write_text(holes_file, json.dumps([round(h, 6) for h in holes.tolist()]))
            self._preview = (self.version, out)
            return self._preview_result(out)

    def _preview_result(self, out: Path) -> dict[str, Any]:
        cameras = load_cameras(out / "cameras.json")
        return {
            "dir": self.workspace.relative(out),
            "frames": len(cameras),
            "width": cameras.width,
            "height": cameras.height,
            "fps": self.fps(),
            "holes": json.loads((out / "holes.json").read_text()),
        }

    def fps(self) -> float:
        """Frames per second of the path: the video's, else the set one."""
        with self._lock:
            if self.settings.input is not None and self.kind() == "video":
                return self._video_input().fps
            return self.settings.fps

    def last_preview(self) -> Path | None:
        """The folder of the preview of the current path, if one was made."""
        with self._lock:
            if self._preview is None or self._preview[0] != self.version:
                return None
            return self._preview[1]

    def last_preview_result(self) -> dict[str, Any] | None:
        """What `preview` returned for the current path, if it ran (a reloaded page shows it)."""
        out = self.last_preview()
        return self._preview_result(out) if out is not None else None

    def run_spec(self) -> JobSpec:
        """The job that runs the journey (or anyview) on the current settings and path. Its
        name comes from what decides the frames, so the same settings reopen (and resume) the
        same run."""
        with self._lock:
            if self.settings.input is not None and self.kind() == "video":
                return self._anyview_spec()
            s = self.settings
            cameras = self.cameras()
            image = self._input_path(s.input or "")
            folder = self.workspace.studio_dir / "paths"
            path_file = folder / f"{cameras.digest()[:16]}.json"
            save_cameras(cameras, path_file, format="native", fps=s.fps)
            config = self.journey_config(str(path_file))
            identity = _digest(
                sha256_file(image),
                json.dumps(
                    {**config.__dict__, "trajectory": path_file.name, "preset": s.backends},
                    sort_keys=True,
                ),
                str(s.seed),
                str(s.segments),
            )[:10]
            name = f"{_slug(image.stem)}-{identity}"
            return JobSpec(
                name=name,
                image=str(image),
                out=str(self.workspace.runs_dir / name),
                preset=s.backends,
                config=config.__dict__,
                segments=s.segments,
                seed=s.seed,
                device=s.device,
            )

    def _anyview_spec(self) -> JobSpec:
        s = self.settings
        cameras = self.cameras()
        video = self._input_path(s.input or "")
        path_file = self.workspace.studio_dir / "paths" / f"{cameras.digest()[:16]}.json"
        save_cameras(cameras, path_file, format="native", fps=self.fps())
        size = [s.width, s.height] if s.width and s.height else None
        config = {"trajectory": str(path_file), "frames": s.video_frames, "size": size,
                  "fov": s.fov, "fps": self.fps()}  # fmt: skip
        identity = _digest(sha256_file(video), cameras.digest(), s.backends, str(s.seed),
                           json.dumps(config, sort_keys=True))[:10]  # fmt: skip
        name = f"{_slug(video.stem)}-anyview-{identity}"
        return JobSpec(
            name=name,
            kind="anyview",
            image=str(video),
            out=str(self.workspace.runs_dir / name),
            preset=s.backends,
            config=config,
            segments=1,
            seed=s.seed,
            device=s.device,
        )

    def run(self) -> dict[str, Any]:
        """Start (or resume) the run of the current settings; returns its status."""
        spec = self.run_spec()
        self.jobs.start(spec)
        return self.jobs.status(spec.name)


def _keyframe(camera: Cameras, scale: float) -> Keyframe:
    center = camera.centers[0].double().numpy()
    target = center + scale * camera.forward[0].double().numpy()
    x, y, z = (round(float(v), 6) for v in center)
    tx, ty, tz = (round(float(v), 6) for v in target)
    return Keyframe(
        time=float(camera.times[0]),
        position=(x, y, z),
        look_at=(tx, ty, tz),
        fov=round(float(camera.fov_deg()[0]), 4),
    )


def _at_the_photo(key: Keyframe) -> bool:
    """Whether `key` is the photo's view: at the origin, looking along +z."""
    x, y, z = key.look_at
    return max(map(abs, key.position)) < 1e-6 and abs(x) < 1e-6 and abs(y) < 1e-6 and z > 0


def _path_length(cameras: Cameras) -> float:
    return float(cameras.centers.diff(dim=0).norm(dim=-1).sum()) if len(cameras) > 1 else 0.0


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40] or "run"


__all__ = ["Keyframe", "Lifted", "PathSpec", "Settings", "Studio", "parse_settings"]
