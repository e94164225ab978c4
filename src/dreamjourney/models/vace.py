"""`vace` completion: Wan VACE fills a masked video natively.

The partial clip goes in as `video` and the hole mask as `mask` (white = generate). The clip
is padded to a valid frame count (`4k+1`, repeating the last frame) and resized to a multiple
of 16 for the model, then cut and resized back; known pixels are copied from the input.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import Tensor

from dreamjourney.models.protocols import CompletionContext, Progress
from dreamjourney.models.video_common import (
    pipeline_frames,
    resize_masks,
    resize_video,
    step_callback,
    to_pil,
    valid_frame_count,
    working_size,
)
from dreamjourney.models.weights import MemoryOptions, ModelStore, resolve_weights


class VaceCompleter:
    """Masked-video completion with diffusers' `WanVACEPipeline`.

    model: hub id (default Wan2.1 VACE 1.3B), local directory or `tiny:wan-vace`.
    num_inference_steps, guidance_scale, negative_prompt: sampler settings.
    height / width: working size (None: the clip's, rounded to a multiple of 16).
    memory: dtype, offloading and VAE tiling/slicing (`MemoryOptions`).
    store: where the pipeline is loaded (shared with the other roles of a preset).
    """

    name = "vace"
    temporal = 4
    multiple = 16

    def __init__(
        self,
        model: str = "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
        *,
        device: str | torch.device = "cpu",
        memory: MemoryOptions | None = None,
        store: ModelStore | None = None,
        num_inference_steps: int = 30,
        guidance_scale: float = 5.0,
        negative_prompt: str = "",
        height: int | None = None,
        width: int | None = None,
    ):
        self.model_id = model
        self.device = device
        self.memory = memory or MemoryOptions()
        self.store = store or ModelStore()
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.negative_prompt = negative_prompt
        self.height = height
        self.width = width
        self._pipe: Any = None

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role="completer")

    def _load(self) -> Any:
        if self._pipe is None:
            from diffusers import WanVACEPipeline

            self._pipe = self.store.pipeline(
                WanVACEPipeline,
                self.model_id,
                role="completer",
                device=self.device,
                memory=self.memory,
            )
        return self._pipe

    @torch.no_grad()
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
        """`(T,3,H,W)` in [0,1], holes generated, known pixels equal to `frames`."""
        pipe = self._load()
        frames, masks = frames.float().cpu(), masks.bool().cpu()
        total, _, height, width = frames.shape
        work_h, work_w = working_size(self.height or height, self.width or width, self.multiple)
        count = valid_frame_count(total, self.temporal)
        extra = count - total
        video = resize_video(
            torch.cat([frames, frames[-1:].expand(extra, -1, -1, -1)]), work_h, work_w
        )
        known = resize_masks(torch.cat([masks, masks[-1:].expand(extra, -1, -1)]), work_h, work_w)
        mask_images = [Image.fromarray((~m).numpy().astype("uint8") * 255) for m in known]
        out = pipe(
            video=[to_pil(f) for f in video],
            mask=mask_images,
            prompt=prompt,
            negative_prompt=self.negative_prompt,
            height=work_h,
            width=work_w,
            num_frames=count,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
            output_type="pt",
            callback_on_step_end=step_callback(progress, self.num_inference_steps),
        )
        result = resize_video(pipeline_frames(out)[:total].cpu(), height, width)
        return torch.where(masks[:, None], frames, result)
