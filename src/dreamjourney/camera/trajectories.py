"""Camera path presets: relative motions scaled by the scene, continued from any camera.

Every preset is a *relative motion*: a list of poses ``rel_i`` (4x4, OpenCV axes) and focal
factors ``f_i`` expressed in the frame of the start camera, with ``rel_0 = I`` and ``f_0 = 1``.
The path is ``c2w_i = c2w_start @ rel_i`` and ``K_i`` is the start K with its focal lengths
multiplied by ``f_i``, so a preset continues from wherever the last path ended.

Directions are the start camera's (OpenCV): +x right, +y down, +z forward. Distances are in
units of `scene_scale` (pass the median scene depth), so one path looks alike on a close-up
and on a landscape. Angles follow two rules:

- yaw: a rotation about the camera's +y (down) axis; **positive yaw turns right**, so a yaw of
  +90 degrees makes the camera look along its former +x axis.
- pitch: a rotation about the camera's +x axis; **positive pitch tilts up** (towards -y).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator

from dreamjourney.camera.cameras import Cameras, look_at
from dreamjourney.errors import InputError


class Motion(NamedTuple):
    """A relative motion: `rel` (N, 4, 4) poses in the start camera's frame, `focal` (N,)."""

    rel: np.ndarray
    focal: np.ndarray


@dataclass(frozen=True)
class Preset:
    """A named motion: `fn(u, *, scale, rng, **options) -> Motion` for u (N,) in [0, 1].

    approaches: the motion flies towards what the camera sees (forward, a spiral in), so a
    journey sizes its steps to the view's depth (`keep_clear`); other motions (an orbit about
    a point, a pan, a turn) keep the shape their name promises.
    """

    fn: Callable[..., Motion]
    help: str
    defaults: dict[str, Any] = field(default_factory=dict)
    approaches: bool = False


# ---------------------------------------------------------------------------- building blocks
def rot_y(angle: np.ndarray) -> np.ndarray:
    """(N, 3, 3) yaw rotations (radians) about +y; positive turns +z towards +x (right)."""
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros((*np.shape(angle), 3, 3))
    R[..., 0, 0], R[..., 0, 2], R[..., 1, 1] = c, s, 1.0
    R[..., 2, 0], R[..., 2, 2] = -s, c
    return R


def rot_x(angle: np.ndarray) -> np.ndarray:
    """(N, 3, 3) pitch rotations (radians) about +x; positive turns +z towards -y (up)."""
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros((*np.shape(angle), 3, 3))
    R[..., 0, 0], R[..., 1, 1], R[..., 1, 2] = 1.0, c, -s
    R[..., 2, 1], R[..., 2, 2] = s, c
    return R


