"""A pop-up depth map for a photo when no depth model is available.

In the spirit of "Automatic Photo Pop-up" (Hoiem et al. 2005): the photo is cut into
superpixels (SLIC), each labelled sky, ground or vertical from its position, colour and
texture, and the scene becomes a ground plane, a far sky and vertical billboards standing on
the ground:

1. Horizon: the row where the camera's rays are level (through the principal point for an
   upright camera), moved down (by at most a tenth of the image) if the sky reaches lower.
2. Sky: smooth, bright superpixels above the horizon that are blue, or grey-white, or the
   colour of the top rows, connected to the top edge; holes in the sky mask are closed, so a
   cloud or the sun inside the sky stays sky.
3. Ground: superpixels below the horizon, connected to the bottom edge, whose colour is close to
   the bottom rows' colour or is vegetation / earth (green, brown) with little vertical
   structure.
4. Vertical: everything else. Each connected vertical region is a billboard at the depth of the
   ground where it stands (its lowest pixels above ground, or the image's bottom edge).
5. Depth: the ground at row v lies at z = f / (v - v_horizon) camera heights; sky and the
   ground near the horizon at FAR_DEPTH camera heights (a far backdrop). It is left piecewise,
   not smoothed: a smoothed step between a billboard and the sky puts pixels at every depth in
   between ("flying pixels"), and a camera move smears them into streaks along the horizon.

A photo that is not confidently a landscape (too little sky along the top edge, or too little
ground: a close-up of a cup, a cat, a face) gets a smooth depth instead, with a capped range:
the top CLOSE_UP_RANGE times farther than the bottom, and sharp (in-focus) regions nearer than
blurred ones, smoothed along the photo's edges (a guided filter on log depth). Its farthest
part is the backdrop.

The result is relative (median 1), meant for a dry run or a placeholder, not for measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from dreamjourney.camera import Cameras

FAR_DEPTH = 100.0  # camera heights
SKY_MARGIN = 0.1  # fraction of the image height the sky may reach below the camera's horizon
MODEL_ROWS = 0.06  # fraction of the image height used for the sky and ground colour models
COLOR_SIGMAS = 3.0
MIN_COLOR_DISTANCE = 8.0  # CIELAB units
SUPERPIXELS = 600
# a landscape has sky along at least this share of the top row and this share of the image
# as ground; anything else is a close-up
MIN_SKY_TOP = 0.3
MIN_SKY = 0.04
MIN_GROUND = 0.08
REGION_COLOR_DISTANCE = 15.0  # CIELAB: neighbouring vertical superpixels closer join a region
BLUE_SKY = -5.0  # the sky's median CIELAB b* must be below this (blue): grey walls are not sky
# a footless region rests on the region below it if that holds this share of the pixels under
# its bottom edge and starts at most REST_ROWS above its lowest row
REST_SHARE = 0.6
REST_ROWS = 3
CLOSE_UP_RANGE = 3.0
CLOSE_UP_FOCUS = 0.4  # share of the close-up's log-depth range decided by the focus cue

SKY, GROUND, VERTICAL = 0, 1, 2


@dataclass
class PopUp:
    """A photo's pop-up scene model.

    labels: (H, W) uint8, SKY / GROUND / VERTICAL per pixel.
    depth: (H, W) float32 z-depth > 0, median 1.
    landscape: whether the photo was modelled as ground, sky and billboards (else a close-up).
    horizon: image row (pixels) of the horizon used.
    """

    labels: np.ndarray
    depth: np.ndarray
    landscape: bool
    horizon: float


def heuristic_depth(image: Tensor, camera: Cameras) -> Tensor:
    """A relative z-depth for a photo from a pop-up scene model (see `pop_up`).

    Args:
        image: (3, H, W) float in [0, 1].
        camera: the photo's camera (a batch of one, H x W); its pitch places the horizon.
    Returns:
        (H, W) float32 z-depth > 0 with median 1.
    """
    return torch.from_numpy(pop_up(image, camera).depth).to(image.device)


def superpixels(rgb: np.ndarray) -> np.ndarray:
    """`(H,W,3)` float RGB in [0, 1] -> `(H,W)` int SLIC superpixel labels from 0 (about
    SUPERPIXELS of them), following colour edges."""
    from skimage.segmentation import slic

    # slic rescales its input to [0, 1] before its own CIELAB conversion: given CIELAB values
    # it would lose their scale (and cut a near-regular grid), so it gets the RGB image
    return slic(rgb, n_segments=SUPERPIXELS, compactness=10, start_label=0, channel_axis=-1)


def pop_up(image: Tensor, camera: Cameras) -> PopUp:
    """Label the photo's superpixels sky / ground / vertical and build its depth."""
    _, h, w = image.shape
    if len(camera) != 1 or (camera.width, camera.height) != (w, h):
        raise ValueError(
            f"heuristic_depth: image is {w}x{h}, camera batch of {len(camera)} is "
            f"{camera.width}x{camera.height}"
        )
    rgb = np.ascontiguousarray(image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    segments = superpixels(rgb)
    features = _features(lab, segments)
    rows = np.arange(h, dtype=np.float64) + 0.5
    horizon = _camera_horizon(camera)
    band = max(1, round(MODEL_ROWS * h))

    sky_seg = (
        features.smooth
        & features.bright
        & (features.skyish | _close(features.lab, lab[:band]) & features.very_smooth)
    )
    sky_seg &= features.top < horizon + SKY_MARGIN * h
    sky = _connected(sky_seg[segments], top=True)
    sky = _close_holes(sky) & (rows[:, None] < horizon + SKY_MARGIN * h)
    sky_rows = sky.sum(axis=0)
    if (sky_rows > 0).mean() > 0.3:
        horizon = max(horizon, float(np.percentile(sky_rows[sky_rows > 0], 90)))
    horizon = float(np.clip(horizon, 0.0, h - 1.0))

    # the ground's colours: those of the superpixels along the bottom edge (grass and a path)
    bottom = np.unique(segments[-band:])
    bottom = bottom[~features.upright[bottom]]
    ground_seg = _near_any(features.lab, features.lab[bottom]) & ~features.upright
    ground_seg &= features.centre_row > horizon
    ground = _connected(ground_seg[segments], top=False) & ~sky & (rows[:, None] > horizon)
    labels = np.full((h, w), VERTICAL, np.uint8)
    labels[ground] = GROUND
    labels[sky] = SKY

    landscape = (
        sky[0].mean() >= MIN_SKY_TOP
        and sky.mean() >= MIN_SKY
        and float(np.median(lab[..., 2][sky])) < BLUE_SKY
        and ground.mean() >= MIN_GROUND
    )
    if landscape:
        out = _landscape_depth(labels, segments, features.lab, rows - horizon, float(camera.fy[0]))
    else:
        log_depth = np.log(_close_up_depth(lab[..., 0])).astype(np.float32)
        out = np.exp(_guided_filter(rgb.mean(axis=2), log_depth, h, w))
    out /= np.median(out)
    return PopUp(labels, out.astype(np.float32), bool(landscape), horizon)


@dataclass
class _Features:
    """Per-superpixel cues; each array has one entry per superpixel."""

    lab: np.ndarray  # (S, 3) mean CIELAB colour
    top: np.ndarray  # (S,) first row
    centre_row: np.ndarray  # (S,) mean row
    smooth: np.ndarray  # (S,) bool, little texture
    very_smooth: np.ndarray  # (S,) bool, almost none
    bright: np.ndarray  # (S,) bool
    skyish: np.ndarray  # (S,) bool, blue or grey-white
    upright: np.ndarray  # (S,) bool, vertical structure dominates


def _features(lab: np.ndarray, segments: np.ndarray) -> _Features:
    n = int(segments.max()) + 1
    flat = segments.ravel()
    count = np.maximum(np.bincount(flat, minlength=n), 1)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=values.ravel(), minlength=n) / count

    light = lab[..., 0]
    gx = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    texture = mean(np.hypot(gx, gy))  # L units per pixel
    colour = np.stack([mean(lab[..., c]) for c in range(3)], axis=1)
    rows = np.broadcast_to(np.arange(lab.shape[0], dtype=np.float64)[:, None], segments.shape)
    top = ndimage.minimum(rows, segments, index=np.arange(n))
    chroma = np.hypot(colour[:, 1], colour[:, 2])
    return _Features(
        lab=colour,
        top=np.asarray(top, np.float64),
        centre_row=mean(rows),
        smooth=texture < 2.5,
        very_smooth=texture < 1.2,
        bright=colour[:, 0] > 45,
        skyish=(colour[:, 2] < -8) & (colour[:, 1] < 10) | (chroma < 12) & (colour[:, 0] > 60),
        upright=mean(np.abs(gx)) > 2.0 * mean(np.abs(gy)) + 0.5,
    )


