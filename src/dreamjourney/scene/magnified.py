"""Smoothing of the splats a render magnifies.

A point lifted from a photo covers about one of its pixels; seen from nearer (a camera flying
forward), it covers several, and the render shows the photo's pixels as blocks with staircase
edges. `soften_magnified` blurs each such pixel over about its splat's width (a reconstruction
filter, as an image viewer interpolates a zoomed picture instead of repeating pixels), averaging
only pixels the render covers (not what a completer painted into its holes).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from dreamjourney.camera import Cameras
from dreamjourney.scene.pointcloud import PointCloud
from dreamjourney.scene.raster import RenderOutput

# A splat w pixels wide is a photo pixel magnified w times: interpolating it (a tent filter w
# pixels either side, standard deviation w / sqrt(6)) is about a Gaussian of 0.4 w.
SIGMA_PER_WIDTH = 0.4
# Gaussian sigmas (pixels) a pixel is smoothed with: the largest at most SIGMA_PER_WIDTH times
# its splat's width; splats under 1.25 pixels wide are left as they are.
LEVELS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


def splat_width(out: RenderOutput, cloud: PointCloud, cameras: Cameras) -> Tensor:
    """`(N,H,W)` width in pixels of the splat that won each pixel of `out` (rendered from
    `cloud` by `cameras`): twice the point's radius times the focal length over its depth;
    0 on holes."""
    fx = cameras.K[:, 0, 0].to(out.depth)[:, None, None]
    radius = cloud.radii.to(out.depth)[out.index.clamp(min=0)]
    width = 2.0 * fx * radius / out.depth.clamp(min=1e-12)
    return torch.where(out.mask, width, torch.zeros_like(width))


def soften_magnified(
    image: Tensor, out: RenderOutput, cloud: PointCloud, cameras: Cameras
) -> Tensor:
    """`(N,C,H,W)`: `image` (the frames `out` was rendered for, e.g. completed) with every pixel
    that `out` covers with a splat at least 2 px wide replaced by the Gaussian average (sigma:
    the largest of LEVELS at most a third of that width) of the pixels of its own level; every
    other pixel unchanged."""
    sigma = SIGMA_PER_WIDTH * splat_width(out, cloud, cameras)
    level = torch.full_like(sigma, -1, dtype=torch.long)
    for k, s in enumerate(LEVELS):
        level[sigma >= s] = k
    if not bool((level >= 0).any()):
        return image
    frames = image.detach().float().cpu().numpy()
    levels = level.cpu().numpy()
    covered = out.mask.cpu().numpy()
    result = frames.copy()
    for n in range(len(frames)):
        weight = covered[n].astype(np.float32)
        frame = np.ascontiguousarray(frames[n].transpose(1, 2, 0)) * weight[..., None]
        for k in np.unique(levels[n][levels[n] >= 0]):
            mine = levels[n] == k
            total = cv2.GaussianBlur(frame, (0, 0), LEVELS[k])
            norm = cv2.GaussianBlur(weight, (0, 0), LEVELS[k])
            result[n][:, mine] = (total[mine] / norm[mine][:, None]).T
    return torch.from_numpy(result).to(image)