def rigid(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations and (N, 3) translations -> (N, 4, 4) poses."""
    T = np.zeros((len(t), 4, 4))
    T[:, :3, :3], T[:, :3, 3], T[:, 3, 3] = R, t, 1.0
    return T


def _fixed_focal(n: int) -> np.ndarray:
    return np.ones(n)


def _no_rotation(n: int) -> np.ndarray:
    return np.broadcast_to(np.eye(3), (n, 3, 3))


def _translate(
    u: np.ndarray,
    direction: Sequence[float],
    *,
    scale: float,
    rng: np.random.Generator,
    distance: float,
) -> Motion:
    t = np.outer(u, direction) * distance * scale
    return Motion(rigid(_no_rotation(len(u)), t), _fixed_focal(len(u)))


def _rotate(
    u: np.ndarray,
    axis: str,
    sign: float,
    *,
    scale: float,
    rng: np.random.Generator,
    angle_deg: float,
) -> Motion:
    angle = sign * np.radians(angle_deg) * u
    R = rot_y(angle) if axis == "yaw" else rot_x(angle)
    return Motion(rigid(R, np.zeros((len(u), 3))), _fixed_focal(len(u)))


def _orbit(
    u: np.ndarray,
    sign: float,
    *,
    scale: float,
    rng: np.random.Generator,
    sweep_deg: float,
    depth: float,
) -> Motion:
    """Circle the point `depth` ahead about the camera's vertical axis; + moves the camera left."""
    R = rot_y(sign * np.radians(sweep_deg) * u)
    center = np.array([0.0, 0.0, depth * scale])
    return Motion(rigid(R, center - R @ center), _fixed_focal(len(u)))


def _zoom(u: np.ndarray, *, scale: float, rng: np.random.Generator, factor: float) -> Motion:
    _positive(factor, "factor")
    return Motion(rigid(_no_rotation(len(u)), np.zeros((len(u), 3))), factor**u)


def _dolly_zoom(
    u: np.ndarray, *, scale: float, rng: np.random.Generator, distance: float, depth: float
) -> Motion:
    """Move forward by `distance` while the focal length keeps a subject at `depth` the same size."""
    _positive(depth, "depth")
    if distance >= depth:
        raise InputError(
            f"dolly-zoom distance ({distance}) must be less than the subject depth ({depth})",
            field="distance",
        )
    z = u * distance * scale
    t = np.stack([np.zeros_like(z), np.zeros_like(z), z], axis=-1)
    D = depth * scale
    return Motion(rigid(_no_rotation(len(u)), t), (D - z) / D)


def _spiral(
    u: np.ndarray,
    *,
    scale: float,
    rng: np.random.Generator,
    radius: float,
    turns: float,
    distance: float,
    depth: float,
) -> Motion:
    """Fly forward on a widening spiral while looking at the point `depth` ahead of the start."""
    if distance >= depth:
        raise InputError(
            f"spiral distance ({distance}) must be less than the focus depth ({depth})",
            field="distance",
        )
    theta = 2 * math.pi * turns * u
    rho = radius * scale * u
    eye = np.stack([rho * np.cos(theta), rho * np.sin(theta), distance * scale * u], axis=-1)
    target = torch.tensor([0.0, 0.0, depth * scale])
    c2w = look_at(torch.from_numpy(eye).float(), target.expand(len(u), 3)).double().numpy()
    c2w[0] = np.eye(4)
    return Motion(c2w, _fixed_focal(len(u)))


def _heading_path(
    u: np.ndarray, yaw: Callable[[np.ndarray], np.ndarray], pitch, length: float
) -> Motion:
    """Fly at constant speed along the heading yaw(u), pitch(u) (radians), `length` in total.

    Positions integrate the viewing direction on a fine grid (trapezoid rule).
    """
    grid = np.linspace(0.0, 1.0, max(2048, 16 * len(u)))
    R_grid = rot_y(yaw(grid)) @ rot_x(pitch(grid))
    fwd = R_grid[:, :, 2]
    steps = 0.5 * (fwd[1:] + fwd[:-1]) * np.diff(grid)[:, None] * length
    pos_grid = np.concatenate([np.zeros((1, 3)), np.cumsum(steps, axis=0)])
    pos = np.stack([np.interp(u, grid, pos_grid[:, k]) for k in range(3)], axis=-1)
    return Motion(rigid(rot_y(yaw(u)) @ rot_x(pitch(u)), pos), _fixed_focal(len(u)))


def _wander(
    u: np.ndarray,
    *,
    scale: float,
    rng: np.random.Generator,
    distance: float,
    max_yaw_deg: float,
    max_pitch_deg: float,
    knots: int,
) -> Motion:
    """A seeded random walk of the heading, interpolated without overshoot (PCHIP, C1).

    The heading stays within +-max_yaw_deg (< 90) of the start direction, so the camera never
    looks or moves backwards through the world.
    """
    if not 0 <= max_yaw_deg < 90 or not 0 <= max_pitch_deg < 90:
        raise InputError("max_yaw_deg and max_pitch_deg must be in [0, 90)", field="max_yaw_deg")
    if int(knots) < 1:
        raise InputError(f"must be at least 1, got {knots}", field="knots")
    n = int(knots) + 1
    x = np.linspace(0.0, 1.0, n)

    def walk(limit_deg: float) -> PchipInterpolator:
        limit = np.radians(limit_deg)
        values = np.zeros(n)
        for k in range(1, n):
            values[k] = np.clip(values[k - 1] + rng.normal(0.0, 0.6 * limit), -limit, limit)
        return PchipInterpolator(x, values)

    yaw, pitch = walk(max_yaw_deg), walk(max_pitch_deg)
    return _heading_path(u, yaw, pitch, distance * scale)


JOURNEY_SEGMENTS = ("straight", "left", "right")


def _journey(
    u: np.ndarray,
    *,
    scale: float,
    rng: np.random.Generator,
    segments: Sequence[str] | str,
    step: float,
    turn_deg: float,
) -> Motion:
    """Segments of equal length and frame count; a turn yaws by turn_deg with smoothstep easing."""
    names = segments.split(",") if isinstance(segments, str) else list(segments)
    names = [str(s).strip() for s in names]
    bad = [s for s in names if s not in JOURNEY_SEGMENTS]
    if not names or bad:
        raise InputError(
            f"must be a non-empty list of {'/'.join(JOURNEY_SEGMENTS)}, got {segments!r}",
            field="segments",
        )
    turns = np.array([{"straight": 0.0, "left": -1.0, "right": 1.0}[s] for s in names])
    turns *= np.radians(turn_deg)
    before = np.concatenate([[0.0], np.cumsum(turns)])

    def yaw(s: np.ndarray) -> np.ndarray:
        x = s * len(names)
        k = np.minimum(x.astype(int), len(names) - 1)
        v = np.clip(x - k, 0.0, 1.0)
        return before[k] + turns[k] * v * v * (3 - 2 * v)

    return _heading_path(u, yaw, np.zeros_like, step * scale * len(names))


PRESETS: dict[str, Preset] = {
    "forward": Preset(
        partial(_translate, direction=(0, 0, 1)),
        "move straight ahead",
        {"distance": 0.5},
        approaches=True,
    ),
    "backward": Preset(
        partial(_translate, direction=(0, 0, -1)), "move straight back", {"distance": 0.5}
    ),
    "orbit": Preset(
        partial(_orbit, sign=1.0),
        "circle the point at scene depth, keeping it at the image centre (+ = leftwards)",
        {"sweep_deg": 360.0, "depth": 1.0},
    ),
    "arc-left": Preset(
        partial(_orbit, sign=1.0),
        "part of an orbit to the left around the point at scene depth",
        {"sweep_deg": 45.0, "depth": 1.0},
    ),
    "arc-right": Preset(
        partial(_orbit, sign=-1.0),
        "part of an orbit to the right around the point at scene depth",
        {"sweep_deg": 45.0, "depth": 1.0},
    ),
    "pan-left": Preset(
        partial(_translate, direction=(-1, 0, 0)), "slide left (translate)", {"distance": 0.5}
    ),
    "pan-right": Preset(
        partial(_translate, direction=(1, 0, 0)), "slide right (translate)", {"distance": 0.5}
    ),
    "turn-left": Preset(
        partial(_rotate, axis="yaw", sign=-1.0), "yaw left in place", {"angle_deg": 60.0}
    ),
    "turn-right": Preset(
        partial(_rotate, axis="yaw", sign=1.0), "yaw right in place", {"angle_deg": 60.0}
    ),
    "tilt-up": Preset(
        partial(_rotate, axis="pitch", sign=1.0), "pitch up in place", {"angle_deg": 20.0}
    ),
    "tilt-down": Preset(
        partial(_rotate, axis="pitch", sign=-1.0), "pitch down in place", {"angle_deg": 20.0}
    ),
    "zoom-in": Preset(
        _zoom, "multiply the focal length by `factor` (geometric steps)", {"factor": 2.0}
    ),
    "zoom-out": Preset(
        _zoom, "multiply the focal length by `factor` < 1 (geometric steps)", {"factor": 0.5}
    ),
    "dolly-zoom": Preset(
        _dolly_zoom,
        "move forward while widening the view so the subject at `depth` keeps its size",
        {"distance": 0.5, "depth": 1.0},
        approaches=True,
    ),
    "spiral": Preset(
        _spiral,
        "fly forward on a widening spiral, looking at the point at `depth`",
        {"radius": 0.15, "turns": 2.0, "distance": 0.3, "depth": 1.0},
        approaches=True,
    ),
    "wander": Preset(
        _wander,
        "smooth seeded random walk of the heading, never facing backwards",
        {"distance": 1.0, "max_yaw_deg": 45.0, "max_pitch_deg": 10.0, "knots": 4},
        approaches=True,
    ),
    "journey": Preset(
        _journey,
        "straight / left / right segments flown one after another (WonderJourney style)",
        {"segments": ["straight", "left", "straight", "right"], "step": 0.5, "turn_deg": 45.0},
        approaches=True,
    ),
}


# ---------------------------------------------------------------------------- entry points
def _positive(value: float, name: str) -> None:
    if not value > 0 or not math.isfinite(value):
        raise InputError(f"must be a positive finite number, got {value!r}", field=name)


def _options(name: str, preset: Preset, options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(preset.defaults))
    if unknown:
        known = ", ".join(preset.defaults) or "none"
        raise InputError(f"unknown option for preset {name!r} (options: {known})", field=unknown[0])
    merged = {**preset.defaults, **options}
    for key, default in preset.defaults.items():
        value = merged[key]
        if isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"must be a number, got {value!r}", field=key)
            if not math.isfinite(value):
                raise InputError(f"must be finite, got {value!r}", field=key)
    return merged


