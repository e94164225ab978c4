"""The scale of relative depth maps, from the parallax between frames of a camera that moves.

A relative depth estimate is right up to a scale; cameras from a file (COLMAP, a phone's
tracker, a dataset) have a unit of their own. Where the camera moves, the unit shows in the
images: a point matched between two frames (SIFT, ratio test) and triangulated with the known
cameras has a depth in the cameras' unit, and its ratio to the estimate at the same pixel is
the scale. Only points seen under at least `MIN_PARALLAX_DEG` degrees that reproject within
`MAX_REPROJECTION_PX` pixels in both frames count (a point on a moving object does not
triangulate consistently and is dropped); the median ratio is the scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from dreamjourney.camera import Cameras

MIN_POINTS = 20
MIN_PARALLAX_DEG = 1.0
MAX_REPROJECTION_PX = 2.0
RATIO_TEST = 0.75
PARTNERS = 3  # frames (the farthest from each frame) matched against it
MAX_FEATURES = 2000


@dataclass(frozen=True)
class ParallaxScale:
    """scale: multiply the relative depth by it to get the cameras' unit; points: triangulated
    points used; parallax_deg: their median triangulation angle; spread: the robust relative
    spread of their ratios (median absolute deviation / median)."""

    scale: float
    points: int
    parallax_deg: float
    spread: float


def _features(frame: Tensor, sift: cv2.SIFT) -> tuple[np.ndarray, np.ndarray | None]:
    """(3, H, W) float frame -> keypoint pixel coordinates (N, 2) (centres at +0.5) and
    descriptors."""
    gray = cv2.cvtColor(
        (frame.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
        cv2.COLOR_RGB2GRAY,
    )
    keypoints, descriptors = sift.detectAndCompute(gray, None)
    uv = np.array([kp.pt for kp in keypoints], dtype=np.float64).reshape(-1, 2) + 0.5
    return uv, descriptors


def _projection(cameras: Cameras, i: int) -> np.ndarray:
    """3x4 projection matrix K [R | t] (world -> pixels, centres at +0.5) of camera i."""
    return cameras.K[i].double().numpy() @ cameras.w2c[i, :3].double().numpy()


def _pair_ratios(
    uv0: np.ndarray,
    uv1: np.ndarray,
    cameras: Cameras,
    i: int,
    j: int,
    depth: Tensor,
) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate matches uv0 (frame i) <-> uv1 (frame j); -> (depth ratios in frame i,
    parallax angles in degrees) of the points that pass the checks."""
    P0, P1 = _projection(cameras, i), _projection(cameras, j)
    X = cv2.triangulatePoints(P0, P1, uv0.T, uv1.T)
    X = (X[:3] / X[3:]).T
    homog = np.concatenate([X, np.ones((len(X), 1))], axis=1)
    ok = np.isfinite(X).all(1)
    reproj = []
    for P, uv in ((P0, uv0), (P1, uv1)):
        p = homog @ P.T
        ok &= p[:, 2] > 0
        reproj.append(np.linalg.norm(p[:, :2] / np.maximum(p[:, 2:], 1e-12) - uv, axis=1))
    ok &= (reproj[0] < MAX_REPROJECTION_PX) & (reproj[1] < MAX_REPROJECTION_PX)
    centres = cameras.centers.double().numpy()
    r0, r1 = X - centres[i], X - centres[j]
    cos = (r0 * r1).sum(1) / np.maximum(
        np.linalg.norm(r0, axis=1) * np.linalg.norm(r1, axis=1), 1e-12
    )
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    ok &= angle >= MIN_PARALLAX_DEG
    z = (homog @ cameras.w2c[i, :3].double().numpy().T)[:, 2]
    h, w = depth.shape
    col = np.clip(np.floor(uv0[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.floor(uv0[:, 1]).astype(int), 0, h - 1)
    estimate = depth.double().numpy()[row, col]
    ok &= estimate > 0
    return z[ok] / estimate[ok], angle[ok]


def parallax_scales(frames: Tensor, depths: Tensor, cameras: Cameras) -> list[ParallaxScale | None]:
    """The scale of each frame's relative depth in the cameras' unit, from its parallax with
    the `PARTNERS` frames whose cameras are farthest from its own.

    Args:
        frames: (T, 3, H, W) in [0, 1].
        depths: (T, H, W) relative z-depth of each frame (any scale per frame); 0 = none.
        cameras: T cameras of the frames (size W x H), in the unit to recover.
    Returns:
        Per frame a `ParallaxScale`, or None where fewer than `MIN_POINTS` points were seen
        under enough parallax (a camera that barely moves, or a textureless view).
    """
    frames, depths, cameras = frames.cpu(), depths.cpu(), cameras.to("cpu")
    sift = cv2.SIFT.create(nfeatures=MAX_FEATURES)
    features = [_features(f, sift) for f in frames]
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    centres = cameras.centers.double()
    results: list[ParallaxScale | None] = []
    for i in range(len(frames)):
        distance = (centres - centres[i]).norm(dim=1)
        partners = [int(j) for j in torch.argsort(distance, descending=True)[:PARTNERS]]
        ratios, angles = [], []
        for j in partners:
            (uv0, d0), (uv1, d1) = features[i], features[j]
            if j == i or float(distance[j]) <= 0 or d0 is None or d1 is None or len(d1) < 2:
                continue
            good = [
                m for m, n in (pair for pair in matcher.knnMatch(d0, d1, k=2) if len(pair) == 2)
                if m.distance < RATIO_TEST * n.distance
            ]  # fmt: skip
            if len(good) < MIN_POINTS:
                continue
            a = uv0[[m.queryIdx for m in good]]
            b = uv1[[m.trainIdx for m in good]]
            r, ang = _pair_ratios(a, b, cameras, i, j, depths[i])
            ratios.append(r)
            angles.append(ang)
        r = np.concatenate(ratios) if ratios else np.zeros(0)
        if len(r) < MIN_POINTS:
            results.append(None)
            continue
        scale = float(np.median(r))
        spread = float(np.median(np.abs(r - scale)) / scale)
        results.append(
            ParallaxScale(scale, len(r), float(np.median(np.concatenate(angles))), spread)
        )
    return results
