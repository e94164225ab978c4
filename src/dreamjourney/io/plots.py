"""Pictures of camera paths (matplotlib, Agg; no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor

from dreamjourney.camera.cameras import Cameras
from dreamjourney.io.atomic import atomic_path

MAX_POINTS = 40_000
MAX_FRUSTA = 12
AXES = "xyz"
Axis = tuple[int, float]  # a world axis (0, 1, 2) and a sign


def parse_up(text: str) -> Axis:
    """'+z', 'z', '-y' ... -> (axis, sign)."""
    value = text.strip().lower()
    sign = -1.0 if value.startswith("-") else 1.0
    name = value.lstrip("+-")
    if name not in ("x", "y", "z") or len(value) - len(name) > 1:
        raise ValueError(f"expected a world axis such as +z, -y or x, got {text!r}")
    return AXES.index(name), sign


def up_axis(cameras: Cameras) -> Axis:
    """The signed world axis nearest to the cameras' mean up direction (their image's -y axis):
    -y for our own paths, +z for nerfstudio, instant-ngp and Blender scenes."""
    up = -cameras.c2w[:, :3, 1].double().mean(0)
    if float(up.norm()) < 1e-6:
        return 1, -1.0
    axis = int(up.abs().argmax())
    return axis, 1.0 if float(up[axis]) > 0 else -1.0


def axis_label(axis: Axis) -> str:
    """(2, 1.0) -> '+z'."""
    return ("-" if axis[1] < 0 else "+") + AXES[axis[0]]


def _views(up: Axis) -> dict[str, tuple[Axis, Axis]]:
    """Name -> (horizontal, vertical) signed world axes of the two views: from above (looking
    down `up`, not mirrored) and from the side (up is up)."""
    others = [a for a in range(3) if a != up[0]]
    h = others[0]
    v = others[1]
    # h x v must point along up for the top view not to be mirrored
    cross = torch.linalg.cross(torch.eye(3)[h], torch.eye(3)[v])
    v_sign = float(cross[up[0]]) * up[1]
    horizontal, vertical = (h, 1.0), (v, v_sign)
    return {
        f"top view ({axis_label(horizontal)} right, {axis_label(vertical)} up the page)": (
            horizontal,
            vertical,
        ),
        f"side view ({axis_label(vertical)} right, up = {axis_label(up)})": (vertical, up),
    }


def spread(n: int, k: int) -> np.ndarray:
    """At most `k` of the indices 0..n-1, evenly spread, the first and the last included:
    (m,) int, sorted, unique (where frusta go along a path of `n` cameras)."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round()).astype(int)