def make_trajectory(
    name: str,
    num_frames: int,
    *,
    scene_scale: float = 1.0,
    width: int = 512,
    height: int = 512,
    fov_deg: float = 60.0,
    start: Cameras | None = None,
    seed: int = 0,
    fps: float = 24.0,
    **options: Any,
) -> Cameras:
    """`num_frames` cameras along the preset `name`, continued from `start`.

    Args:
        name: a key of `PRESETS`.
        scene_scale: the unit of distance, normally the median scene depth (world units).
        width, height, fov_deg: the image size and horizontal field of view of the default start
            camera (identity pose); ignored when `start` is given.
        start: the camera to continue from (its last one when it holds several). Frame 0 equals
            it exactly, pose and K; poses are OpenCV c2w. The result is on start's device.
        seed: for `wander`.
        fps: frame i is at time t0 + i / fps seconds, t0 = start's time (0 without start).
        options: preset parameters overriding `PRESETS[name].defaults`.
    Returns:
        Cameras (num_frames,).
    """
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}", field="preset")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(f"must be a positive integer, got {num_frames!r}", field="frames")
    _positive(scene_scale, "scene_scale")
    _positive(fps, "fps")
    preset = PRESETS[name]
    merged = _options(name, preset, options)
    if start is None:
        if not 0 < fov_deg < 180:
            raise InputError(f"must be in (0, 180) degrees, got {fov_deg!r}", field="fov_deg")
        start = Cameras.create(torch.eye(4), width=width, height=height, fov_deg=fov_deg)
    base = start[-1].to("cpu")
    u = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    motion = preset.fn(u, scale=float(scene_scale), rng=np.random.default_rng(seed), **merged)
    c2w = (base.c2w[0].double() @ torch.from_numpy(np.ascontiguousarray(motion.rel))).float()
    c2w[0] = base.c2w[0]
    K = base.K.expand(num_frames, 3, 3).clone()
    focal = torch.from_numpy(np.asarray(motion.focal, dtype=np.float64)).float()
    K[:, :2, :2] *= focal[:, None, None]
    K[0] = base.K[0]
    times = base.times[0] + torch.arange(num_frames, dtype=torch.float64).float() / fps
    return Cameras(K, c2w, base.width, base.height, times).to(start.device)


