"""Stage II animation: a still view -> a short clip of it with things moving, camera fixed.

One backend class over diffusers' image-to-video pipelines (Wan, CogVideoX, LTX). The clip is
generated at a size and frame count the model accepts: its fixed native size and frame count
when it has learned positional embeddings (CogVideoX-5b-I2V: 720x480, 49 frames), else the
image's size (or `height`/`width`) rounded to the model's multiple and the next valid count
(`temporal*k + 1`); it is then cut to the requested frame count and resized to the image's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.models.protocols import Progress
from dreamjourney.models.video_common import (
    LTX_NEGATIVE_PROMPT,
    WAN_NEGATIVE_PROMPT,
    ClipGrid,
    at_model_size,
    check_requested_size,
    native_grid,
    sample_frames,
    set_flow_shift,
    to_pil,
)
from dreamjourney.models.weights import MemoryOptions, ModelStore, resolve_weights


@dataclass(frozen=True)
class I2VFamily:
    """What differs between image-to-video families.

    pipeline: the diffusers pipeline class name; default_model: its usual checkpoint.
    grid: the clip shapes the family accepts (narrowed per checkpoint by `native_grid`).
    default_steps / default_guidance / negative_prompt: the model cards' sampler settings.
    Components kept in float32 under a lower dtype are `weights.FIXED_DTYPES`'s.
    """

    pipeline: str
    default_model: str
    grid: ClipGrid
    default_steps: int
    default_guidance: float
    negative_prompt: str


FAMILIES = {
    "wan-i2v": I2VFamily(
        "WanImageToVideoPipeline",
        "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        ClipGrid(temporal=4, spatial=8, patch=2),
        40,
        5.0,
        WAN_NEGATIVE_PROMPT,
    ),
    "cogvideox-i2v": I2VFamily(
        "CogVideoXImageToVideoPipeline",
        "THUDM/CogVideoX-5b-I2V",
        ClipGrid(temporal=4, spatial=8, patch=2),
        50,
        6.0,
        "",
    ),
    "ltx-i2v": I2VFamily(
        "LTXImageToVideoPipeline",
        "Lightricks/LTX-Video",
        ClipGrid(temporal=8, spatial=32, patch=1),
        50,
        3.0,
        LTX_NEGATIVE_PROMPT,
    ),
}


class I2VAnimator:
    """Image-to-video animation with a diffusers pipeline of family `family` (see `FAMILIES`).

    model: hub id, local directory or `tiny:<name>`; default the family's usual checkpoint.
    num_inference_steps / guidance_scale / negative_prompt: sampler settings (the family's
        model-card values when None).
    flow_shift: the scheduler's timestep shift (None: the checkpoint's; flow-matching families).
    height / width: working size (None: the image's, rounded to the model's multiple); a
        model with a fixed native size always runs at it.
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
        negative_prompt: str | None = None,
        flow_shift: float | None = None,
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
        self.negative_prompt = (
            self.family.negative_prompt if negative_prompt is None else negative_prompt
        )
        self.flow_shift = flow_shift
        self.height = height
        self.width = width
        self._pipe: Any = None
        self._grid: ClipGrid | None = None

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role="animator")

    def grid(self) -> ClipGrid:
        """The clip shapes this checkpoint accepts (reads its transformer config, no weights)."""
        if self._grid is None:
            import diffusers

            cls = getattr(diffusers, self.family.pipeline)
            config = self.store.transformer_config(cls, self.model_id, role="animator")
            grid = native_grid(self.family.grid, config)
            check_requested_size(grid, self.height, self.width, field="animator")
            self._grid = grid
        return self._grid

    def max_frames(self) -> int | None:
        """The most frames one `animate` call can return (None: any number)."""
        return self.grid().frames

    def _load(self) -> Any:
        if self._pipe is None:
            import diffusers

            cls = getattr(diffusers, self.family.pipeline)
            pipe = self.store.pipeline(
                cls, self.model_id, role="animator", device=self.device, memory=self.memory
            )
            set_flow_shift(pipe, self.flow_shift, field="animator.flow_shift")
            self._pipe = pipe
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
        grid = self.grid()
        count = grid.frame_count(num_frames)
        if count is None:
            raise InputError(
                f"{self.model_id} generates exactly {grid.frames} frames, not {num_frames}",
                field="--motion-frames",
            )
        pipe = self._load()
        height, width = image.shape[-2:]
        size = grid.model_size(self.height or height, self.width or width)
        extra = {}
        if "max_text_seq_length" in pipe.transformer.config:  # CogVideoX: its text length
            extra["max_sequence_length"] = pipe.transformer.config.max_text_seq_length

        def generate(frames: Tensor, _: Tensor) -> Tensor:
            return sample_frames(
                pipe,
                self,
                prompt=prompt,
                generator=generator,
                progress=progress,
                image=to_pil(frames[0]),
                height=size[0],
                width=size[1],
                num_frames=count,
                **extra,
            )

        return at_model_size(generate, image[None].float().cpu(), size, slice(0, num_frames))
