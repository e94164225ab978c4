"""Exact, order-independent point splatting: RGB, depth, hole mask and winner index per pixel.

Each point is a screen-aligned box splat around the projection of its footprint: the
parallelogram of its footprint axes when the cloud has them (so a slanted surface gets a splat
as thin or as wide as it looks from this camera), else a sphere of its radius
(`f * radius / z` pixels). Half-sizes are at least half a pixel (a point always covers the
pixel it falls in) and at most MAX_SPLAT_PX. A splat covers the pixels whose centres lie inside
its box; points at or behind the near plane and splats whose box misses the image are culled
before any candidate pixel is made, and boxes are clipped to the image, so the work is that of
the visible splats. Visibility takes two scatter passes, both reductions whose result does not
depend on the order of writes:

1. z-buffer: the minimum depth of all splats covering each pixel (`scatter_reduce_` "amin").
2. winner: among the splats that lie on that front surface (depth within `DEPTH_TOLERANCE`
   footprints of the minimum), the one whose centre is nearest the pixel centre wins; ties
   go to the lower point index. Keys pack (distance, index) into one int64 and take "amin".

So a background splat never shows through a foreground surface, neighbouring samples of one
surface split the pixels between them (the source view reproduces its image exactly), and a
pixel no splat reaches is a hole.

Two kernels follow these rules. The torch kernel here runs wherever torch does (CUDA
included). On the CPU, `raster_cpu` compiles the same rules with numba, 2-4x faster than the
torch kernel on 1M points (benchmarks/bench_render.py); it is the default there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from dreamjourney.camera import Cameras
from dreamjourney.errors import warn_input
from dreamjourney.scene import raster_cpu
from dreamjourney.scene.pointcloud import PointCloud

MAX_SPLAT_PX = 16.0
# A splat is on the front surface at a pixel if it is at most this many of its own footprint
# radii behind the nearest splat there.
DEPTH_TOLERANCE = 3.0
NEAR = 1e-6
_INDEX_BITS = 32
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_EMPTY = torch.iinfo(torch.long).max
# A rendered frame with at least this share of hole pixels shows (nearly) nothing of the scene.
BLANK_HOLES = 0.95


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


Kernel = Literal["auto", "compiled", "torch"]


def rasterize(
    cloud: PointCloud, cameras: Cameras, *, background: float = 0.0, kernel: Kernel = "auto"
) -> RenderOutput:
    """Render `cloud` from every camera in the batch.

    Args:
        cloud: P points (on the device to render on).
        cameras: N cameras sharing one image size (moved to the cloud's device).
        background: colour of holes.
        kernel: "compiled" (CPU only) or "torch"; "auto" takes the compiled kernel for a cloud
            on the CPU. Both follow the same rules and give the same pixels, except where two
            candidates for a pixel are within float32 rounding of each other.
    Returns:
        RenderOutput with (N, C, H, W) image, (N, H, W) depth / mask / index.
    """
    if len(cloud) >= 2**31:
        raise ValueError(f"rasterize: at most 2^31 - 1 points, got {len(cloud)}")
    device = cloud.device
    compiled = kernel == "compiled" or (kernel == "auto" and device.type == "cpu")
    if compiled and device.type != "cpu":
        raise ValueError(
            f"rasterize: the compiled kernel runs on the CPU, the cloud is on {device}"
        )
    cameras = cameras.to(device)
    n, h, w, c = len(cameras), cameras.height, cameras.width, cloud.colors.shape[1]
    image = torch.empty(n, c, h, w, device=device)
    depth = torch.empty(n, h, w, device=device)
    index = torch.empty(n, h, w, dtype=torch.long, device=device)
    for i in range(n):
        K, w2c = cameras.K[i], cameras.w2c[i]
        if compiled:
            raster_cpu.render_cpu(
                cloud.columns(),
                cloud.colors,
                K,
                w2c,
                image[i],
                depth[i],
                index[i],
                background=background,
                near=NEAR,
                max_splat_px=MAX_SPLAT_PX,
                depth_tolerance=DEPTH_TOLERANCE,
            )
            continue
        winner, zwin = _visible_points_torch(cloud, K, w2c, w, h)
        known = winner >= 0
        index[i] = winner.view(h, w)
        depth[i] = torch.where(known, zwin, 0.0).view(h, w)
        if len(cloud):
            colors = cloud.colors.index_select(0, winner.clamp_min(0)).T.to(torch.float32)
            image[i] = torch.where(known, colors, float(background)).view(c, h, w)
        else:
            image[i] = background
    return RenderOutput(image=image, depth=depth, mask=index >= 0, index=index)


def blank_frames(masks: Tensor) -> list[int]:
    """Indices of the frames of (N, H, W) bool hole masks (True = known) that are at least
    `BLANK_HOLES` holes."""
    known = masks.flatten(1).float().mean(1)
    return torch.nonzero(known <= 1.0 - BLANK_HOLES).flatten().tolist()


def warn_if_blank(masks: Tensor, *, what: str, hint: str) -> list[int]:
    """Warn (`InputWarning`) when rendered frames show almost nothing of the scene.

    Args:
        masks: (N, H, W) bool hole masks (True = known) of N rendered frames.
        what: names the frames in the message, e.g. "rendered frames".
        hint: what the user can change, appended to the message.
    Returns:
        `blank_frames(masks)`.
    """
    blank = blank_frames(masks)
    if blank:
        shown = ", ".join(map(str, blank[:8])) + (", ..." if len(blank) > 8 else "")
        warn_input(
            f"{len(blank)} of {len(masks)} {what} are >= {100 * BLANK_HOLES:.0f}% holes "
            f"(frames {shown}): the camera sees little of the scene there; {hint}"
        )
    return blank


def render_padded(
    cloud: PointCloud,
    cameras: Cameras,
    padding: int,
    *,
    background: float = 0.0,
    kernel: Kernel = "auto",
) -> RenderOutput:
    """Render with `padding` extra pixels on every side, a wider field of view around each
    camera: output (N, C, H + 2p, W + 2p); `.crop(padding)` gives back the (H, W) view."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    return rasterize(cloud, cameras.pad(padding), background=background, kernel=kernel)


def _visible_points_torch(
    cloud: PointCloud, K: Tensor, w2c: Tensor, width: int, height: int
) -> tuple[Tensor, Tensor]:
    """(H*W,) winning point index (-1 = hole) and its z-depth, for one camera: the torch
    kernel."""
    hw = height * width
    device = cloud.device
    if len(cloud) == 0:
        return torch.full((hw,), -1, dtype=torch.long, device=device), torch.zeros(
            hw, device=device
        )
    # One small matmul projects straight to pixels: uvw = (K R) p + K t, and w = z.
    KR = K @ w2c[:3, :3]
    uvw = torch.addmm((K @ w2c[:3, 3])[:, None], KR, cloud.points.T)
    z = uvw[2]
    iz = z.clamp_min(NEAR).reciprocal_()
    u = uvw[0].mul_(iz)
    v = uvw[1].mul_(iz)
    # Splat half-sizes in pixels; at least half a pixel, so a point always covers the pixel
    # it falls in.
    if cloud.axes is None:
        r = cloud.radii * iz
        rx = (r * K[0, 0]).clamp_(0.5, MAX_SPLAT_PX)
        ry = rx if bool(K[0, 0] == K[1, 1]) else (r * K[1, 1]).clamp_(0.5, MAX_SPLAT_PX)
    else:
        rx, ry = _projected_extent(cloud.axes, KR, u, v, iz)
    # Cull points at or behind the near plane and splats whose box misses the image (a box
    # covers the pixel its centre falls in and pixel centres within rx, ry of it, so one
    # missing [0, W] x [0, H] covers nothing). After a forward move many points lie beside
    # the camera with footprints capped at MAX_SPLAT_PX: without this they would produce
    # (2 MAX_SPLAT_PX + 1)^2 off-image candidates each.
    cull = (u - width / 2).abs_().sub_(rx) > width / 2
    cull |= (v - height / 2).abs_().sub_(ry) > height / 2
    cull |= z <= NEAR
    radii, z_kept = cloud.radii, z
    n_cull = int(cull.sum())
    if n_cull > len(cloud) // 4:  # drop them: every later pass gets shorter
        idx = torch.nonzero(cull.logical_not_()).squeeze(1)
        round_ = ry is rx
        rows = [u, v, rx, radii, z_kept] + ([] if round_ else [ry])
        u, v, rx, radii, z_kept, *rest = torch.stack(rows).index_select(1, idx).unbind(0)
        ry = rx if round_ else rest[0]
    else:  # cheaper to send each to the dump pixel below than to compact the arrays
        idx = torch.arange(len(cloud), device=device)
    fu = u.floor()
    fv = v.floor()
    du = u.sub_(fu).sub_(0.5)  # splat centre minus pixel centre, in [-0.5, 0.5)
    dv = v.sub_(fv).sub_(0.5)
    # a splat reaches past the pixel its centre falls in iff |du| + rx >= 1 (or likewise in v)
    reach = torch.maximum(du.abs().add_(rx), dv.abs().add_(ry))
    if 0 < n_cull <= len(cloud) // 4:
        fu.masked_fill_(cull, -1.0)
        reach.masked_fill_(cull, 0.0)

    # Candidates, for the kept points (`idx` maps them back to the cloud): the pixel each
    # centre falls in (always covered); then, for splats reaching past it, the one or three
    # neighbours of a splat under a pixel wide, and the in-image pixels of the box of each
    # wider one. No candidate list is ever expanded for all points.
    parts = [_candidates(fu, fv, du, dv, z_kept, radii, idx, width, height)]
    ext = torch.nonzero(reach >= 1).squeeze(1)
    if len(ext):
        fu_e, fv_e, du_e, dv_e = fu[ext], fv[ext], du[ext], dv[ext]
        z_e, r_e, rx_e = z_kept[ext], radii[ext], rx[ext]
        ry_e = rx_e if ry is rx else ry[ext]
        wide = (rx_e >= 1) | (ry_e >= 1)
        # under a pixel wide, a splat reaches at most one more column and one more row
        ex = (du_e + rx_e >= 1).float().sub_((rx_e - du_e >= 1).float()).masked_fill_(wide, 0)
        ey = (dv_e + ry_e >= 1).float().sub_((ry_e - dv_e >= 1).float()).masked_fill_(wide, 0)
        no_x, no_y = ex == 0, ey == 0
        for a, b, skip in ((ex, 0.0, no_x), (0.0, ey, no_y), (ex, ey, no_x | no_y)):
            parts.append(
                _candidates(
                    fu_e + a,
                    fv_e + b,
                    du_e - a,
                    dv_e - b,
                    z_e,
                    r_e,
                    idx[ext],
                    width,
                    height,
                    skip=skip,
                )
            )
        big = ext[wide]
        parts.append(
            _box_candidates(big, fu, fv, du, dv, rx, ry, z_kept, radii, idx, width, height)
        )

    zbuf = torch.full((hw + 1,), float("inf"), device=device)
    for pix, zs, _, _, _ in parts:
        zbuf.scatter_reduce_(0, pix, zs, reduce="amin")
    kbuf = torch.full((hw + 1,), _EMPTY, dtype=torch.long, device=device)
    for pix, zs, rs, d2, idx in parts:
        occluded = zs > zbuf.index_select(0, pix).add_(rs, alpha=DEPTH_TOLERANCE)
        # non-negative float32 bit patterns sort like the floats: an exact distance key
        key = d2.view(torch.int32).long().bitwise_left_shift_(_INDEX_BITS).bitwise_or_(idx)
        kbuf.scatter_reduce_(0, pix, key.masked_fill_(occluded, _EMPTY), reduce="amin")
    kbuf = kbuf[:hw]
    winner = torch.where(kbuf == _EMPTY, -1, kbuf.bitwise_and_(_INDEX_MASK))
    return winner, z.index_select(0, winner.clamp_min(0))


def _candidates(
    px: Tensor,
    py: Tensor,
    du: Tensor,
    dv: Tensor,
    z: Tensor,
    radii: Tensor,
    idx: Tensor,
    width: int,
    height: int,
    *,
    skip: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Candidate (pixel, depth, radius, squared centre distance, point) for pixel (px, py) of each
    splat, where `du, dv` = splat centre minus pixel centre. Pixels off the image, or marked
    `skip`, go to the dump pixel H*W."""
    off = (px.clamp(0, width - 1) != px) | (py.clamp(0, height - 1) != py)
    if skip is not None:
        off |= skip
    pix = (py * width).add_(px).long().masked_fill_(off, width * height)
    return pix, z, radii, torch.addcmul(du * du, dv, dv), idx


def _box_candidates(
    sel: Tensor,
    fu: Tensor,
    fv: Tensor,
    du: Tensor,
    dv: Tensor,
    rx: Tensor,
    ry: Tensor,
    z: Tensor,
    radii: Tensor,
    idx: Tensor,
    width: int,
    height: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Candidates for every pixel of the image whose centre lies in the box of points `sel`
    (positions in the per-point arrays; `idx` gives their indices in the cloud).

    Pixel (fu + i, fv + j) is in the box iff |du - i| <= rx and |dv - j| <= ry; each box is
    clipped to the image first, so a splat's work is at most its visible part. The centre's
    own pixel comes again here (the reductions do not mind a repeat)."""
    fu_s, fv_s, du_s, dv_s, rx_s, ry_s = fu[sel], fv[sel], du[sel], dv[sel], rx[sel], ry[sel]
    i0 = torch.maximum((du_s - rx_s).ceil_(), -fu_s)
    i1 = torch.minimum((du_s + rx_s).floor_(), (width - 1) - fu_s)
    j0 = torch.maximum((dv_s - ry_s).ceil_(), -fv_s)
    j1 = torch.minimum((dv_s + ry_s).floor_(), (height - 1) - fv_s)
    nx = (i1 - i0 + 1).clamp_(min=0).long()
    count = nx * (j1 - j0 + 1).clamp_(min=0).long()
    owner = torch.repeat_interleave(count)  # (C,) position in `sel` of each candidate
    # one gather per dtype of the per-box values each candidate needs
    fl = torch.stack([du_s, dv_s, i0, j0, z[sel], radii[sel]], 1).index_select(0, owner)
    first = count.cumsum(0).sub_(count)
    pix0 = (fv_s + j0).long().mul_(width).add_((fu_s + i0).long())
    ints = torch.stack([first, nx, pix0, idx[sel]], 1).index_select(0, owner)
    at = torch.arange(len(owner), device=sel.device).sub_(ints[:, 0])
    j = at.div(ints[:, 1], rounding_mode="floor")
    i = at.sub_(j * ints[:, 1])
    # distances as the other candidates get them: centre offset minus whole pixel steps
    du_c = fl[:, 0] - (fl[:, 2] + i)
    dv_c = fl[:, 1] - (fl[:, 3] + j)
    pix = j.mul_(width).add_(i).add_(ints[:, 2])
    return pix, fl[:, 4], fl[:, 5], torch.addcmul(du_c * du_c, dv_c, dv_c), ints[:, 3]


def _projected_extent(
    axes: Tensor, KR: Tensor, u: Tensor, v: Tensor, iz: Tensor
) -> tuple[Tensor, Tensor]:
    """Half-width and half-height in pixels of the screen box around each footprint
    parallelogram (P, 2, 3): a world step `a` moves the pixel by ((KR a)_0 - u (KR a)_2) / z,
    and likewise for v."""
    a = KR @ axes[:, 0].T  # (3, P)
    b = KR @ axes[:, 1].T
    rx = torch.addcmul(a[0], u, a[2], value=-1).abs_()
    rx += torch.addcmul(b[0], u, b[2], value=-1).abs_()
    ry = torch.addcmul(a[1], v, a[2], value=-1).abs_()
    ry += torch.addcmul(b[1], v, b[2], value=-1).abs_()
    return rx.mul_(iz).clamp_(0.5, MAX_SPLAT_PX), ry.mul_(iz).clamp_(0.5, MAX_SPLAT_PX)
