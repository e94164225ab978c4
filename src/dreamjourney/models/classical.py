"""Offline completion with classical inpainting, kept consistent over the clip through the world.

One frame is filled by `inpaint_frame`: holes deeper than a few pixels by PatchMatch (Barnes et
al. 2009, the `pypatchmatch` package), which copies patches of the known region and so keeps
its texture; thin cracks by OpenCV's Navier-Stokes inpainting. PatchMatch runs on a crop around
the deep holes (its cost grows with the image it is given), and, where the frame's depth is
known, takes its patches only from pixels at the depth of the holes' far side: a hole that a
camera move opens behind an object is background, so the object must not be copied into it.

With a `CompletionContext` that can re-render, the clip is filled through the world: each
keyframe (the frames the pipeline lifts) is filled in turn, lifted into the pipeline's copy of
the world, and every frame re-rendered, so that later frames show what earlier fills put there
instead of filling it again differently (which flickers); then, while a frame still has deep
holes (up to MAX_EXTRA_LIFTS times), the one with the most is filled and lifted the same way;
what is left (thin cracks, mostly) is filled frame by frame. Without one, every frame is filled
on its own.

Deterministic: PatchMatch's random search is seeded on every call.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from dreamjourney.camera import Cameras
from dreamjourney.camera.cameras import WORLD_UP
from dreamjourney.models.protocols import CompletionContext, Progress
from dreamjourney.scene.holes import far_side, hole_distance

# A known pixel is a PatchMatch source only if it lies at least this share of the depth of the
# far side of the nearest hole (nearer pixels belong to the object in front of the hole).
BACKGROUND_RATIO = 0.67
# Beside a hole at the frame's edge, a known pixel is a source only if it lies at least this
# share of the farthest depth of its rows: it excludes an object standing in front of the scene
# (a tree is 5-100x nearer than what is behind it) but not the nearer half of a close-up's
# smooth depth (at most CLOSE_UP_RANGE ** CLOSE_UP_FOCUS = 1.55x across a row).
EDGE_RATIO = 0.5
# The PatchMatch fill is softened by a Gaussian of this sigma (pixels): seams between copied
# patches make it sharper at the pixel scale than the photo it copies (on scikit-image's
# coffee, 1.16x the photo's Laplacian energy), and re-rendered under a moving camera that
# pixel-scale detail shimmers (bench_offline's `flicker`). At 0.5 px its texture at 2-8 px is
# kept (band-pass energy 0.70 of the photo's, against 0.73 unsoftened).
SEAM_SIGMA = 0.5
# Where a frame shows (almost) none of the sky (fewer than MIN_SOURCES known pixels within
# SKY_MATCH, in RGB, of the sky at their elevation, e.g. an orbit looking back where the photo
# never looked), its holes higher than SKY_MIN_ELEVATION degrees are painted with the sky of
# the view the clip continues from, by elevation (`sky_model`).
SKY_MATCH = 0.1
SKY_MIN_ELEVATION = 1.0
SKY_SMOOTH_DEG = 4.0
# Besides the keyframes, at most this many frames are filled and lifted through the world.
MAX_EXTRA_LIFTS = 4
# Below this many source pixels in a crop (a few patches' worth), the whole frame is searched.
MIN_SOURCES = 400


def _patchmatch() -> Any:
    """The `patchmatch.patch_match` module, with a clear error when it cannot load."""
    try:
        from patchmatch import patch_match
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RuntimeError(
            "the offline completer needs the pypatchmatch package: pip install pypatchmatch"
        ) from exc
    if not patch_match.patchmatch_available:  # pragma: no cover - a broken install
        raise RuntimeError("pypatchmatch is installed but its native library did not load")
    return patch_match


def background_sources(
    known: np.ndarray, depth: np.ndarray, holes: np.ndarray | None = None
) -> np.ndarray:
    """`(H,W)` bool: known pixels that are not nearer than the far side of their nearest hole of
    `holes` (`far_side`): a hole opened behind an object is background, not the object.

    A hole at the frame's edge (what a move brings into view) may have a wide object beside it
    and nothing beyond in reach: where there is one, a source must also not be nearer than
    EDGE_RATIO times the farthest known depth of its rows (a few rows up and down).
    """
    holes = ~known if holes is None else holes
    out = known & (depth >= BACKGROUND_RATIO * far_side(known, depth, holes))
    if holes[0].any() or holes[-1].any() or holes[:, 0].any() or holes[:, -1].any():
        rows = ndimage.grey_dilation(np.where(known, depth, 0.0).max(axis=1), size=5)
        out &= depth >= EDGE_RATIO * rows[:, None]
    return out


def upright(known: np.ndarray, depth: np.ndarray, rows: int = 2) -> np.ndarray:
    """`(H,W)` bool: known pixels at the same depth (within 1e-4) as the known pixel `rows`
    rows below them: an upright surface facing the camera (a trunk, a wall, a billboard of the
    pop-up), where the ground recedes towards the horizon and a close-up's smooth depth
    changes from row to row."""
    out = np.zeros_like(known)
    near, far = depth[rows:], depth[:-rows]
    out[:-rows] = known[:-rows] & known[rows:] & (np.abs(far - near) <= 1e-4 * far)
    return out


def inpaint_frame(
    frame: Tensor,
    known: Tensor,
    *,
    depth: Tensor | None = None,
    below: Tensor | None = None,
    sky: np.ndarray | None = None,
    band: float = 4.0,
    patch_size: int = 3,
    radius: float = 3.0,
    seed: int = 0,
) -> Tensor:
    """Fill `frame` `(3,H,W)` where `known` `(H,W)` is False; known pixels are returned unchanged.

    A hole (a connected region of unknown pixels) with a pixel more than `band` pixels from
    the known region is filled by PatchMatch (patches of `2 * patch_size + 1` pixels) on the
    bounding box of those holes plus a margin; with `depth` `(H,W)` (the frame's z-depth, 0
    where unknown) its sources are `background_sources`; with `below` `(H,W)` bool (pixels
    whose ray points below the horizon, see `below_horizon`) holes on each side of the horizon
    are filled from known pixels on the same side only; the fill is then softened at the
    pixel scale (`SEAM_SIGMA`). With `sky` `(H,W,3)` (the sky's colour along each pixel's ray,
    NaN below SKY_MIN_ELEVATION: `sky_image`) and `below`, a frame that shows almost none of
    that sky has its deep holes above SKY_MIN_ELEVATION painted with it. The rest, thin
    cracks, by OpenCV Navier-Stokes inpainting (`radius` pixels). Deterministic for a given
    `seed`.

    Raises:
        ValueError: if no pixel is known (there is nothing to fill from).
    """
    if bool(known.all()):
        return frame.clone()
    if not bool(known.any()):
        raise ValueError("inpaint_frame: no known pixel to fill from")
    img = np.clip(frame.detach().float().cpu().permute(1, 2, 0).numpy() * 255.0 + 0.5, 0, 255)
    img = img.astype(np.uint8)
    have = known.cpu().numpy()
    hole = ~have
    dist = hole_distance(hole)
    holes, _ = ndimage.label(hole)
    deep_ids = np.unique(holes[dist > band])
    deep = np.isin(holes, deep_ids[deep_ids > 0])
    out = img.copy()
    known_depth = None if depth is None else _known_depth(depth, have)
    background = have if known_depth is None else background_sources(have, known_depth, deep)
    # a hole below the horizon is ground or what stands on it, one above it sky or what rises
    # into it: each is filled from its own side, so sky is never copied into the ground
    sides = [np.ones_like(have)] if below is None else [below.cpu().numpy(), ~below.cpu().numpy()]
    if sky is not None and below is not None:
        seen = have & sides[1] & (np.abs(img / 255.0 - sky).max(axis=-1) < SKY_MATCH)
        if int(seen.sum()) < MIN_SOURCES:
            painted = deep & ~np.isnan(sky[..., 0])
            out[painted] = np.clip(sky[painted] * 255.0 + 0.5, 0, 255).astype(np.uint8)
            deep &= ~painted
            hole &= ~painted
    jobs = []
    for i, side in enumerate(sides):
        if (deep & side).any():
            choices = [background & side, have & side, background, have]
            if known_depth is not None and below is not None and i == 0:
                # below the horizon, ground first: a trunk or a wall stands at the depth of the
                # ground at its foot, so depth alone lets it be copied into the ground
                choices.insert(0, background & side & ~upright(have, known_depth))
            jobs.append((deep & side, choices))
    # the sides copy only from known pixels, so they are filled independently, side by side
    # (PatchMatch's native code releases the GIL; each call starts from the seed)
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        fills = [
            pool.submit(_patchmatch_fill, out, region, choices, patch_size, seed)
            for region, choices in jobs
        ]
    for (region, _), filled in zip(jobs, (f.result() for f in fills), strict=True):
        out[region] = filled[region]
    for side in sides:
        if (deep & side).any():
            out = _soften(out, deep & side, side)
    thin = hole & ~deep
    if thin.any():
        painted = cv2.inpaint(out, thin.astype(np.uint8) * 255, radius, cv2.INPAINT_NS)
        out[thin] = painted[thin]
    fill = torch.from_numpy(out.astype(np.float32) / 255.0).permute(2, 0, 1).to(frame.device)
    return torch.where(known[None], frame, fill.to(frame.dtype))


def _soften(img: np.ndarray, region: np.ndarray, within: np.ndarray) -> np.ndarray:
    """`img` `(H,W,3)` uint8 with `region` `(H,W)` blurred by `SEAM_SIGMA`, averaging only
    pixels of `within` `(H,W)` (so that sky and ground do not blend across the horizon)."""
    weight = within.astype(np.float32)
    total = cv2.GaussianBlur(img.astype(np.float32) * weight[..., None], (0, 0), SEAM_SIGMA)
    norm = cv2.GaussianBlur(weight, (0, 0), SEAM_SIGMA)
    out = img.copy()
    out[region] = np.clip(total[region] / norm[region][:, None] + 0.5, 0, 255).astype(np.uint8)
    return out


def _known_depth(depth: Tensor, known: np.ndarray) -> np.ndarray:
    return np.where(known, depth.detach().float().cpu().numpy(), 0.0)


def elevation(camera: Cameras) -> Tensor:
    """`(H,W)` elevation in degrees of the rays of `camera` (one camera) above the horizon,
    the plane through the camera normal to the world's up axis (`WORLD_UP`)."""
    _, directions = camera.rays()
    up = torch.tensor(WORLD_UP, dtype=directions.dtype, device=directions.device)
    sine = (directions[0] @ up) / directions[0].norm(dim=-1)
    return torch.rad2deg(torch.asin(sine.clamp(-1.0, 1.0)))


