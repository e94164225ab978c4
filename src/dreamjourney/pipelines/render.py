"""The dry run: a world rendered along a camera path, no generation.

It writes exactly what a completion model would be given: the partial frames, their hole
masks and depths, the cameras, a preview video and the point cloud. `dreamjourney render` and
the studio's Preview both call `render_path`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dreamjourney.camera import Cameras
from dreamjourney.camera.formats import save_cameras
from dreamjourney.io.atomic import atomic_path
from dreamjourney.io.images import save_image
from dreamjourney.io.video import VideoWriter
from dreamjourney.scene import World, render_padded


@dataclass(frozen=True)
class DryRun:
    """What `render_path` saw: `known` (N, H, W) bool, True where the world covers a pixel
    of frame i (padding included)."""

    known: Tensor

    @property
    def holes(self) -> Tensor:
        """(N,) float32 share of hole pixels of each frame, in [0, 1]."""
        return 1.0 - self.known.flatten(1).float().mean(1)


def render_path(
    world: World,
    cameras: Cameras,
    out: str | Path,
    *,
    padding: int = 0,
    fps: float = 24.0,
    progress: Callable[[int, int], None] | None = None,
) -> DryRun:
    """Render `world` from every camera and write the dry run into `out`.

    Writes `frames/NNNNNN.png` (3, H, W) colours (black on holes), `masks/NNNNNN.png` (white =
    known), `depth/NNNNNN.npy` (H, W) float32 z-depth (0 on holes), `render.mp4`,
    `cameras.json` (native; padded when `padding` > 0) and `world.ply`.

    Args:
        world: the point cloud to render.
        cameras: the path, OpenCV c2w.
        out: output directory (created).
        padding: extra pixels rendered on every side (a wider field of view).
        fps: frame rate of render.mp4 and of the frame times in cameras.json.
        progress: called with (frames done, total) after each frame.
    Returns:
        The frames' hole masks (`DryRun`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    masks = []
    with VideoWriter(out / "render.mp4", fps=fps) as video:
        for i in range(len(cameras)):
            view = render_padded(world.cloud, cameras[i], padding)
            save_image(out / "frames" / f"{i:06d}.png", view.image[0])
            save_image(out / "masks" / f"{i:06d}.png", view.mask[0])
            with atomic_path(out / "depth" / f"{i:06d}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, view.depth[0].numpy().astype(np.float32))
            video.write(view.image[0])
            masks.append(view.mask[0])
            if progress is not None:
                progress(i + 1, len(cameras))
    save_cameras(cameras.pad(padding) if padding else cameras, out / "cameras.json", fps=fps)
    world.save_ply(out / "world.ply")
    return DryRun(torch.stack(masks))
