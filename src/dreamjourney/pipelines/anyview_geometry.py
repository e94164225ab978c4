"""AnyView, geometry-guided and training-free: one video -> the same moments from other cameras.

For every input frame t: a depth map (given, or estimated and made consistent over time), a point
cloud lifted from the frame, rendered from target camera t at the same moment, which leaves holes
where the input never saw the scene; a completion backend fills the holes of the whole clip at once,
so the fill is temporally consistent.

Input cameras with a unit of their own (`metric_cameras`) need depth in that unit: a relative
estimate is scaled by the parallax between input frames (`dreamjourney.scene.parallax`) where
the camera moves; a camera that does not move gives no scale, and that is an error that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from dreamjourney.camera import Cameras
from dreamjourney.errors import InputError
from dreamjourney.models.protocols import Completer, DepthEstimator
from dreamjourney.scene import align_depth, rasterize, unproject
from dreamjourney.scene.parallax import MIN_PARALLAX_DEG, MIN_POINTS, parallax_scales

# A pixel is static between two frames when its colour changes by less than this (mean |dRGB|).
STATIC_COLOUR_THRESHOLD = 0.04


@dataclass
class AnyViewGeometryOutput:
    """frames: (T,3,H,W) completed target views; render: (T,3,H,W) the warped input before
    completion; mask: (T,H,W) bool, True where the render was known; depth: (T,H,W) the input
    depth used, in the units of the input cameras."""

    frames: Tensor
    render: Tensor
    mask: Tensor
    depth: Tensor


@dataclass
class InputDepth:
    """depth: (T, H, W) z-depth of the input frames; how: what was done to get it, in words."""

    depth: Tensor
    how: str


def temporally_consistent_depth(
    depths: Tensor,
    frames: Tensor,
    *,
    static_threshold: float = STATIC_COLOUR_THRESHOLD,
    space: str = "depth",
) -> Tensor:
    """Give per-frame depth maps one scale over time.

    Each frame's depth is fitted (robust scale and shift, `align_depth`) to the already aligned
    previous frame on the pixels that did not change colour between the two frames, the static
    part of the scene. Frame 0 keeps its scale.

    Args:
        depths: (T, H, W) z-depth, each frame up to its own scale and shift.
        frames: (T, 3, H, W) the video, to find static pixels (assumes a near-static camera).
        space: where each frame's estimate is right up to a scale and shift ("disparity" for
            affine-invariant disparity models such as Depth Anything, else "depth").
    Returns:
        (T, H, W) z-depth in frame 0's units.
    """
    aligned = [depths[0]]
    for t in range(1, len(depths)):
        change = (frames[t] - frames[t - 1]).abs().mean(0)
        static = (change < static_threshold) & (depths[t] > 0) & (aligned[-1] > 0)
        if int(static.sum()) < 16:  # almost everything moved: trust the estimate as it is
            aligned.append(depths[t])
            continue
        fit = align_depth(depths[t], aligned[-1], static, space=space)
        aligned.append(fit.aligned.clamp_min(0))
    return torch.stack(aligned)


class AnyViewGeometryPipeline:
    """Warp-and-complete novel-view synthesis for dynamic videos.

    Components:
        depth: a `DepthEstimator` for frames without given depth.
        completer: a `Completer` that fills the holes of the whole target clip at once.
    """

    def __init__(self, depth: DepthEstimator, completer: Completer):
        self.depth = depth
        self.completer = completer

    @torch.no_grad()
    def estimate_depth(
        self, video: Tensor, input_cameras: Cameras, *, metric_cameras: bool = False
    ) -> InputDepth:
        """Depth of every input frame, estimated.

        Args:
            video: (T, 3, H, W) in [0, 1].
            input_cameras: the T cameras of the frames.
            metric_cameras: the cameras have a unit of their own (a camera file), so the depth
                must be in it. A relative estimate is then scaled per frame by its parallax with
                other frames (frames without enough parallax take the median scale of those
                with); if no frame has any, `InputError`. Otherwise (a default static camera)
                the estimate's own unit is the scene's and it is made consistent over time.
        """
        results = [self.depth.estimate(frame) for frame in video]
        estimates = torch.stack([r.depth for r in results])
        if all(r.metric for r in results):
            return InputDepth(estimates, "depth from a metric estimator")
        if not metric_cameras:
            return InputDepth(
                temporally_consistent_depth(estimates, video, space=results[0].space),
                "relative depth estimate, one scale over time (the input camera's unit)",
            )
        fits = parallax_scales(video, estimates, input_cameras)
        found = [f for f in fits if f is not None]
        if not found:
            centres = input_cameras.centers
            baseline = float((centres - centres[0]).norm(dim=-1).max())
            raise InputError(
                f"the input cameras move {baseline:.3g} units at most, too little to see the "
                f"scale of the estimated depth in their unit (needs {MIN_POINTS} points seen "
                f"{MIN_PARALLAX_DEG:g} deg apart); give --depth in the cameras' units, or a "
                "preset whose depth model is metric",
                field="--input-cameras",
            )
        median = float(torch.tensor([f.scale for f in found]).median())
        scales = torch.tensor([f.scale if f is not None else median for f in fits])
        points = sum(f.points for f in found)
        return InputDepth(
            estimates * scales[:, None, None],
            f"relative depth estimate scaled to the input cameras' unit (x{median:.4g}, median "
            f"over frames) by the parallax of {points} points in {len(found)} of {len(fits)} "
            "frames",
        )

    @torch.no_grad()
    def __call__(
        self,
        video: Tensor,
        input_cameras: Cameras,
        target_cameras: Cameras,
        *,
        input_depth: Tensor | None = None,
        metric_cameras: bool = False,
        prompt: str = "",
        generator: torch.Generator | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> AnyViewGeometryOutput:
        """Re-film `video` from `target_cameras`.

        Args:
            video: (T, 3, H, W) in [0, 1].
            input_cameras: T cameras that filmed `video` (OpenCV axes, c2w), size W x H.
            target_cameras: T cameras to film from, at the same times, in the same world frame.
            input_depth: optional (T, H, W) z-depth of the input in the cameras' units; without
                it, depth is estimated (`estimate_depth`).
            metric_cameras: the input cameras have a unit of their own (see `estimate_depth`).
        """
        num_frames = video.shape[0]
        if len(input_cameras) != num_frames or len(target_cameras) != num_frames:
            raise ValueError(
                f"{num_frames} frames but {len(input_cameras)} input and "
                f"{len(target_cameras)} target cameras"
            )
        if input_depth is None:
            input_depth = self.estimate_depth(
                video, input_cameras, metric_cameras=metric_cameras
            ).depth
        render, mask = self.warp(video, input_cameras, target_cameras, input_depth)
        frames = self.completer.complete(
            render, mask, prompt=prompt, generator=generator, progress=progress
        )
        return AnyViewGeometryOutput(frames=frames, render=render, mask=mask, depth=input_depth)

    @staticmethod
    def warp(
        video: Tensor, input_cameras: Cameras, target_cameras: Cameras, input_depth: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The input seen from the target cameras, before completion: frame t lifted with its
        (H, W) depth from input camera t, rendered from target camera t. Returns the render
        (T, 3, H', W'), black on holes, and the mask (T, H', W'), True where known."""
        renders, masks = [], []
        for t in range(video.shape[0]):
            cloud = unproject(
                video[t], input_depth[t], input_cameras[t], time=float(input_cameras.times[t])
            )
            out = rasterize(cloud, target_cameras[t])
            renders.append(out.image[0])
            masks.append(out.mask[0])
        return torch.stack(renders), torch.stack(masks)


class AnyViewGeometryMethod:
    """The geometry-guided pipeline as a benchmark method (`dreamjourney.eval.bench`).

    Args:
        preset: model preset for depth and completion (default `offline`: no weights).
        depth: "given" uses the input camera's depth when the scene has it (else estimates);
            "estimated" always estimates it (relative depth: only meaningful when the cameras
            are in the same units as the estimate).
    """

    def __init__(self, preset: str = "offline", depth: str = "given", device: str = "cpu"):
        from dreamjourney.models.registry import build_backends

        if depth not in ("given", "estimated"):
            raise ValueError(f"depth must be 'given' or 'estimated', got {depth!r}")
        backends = build_backends(preset, device=device)
        self.pipeline = AnyViewGeometryPipeline(backends.depth, backends.completer)
        self.use_given_depth = depth == "given"

    def __call__(
        self,
        input_frames: Tensor,
        input_cameras: Cameras,
        target_cameras: Cameras,
        *,
        input_depth: Tensor | None = None,
        moment_scale: float | None = None,
    ) -> Tensor:
        depth = input_depth if self.use_given_depth else None
        return self.pipeline(input_frames, input_cameras, target_cameras, input_depth=depth).frames