def below_horizon(camera: Cameras) -> Tensor:
    """`(H,W)` bool: pixels of `camera` (one camera) whose ray points below the horizon."""
    return elevation(camera) < 0


def sky_model(view: Tensor, camera: Cameras) -> np.ndarray | None:
    """`(90,3)`: the median colour of the sky in `view` `(3,H,W)`, seen from `camera`, per
    degree of elevation (0-89), interpolated over the degrees it does not show and smoothed
    over SKY_SMOOTH_DEG degrees; None where the pop-up
    (`dreamjourney.scene.heuristic_depth.pop_up`) finds no landscape with a sky."""
    from dreamjourney.scene.heuristic_depth import SKY, pop_up

    scene = pop_up(view, camera)
    sky = scene.labels == SKY
    if not scene.landscape or int(sky.sum()) < MIN_SOURCES:
        return None
    degrees = np.clip(elevation(camera).cpu().numpy()[sky], 0, 89).astype(np.int64)
    colours = view.detach().float().cpu().permute(1, 2, 0).numpy()[sky]
    shown = np.unique(degrees)
    medians = np.stack([np.median(colours[degrees == d], axis=0) for d in shown])
    every = np.arange(90)
    model = np.stack([np.interp(every, shown, medians[:, c]) for c in range(3)], axis=1)
    # a cloud fills a few degrees: smoothed over elevation, it does not paint bands
    return ndimage.gaussian_filter1d(model, SKY_SMOOTH_DEG, axis=0, mode="nearest")


