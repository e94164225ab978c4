"""Robust scale-and-shift alignment of an estimated depth map to a reference depth."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MAD_TO_SIGMA = 1.4826
INLIER_SIGMAS = 3.0
L1_ITERATIONS = 20
TRIM_ITERATIONS = 10


@dataclass
class DepthAlignment:
    """A fit `target ~ scale * pred + shift` in the fitting space.

    Attributes:
        scale, shift: the fitted affine map (in depth, or in disparity = 1 / depth).
        residual: root-mean-square fit residual over the inliers, in the fitting space's units.
        inliers: (H, W) bool, pixels used by the final fit.
        aligned: (H, W) z-depth of the aligned prediction; 0 where it has no valid depth.
    """

    scale: float
    shift: float
    residual: float
    inliers: Tensor
    aligned: Tensor


def align_depth(
    pred: Tensor,
    target: Tensor,
    mask: Tensor,
    *,
    space: str = "depth",
    max_samples: int | None = None,
) -> DepthAlignment:
    """Fit `pred` to `target` on `mask` with a robust scale and shift.

    The fit starts from a least-absolute-deviations estimate (iteratively reweighted least
    squares, which tolerates a large share of outliers), then alternates least squares on the
    inliers with re-selecting inliers within 3 robust sigmas (median absolute deviation) of the fit.

    Args:
        pred: (H, W) estimated z-depth (relative, any scale); <= 0 = none.
        target: (H, W) reference z-depth (e.g. a render of the world); <= 0 = none.
        mask: (H, W) bool, pixels that may be used (e.g. known pixels of the render).
        space: "depth" fits target = s * pred + t; "disparity" fits 1/target = s / pred + t,
            the natural space of relative (affine-invariant disparity) depth models.
        max_samples: fit on at most this many of the usable pixels, evenly spaced in
            row-major order (the fit's cost grows with the pixel count; two numbers do not
            need a whole frame of them). None: all of them.
    Returns:
        DepthAlignment; `aligned` is z-depth in both spaces.
    """
    if pred.shape != target.shape or mask.shape != pred.shape:
        raise ValueError(
            f"align_depth: pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} differ"
        )
    if space not in ("depth", "disparity"):
        raise ValueError(f"space must be 'depth' or 'disparity', got {space!r}")
    pred64, target64 = pred.double(), target.double()
    valid = mask.bool() & (pred64 > 0) & (target64 > 0) & pred64.isfinite() & target64.isfinite()
    if int(valid.sum()) < 2:
        raise ValueError("align_depth: fewer than two valid pixels to fit")
    if max_samples is not None and int(valid.sum()) > max_samples:
        index = valid.reshape(-1).nonzero()[:, 0]
        stride = -(-len(index) // max(max_samples, 2))
        valid = torch.zeros_like(valid.reshape(-1))
        valid[index[::stride]] = True
        valid = valid.reshape(mask.shape)
    x_map = pred64 if space == "depth" else 1.0 / pred64.clamp_min(1e-12)
    y_map = target64 if space == "depth" else 1.0 / target64.clamp_min(1e-12)
    x, y = x_map[valid], y_map[valid]

    # least absolute deviations by IRLS
    weights = torch.ones_like(x)
    for _ in range(L1_ITERATIONS):
        scale, shift = _weighted_fit(x, y, weights)
        weights = 1.0 / (y - scale * x - shift).abs().clamp_min(1e-9 * y.abs().mean())
    keep = torch.ones_like(x, dtype=torch.bool)
    for _ in range(TRIM_ITERATIONS):
        res = (y - scale * x - shift).abs()
        sigma = MAD_TO_SIGMA * res[keep].median()
        new_keep = res <= max(INLIER_SIGMAS * float(sigma), 1e-9 * float(y.abs().mean()))
        if int(new_keep.sum()) < 2:
            break
        if bool((new_keep == keep).all()):
            break
        keep = new_keep
        scale, shift = _weighted_fit(x[keep], y[keep], None)
    residual = float((y[keep] - scale * x[keep] - shift).square().mean().sqrt())

    fitted = scale * x_map + shift
    if space == "disparity":
        fitted = torch.where(fitted > 0, 1.0 / fitted.clamp_min(1e-12), 0.0)
    has_pred = (pred64 > 0) & pred64.isfinite() & (fitted > 0) & fitted.isfinite()
    aligned = torch.where(has_pred, fitted, 0.0).to(torch.float32)
    inliers = torch.zeros_like(valid)
    inliers[valid] = keep
    return DepthAlignment(float(scale), float(shift), residual, inliers, aligned)


def _weighted_fit(x: Tensor, y: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
    """Weighted least squares for y = s x + t; a constant x gives s = 0 (a pure shift)."""
    w = torch.ones_like(x) if w is None else w
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    var = (w * (x - mx).square()).sum()
    cov = (w * (x - mx) * (y - my)).sum()
    scale = cov / var if float(var) > 0 else torch.zeros((), dtype=x.dtype)
    return scale, my - scale * mx