# A path is shortened so that no camera gets closer than this share of the way to the nearest
# surface ahead of it (as seen from the path's first camera).
CLEARANCE = 0.5
# what lies ahead of a camera: the view's depth within this share of the image width around
# the pixel its displacement points at, at this percentile
CLEARANCE_WINDOW = 0.125
CLEARANCE_PERCENTILE = 5.0


def keep_clear(path: Cameras, depth: torch.Tensor, *, clearance: float = CLEARANCE) -> Cameras:
    """`path` with its moves scaled down, about its first camera, so that no camera passes
    through (or comes within `1 - clearance` of) the nearest surface ahead of it.

    The displacement of camera i from camera 0, in camera 0's frame, points at a pixel of
    camera 0's view; the surface there is the `CLEARANCE_PERCENTILE` percentile of `depth`
    within `CLEARANCE_WINDOW` of the image width around that pixel. Camera i may advance
    along the view axis at most `clearance` times that depth; if one would go further, every
    camera's offset from camera 0 is scaled by the same factor (rotations and intrinsics are
    kept), so the path keeps its shape and only its length shrinks.

    Args:
        path: N cameras; path[0] is the view `depth` was rendered from.
        depth: (H, W) z-depth of path[0]'s view, 0 where nothing is seen.
        clearance: in (0, 1].
    Returns:
        Cameras (N,), `path` itself when nothing is in the way.
    """
    if not 0 < clearance <= 1:
        raise ValueError(f"keep_clear: clearance must be in (0, 1], got {clearance}")
    h, w = path.height, path.width
    if depth.shape != (h, w):
        raise ValueError(f"keep_clear: depth {tuple(depth.shape)} is not the path's {w}x{h}")
    start = path[0]
    offset = start.world_to_camera(path.centers.to(start.c2w.dtype))[0].double()  # (N, 3)
    ahead = offset[:, 2]
    K = start.K[0].double()
    radius = max(1, round(CLEARANCE_WINDOW * w))
    scale = 1.0
    depth = depth.detach().double().cpu()
    for i in torch.nonzero(ahead > 1e-9).flatten().tolist():
        u = float(K[0, 0] * offset[i, 0] / ahead[i] + K[0, 2])
        v = float(K[1, 1] * offset[i, 1] / ahead[i] + K[1, 2])
        if not (0 <= u < w and 0 <= v < h):
            continue
        window = depth[
            max(0, int(v) - radius) : int(v) + radius + 1,
            max(0, int(u) - radius) : int(u) + radius + 1,
        ]
        seen = window[window > 0]
        if seen.numel() == 0:
            continue
        near = float(torch.quantile(seen, CLEARANCE_PERCENTILE / 100))
        scale = min(scale, clearance * near / float(ahead[i]))
    if scale >= 1.0:
        return path
    c2w = path.c2w.clone()
    origin = start.c2w[0, :3, 3]
    c2w[:, :3, 3] = origin + scale * (path.c2w[:, :3, 3] - origin)
    return Cameras(path.K.clone(), c2w, w, h, path.times.clone())