def sky_image(model: np.ndarray, camera: Cameras) -> np.ndarray:
    """`(H,W,3)`: the colour of `model` (`sky_model`) along each ray of `camera`, NaN below
    SKY_MIN_ELEVATION degrees."""
    degrees = elevation(camera).cpu().numpy()
    out = model[np.clip(degrees, 0, 89).astype(np.int64)]
    out[degrees < SKY_MIN_ELEVATION] = np.nan
    return out


def _patchmatch_fill(
    img: np.ndarray, holes: np.ndarray, choices: list[np.ndarray], patch_size: int, seed: int
) -> np.ndarray:
    """PatchMatch-fill `holes` in `img` `(H,W,3)` uint8, on a crop around them, copying from
    the first of the source masks `choices` `(H,W)` that holds MIN_SOURCES patch centres (or
    the last one that holds any, else from anywhere); returns a copy.

    A patch centre is a source pixel whose whole patch is source (or hole): scattered sources
    hold none, and PatchMatch given no patch to copy paints the hole black. The crop spans the
    holes plus a margin as wide as they are (at least 24 px), or the whole frame where the crop
    holds fewer than MIN_SOURCES centres.
    """
    pm = _patchmatch()
    h, w = holes.shape
    centres = [c & ~ndimage.binary_dilation(~c & ~holes, iterations=patch_size) for c in choices]
    counts = [int(c.sum()) for c in centres]
    usable = next(
        (c for c, n in zip(centres, counts, strict=True) if n >= MIN_SOURCES),
        next((c for c, n in zip(centres[::-1], counts[::-1], strict=True) if n), ~holes),
    )
    rows, cols = np.nonzero(holes)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    margin = max(24, bottom - top, right - left)
    crop = (
        slice(max(0, top - margin), min(h, bottom + margin)),
        slice(max(0, left - margin), min(w, right + margin)),
    )
    if int(usable[crop].sum()) < MIN_SOURCES:
        crop = (slice(0, h), slice(0, w))
    hole = holes[crop]
    # pixels that are neither filled nor patch centres to copy from
    ignore = ~usable[crop] & ~hole
    pm.set_random_seed(seed)
    filled = pm.inpaint(
        np.ascontiguousarray(img[crop]),
        np.ascontiguousarray(hole.astype(np.uint8)),
        global_mask=np.ascontiguousarray(ignore.astype(np.uint8)),
        patch_size=patch_size,
    )
    out = img.copy()
    region = out[crop]
    region[hole] = filled[hole]
    return out