def thin(points: np.ndarray, colors: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, 3) points and their (P, 3) colours, cut to a fixed random `limit` of them (seed 0,
    the same pick every time) when there are more."""
    if len(points) <= limit:
        return points, colors
    keep = np.random.default_rng(0).choice(len(points), limit, replace=False)
    return points[keep], colors[keep]


def _frusta(cameras: Cameras, depth: float) -> np.ndarray:
    """(N, 5, 3) world points: camera centre, then the image corners at z = `depth`."""
    W, H = cameras.width, cameras.height
    corners = torch.tensor([[0.0, 0.0], [W, 0.0], [W, H], [0.0, H]])
    uv = corners[None].expand(len(cameras), 4, 2)
    far = cameras.unproject(uv, torch.full((len(cameras), 4), depth))
    return torch.cat([cameras.centers[:, None], far], dim=1).double().numpy()


def _plane(xyz: np.ndarray, axes: tuple[Axis, Axis]) -> np.ndarray:
    (i, si), (j, sj) = axes
    return np.stack([si * xyz[..., i], sj * xyz[..., j]], axis=-1)


def plot_trajectory(
    cameras: Cameras,
    path: str | Path,
    points: tuple[Tensor | np.ndarray, Tensor | np.ndarray] | None = None,
    *,
    title: str | None = None,
    up: Axis | None = None,
) -> None:
    """Write a PNG with a top view and a side view of the camera path.

    The path is coloured by time (dark = early), camera frusta are drawn along it (the first
    marked "start" in green, the last "end" in red) and an optional world point cloud is drawn
    underneath.

    Args:
        cameras: the path, OpenCV c2w poses.
        path: the PNG to write (atomically).
        points: optional (P, 3) world points and (P, 3) RGB colours in [0, 1].
        up: the world's up axis and sign (`parse_up`); default: from the cameras (`up_axis`).
    """
    cameras = cameras.to("cpu")
    up = up if up is not None else up_axis(cameras)
    views = _views(up)
    centers = cameras.centers.double().numpy()
    extent = float(np.ptp(centers, axis=0).max()) if len(cameras) > 1 else 0.0
    cloud = colors = None
    if points is not None:
        cloud = np.asarray(torch.as_tensor(points[0]).double().cpu())
        colors = np.clip(np.asarray(torch.as_tensor(points[1]).double().cpu()), 0.0, 1.0)
        cloud, colors = thin(cloud, colors, MAX_POINTS)
    # frusta sized to the path; to the scene when the camera only turns; else 1 unit
    depth = 0.12 * extent
    if depth <= 0:
        if cloud is not None and len(cloud):
            depth = 0.1 * float(np.ptp(cloud, axis=0).max())
        depth = depth if depth > 0 else 1.0
    picks = spread(len(cameras), MAX_FRUSTA)
    frusta = _frusta(cameras, depth)
    times = cameras.times.double().numpy()

    fig = Figure(figsize=(13, 6.2), dpi=100)
    FigureCanvasAgg(fig)
    for k, (name, axes) in enumerate(views.items()):
        ax: Axes = fig.add_subplot(1, 2, k + 1)
        if cloud is not None and colors is not None and len(cloud):
            flat = _plane(cloud, axes)
            # top view: the highest points drawn last, as seen from above; side view: the
            # nearest last (the side view looks down -h, h the top view's horizontal axis)
            depth_axis = up if k == 0 else (next(iter(views.values()))[0][0], 1.0)
            order = np.argsort(depth_axis[1] * cloud[:, depth_axis[0]])
            ax.scatter(
                flat[order, 0], flat[order, 1], c=colors[order], s=1.5, linewidths=0, zorder=0
            )
        xy = _plane(centers, axes)
        if len(cameras) > 1:
            segments = list(np.stack([xy[:-1], xy[1:]], axis=1))
            line = LineCollection(segments, cmap="viridis", linewidths=2.0, zorder=2)
            line.set_path_effects([patheffects.withStroke(linewidth=4.0, foreground="white")])
            line.set_array(times[:-1])
            ax.add_collection(line)
        for i in picks:
            f = _plane(frusta[i], axes)
            color = "tab:green" if i == 0 else "tab:red" if i == len(cameras) - 1 else "0.35"
            rim = f[[1, 2, 3, 4, 1]]
            ax.plot(*rim.T, color=color, lw=0.9, zorder=3)
            for c in range(1, 5):
                ax.plot(*f[[0, c]].T, color=color, lw=0.6, zorder=3)
            # a tick on the image's top edge shows which way is up in the picture
            top = 0.5 * (f[1] + f[2])
            ax.plot(*np.stack([top, f[0] + 1.15 * (top - f[0])]).T, color=color, lw=1.4, zorder=3)
        ax.scatter(xy[-1, 0], xy[-1, 1], s=90, marker="s", color="tab:red", zorder=4, label="end")
        # start drawn last as a ring, so a closed path (orbit) shows both markers
        ax.scatter(
            xy[0, 0],
            xy[0, 1],
            s=160,
            marker="o",
            facecolors="none",
            edgecolors="tab:green",
            linewidths=2.5,
            zorder=5,
            label="start",
        )
        h_axis, v_axis = axes
        ax.set_xlabel(axis_label(h_axis) + " (world units)")
        ax.set_ylabel(axis_label(v_axis) + " (world units)")
        ax.set_title(name)
        ax.set_aspect("equal", adjustable="datalim")
        ax.autoscale_view()
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    duration = times[-1] - times[0] if len(times) else 0.0
    fov = float(cameras.fov_deg("horizontal")[0])
    fig.suptitle(
        title
        or f"{len(cameras)} cameras, {duration:.2f} s, {cameras.width}x{cameras.height}, "
        f"horizontal fov {fov:.1f} deg at start"
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
