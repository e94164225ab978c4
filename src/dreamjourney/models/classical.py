"""Offline completion with classical inpainting, kept consistent over the clip through the world.

One frame is filled in three passes (`inpaint_frame`): every hole pixel takes the colour of its
nearest known pixel, averaged coarse-to-fine on a Gaussian pyramid more widely the deeper it
lies in the hole (`smooth_extension`: large regions such as sky or ground become smooth
gradients, not the streaks OpenCV inpainting draws across a large hole); the fine texture of
the known region is continued into the hole by mirroring it across the hole boundary, plus a
mild fixed grain, so large fills do not look like flat paint; and only the thin band along the
boundary is inpainted with OpenCV (Telea or Navier-Stokes), which joins the fill to the known
pixels without a seam.

With a `CompletionContext` that can re-render: inpaint the clip's last frame once, let the
pipeline lift it into (a copy of) the world and re-render all cameras, take the re-rendered
pixels where the input had holes, and inpaint only what is still missing, frame by frame.
Without one, each frame is inpainted on its own.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from dreamjourney.models.protocols import CompletionContext, Progress

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}

# How much more a vertical step counts than a horizontal one when a hole pixel looks for the
# known pixel it continues: camera moves reveal bands at the image sides, and a row-wise
# continuation keeps ground below the horizon and sky above it (at 2, sky just above a large
# ground hole won and was lifted into the world as blue fog over the grass within a segment).
VERTICAL_WEIGHT = 8.0


def smooth_extension(image: np.ndarray, dist: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Continue the colours of the known region of `image` `(H,W,C)` into the hole, smoother
    with depth.

    dist: `(H,W)` distance in pixels to the nearest known pixel (0 on known pixels); near:
    `(2,H,W)` its row and column. Each pixel first takes its nearest known colour (which alone
    would be streaks along the hole's normals); that field is averaged over the hole and its
    rim on a Gaussian pyramid, and each hole pixel reads the level whose blur is about half its
    distance (interpolated between levels), so the boundary colour holds at the edge of the
    hole and large regions become smooth gradients. Returns `(N,C)` float32 for the hole
    pixels (`dist > 0`) in `np.nonzero` order.
    """
    h, w = dist.shape
    yy, xx = np.nonzero(dist > 0)
    # only the hole and its rim are averaged, so the known region's interior does not pull
    # the fill back towards its own colours
    weight = ndimage.binary_dilation(dist > 0).astype(np.float32)[..., None]
    num, den = image[near[0], near[1]] * weight, weight
    # level j has a blur of about 2**j pixels
    pos = np.log2(np.maximum(dist[yy, xx] / 2.0, 1.0))
    out = num[yy, xx] / weight[yy, xx]
    for level in range(1, int(np.ceil(pos.max())) + 1):
        if min(num.shape[:2]) < 2:
            break
        shape = ((num.shape[0] + 1) // 2, (num.shape[1] + 1) // 2)
        num = cv2.pyrDown(num).reshape(*shape, -1)
        den = cv2.pyrDown(den).reshape(*shape, 1)
        mean = cv2.resize(num / np.maximum(den, 1e-6), (w, h), interpolation=cv2.INTER_LINEAR)
        # blend weight of this level: a tent around `pos == level`, all of it beyond
        share = np.clip(pos - (level - 1), 0.0, 1.0)[:, None]
        out += share * (mean.reshape(h, w, -1)[yy, xx] - out)
    return out


def _masked_blur(image: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur `(H,W,C)` of the known pixels only (normalised by the blurred mask).

    Wide blurs (`sigma` >= 4 pixels) run on an image shrunk by about `sigma / 2`.
    """
    h, w = known.shape
    weight = known.astype(np.float32)[..., None]
    num: np.ndarray = image * weight
    den: np.ndarray = weight
    step = max(1, int(sigma // 2))
    if step > 1:
        size = (max(1, w // step), max(1, h // step))
        num = cv2.resize(num, size, interpolation=cv2.INTER_AREA)
        den = cv2.resize(den, size, interpolation=cv2.INTER_AREA)
    num = cv2.GaussianBlur(num, (0, 0), sigma / step)
    den = cv2.GaussianBlur(den, (0, 0), sigma / step)
    mean: np.ndarray = num.reshape(*den.shape[:2], -1) / np.maximum(den, 1e-6).reshape(
        *den.shape[:2], 1
    )
    if step > 1:
        mean = cv2.resize(mean, (w, h), interpolation=cv2.INTER_LINEAR)
    return mean.reshape(h, w, -1)


def inpaint_frame(
    frame: Tensor,
    known: Tensor,
    *,
    radius: float = 5.0,
    method: str = "telea",
    band: float = 4.0,
    detail_gain: float = 0.6,
    detail_sigma: float = 2.0,
    mirror_sigma: float = 16.0,
    match: float = 0.1,
    grain: float = 0.006,
    vertical: float = VERTICAL_WEIGHT,
    seed: int = 0,
) -> Tensor:
    """Fill `frame` `(3,H,W)` where `known` `(H,W)` is False; known pixels are returned unchanged.

    Hole pixels within `band` pixels of a known pixel are inpainted by OpenCV (`method`
    `"telea"` or `"ns"`, `radius` in pixels); a hole no wider than that gets nothing else.
    Deeper pixels get `smooth_extension` (its nearest known pixel found with vertical distances
    counted `vertical` times: scenes are layered in rows, so a hole between sky above and
    ground beside it is continued from the side), plus `detail_gain` times the texture (frame
    minus its Gaussian blur of `detail_sigma` pixels) mirrored across the hole boundary (mirror
    offsets smoothed over `mirror_sigma` pixels; texture whose mean colour over
    `4 * detail_sigma` pixels differs from that at the nearest boundary pixel by much more than
    `match` is faded out), plus monochrome grain of standard deviation `grain` (deterministic
    per `seed`) faded in over the `band` pixels after the
    band. Deterministic; a frame with no known pixel comes back mid-grey.
    """
    if bool(known.all()):
        return frame.clone()
    if not bool(known.any()):
        return torch.full_like(frame, 0.5)
    img = frame.detach().float().cpu().permute(1, 2, 0).contiguous().numpy()
    have = known.cpu().numpy()
    hole = ~have
    dist, (near_y, near_x) = ndimage.distance_transform_edt(hole, return_indices=True)
    fill = img.copy()
    if dist.max() > band:
        h, w = hole.shape
        yy, xx = np.nonzero(hole)
        far, near = ndimage.distance_transform_edt(
            hole, sampling=(vertical, 1.0), return_indices=True
        )
        base = smooth_extension(img, far, near)
        # mirror each hole pixel across the hole boundary: twice its offset to the nearest
        # known pixel, smoothed over the hole so that neighbours read neighbouring sources
        # (a coherent mirror image even where the boundary is ragged), snapped to a known pixel
        offset = np.stack([near_y, near_x], -1).astype(np.float32) - np.indices((h, w)).transpose(
            1, 2, 0
        )
        offset = _masked_blur(offset, hole, mirror_sigma)[yy, xx]
        ry = np.clip(np.rint(yy + 2 * offset[:, 0]).astype(np.int64), 0, h - 1)
        rx = np.clip(np.rint(xx + 2 * offset[:, 1]).astype(np.int64), 0, w - 1)
        sy, sx = near_y[ry, rx], near_x[ry, rx]
        low = _masked_blur(img, have, detail_sigma)
        detail = img[sy, sx] - low[sy, sx]
        # copy texture only from a source that looks like the boundary the fill starts from
        # (grass next to grass, not a house's edges into the sky), and not where a mirror point
        # that fell into the hole was snapped to its edge
        region = _masked_blur(img, have, 4 * detail_sigma)
        alike = region[sy, sx] - region[near_y[yy, xx], near_x[yy, xx]]
        alike = np.exp(-((alike / match) ** 2).sum(1))
        detail *= (alike * np.exp(-dist[ry, rx] / max(band, 1.0)))[:, None]
        noise = np.random.default_rng(seed).standard_normal(len(yy)).astype(np.float32)
        fade = np.clip((dist[yy, xx] - band) / max(band, 1.0), 0.0, 1.0)
        fill[yy, xx] = base + detail_gain * detail + (grain * noise * fade)[:, None]
    thin = hole & (dist <= band + 1)
    fill8 = np.clip(fill * 255.0 + 0.5, 0, 255).astype(np.uint8)
    painted = cv2.inpaint(fill8, thin.astype(np.uint8) * 255, radius, _METHODS[method])
    fill[thin] = painted[thin].astype(np.float32) / 255.0
    out = torch.from_numpy(np.clip(fill, 0.0, 1.0)).permute(2, 0, 1).to(frame.device)
    return torch.where(known[None], frame, out.to(frame.dtype))


class ClassicalCompleter:
    """Offline completer (no weights); see `inpaint_frame` for the parameters."""

    name = "classical"

    def __init__(
        self,
        *,
        radius: float = 5.0,
        method: str = "telea",
        band: float = 4.0,
        detail_gain: float = 0.6,
        grain: float = 0.006,
        vertical: float = VERTICAL_WEIGHT,
    ):
        from dreamjourney.errors import InputError

        if method not in _METHODS:
            raise InputError(
                f"unknown inpainting method {method!r}; use telea or ns", field="method"
            )
        for field, value in (("band", band), ("detail_gain", detail_gain), ("grain", grain)):
            if value < 0:
                raise InputError(f"{field} must be >= 0, got {value}", field=field)
        if vertical <= 0:
            raise InputError(f"vertical must be > 0, got {vertical}", field="vertical")
        self.radius = radius
        self.method = method
        self.band = band
        self.detail_gain = detail_gain
        self.grain = grain
        self.vertical = vertical

    def check_weights(self) -> None:
        """Needs no weights."""

    def _inpaint(self, frame: Tensor, known: Tensor) -> Tensor:
        return inpaint_frame(
            frame,
            known,
            radius=self.radius,
            method=self.method,
            band=self.band,
            detail_gain=self.detail_gain,
            grain=self.grain,
            vertical=self.vertical,
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
        """`(T,3,H,W)` with every hole filled and every known pixel as it was."""
        frames = frames.float()
        masks = masks.bool()
        total = len(frames)
        fill = frames.clone()
        have = masks.clone()
        if context is not None and context.rerender is not None and not bool(masks[-1].all()):
            last = self._inpaint(frames[-1], masks[-1])
            rendered, rendered_mask = context.rerender(last)
            rendered = rendered.to(frames.device, torch.float32)
            rendered_mask = rendered_mask.to(frames.device).bool()
            take = rendered_mask & ~masks
            fill = torch.where(take[:, None], rendered, fill)
            have = masks | rendered_mask
            fill[-1] = last
            have[-1] = True
        out = torch.empty_like(frames)
        for t in range(total):
            out[t] = self._inpaint(fill[t], have[t])
            if progress is not None:
                progress(t + 1, total)
        return torch.where(masks[:, None], frames, out)
