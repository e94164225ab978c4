"""Offline completion with OpenCV inpainting, kept consistent over the clip through the world.

With a `CompletionContext` that can re-render: inpaint the clip's last frame once, let the
pipeline lift it into (a copy of) the world and re-render all cameras, take the re-rendered
pixels where the input had holes, and inpaint only what is still missing, frame by frame.
Without one, each frame is inpainted on its own.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from dreamjourney.io.images import to_uint8
from dreamjourney.models.protocols import CompletionContext, Progress

_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def inpaint_frame(
    frame: Tensor, known: Tensor, *, radius: float = 5.0, method: str = "telea"
) -> Tensor:
    """Fill `frame` `(3,H,W)` where `known` `(H,W)` is False; known pixels are returned unchanged.

    A frame with no known pixel comes back mid-grey.
    """
    if bool(known.all()):
        return frame.clone()
    if not bool(known.any()):
        return torch.full_like(frame, 0.5)
    holes = (~known).cpu().numpy().astype(np.uint8) * 255
    filled = cv2.inpaint(to_uint8(frame), holes, radius, _METHODS[method])
    out = torch.from_numpy(filled).permute(2, 0, 1).to(frame.device, torch.float32) / 255.0
    return torch.where(known[None], frame, out)


class ClassicalCompleter:
    """Offline completer (no weights).

    radius: OpenCV inpainting radius in pixels. method: `"telea"` or `"ns"` (Navier-Stokes).
    """

    name = "classical"

    def __init__(self, *, radius: float = 5.0, method: str = "telea"):
        from dreamjourney.errors import InputError

        if method not in _METHODS:
            raise InputError(
                f"unknown inpainting method {method!r}; use telea or ns", field="method"
            )
        self.radius = radius
        self.method = method

    def check_weights(self) -> None:
        """Needs no weights."""

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
            last = inpaint_frame(frames[-1], masks[-1], radius=self.radius, method=self.method)
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
            out[t] = inpaint_frame(fill[t], have[t], radius=self.radius, method=self.method)
            if progress is not None:
                progress(t + 1, total)
        return torch.where(masks[:, None], frames, out)
