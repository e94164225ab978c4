"""Shared plumbing of the video diffusion backends: the clip shapes a model accepts, running it at
its own size, hole pre-filling, scheduler shift, conversions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.io.images import to_uint8
from dreamjourney.models.protocols import Progress

WAN_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, "
    "images, static, overall gray, worst quality, low quality, JPEG compression residue, ugly, "
    "incomplete, extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, "
    "misshapen limbs, fused fingers, still picture, messy background, three legs, many people in "
    "the background, walking backwards"
)
"""The negative prompt of the Wan 2.1 model cards' diffusers examples (I2V, VACE)."""

LTX_NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
"""The negative prompt of LTX-Video's diffusers example."""


def valid_frame_count(n: int, temporal: int) -> int:
    """The smallest count >= `n` of the form `temporal * k + 1` that a causal video VAE accepts."""
    return ((max(n, 1) - 1 + temporal - 1) // temporal) * temporal + 1


def working_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """`(height, width)` rounded to the nearest multiple of `multiple` (at least one multiple)."""
    return (
        max(multiple, round(height / multiple) * multiple),
        max(multiple, round(width / multiple) * multiple),
    )


@dataclass(frozen=True)
class ClipGrid:
    """The clip shapes a video model accepts.

    temporal: frames per latent frame; a causal VAE takes `temporal * k + 1` frames.
    spatial: pixels per latent cell side (the VAE's spatial factor).
    patch: latent cells per transformer patch side; sizes are multiples of `spatial * patch`.
    size: `(height, width)` in pixels the model must run at, or None for any multiple.
    frames: the frame count the model must run at, or None for any valid count.
    """

    temporal: int
    spatial: int
    patch: int = 1
    size: tuple[int, int] | None = None
    frames: int | None = None

    @property
    def multiple(self) -> int:
        return self.spatial * self.patch

    def model_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the model runs at for a clip of `height x width`."""
        return self.size or working_size(height, width, self.multiple)

    def frame_count(self, needed: int) -> int | None:
        """Frames the model samples for a clip of `needed` frames; None if it cannot hold them."""
        if self.frames is None:
            return valid_frame_count(needed, self.temporal)
        return self.frames if needed <= self.frames else None

    def describe(self) -> str:
        """`"720x480, 49 frames"` for a fixed grid, else its rules."""
        if self.size is not None and self.frames is not None:
            return f"{self.size[1]}x{self.size[0]}, {self.frames} frames"
        return f"multiples of {self.multiple} px, {self.temporal}k+1 frames"


def native_grid(grid: ClipGrid, config: Mapping[str, Any]) -> ClipGrid:
    """`grid` narrowed by a transformer's config.

    A transformer with learned positional embeddings (CogVideoX-5b-I2V) has one embedding per
    position of its sample size: diffusers refuses any other size and silently substitutes
    sin/cos embeddings for any other frame count, so such a model runs only at
    `sample_height x sample_width` latents and `sample_frames` frames.
    """
    if not config.get("use_learned_positional_embeddings"):
        return grid
    size = (config["sample_height"] * grid.spatial, config["sample_width"] * grid.spatial)
    return ClipGrid(grid.temporal, grid.spatial, grid.patch, size, int(config["sample_frames"]))


def check_requested_size(
    grid: ClipGrid, height: int | None, width: int | None, *, field: str
) -> None:
    """InputError when a backend's `height`/`width` options ask a fixed-size model for another."""
    if grid.size is None or (height is None and width is None):
        return
    if (height or grid.size[0], width or grid.size[1]) != grid.size:
        raise InputError(
            f"this model runs only at {grid.size[1]}x{grid.size[0]} (learned positional "
            f"embeddings); leave height and width unset",
            field=field,
        )


def resize_video(frames: Tensor, height: int, width: int) -> Tensor:
    """`(T,3,h,w)` -> `(T,3,height,width)`, bilinear with antialiasing; a no-op at the same size."""
    if frames.shape[-2:] == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bilinear", antialias=True).clamp(0, 1)


def resize_masks(masks: Tensor, height: int, width: int) -> Tensor:
    """`(T,h,w)` bool -> `(T,height,width)`: a pixel stays known only if all it covers was known."""
    if masks.shape[-2:] == (height, width):
        return masks
    holes = F.interpolate((~masks)[:, None].float(), size=(height, width), mode="area")
    return holes[:, 0] == 0


def pad_clip(frames: Tensor, masks: Tensor, front: int, back: int) -> tuple[Tensor, Tensor]:
    """Repeat the first frame `front` times and the last `back` times (with their masks)."""
    frames = torch.cat(
        [frames[:1].expand(front, -1, -1, -1), frames, frames[-1:].expand(back, -1, -1, -1)]
    )
    masks = torch.cat([masks[:1].expand(front, -1, -1), masks, masks[-1:].expand(back, -1, -1)])
    return frames, masks


def at_model_size(
    call: Callable[[Tensor, Tensor], Tensor],
    frames: Tensor,
    size: tuple[int, int],
    keep: slice,
    masks: Tensor | None = None,
) -> Tensor:
    """Resize, call the model, cut, resize back.

    `frames` `(T,3,H,W)` and `masks` `(T,H,W)` (True = known; default all known) are resized
    to `size` `(height, width)`; `call(frames, masks)` returns a clip `(T',3,height,width)` in
    [0,1]; its frames `keep` come back at `H x W`.
    """
    height, width = frames.shape[-2:]
    if masks is None:
        masks = torch.ones(frames.shape[0], height, width, dtype=torch.bool)
    out = call(resize_video(frames, *size), resize_masks(masks, *size))
    return resize_video(out[keep], height, width)


def telea_fill(
    frames: Tensor, known: Tensor, *, radius: float = 5.0, max_side: int = 256
) -> Tensor:
    """Holes of `frames` `(T,3,H,W)` (where `known` `(T,H,W)` is False) filled from the known
    pixels by OpenCV's Telea inpainting; known pixels are returned exactly.

    The official DreamJourney code fills the warped frames this way before VAE encoding, so
    latent cells that are mostly known are not darkened by black holes. (It runs three passes
    with the same mask; Telea never reads the pixels under the mask, so the passes agree.)
    Telea's cost grows with the hole's area times `radius` squared (1.2 s for a 832x480 frame
    with a 250 px band): frames are filled at a long side of at most `max_side` pixels (radius
    scaled alike), 0.014 s there, and the fill is upsampled into the holes. A frame with no
    known pixel becomes grey 0.5.
    """
    height, width = frames.shape[-2:]
    scale = min(1.0, max_side / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    out = frames.clone()
    for t in torch.nonzero(~known.flatten(1).all(1)).flatten().tolist():
        if not known[t].any():
            out[t] = 0.5
            continue
        small = F.interpolate(frames[t][None], size=size, mode="area")[0]
        holes = ~resize_masks(known[t][None], *size)[0]
        filled = cv2.inpaint(
            to_uint8(small), holes.numpy().astype(np.uint8) * 255, radius * scale, cv2.INPAINT_TELEA
        )
        fill = torch.from_numpy(filled).permute(2, 0, 1).float()[None] / 255
        fill = F.interpolate(fill, size=(height, width), mode="bilinear", align_corners=False)[0]
        out[t] = torch.where(known[t], frames[t], fill)
    return out


def set_flow_shift(pipe: Any, shift: float | None, *, field: str) -> None:
    """Give `pipe`'s flow-matching scheduler the timestep shift `shift` (None: keep its own).

    Wan checkpoints ship UniPC with `flow_shift` 3.0 (the 480P models); diffusers recommends
    5.0 for 720P. FlowMatchEuler calls the same parameter `shift`.
    """
    if shift is None:
        return
    config = pipe.scheduler.config
    key = next((k for k in ("flow_shift", "shift") if k in config), None)
    if key is None:
        raise InputError(
            f"flow_shift needs a flow-matching scheduler; this model's is "
            f"{type(pipe.scheduler).__name__}",
            field=field,
        )
    pipe.scheduler = type(pipe.scheduler).from_config(config, **{key: float(shift)})


def to_pil(image: Tensor) -> Image.Image:
    return Image.fromarray(to_uint8(image))


def pipeline_frames(output: Any) -> Tensor:
    """`(T,3,H,W)` float in [0,1] from a diffusers video pipeline called with `output_type="pt"`."""
    frames = output.frames
    frames = frames[0] if isinstance(frames, (list, tuple)) or frames.ndim == 5 else frames
    return torch.as_tensor(frames).float().clamp(0, 1)


class SamplerSettings(Protocol):
    """The sampler settings every diffusers-backed video model keeps."""

    negative_prompt: str
    num_inference_steps: int
    guidance_scale: float


def sample_frames(
    pipe: Any,
    settings: SamplerSettings,
    *,
    prompt: str,
    generator: torch.Generator | None,
    progress: Progress | None,
    **inputs: Any,
) -> Tensor:
    """Call the diffusers video pipeline `pipe` on `inputs` (its clip, mask, image, size and
    frame-count arguments) with the prompt and `settings`' sampler settings, reporting each step
    to `progress`; returns its frames `(T,3,H,W)` float in [0,1] on the CPU."""
    out = pipe(
        prompt=prompt,
        negative_prompt=settings.negative_prompt,
        num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale,
        generator=generator,
        output_type="pt",
        callback_on_step_end=step_callback(progress, settings.num_inference_steps),
        **inputs,
    )
    return pipeline_frames(out).cpu()


def step_callback(progress: Progress | None, total: int) -> Any:
    """A diffusers `callback_on_step_end` that reports `progress(step + 1, total)`."""
    if progress is None:
        return None

    def callback(pipe: Any, step: int, timestep: Any, kwargs: dict) -> dict:
        progress(step + 1, total)
        return {}

    return callback
