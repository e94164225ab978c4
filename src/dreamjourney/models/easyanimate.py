"""`easyanimate`: EasyAnimate V5.1 InP, the DreamJourney seed's own model family, in both stages.

diffusers' `EasyAnimateInpaintPipeline` takes a video and a mask video (white = generate) and
generates the masked part. Stage I completion gives it the partial clip and its hole mask;
stage II animation gives it the view as frame 0 (known) and frames to generate after it (the
pipeline's own image-to-video input, `get_image_to_video_latent`). Clips are padded to a
valid frame count (`4k+1`, repeating the last frame) and resized to a multiple of 16, then cut
and resized back; known pixels are copied from the input.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dreamjourney.models.protocols import CompletionContext, Progress
from dreamjourney.models.video_common import (
    resize_masks,
    resize_video,
    sample_frames,
    valid_frame_count,
    working_size,
)
from dreamjourney.models.weights import MemoryOptions, ModelStore, resolve_weights

DEFAULT_MODEL = "alibaba-pai/EasyAnimateV5.1-12b-zh-InP-diffusers"
NEGATIVE_PROMPT = (
    "Twisted body, limb deformities, text subtitles, comics, stillness, ugliness, errors, "
    "garbled text."
)
"""The negative prompt of the model's diffusers example."""


class _EasyAnimate:
    """What the completer and the animator share: loading and one masked-video call."""

    temporal = 4
    multiple = 16
    role = "completer"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str | torch.device = "cpu",
        memory: MemoryOptions | None = None,
        store: ModelStore | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 6.0,
        negative_prompt: str = NEGATIVE_PROMPT,
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

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role=self.role)

    def _load(self) -> Any:
        from diffusers import EasyAnimateInpaintPipeline

        return self.store.pipeline(
            EasyAnimateInpaintPipeline,
            self.model_id,
            role=self.role,
            device=self.device,
            memory=self.memory,
        )

    def _generate(
        self,
        video: Tensor,
        known: Tensor,
        prompt: str,
        generator: torch.Generator | None,
        progress: Progress | None,
    ) -> Tensor:
        """`video` `(T,3,H,W)` in [0,1] with `known` `(T,H,W)` -> `(T,3,H,W)` at the same size."""
        pipe = self._load()
        total, _, height, width = video.shape
        work_h, work_w = working_size(self.height or height, self.width or width, self.multiple)
        count = valid_frame_count(total, self.temporal)
        extra = count - total
        clip = resize_video(
            torch.cat([video, video[-1:].expand(extra, -1, -1, -1)]), work_h, work_w
        )
        mask = resize_masks(torch.cat([known, known[-1:].expand(extra, -1, -1)]), work_h, work_w)
        out = sample_frames(
            pipe,
            self,
            prompt=prompt,
            generator=generator,
            progress=progress,
            video=clip.permute(1, 0, 2, 3)[None],
            mask_video=(~mask).float()[None, None] * 255,
            num_frames=count,
            height=work_h,
            width=work_w,
        )
        return resize_video(out[:total], height, width)


class EasyAnimateCompleter(_EasyAnimate):
    """Masked-video completion with `EasyAnimateInpaintPipeline` (see the module docstring).

    model: hub id (default EasyAnimate V5.1 12B InP), local directory or `tiny:easyanimate`.
    num_inference_steps, guidance_scale, negative_prompt: sampler settings.
    height / width: working size (None: the clip's, rounded to a multiple of 16).
    memory: dtype, offloading and VAE tiling/slicing (`MemoryOptions`).
    store: where the pipeline is loaded (the animator of the same model shares it).
    """

    name = "easyanimate"

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
        frames, masks = frames.float().cpu(), masks.bool().cpu()
        out = self._generate(frames, masks, prompt, generator, progress)
        return torch.where(masks[:, None], frames, out)


class EasyAnimateAnimator(_EasyAnimate):
    """Image-to-video with `EasyAnimateInpaintPipeline`: frame 0 is the view, the rest generated.

    Options as `EasyAnimateCompleter`.
    """

    name = "easyanimate-i2v"
    role = "animator"

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
        """`(num_frames,3,H,W)` in [0,1] at `image`'s size `(3,H,W)`; frame 0 is `image`."""
        image = image.float().cpu()
        video = image[None].expand(num_frames, -1, -1, -1)
        known = torch.zeros(num_frames, *image.shape[-2:], dtype=torch.bool)
        known[0] = True
        out = self._generate(video, known, prompt, generator, progress)
        return torch.cat([image[None], out[1:]])
