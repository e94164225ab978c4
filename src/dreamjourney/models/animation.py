"""Stage II animation: a still view -> a short clip of it with things moving, camera fixed.

One backend class over diffusers' image-to-video pipelines (Wan, CogVideoX, LTX). The clip is
generated at a working size the model accepts (the image's size rounded to the model's multiple
unless `height`/`width` are given) and a valid frame count (`temporal*k + 1`), then resized
back to the image's size and cut to the requested frame count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dreamjourney.models.protocols import Progress
from dreamjourney.models.video_common import (
    pipeline_frames,
    resize_video,
    step_callback,
    to_pil,
    valid_frame_count,
    working_size,
)
from dreamjourney.models.weights import MemoryOptions, ModelStore, resolve_weights


@dataclass(frozen=True)
class I2VFamily:
    """What differs between image-to-video families: pipeline class, frame and size rules."""

    pipeline: str
    default_model: str
    temporal: int
    multiple: int
    default_steps: int
    default_guidance: float


FAMILIES = {
    "wan-i2v": I2VFamily(
        "WanImageToVideoPipeline", "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", 4, 16, 40, 5.0
    ),
    "cogvideox-i2v": I2VFamily(
        "CogVideoXImageToVideoPipeline", "THUDM/CogVideoX-5b-I2V", 4, 16, 50, 6.0
    ),
    "ltx-i2v": I2VFamily("LTXImageToVideoPipeline", "Lightricks/LTX-Video", 8, 32, 50, 3.0),
}


class I2VAnimator:
    """Image-to-video animation with a diffusers pipeline of family `family` (see `FAMILIES`).

    model: hub id, local directory or `tiny:<name>`; default the family's usual checkpoint.
    num_inference_steps / guidance_scale: sampler settings (family defaults when None).
    height / width: working size (None: the image's, rounded to the model's multiple).
    memory: dtype, offloading and VAE tiling/slicing (`MemoryOptions`).
    store: where the pipeline is loaded (shared with the other roles of a preset).
    """

    def __init__(
        self,
        family: str,
        model: str | None = None,
        *,
        device: str | torch.device = "cpu",
        memory: MemoryOptions | None = None,
        store: ModelStore | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        negative_prompt: str = "",
        height: int | None = None,
        width: int | None = None,
    ):
        self.family = FAMILIES[family]
        self.name = family
        self.model_id = model or self.family.default_model
        self.device = device
        self.memory = memory or MemoryOptions()
        self.store = store or ModelStore()
        self.num_inference_steps = num_inference_steps or self.family.default_steps
        self.guidance_scale = (
            self.family.default_guidance if guidance_scale is None else guidance_scale
        )
        self.negative_prompt = negative_prompt
        self.height = height
        self.width = width
        self._pipe: Any = None

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role="animator")

    def _load(self) -> Any:
        if self._pipe is None:
            import diffusers

            cls = getattr(diffusers, self.family.pipeline)
            self._pipe = self.store.pipeline(
                cls, self.model_id, role="animator", device=self.device, memory=self.memory
            )
        return self._pipe

    @torch.no_grad()
    def animate(
        self,
        image: Tensor,
        prompt: str,
        num_frames: int,
        *,
        generator: torch.Generator | None = None,
        progress: Progress | None = None,
    ) -> Tensor:
        """`(num_frames,3,H,W)` in [0,1] at `image`'s size `(3,H,W)`."""
        pipe = self._load()
        height, width = image.shape[-2:]
        work_h, work_w = working_size(
            self.height or height, self.width or width, self.family.multiple
        )
        frames_needed = valid_frame_count(num_frames, self.family.temporal)
        pil = to_pil(resize_video(image[None].float(), work_h, work_w)[0])
        out = pipe(
            image=pil,
            prompt=prompt,
            negative_prompt=self.negative_prompt,
            height=work_h,
            width=work_w,
            num_frames=frames_needed,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
            output_type="pt",
            callback_on_step_end=step_callback(progress, self.num_inference_steps),
        )
        frames = pipeline_frames(out)[:num_frames].cpu()
        return resize_video(frames, height, width)
