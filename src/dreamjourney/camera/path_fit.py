"""A camera file flown through a scene made from a photo (or a video): one rule for every command.

- The file's first camera is the photo's camera: the path is moved rigidly so that it starts
  at `start` (c2w'_i = start @ inv(c2w_0) @ c2w_i), whatever world frame the file was written in,
  and its K is fitted to the frame (`Cameras.fit`: centre-cropped to the frame's aspect, never
  stretched).
- The file's unit of length is mapped to the scene's: translations relative to the first camera
  are multiplied by a path scale (world units per file unit). Given explicitly (`--path-scale`),
  or by default:
  - "focus": when the cameras look at a common point (their viewing rays pass near one point
    and turn by at least ~10 degrees, as an orbit or an object capture does), that point is
    placed at the scene scale (the photo's median depth) ahead of the first camera;
  - "extent": otherwise the camera farthest from the start ends `EXTENT_IN_SCENE_SCALES` scene
    scales away (presets move about as far);
  - "turns only": a path that does not move keeps scale 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dreamjourney.camera.cameras import Cameras
from dreamjourney.camera.keyframes import continue_path
from dreamjourney.errors import InputError

# The viewing directions must spread by at least this (the smallest eigenvalue of the mean of
# I - d d^T, ~sin^2 of their spread: 0.03 ~ 10 degrees) for their common point to be well defined.
FOCUS_MIN_SPREAD = 0.03
# Share of cameras that must have the common point in front of them.
FOCUS_IN_FRONT = 0.9
EXTENT_IN_SCENE_SCALES = 0.5


@dataclass(frozen=True)
class PathFit:
    """A camera path placed in a scene.

    cameras: the path, its first camera at `start`, translations scaled by `scale`.
    scale: world units per file unit.
    rule: "given", "focus", "extent" or "turns only" (see the module docstring).
    detail: what the rule measured, in words.
    cropped_from: the file's image size when its aspect differs from the frame's.
    """

    cameras: Cameras
    scale: float
    rule: str
    detail: str
    cropped_from: tuple[int, int] | None = None

    def describe(self, name: str) -> str:
        """One line for the user: what was done to the camera file `name`."""
        crop = ""
        if self.cropped_from is not None:
            w, h = self.cropped_from
            crop = f"; its {w}x{h} view is centre-cropped to the frame's aspect"
        return (
            f"camera file {name}: its first camera is the input's{crop}; translations "
            f"x{self.scale:.4g} ({self.detail}); --path-scale sets this"
        )


def default_path_scale(cameras: Cameras, scene_scale: float) -> tuple[float, str, str]:
    """(scale, rule, detail): the default map from the file's unit to the scene's (see the module
    docstring). `scene_scale` is the scene's median depth in world units."""
    rel = cameras.relative_to(cameras.c2w[0]).c2w.double()
    centres, dirs = rel[:, :3, 3], rel[:, :3, 2]
    extent = float(centres.norm(dim=-1).max())
    if extent <= 1e-9:
        return 1.0, "turns only", "the path does not move"
    focus = _focus_point(centres, dirs)
    if focus is not None:
        depth = float(focus[2])
        return (
            scene_scale / depth,
            "focus",
            f"the point the cameras look at, {depth:.3g} file units ahead, placed at the "
            f"scene's median depth {scene_scale:.3g}",
        )
    target = EXTENT_IN_SCENE_SCALES * scene_scale
    return (
        target / extent,
        "extent",
        f"the farthest camera, {extent:.3g} file units from the start, placed {target:.3g} "
        f"away: {EXTENT_IN_SCENE_SCALES:g} x the scene's median depth {scene_scale:.3g}",
    )


def _focus_point(centres: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor | None:
    """The least-squares point nearest to every viewing ray (N, 3 centres and unit directions,
    in the first camera's frame), or None when the rays are near parallel or the point is not
    in front of the first camera and nearly all the others."""
    projector = torch.eye(3, dtype=dirs.dtype) - dirs[:, :, None] * dirs[:, None, :]
    A = projector.mean(0)
    if float(torch.linalg.eigvalsh(A)[0]) < FOCUS_MIN_SPREAD:
        return None
    b = (projector @ centres[:, :, None]).mean(0)
    point = torch.linalg.solve(A, b)[:, 0]
    ahead = ((point - centres) * dirs).sum(-1)
    if float(point[2]) <= 0 or float((ahead > 0).double().mean()) < FOCUS_IN_FRONT:
        return None
    return point


def fit_path(
    cameras: Cameras,
    start: Cameras,
    *,
    scene_scale: float,
    path_scale: float | None = None,
    given: str | None = None,
) -> PathFit:
    """Place the camera file's path `cameras` in the scene of the input camera `start`.

    Args:
        cameras: the path as read from the file (any world frame, unit and image size).
        start: the input's camera (its last one if several); the result starts there, at its
            time and image size, with the file's K fitted to that size (`Cameras.fit`).
        scene_scale: the scene's median depth in world units (for the default scale).
        path_scale: world units per file unit; None chooses one (`default_path_scale`).
        given: why `path_scale` is what it is, for `PathFit.describe` (default: "given with
            --path-scale").
    Returns:
        A `PathFit`; its cameras keep the file's time steps.
    """
    if path_scale is not None:
        if not (math.isfinite(path_scale) and path_scale > 0):
            raise InputError(f"must be a positive number, got {path_scale}", field="--path-scale")
        scale, rule, detail = float(path_scale), "given", given or "given with --path-scale"
    else:
        scale, rule, detail = default_path_scale(cameras, scene_scale)
    size = (cameras.width, cameras.height)
    aspect_changed = abs(size[0] * start.height - size[1] * start.width) > max(size)
    cameras = cameras.fit(start.width, start.height)
    rel = cameras.relative_to(cameras.c2w[0])
    c2w = rel.c2w.clone()
    c2w[:, :3, 3] *= scale
    c2w[0] = torch.eye(4)
    scaled = Cameras(rel.K, c2w, rel.width, rel.height, rel.times)
    placed = continue_path(scaled, start)
    return PathFit(placed, scale, rule, detail, size if aspect_changed else None)
