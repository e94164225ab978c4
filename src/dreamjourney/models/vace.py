"""`vace` completion: Wan VACE fills a masked video natively.

The partial clip goes in as `video` with its holes painted grey (0.5), as diffusers' VACE
example and VACE's own annotators prepare the regions to generate, and the hole mask as `mask`
(white = generate). The clip is padded to a valid frame count (`4k+1`, repeating the last frame)
and resized to a multiple of 16 for the model, then cut and resized back; known pixels are copied
from the input.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import Tensor

from dreamjourney.models.protocols import CompletionContext, Progress
from dreamjourney.models.video_common import (
    WAN_NEGATIVE_PROMPT,
    ClipGrid,
    at_model_size,
    pad_clip,
    sample_frames,
    set_flow_shift,
    to_pil,
    valid_frame_count,
)
from dreamjourney.models.weights import MemoryOptions, ModelStore, resolve_weights

HOLE_GREY = 0.5


class VaceCompleter:
    """Masked-video completion with diffusers' `WanVACEPipeline`.

    model: hub id (default Wan2.1 VACE 1.3B), local directory or `tiny:wan-vace`.
    num_inference_steps, guidance_scale, negative_prompt: sampler settings (the model card's
        negative prompt by default).
    flow_shift: the scheduler's timestep shift (None: the checkpoint's, 3.0 for Wan 2.1).
    height / width: working size (None: the clip's, rounded to a multiple of 16).
    memory: dtype, offloading and VAE tiling/slicing (`MemoryOptions`); the VAE stays float32.
    store: where the pipeline is loaded (shared with the other roles of a preset).
    """

    name = "vace"
    grid = ClipGrid(temporal=4, spatial=8, patch=2)

    def __init__(
        self,
        model: str = "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
        *,
        device: str | torch.device = "cpu",
        memory: MemoryOptions | None = None,
        store: ModelStore | None = None,
        num_inference_steps: int = 30,
        guidance_scale: float = 5.0,
        negative_prompt: str = WAN_NEGATIVE_PROMPT,
        flow_shift: float | None = None,
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
        self.flow_shift = flow_shift
        self.height = height
        self.width = width
        self._pipe: Any = None

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role="completer")

    def _load(self) -> Any:
        if self._pipe is None:
            from diffusers import WanVACEPipeline

            pipe = self.store.pipeline(
                WanVACEPipeline,
                self.model_id,
                role="completer",
                device=self.device,
                memory=self.memory,
            )
            set_flow_shift(pipe, self.flow_shift, field="completer.flow_shift")
            self._pipe = pipe
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
        count = valid_frame_count(total, self.grid.temporal)
        video, known = pad_clip(frames, masks, 0, count - total)
        video = torch.where(known[:, None], video, HOLE_GREY)
        size = self.grid.model_size(self.height or height, self.width or width)

        def generate(clip: Tensor, clip_known: Tensor) -> Tensor:
            mask_images = [Image.fromarray((~m).numpy().astype("uint8") * 255) for m in clip_known]
            return sample_frames(
                pipe,
                self,
                prompt=prompt,
                generator=generator,
                progress=progress,
                video=[to_pil(f) for f in clip],
                mask=mask_images,
                height=size[0],
                width=size[1],
                num_frames=count,
            )

        result = at_model_size(generate, video, size, slice(0, total), masks=known)
        return torch.where(masks[:, None], frames, result)
