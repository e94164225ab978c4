"""A pop-up depth map for a photo when no depth model is available.

In the spirit of "Tour into the Picture" (Horry et al. 1997) and "Automatic Photo Pop-up"
(Hoiem et al. 2005), the scene is a ground plane, a far sky, and vertical billboards standing
on the ground:

1. Horizon: the row where the camera's rays are level (through the principal point for an
   upright camera), moved down (by at most a tenth of the image) if the sky reaches lower.
2. Sky: pixels connected to the top edge whose colour stays close to the top rows' colour.
3. Ground: pixels connected to the bottom edge whose colour stays close to the bottom rows'
   colour. Where a column's ground run ends is that column's contact point, smoothed across
   columns with a median filter.
4. Depth: the ground at row v lies at z = h f / (v - v_horizon) for a camera at height h;
   everything above a column's contact point (and not sky) stands vertically at the contact's
   depth; sky and the ground near the horizon are at FAR_DEPTH camera heights.
5. Edge-aware smoothing: a guided filter on log depth with the photo as guide.

The result is relative (median 1), meant for a dry run or a placeholder, not for measurement.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy.ndimage import median_filter
from torch import Tensor

from dreamjourney.camera import Cameras

FAR_DEPTH = 100.0  # camera heights
COLOR_SIGMAS = 3.0
MIN_COLOR_DISTANCE = 6.0  # CIELAB units
MODEL_ROWS = 0.06
SKY_MARGIN = 0.1  # fraction of the image height the sky may reach below the camera's horizon  # fraction of the image height used for the sky and ground colour models


def heuristic_depth(image: Tensor, camera: Cameras) -> Tensor:
    """A relative z-depth for a photo from a pop-up scene model.

    Args:
        image: (3, H, W) float in [0, 1].
        camera: the photo's camera (a batch of one, H x W); its pitch places the horizon.
    Returns:
        (H, W) float32 z-depth > 0 with median 1.
    """
    _, h, w = image.shape
    if len(camera) != 1 or (camera.width, camera.height) != (w, h):
        raise ValueError(
            f"heuristic_depth: image is {w}x{h}, camera batch of {len(camera)} is "
            f"{camera.width}x{camera.height}"
        )
    rgb = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB)
    band = max(1, round(MODEL_ROWS * h))
    sky = _connected_run(lab, lab[:band], from_top=True)
    ground = _connected_run(lab, lab[-band:], from_top=False)

    fy = float(camera.fy[0])
    horizon = _camera_horizon(camera)
    rows = np.arange(h, dtype=np.float64) + 0.5
    # sky cannot lie below a level ground's horizon (beyond a margin for a tilted estimate)
    sky &= rows[:, None] < horizon + SKY_MARGIN * h
    sky_rows = sky.sum(axis=0)
    if (sky_rows > 0).mean() > 0.3:
        horizon = max(horizon, float(np.percentile(sky_rows[sky_rows > 0], 90)))
    horizon = float(np.clip(horizon, 0.0, h - 1.0))

    below = rows - horizon
    ground_z = np.where(below > 0, fy / np.maximum(below, 1e-6), FAR_DEPTH)
    ground_z = np.minimum(ground_z, FAR_DEPTH)

    contact = h - ground.sum(axis=0)  # first ground row of each column (h = no ground)
    contact = median_filter(contact, size=max(3, (w // 20) | 1), mode="nearest")
    contact = np.clip(contact, np.ceil(horizon), h - 1).astype(np.int64)
    standing_z = ground_z[contact]  # (W,)
    depth = np.where(rows[:, None] >= contact[None, :], ground_z[:, None], standing_z[None, :])
    depth = np.where(sky, FAR_DEPTH, depth)

    log_depth = _guided_filter(rgb.mean(axis=2), np.log(depth).astype(np.float32), h, w)
    out = np.exp(log_depth)
    out /= np.median(out)
    return torch.from_numpy(out.astype(np.float32)).to(image.device)


def _camera_horizon(camera: Cameras) -> float:
    """Image row (pixels) where rays are level with the world's up axis (-y)."""
    up_cam = camera.c2w[0, :3, :3].T @ torch.tensor([0.0, -1.0, 0.0])
    # a camera-frame ray (x, y, 1) is level when up_cam . ray = 0; on the centre column
    # x = 0, so y = -up_z / up_y, i.e. row v = cy + fy * y.
    uy, uz = float(up_cam[1]), float(up_cam[2])
    if abs(uy) < 1e-6:
        return -1.0 if uz > 0 else float(camera.height)
    return float(camera.K[0, 1, 2]) + float(camera.fy[0]) * (-uz / uy)


def _connected_run(lab: np.ndarray, model: np.ndarray, *, from_top: bool) -> np.ndarray:
    """(H, W) bool: pixels reached from the top (or bottom) edge, column by column, without
    leaving the colour model fitted to `model` (rows of Lab pixels)."""
    ref = np.median(model.reshape(-1, 3), axis=0)
    spread = np.linalg.norm(model.reshape(-1, 3) - ref, axis=1)
    threshold = max(MIN_COLOR_DISTANCE, COLOR_SIGMAS * 1.4826 * float(np.median(spread)))
    close = np.linalg.norm(lab - ref, axis=2) <= threshold
    close = cv2.medianBlur(close.astype(np.uint8) * 255, 5) > 0
    run = close if from_top else close[::-1]
    run = np.cumprod(run, axis=0).astype(bool)
    return run if from_top else run[::-1]


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
