"""The CPU kernel of `rasterize`: the rules of the torch kernel in `raster.py` (projection,
culling, a depth pass, a key pass) compiled with numba, in the same float32 arithmetic.

The torch kernel builds every candidate (pixel, depth, distance, point) as a tensor and reduces
them with two scatters; on a CPU that traffic through memory costs several times the
arithmetic. Here the points are read as columns (`columns`: one contiguous row per attribute),
a block of them at a time is projected with vector instructions into buffers that stay in the
L1 cache, and the box of pixels of each visible splat is then walked directly. Each pass splits
the points into one part per thread, each part with its own buffer; the buffers are merged by
the same minimum, so the result does not depend on the number of threads or on the order in
which points are visited. The kernels compile with `error_model="numpy"`: the zero-division
checks of the default model are branches that keep LLVM from vectorizing the projection.
They compile on first use and numba caches them on disk.

Compiled code may round a projection differently from torch's matrix product in the last bit,
so where two candidates for a pixel are within float32 rounding of each other the two kernels
may pick different winners (on the benchmark and test scenes they agree on every pixel).
benchmarks/bench_render.py measures both kernels against a NumPy baseline.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
import torch
from numba import prange
from torch import Tensor

_F = np.float32
# the size of numba's thread pool, fixed at import (the stubs lack the config attributes)
_POOL = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
# pass-2 keys pack (squared distance as float32 bits, point index) into one int64
_INDEX_BITS = 32
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_EMPTY = np.iinfo(np.int64).max
_BLOCK = 512  # points projected at a time; their buffers stay in the L1 cache


def columns(points: Tensor, radii: Tensor, axes: Tensor | None) -> Tensor:
    """The layout the kernel reads: (4, P) float32 rows x, y, z, radius, or (10, P) with the
    footprint half-axes a_xyz, b_xyz after them. Args as in `PointCloud`: (P, 3), (P,) and
    (P, 2, 3) or None."""
    p = points.shape[0]
    out = np.empty((4 if axes is None else 10, p), np.float32)
    flat_axes = np.zeros((p, 0), np.float32) if axes is None else _f32(axes).reshape(p, 6)
    with _threads_like_torch():
        _pack(_f32(points), _f32(radii), flat_axes, out)
    return torch.from_numpy(out)


def render_cpu(
    cols: Tensor,
    colors: Tensor,
    K: Tensor,
    w2c: Tensor,
    image: Tensor,
    depth: Tensor,
    index: Tensor,
    *,
    background: float,
    near: float,
    max_splat_px: float,
    depth_tolerance: float,
    parts: int | None = None,
) -> None:
    """Render one camera into `image`, `depth` and `index`, by the rules of
    `raster._visible_points_torch`.

    Args:
        cols: (4 or 10, P) point columns from `columns`.
        colors: (P, C) point colours.
        K: (3, 3) intrinsics in pixels; w2c: (4, 4) world to camera.
        image: (C, H, W) float32 out: the winning point's colour, `background` on holes.
        depth: (H, W) float32 out: its z-depth, 0 on holes.
        index: (H, W) long out: its index, -1 on holes.
        parts: how many parts the points are split into, each with its own buffers (default:
            one per thread, as many threads as torch uses); the result is the same for any.
    """
    c, h, w = image.shape
    points = cols.numpy()
    # the projection K [R | t] as a row-major tuple, focal lengths, image size, splat limits
    P = tuple(_F(x) for x in (K @ w2c[:3]).flatten().tolist())
    camera = (P, _F(K[0, 0]), _F(K[1, 1]), w, h, _F(near), _F(max_splat_px))
    with _threads_like_torch() as threads:
        parts = threads if parts is None else parts
        # pass 1: the minimum depth of all splats covering each pixel; each part of the
        # points has its own buffer, merged by the same minimum
        zbufs = np.empty((parts, h * w), np.float32)
        _splat_pass(points, *camera, _F(depth_tolerance), None, zbufs)
        zmin = zbufs.min(axis=0)
        # pass 2: among the splats on that front surface, the nearest centre wins, then the
        # lower index
        keys = np.empty((parts, h * w), np.int64)
        _splat_pass(points, *camera, _F(depth_tolerance), zmin, keys)
        _resolve(
            keys,
            points,
            _f32(colors),
            P,
            _F(near),
            _F(background),
            image.view(c, h * w).numpy(),
            depth.view(h * w).numpy(),
            index.view(h * w).numpy(),
        )


def warm_up() -> None:
    """Compile the kernels, or load them from numba's disk cache: about 10 s on the first run
    after an install, a fraction of a second after that. The first render does it anyway; a
    command calls this first so that it can say what the wait is."""
    image, depth = torch.empty(3, 2, 2), torch.empty(2, 2)
    index = torch.empty(2, 2, dtype=torch.long)
    cols = columns(torch.ones(1, 3), torch.ones(1), torch.zeros(1, 2, 3))
    render_cpu(
        cols,
        torch.ones(1, 3),
        torch.eye(3),
        torch.eye(4),
        image,
        depth,
        index,
        background=0.0,
        near=1e-6,
        max_splat_px=1.0,
        depth_tolerance=1.0,
    )


@contextmanager
def _threads_like_torch() -> Iterator[int]:
    """Run numba's parallel loops on as many threads as torch uses (yields that number), and
    leave torch's count as it was: numba's OpenMP thread pool, started by the first parallel
    call in a process, sets the OpenMP thread count that torch reads too."""
    torch_threads = torch.get_num_threads()
    threads = max(1, min(torch_threads, _POOL))
    numba.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(torch_threads)


def _f32(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().to(torch.float32).numpy())


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _pack(points, radii, axes, out):
    for p in prange(points.shape[0]):
        out[0, p] = points[p, 0]
        out[1, p] = points[p, 1]
        out[2, p] = points[p, 2]
        out[3, p] = radii[p]
        for k in range(axes.shape[1]):
            out[4 + k, p] = axes[p, k]


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _splat_pass(cols, P, fx, fy, width, height, near, max_px, tol, zmin, bufs):
    """One pass over the splats, each part c of the points into its own buffer bufs[c] (H*W,).

    zmin None, the depth pass: the least depth of the splats over each pixel (inf where
    none). zmin (H*W,) the front surface, the key pass: the least key (squared distance from
    the pixel centre as float32 bits, point index) of the splats over each pixel that lie at
    most `tol` of their radii behind zmin there (_EMPTY where none). numba compiles one
    version of the loop per pass (`zmin is None` is settled at compile time)."""
    parts, n = bufs.shape[0], cols.shape[1]
    per_part = (n + parts - 1) // parts
    for c in prange(parts):
        buf = bufs[c]
        if zmin is None:  # filled by the thread that uses it
            buf[:] = np.inf
        else:
            buf[:] = _EMPTY
        splats = np.empty((3, _BLOCK), np.float32)
        boxes = np.empty((5, _BLOCK), np.int32)
        end = min(n, (c + 1) * per_part)
        for start in range(c * per_part, end, _BLOCK):
            count = min(_BLOCK, end - start)
            _project_block(
                cols, start, count, P, fx, fy, width, height, near, max_px, splats, boxes
            )
            for k in range(count):
                centre, i0, i1 = boxes[0, k], boxes[1, k], boxes[2, k]
                j0, j1, z = boxes[3, k], boxes[4, k], splats[2, k]
                p = start + k
                du, dv, slack = splats[0, k], splats[1, k], cols[3, p] * tol
                for j in range(j0, j1 + 1):
                    row = centre + j * width
                    ddv = dv - _F(j)
                    for i in range(i0, i1 + 1):
                        q = row + i
                        if zmin is None:
                            buf[q] = min(buf[q], z)
                            continue
                        ddu = du - _F(i)
                        # non-negative float32 bit patterns sort like the floats
                        d2 = np.float32(ddu * ddu + ddv * ddv).view(np.int32)
                        mine = (np.int64(d2) << _INDEX_BITS) | p
                        # branch-free: which splat wins is a coin toss for the predictor
                        buf[q] = min(buf[q], mine if z <= zmin[q] + slack else _EMPTY)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _resolve(keys, cols, colors, P, near, background, image, depth, index):
    """Per pixel, the least key of all parts: write the winner's index, z-depth and colour into
    index (H*W,), depth (H*W,) and image (C, H*W), or -1, 0 and `background` on a hole."""
    for q in prange(keys.shape[1]):
        best = keys[0, q]
        for c in range(1, keys.shape[0]):
            best = min(best, keys[c, q])
        if best == _EMPTY:
            index[q] = -1
            depth[q] = 0.0
            for ch in range(image.shape[0]):
                image[ch, q] = background
        else:
            best &= _INDEX_MASK
            index[q] = best
            depth[q] = _project(cols, best, P, near)[2]
            for ch in range(image.shape[0]):
                image[ch, q] = colors[best, ch]


@numba.njit(cache=True, inline="always", error_model="numpy")
def _project(cols, p, P, near):
    """Point p's projected centre u, v in pixels, its z-depth and 1 / z (z at least `near`),
    with P the 3x4 projection K [R | t] as a row-major tuple."""
    x, y, zw = cols[0, p], cols[1, p], cols[2, p]
    z = P[8] * x + P[9] * y + P[10] * zw + P[11]
    iz = _F(1.0) / max(z, near)
    u = (P[0] * x + P[1] * y + P[2] * zw + P[3]) * iz
    v = (P[4] * x + P[5] * y + P[6] * zw + P[7]) * iz
    return u, v, z, iz


@numba.njit(cache=True, error_model="numpy")
def _project_block(cols, start, count, P, fx, fy, width, height, near, max_px, splats, boxes):
    """The splats of points start..start+count, as `raster._visible_points_torch` makes them:
    splats rows du, dv (centre minus the centre of the pixel it falls in, in [-0.5, 0.5)) and
    z-depth; boxes rows the index of that pixel and the columns i0..i1 and rows j0..j1, relative
    to it, of the pixels whose centres lie within the splat's half-sizes of its centre, clipped
    to the image (i1 < i0 for a culled point: at or behind the near plane, or a box that misses
    the image). Straight-line loops with few output rows, so that LLVM vectorizes them."""
    # rows u, v (the projected centre, pixels), z, rx, ry (half-sizes, pixels). One loop per
    # footprint kind, each writing arrays it does not read: so LLVM vectorizes them.
    screen = np.empty((5, count), np.float32)
    if cols.shape[0] == 4:  # spheres: f * radius / z pixels
        for k in range(count):
            u, v, z, iz = _project(cols, start + k, P, near)
            r = cols[3, start + k] * iz
            screen[0, k], screen[1, k], screen[2, k] = u, v, z
            screen[3, k] = r * fx
            screen[4, k] = r * fy
    else:  # a world step a moves the pixel by ((KR a)_0 - u (KR a)_2) / z, likewise for v
        for k in range(count):
            p = start + k
            u, v, z, iz = _project(cols, p, P, near)
            ax, ay, az = cols[4, p], cols[5, p], cols[6, p]
            bx, by, bz = cols[7, p], cols[8, p], cols[9, p]
            a2 = P[8] * ax + P[9] * ay + P[10] * az
            b2 = P[8] * bx + P[9] * by + P[10] * bz
            rx = abs((P[0] * ax + P[1] * ay + P[2] * az) - u * a2)
            rx += abs((P[0] * bx + P[1] * by + P[2] * bz) - u * b2)
            ry = abs((P[4] * ax + P[5] * ay + P[6] * az) - v * a2)
            ry += abs((P[4] * bx + P[5] * by + P[6] * bz) - v * b2)
            screen[0, k], screen[1, k], screen[2, k] = u, v, z
            screen[3, k] = rx * iz
            screen[4, k] = ry * iz
    half_w = _F(width) * _F(0.5)
    half_h = _F(height) * _F(0.5)
    for k in range(count):
        u, v, z = screen[0, k], screen[1, k], screen[2, k]
        rx = min(max(screen[3, k], _F(0.5)), max_px)
        ry = min(max(screen[4, k], _F(0.5)), max_px)
        # false for NaN too, so a broken point is culled rather than written anywhere
        visible = (z > near) & (abs(u - half_w) - rx <= half_w) & (abs(v - half_h) - ry <= half_h)
        fu = np.floor(u) if visible else _F(0.0)
        fv = np.floor(v) if visible else _F(0.0)
        du = (u - fu) - _F(0.5)
        dv = (v - fv) - _F(0.5)
        splats[0, k] = du
        splats[1, k] = dv
        splats[2, k] = z
        # a culled point gets the empty box 0..-1 outright: its bounds may be NaN
        boxes[0, k] = np.int32(fv) * np.int32(width) + np.int32(fu)
        boxes[1, k] = np.int32(max(np.ceil(du - rx), -fu)) if visible else 0
        boxes[2, k] = np.int32(min(np.floor(du + rx), _F(width - 1) - fu)) if visible else -1
        boxes[3, k] = np.int32(max(np.ceil(dv - ry), -fv)) if visible else 0
        boxes[4, k] = np.int32(min(np.floor(dv + ry), _F(height - 1) - fv)) if visible else -1
