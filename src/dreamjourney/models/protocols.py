"""One small interface per model role, and the results they return.

A pipeline only ever sees these protocols; the registry builds concrete backends. Conventions:
images float32 in [0,1] `(3,H,W)` / videos `(T,3,H,W)`, depth z-depth `(H,W)` (0 = no depth),
masks bool with True = known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from dreamjourney.camera import Cameras

Progress = Callable[[int, int], None]
"""`progress(done, total)`, called after each unit of work (a denoising step, a frame)."""


@dataclass
class DepthResult:
    """A depth map for one image.

    depth: `(H,W)` float32 z-depth, 0 where unknown. In scene units when `metric`, otherwise
        up to an unknown scale (relative estimators are normalised to a median of 1).
    metric: whether `depth` is in metres.
    focal_px: the focal length in pixels of the input image the estimator inferred, if any.
    space: where the estimate is right up to a scale and a shift, so where to align it:
        `"disparity"` (1 / depth) for affine-invariant disparity models such as Depth
        Anything, `"depth"` for metric and other depth estimates.
    """

    depth: Tensor
    metric: bool
    focal_px: float | None = None
    space: str = "depth"


@runtime_checkable
class DepthEstimator(Protocol):
    def estimate(self, image: Tensor) -> DepthResult:
        """Depth of `image` `(3,H,W)` in [0,1], at the image's resolution."""
        ...


@dataclass
class CompletionContext:
    """What a completer may use besides the frames.

    cameras: the `T` cameras of the clip.
    depths: `(T,H,W)` z-depth of the world's render of each frame (0 on holes), if known.
    keyframes: the frames the pipeline lifts into the world after completion, in the order
        it lifts them.
    rerender: given a frame index `t` and that frame completed `(3,H,W)`, lift it into the
        pipeline's copy of the world (each call adds to what earlier calls lifted) and render
        all `T` cameras again: returns frames `(T,3,H,W)`, known masks `(T,H,W)` and z-depth
        `(T,H,W)`. The pipeline lifts every frame lifted this way (keyframe or not) into the
        world too, in the same order, reusing the lift where the frame is unchanged.
    start_view: the complete view `(3,H,W)` the clip continues from (the frame shown just
        before its first frame), or None.
    """

    cameras: Cameras
    depths: Tensor | None = None
    keyframes: tuple[int, ...] = ()
    rerender: Callable[[int, Tensor], tuple[Tensor, Tensor, Tensor]] | None = None
    start_view: Tensor | None = None


@runtime_checkable
class Completer(Protocol):
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
        """Fill the holes of `frames` `(T,3,H,W)` where `masks` `(T,H,W)` is False.

        Returns `(T,3,H,W)` in [0,1]; pixels where `masks` is True equal the input exactly.
        A completer whose fills are copied from the background (never a new object in front)
        may say so with a class attribute `fills_background = True`: the pipeline then lifts
        each filled hole no nearer than the far side of its hole.
        """
        ...


@runtime_checkable
class Animator(Protocol):
    def animate(
        self,
        image: Tensor,
        prompt: str,
        num_frames: int,
        *,
        generator: torch.Generator | None = None,
        progress: Progress | None = None,
    ) -> Tensor:
        """A clip `(num_frames,3,H,W)` of `image` `(3,H,W)` with things moving as `prompt` says.

        The camera stays fixed and frame 0 resembles `image`; the size is the image's.
        """
        ...


@dataclass
class Caption:
    """An animation prompt for one image.

    prompt: the text for the image-to-video model (quality suffix included).
    objects: the movable objects the captioner named, in its order.
    raw: the model's answer as it came (empty for the template).
    fallback: True when `prompt` is the template because the answer was unusable (or there
        was no model).
    """

    prompt: str
    objects: list[str] = field(default_factory=list)
    raw: str = ""
    fallback: bool = False


@runtime_checkable
class Captioner(Protocol):
    def caption(self, image: Tensor) -> Caption:
        """Describe what could move in `image` `(3,H,W)` as an animation prompt."""
        ...