def _most_deep_holes(have: Tensor, done: dict[int, Tensor], band: float) -> int | None:
    """The frame of `have` `(T,H,W)` (known pixels) not in `done` with the most pixels more
    than `band` pixels from a known one, or None where no frame has any (a frame with nothing
    known cannot be filled and counts none)."""
    counts = [
        0
        if t in done or not bool(known.any())
        else int((hole_distance(~known.cpu().numpy()) > band).sum())
        for t, known in enumerate(have)
    ]
    best = int(np.argmax(counts))
    return best if counts[best] > 0 else None


class ClassicalCompleter:
    """Offline completer (no weights); see `inpaint_frame` for the parameters.

    Its fills are copied from the background, so the pipeline keeps them at the background's
    depth (`fills_background`).
    """

    name = "classical"
    fills_background = True

    def __init__(
        self,
        *,
        band: float = 4.0,
        patch_size: int = 3,
        radius: float = 3.0,
    ):
        from dreamjourney.errors import InputError

        if band < 0:
            raise InputError(f"band must be >= 0, got {band}", field="band")
        if patch_size < 1:
            raise InputError(f"patch_size must be >= 1, got {patch_size}", field="patch_size")
        if radius <= 0:
            raise InputError(f"radius must be > 0, got {radius}", field="radius")
        self.band = band
        self.patch_size = patch_size
        self.radius = radius

    def check_weights(self) -> None:
        """Needs no weights; loads PatchMatch's native library (an error if it cannot)."""
        _patchmatch()

    def _inpaint(
        self,
        frame: Tensor,
        known: Tensor,
        depth: Tensor | None,
        camera: Cameras | None,
        sky: np.ndarray | None,
        seed: int,
    ) -> Tensor:
        return inpaint_frame(
            frame,
            known,
            depth=depth,
            below=None if camera is None else below_horizon(camera).to(known.device),
            sky=None if sky is None or camera is None else sky_image(sky, camera),
            band=self.band,
            patch_size=self.patch_size,
            radius=self.radius,
            seed=seed,
        )

    def complete(
        self,
        frames: Tensor,
        masks: Tensor,
        *,
        prompt: str = "",
        context: CompletionContext | None = None,
        generator: torch.Generator | None = None,
        progress: Progress | None = None,
    ) -> Tensor:
        """`(T,3,H,W)` with every hole filled and every known pixel as it was.

        A frame with nothing known (not even what the keyframes put into the world) repeats
        the completed frame before it, or for the first frames the context's `start_view` (the
        view the clip continues from), else the first completed frame.

        Raises:
            ValueError: if no frame has a known pixel and there is no `start_view`.
        """
        frames = frames.float()
        masks = masks.bool()
        total = len(frames)
        seed = 0 if generator is None else int(torch.randint(2**31, (1,), generator=generator))
        fill, have = frames.clone(), masks.clone()
        depths = None if context is None else context.depths
        # the sky of the view the clip continues from, for frames that look where it is not
        sky = (
            None
            if context is None or context.start_view is None
            else sky_model(context.start_view.float().cpu(), context.cameras[0])
        )
        done: dict[int, Tensor] = {}
        through_world = context is not None and context.rerender is not None
        if context is not None and context.rerender is not None:
            queue, extra = list(context.keyframes), 0
            while queue or extra < MAX_EXTRA_LIFTS:
                if queue:
                    t = queue.pop(0)
                else:
                    # what the keyframes' fills leave deep holes in (a view between them that
                    # sees round an object) is filled and lifted too, the frame with the most
                    # first, rather than filled again in every frame
                    deepest = _most_deep_holes(have, done, self.band)
                    if deepest is None:
                        break
                    t, extra = deepest, extra + 1
                if bool(have[t].all()) or not bool(have[t].any()):
                    continue
                depth = None if depths is None else depths[t]
                done[t] = self._inpaint(fill[t], have[t], depth, context.cameras[t], sky, seed + t)
                rendered, rendered_mask, depths = context.rerender(t, done[t])
                rendered_mask = rendered_mask.to(frames.device).bool()
                take = rendered_mask & ~masks
                fill = torch.where(take[:, None], rendered.to(frames.device, torch.float32), fill)
                have = masks | rendered_mask
                fill[t], have[t] = done[t], True
        out = torch.empty_like(frames)
        empty = []
        for t in range(total):
            if t in done:
                out[t] = done[t]
            elif bool(have[t].any()) and through_world:
                # the lifted fills cover the rest of the clip but for cracks and slivers:
                # OpenCV alone fills those (PatchMatch on every frame costs 0.3-0.8 s each)
                out[t] = inpaint_frame(fill[t], have[t], band=math.inf, radius=self.radius)
            elif bool(have[t].any()):
                depth = None if depths is None else depths[t]
                camera = None if context is None else context.cameras[t]
                out[t] = self._inpaint(fill[t], have[t], depth, camera, sky, seed + t)
            else:
                empty.append(t)
            if progress is not None:
                progress(t + 1, total)
        start = None if context is None else context.start_view
        filled = [t for t in range(total) if t not in empty]
        if not filled and start is None:
            raise ValueError("classical completer: no frame of the clip has a known pixel")
        for t in empty:
            before = [s for s in filled if s < t]
            if before or start is None:
                out[t] = out[before[-1] if before else filled[0]]
            else:
                out[t] = start.to(out.device, out.dtype)
        return torch.where(masks[:, None], frames, out)
