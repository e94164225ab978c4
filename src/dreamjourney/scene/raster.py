"""Exact, order-independent point splatting: RGB, depth, hole mask and winner index per pixel.

Each point is a screen-aligned square splat whose half-size is its world footprint radius
projected at its depth (`f * radius / z` pixels, capped at MAX_SPLAT_PX); it covers the pixels
whose centres lie inside the square. Visibility takes two scatter passes, both reductions whose
result does not depend on the order of writes:

1. z-buffer: the minimum depth of all splats covering each pixel (`scatter_reduce_` "amin").
2. winner: among the splats that lie on that front surface (depth within `DEPTH_TOLERANCE`
   footprints of the minimum), the one whose centre is nearest the pixel centre wins; ties
   go to the lower point index. Keys pack (distance, index) into one int64 and take "amin".

So a background splat never shows through a foreground surface, neighbouring samples of one
surface split the pixels between them (the source view reproduces its image exactly), and a
pixel no splat reaches is a hole.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dreamjourney.camera import Cameras
from dreamjourney.scene.pointcloud import PointCloud

MAX_SPLAT_PX = 16.0
# A splat is on the front surface at a pixel if it is at most this many of its own footprint
# radii behind the nearest splat there.
DEPTH_TOLERANCE = 3.0
NEAR = 1e-6
_DIST_SCALE = 2.0**16  # squared pixel distance -> integer key (max 2 * 16^2 * 2^16 < 2^31)
_INDEX_BITS = 32
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_EMPTY = torch.iinfo(torch.long).max


@dataclass
class RenderOutput:
    """Rendered views of N cameras.

    Attributes:
        image: (N, C, H, W) colours; `background` on holes.
        depth: (N, H, W) z-depth of the winning point; 0 on holes.
        mask: (N, H, W) bool, True where a point covers the pixel.
        index: (N, H, W) long, the winning point's index in the cloud; -1 on holes.
    """

    image: Tensor
    depth: Tensor
    mask: Tensor
    index: Tensor

    def crop(self, margin: int) -> RenderOutput:
        """Cut `margin` pixels off every side (undoes the padding of `render_padded`)."""
        if margin == 0:
            return self
        s = (slice(margin, -margin), slice(margin, -margin))
        return RenderOutput(
            self.image[..., s[0], s[1]],
            self.depth[..., s[0], s[1]],
            self.mask[..., s[0], s[1]],
            self.index[..., s[0], s[1]],
        )


def rasterize(cloud: PointCloud, cameras: Cameras, *, background: float = 0.0) -> RenderOutput:
    """Render `cloud` from every camera in the batch.

    Args:
        cloud: P points (on the device to render on).
        cameras: N cameras sharing one image size (moved to the cloud's device).
        background: colour of holes.
    Returns:
        RenderOutput with (N, C, H, W) image, (N, H, W) depth / mask / index.
    """
    if len(cloud) >= 2**31:
        raise ValueError(f"rasterize: at most 2^31 - 1 points, got {len(cloud)}")
    device = cloud.device
    cameras = cameras.to(device)
    n, h, w, c = len(cameras), cameras.height, cameras.width, cloud.colors.shape[1]
    images, depths, indices = [], [], []
    for i in range(n):
        winner, zwin = _visible_points(cloud, cameras.K[i], cameras.w2c[i], w, h)
        known = winner >= 0
        safe = winner.clamp_min(0)
        if len(cloud):
            colors = cloud.colors.index_select(0, safe).T.to(torch.float32)
        else:
            colors = torch.zeros(c, h * w, device=device)
        images.append(torch.where(known, colors, float(background)).view(c, h, w))
        depths.append(torch.where(known, zwin, 0.0).view(h, w))
        indices.append(winner.view(h, w))
    index = torch.stack(indices)
    return RenderOutput(
        image=torch.stack(images), depth=torch.stack(depths), mask=index >= 0, index=index
    )


def render_padded(
    cloud: PointCloud, cameras: Cameras, padding: int, *, background: float = 0.0
) -> RenderOutput:
    """Render with `padding` extra pixels on every side, a wider field of view around each
    camera: output (N, C, H + 2p, W + 2p); `.crop(padding)` gives back the (H, W) view."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    return rasterize(cloud, cameras.pad(padding), background=background)


def _visible_points(
    cloud: PointCloud, K: Tensor, w2c: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor]:
    """(H*W,) winning point index (-1 = hole) and its z-depth, for one camera."""
    hw = height * width
    device = cloud.device
    if len(cloud) == 0:
        return torch.full((hw,), -1, dtype=torch.long, device=device), torch.zeros(
            hw, device=device
        )
    # One small matmul projects straight to pixels: uvw = (K R) p + K t, and w = z.
    uvw = torch.addmm((K @ w2c[:3, 3])[:, None], K @ w2c[:3, :3], cloud.points.T)
    z = uvw[2]
    iz = z.clamp_min(NEAR).reciprocal_()
    u = uvw[0].mul_(iz)
    v = uvw[1].mul_(iz)
    # Splat half-sizes in pixels; at least half a pixel, so a point always covers the pixel
    # it falls in.
    r = iz.mul_(cloud.radii)
    rx = (r * K[0, 0]).clamp_(0.5, MAX_SPLAT_PX)
    ry = (r * K[1, 1]).clamp_(0.5, MAX_SPLAT_PX)
    fu = u.floor()
    fv = v.floor()
    du = u.sub_(fu).sub_(0.5)  # pixel-centre offset of u: u - (fu + 0.5), in [-0.5, 0.5)
    dv = v.sub_(fv).sub_(0.5)
    fu.masked_fill_(z <= NEAR, -(2.0 * MAX_SPLAT_PX + 2))  # behind the camera: off-screen

    parts: list[tuple[Tensor, ...]] = []
    # The pixel the point falls in (always covered), then rings k = 1, 2, ... of pixels
    # around it, which only the few splats wider than k - 0.5 pixels can reach.
    idx = torch.arange(len(cloud), device=device)
    parts.append(_candidates(fu, fv, du, dv, None, None, z, cloud.radii, idx, width, height))
    reach = torch.maximum(rx, ry)
    largest = int(torch.ceil(reach.max() - 0.5).item())
    for k in range(1, largest + 1):
        sel = torch.nonzero(reach > k - 0.5).squeeze(1)
        if len(sel) == 0:
            break
        ring = [
            (i, j) for i in range(-k, k + 1) for j in range(-k, k + 1) if max(abs(i), abs(j)) == k
        ]
        ii = torch.tensor([o[0] for o in ring], device=device, dtype=torch.float32)
        jj = torch.tensor([o[1] for o in ring], device=device, dtype=torch.float32)
        m = len(ring)
        parts.append(
            _candidates(
                (fu[sel][:, None] + ii).reshape(-1),
                (fv[sel][:, None] + jj).reshape(-1),
                (du[sel][:, None] - ii).reshape(-1),
                (dv[sel][:, None] - jj).reshape(-1),
                rx[sel].repeat_interleave(m),
                ry[sel].repeat_interleave(m),
                z[sel].repeat_interleave(m),
                cloud.radii[sel].repeat_interleave(m),
                sel.repeat_interleave(m),
                width,
                height,
            )
        )
    zbuf = torch.full((hw + 1,), float("inf"), device=device)
    for pix, zs, _, _, _ in parts:
        zbuf.scatter_reduce_(0, pix, zs, reduce="amin")
    kbuf = torch.full((hw + 1,), _EMPTY, dtype=torch.long, device=device)
    for pix, zs, rs, d2, idx in parts:
        behind = zs > zbuf.index_select(0, pix).add_(rs, alpha=DEPTH_TOLERANCE)
        key = d2.mul_(_DIST_SCALE).long().bitwise_left_shift_(_INDEX_BITS).bitwise_or_(idx)
        kbuf.scatter_reduce_(0, pix, key.masked_fill_(behind, _EMPTY), reduce="amin")
    kbuf = kbuf[:hw]
    winner = torch.where(kbuf == _EMPTY, -1, kbuf.bitwise_and_(_INDEX_MASK))
    return winner, z.index_select(0, winner.clamp_min(0))


def _candidates(
    px: Tensor,
    py: Tensor,
    du: Tensor,
    dv: Tensor,
    rx: Tensor | None,
    ry: Tensor | None,
    z: Tensor,
    radii: Tensor,
    idx: Tensor,
    width: int,
    height: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Candidate (pixel, depth, radius, squared centre distance, point) for pixel (px, py) of each
    splat; `du, dv` = splat centre minus pixel centre. Pixels off the image, or (when rx, ry are
    given) outside the splat, go to the dump pixel H*W."""
    ok = (px.clamp(0, width - 1) == px) & (py.clamp(0, height - 1) == py)
    if rx is not None and ry is not None:
        ok &= (du.abs() <= rx) & (dv.abs() <= ry)
    pix = (py * width).add_(px).long().masked_fill_(~ok, width * height)
    return pix, z, radii, du * du + dv * dv, idx