def _close(colours: np.ndarray, model: np.ndarray) -> np.ndarray:
    """(S,) bool: colours within the spread of the colour model fitted to `model` (Lab rows)."""
    pixels = model.reshape(-1, 3)
    ref = np.median(pixels, axis=0)
    spread = np.linalg.norm(pixels - ref, axis=1)
    threshold = max(MIN_COLOR_DISTANCE, COLOR_SIGMAS * 1.4826 * float(np.median(spread)))
    return np.linalg.norm(colours - ref, axis=1) <= threshold


def _near_any(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(S,) bool: colours within MIN_COLOR_DISTANCE of any colour of `palette` `(P, 3)`."""
    if len(palette) == 0:
        return np.zeros(len(colours), bool)
    dist = np.linalg.norm(colours[:, None] - palette[None], axis=2)
    return dist.min(axis=1) <= MIN_COLOR_DISTANCE


def _connected(mask: np.ndarray, *, top: bool) -> np.ndarray:
    """The parts of `mask` (H, W) connected to its top (or bottom) row."""
    labels, _ = ndimage.label(mask)
    edge = labels[0] if top else labels[-1]
    keep = np.unique(edge[edge > 0])
    return np.isin(labels, keep)


def _close_holes(sky: np.ndarray) -> np.ndarray:
    """Fill what the sky encloses (clouds, the sun), counting the top edge as sky."""
    padded = np.pad(sky, ((1, 0), (0, 0)), constant_values=True)
    return ndimage.binary_fill_holes(padded)[1:]


def _landscape_depth(
    labels: np.ndarray, segments: np.ndarray, colours: np.ndarray, below: np.ndarray, fy: float
) -> np.ndarray:
    """Ground plane, far sky and billboards standing on the ground -> (H, W) depth.

    segments: (H, W) superpixel ids; colours: (S, 3) their mean CIELAB colours.
    below: (H,) rows relative to the horizon (positive below it).
    """
    h, w = labels.shape
    ground_z = np.minimum(np.where(below > 0, fy / np.maximum(below, 1e-6), FAR_DEPTH), FAR_DEPTH)
    depth = np.broadcast_to(ground_z[:, None], (h, w)).copy()
    depth[labels == SKY] = FAR_DEPTH
    regions = _vertical_regions(labels, segments, colours)
    count = int(regions.max())
    if count:
        # a region stands on its foot (its lowest pixels above ground or the image's bottom
        # edge); one with no foot stands on its lowest row (a hill seen above a tree), or
        # where it rests on the region just below it (a roof on its wall: `_resting`)
        below_label = np.vstack([labels[1:], np.full((1, w), GROUND, np.uint8)])
        foot = (regions > 0) & (below_label == GROUND)
        rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
        index = np.arange(1, count + 1)
        lowest = np.asarray(ndimage.maximum(rows, regions, index=index))
        feet = np.asarray(ndimage.maximum(np.where(foot, rows, -1), regions, index=index))
        contact = np.where(feet >= 0, feet, lowest).astype(np.int64)
        stand = np.minimum(ground_z[np.clip(contact, 0, h - 1)], 0.5 * FAR_DEPTH)
        for region, support in _resting(regions, feet < 0):
            stand[region - 1] = stand[support - 1]
        depth = np.where(regions > 0, np.concatenate([[0.0], stand])[regions], depth)
    # the parts whose borders are depth steps: sky, ground and each vertical region
    parts = np.where(regions > 0, regions + VERTICAL, labels)
    return _edges_to_the_nearer_side(depth, parts)


def _resting(regions: np.ndarray, footless: np.ndarray) -> list[tuple[int, int]]:
    """(region, support) pairs, lowest regions first, of the vertical regions (1..R in
    `regions` `(H,W)`) with no foot (`footless` `(R,)`) that rest on another: at least
    REST_SHARE of the pixels just below their bottom edge belong to it, and it starts at most
    REST_ROWS rows above their lowest row (a roof on its wall; not a hill beside a tree's
    crown, whose support rises far above the hill's lowest row)."""
    h, w = regions.shape
    below = np.vstack([regions[1:], np.zeros((1, w), regions.dtype)])
    edge = (regions > 0) & (below != regions)
    pairs, counts = np.unique(np.stack([regions[edge], below[edge]], 1), axis=0, return_counts=True)
    index = np.arange(1, len(footless) + 1)
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    top = np.asarray(ndimage.minimum(rows, regions, index=index))
    lowest = np.asarray(ndimage.maximum(rows, regions, index=index))
    out = []
    for region in np.argsort(-lowest, kind="stable") + 1:
        mine = pairs[:, 0] == region
        if not footless[region - 1] or not mine.any():
            continue
        best = int(np.argmax(np.where(mine, counts, -1)))
        support = int(pairs[best, 1])
        share = counts[best] / counts[mine].sum()
        if (
            support > 0
            and share >= REST_SHARE
            and top[support - 1] >= lowest[region - 1] - REST_ROWS
        ):
            out.append((int(region), support))
    return out


def _edges_to_the_nearer_side(depth: np.ndarray, parts: np.ndarray, radius: int = 2) -> np.ndarray:
    """`depth` `(H,W)` with the pixels within `radius` of a depth step (neighbours in
    different `parts` `(H,W)`, one more than 1.5x farther than the other) set to the nearest
    depth within `radius`: a superpixel's edge follows a colour edge only to a pixel or two,
    and an object's rim left at the depth behind it stays there when the object moves, drawing
    its outline on the background."""
    step = np.zeros(depth.shape, bool)
    for axis in (0, 1):
        a = [slice(None), slice(None)]
        b = [slice(None), slice(None)]
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        near, far = (
            np.minimum(depth[tuple(a)], depth[tuple(b)]),
            np.maximum(depth[tuple(a)], depth[tuple(b)]),
        )
        jump = (parts[tuple(a)] != parts[tuple(b)]) & (far > 1.5 * near)
        step[tuple(a)] |= jump
        step[tuple(b)] |= jump
    size = 2 * radius + 1
    zone = ndimage.binary_dilation(step, structure=np.ones((size, size), bool))
    nearest = ndimage.grey_erosion(depth, size=(size, size))
    return np.where(zone, nearest, depth)


def _vertical_regions(labels: np.ndarray, segments: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(H, W) int: vertical pixels grouped into regions (1..R, 0 elsewhere): neighbouring
    vertical superpixels of similar colour (within REGION_COLOR_DISTANCE) join one region."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(colours)
    vertical = np.zeros(n, bool)
    vertical[segments[labels == VERTICAL]] = True
    pairs = np.concatenate(
        [
            np.stack([segments[:, :-1].ravel(), segments[:, 1:].ravel()], 1),
            np.stack([segments[:-1].ravel(), segments[1:].ravel()], 1),
        ]
    )
    pairs = pairs[(pairs[:, 0] != pairs[:, 1]) & vertical[pairs[:, 0]] & vertical[pairs[:, 1]]]
    alike = np.linalg.norm(colours[pairs[:, 0]] - colours[pairs[:, 1]], axis=1)
    pairs = pairs[alike < REGION_COLOR_DISTANCE]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # number the vertical superpixels' components 1..R
    _, region = np.unique(component[vertical], return_inverse=True)
    lookup = np.zeros(n, np.int64)
    lookup[vertical] = region + 1
    return np.where(labels == VERTICAL, lookup[segments], 0)


def _close_up_depth(light: np.ndarray) -> np.ndarray:
    """A smooth depth for a close-up: the top CLOSE_UP_RANGE times farther than the bottom,
    sharp regions nearer than blurred ones (a blurred focus measure) -> (H, W)."""
    h, w = light.shape
    sigma = max(h, w) / 16
    focus = cv2.GaussianBlur(np.abs(cv2.Laplacian(light, cv2.CV_32F)), (0, 0), sigma)
    focus = np.clip(focus / max(float(np.percentile(focus, 95)), 1e-6), 0.0, 1.0)
    height = 1.0 - (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h
    t = (1 - CLOSE_UP_FOCUS) * height + CLOSE_UP_FOCUS * (1.0 - focus)
    return np.power(CLOSE_UP_RANGE, t)


def _camera_horizon(camera: Cameras) -> float:
    """Image row (pixels) where rays are level with the world's up axis (-y)."""
    up_cam = camera.c2w[0, :3, :3].T @ torch.tensor([0.0, -1.0, 0.0])
    # a camera-frame ray (x, y, 1) is level when up_cam . ray = 0; on the centre column
    # x = 0, so y = -up_z / up_y, i.e. row v = cy + fy * y.
    uy, uz = float(up_cam[1]), float(up_cam[2])
    if abs(uy) < 1e-6:
        return -1.0 if uz > 0 else float(camera.height)
    return float(camera.K[0, 1, 2]) + float(camera.fy[0]) * (-uz / uy)


def _guided_filter(guide: np.ndarray, src: np.ndarray, h: int, w: int) -> np.ndarray:
    """He et al.'s guided filter (grey guide): smooths `src` except across edges of `guide`."""
    radius = max(2, min(h, w) // 48)
    eps = 1e-3

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)

    guide = guide.astype(np.float32)
    mean_i, mean_p = box(guide), box(src)
    var_i = box(guide * guide) - mean_i * mean_i
    cov_ip = box(guide * src) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)