def resolve_trajectory(
    spec: str,
    num_frames: int | None,
    *,
    scene_scale: float,
    width: int,
    height: int,
    fov_deg: float,
    start: Cameras | None = None,
    seed: int = 0,
    fps: float = 24.0,
    size: tuple[int, int] | None = None,
    options: dict[str, Any] | None = None,
) -> Cameras:
    """A preset name or a camera file (any format, detected by content) -> Cameras.

    A preset is laid out by `make_trajectory` (`num_frames` None: 2 seconds at `fps`, plus one)
    with `options`. A file's cameras are returned as they are, in the file's world frame and
    unit (`start` and `scene_scale` do not apply; `dreamjourney.camera.path_fit` places them in
    a scene); `size` is the image size of a file that states none (see `load_cameras`). With
    `num_frames` set to a different count than the file holds, the path is resampled evenly
    along it (positions by spline, rotations by rotation spline, K linearly).
    """
    if spec in PRESETS:
        n = num_frames if num_frames is not None else round(2 * fps) + 1
        return make_trajectory(
            spec,
            n,
            scene_scale=scene_scale,
            width=width,
            height=height,
            fov_deg=fov_deg,
            start=start,
            seed=seed,
            fps=fps,
            **(options or {}),
        )
    if options:
        raise InputError("--set applies to presets only", source=spec, field="--set")
    path = Path(spec)
    if not path.exists():
        raise InputError(
            f"neither a preset ({', '.join(PRESETS)}) nor an existing camera file",
            source=spec,
        )
    from dreamjourney.camera.formats import load_cameras
    from dreamjourney.camera.keyframes import resample_path

    cameras = load_cameras(path, size=size)
    if num_frames is None or num_frames == len(cameras):
        return cameras
    if num_frames < 1:
        raise InputError(f"must be a positive integer, got {num_frames!r}", field="frames")
    return resample_path(cameras, num_frames)
