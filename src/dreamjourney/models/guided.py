"""`guided` completion: DreamJourney's stage I sampler, training-free, around an I2V model.

The clip's first frame conditions an image-to-video model (Wan I2V or CogVideoX I2V, driven
through their diffusers components: transformer, VAE, scheduler, text and image encoders); the
partial clip, encoded by the same VAE, steers the sampling:

* **known cells**: a latent cell (one latent frame x one VAE block) is known when more than
  `known_threshold` (80%) of the pixels it covers are known;
* **posterior guidance**: at each guided step the predicted clean latent `x0` is pulled toward
  the encoded clip on known cells: `x0 <- x0 - step_size * g / std(g)`, where
  `g = M * (x0 - z_known)` is the gradient of the masked squared error `0.5 |M (x0 - z)|^2`
  and `std(g)` is taken over the known cells;
* **resampling** (RePaint): after a guided step from sigma_i to sigma_{i+1}, the latent is
  re-noised back to sigma_i and the step is taken again, `resample_rounds` extra times;
* **early stopping**: guidance and resampling run for the first `guidance_steps` steps only
  (20 of 25 by default); the remaining steps denoise freely;
* **view padding**: the first and last frames are repeated `temporal` times (one latent frame,
  4 frames for Wan) at each end before encoding and cut after decoding, so `T` frames are
  sampled as `T + 2*temporal`.

Steps are first-order (DDIM, which equals Euler in flow-matching form `x_s = (1-s) x0 + s eps`)
on the model's own noise schedule; a DDPM-style model (CogVideoX, v-prediction) is run in the
same form through `x_s = x_t / (sqrt(a) + sqrt(1-a))`, `s = sqrt(1-a) / (sqrt(a) + sqrt(1-a))`.
The clip is then decoded, padding cut, and the known pixels copied from the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.models.protocols import CompletionContext, Progress
from dreamjourney.models.video_common import (
    resize_masks,
    resize_video,
    to_pil,
    valid_frame_count,
    working_size,
)
from dreamjourney.models.weights import MemoryOptions, ModelStore, resolve_weights


@dataclass
class GuidedStep:
    """One denoising step: its index, sigma, whether it was guided, and model evaluations."""

    index: int
    sigma: float
    guided: bool
    model_calls: int


@dataclass
class GuidedTrace:
    """What the sampler did, for inspection and tests.

    sampled_frames: frames sampled (input + padding + rounding to `temporal*k + 1`).
    latent_frames: latent frames the transformer saw.
    pad_front / pad_back: frames added before / after the input (cut after decoding).
    known_cells: fraction of latent cells counted as known.
    steps: one `GuidedStep` per denoising step.
    raw: the decoded clip `(T,3,H,W)` before known pixels are copied back.
    latent_error: mean squared error on known cells between final latents and the encoded clip.
    """

    sampled_frames: int = 0
    latent_frames: int = 0
    pad_front: int = 0
    pad_back: int = 0
    known_cells: float = 0.0
    steps: list[GuidedStep] = field(default_factory=list)
    raw: Tensor | None = None
    latent_error: float = 0.0


class _I2VModel:
    """What the Wan and CogVideoX adapters share: prompt encoding and the VAE's input layout."""

    pipe: Any
    owner: GuidedCompleter
    text_length: int
    cfg: bool

    def encode_prompt(self, prompt: str) -> tuple[Tensor, Any]:
        """Prompt embeddings, and negative-prompt ones (None without classifier-free guidance)."""
        owner = self.owner
        self.cfg = owner.cfg_scale > 1.0
        return self.pipe.encode_prompt(
            prompt=prompt,
            negative_prompt=owner.negative_prompt,
            do_classifier_free_guidance=self.cfg,
            max_sequence_length=owner.max_sequence_length or self.text_length,
            device=self.pipe._execution_device,
        )

    @staticmethod
    def frames_from_vae(x: Tensor) -> Tensor:
        """The VAE's `(1,3,T,H,W)` in [-1,1] -> `(T,3,H,W)` in [0,1] on the CPU."""
        return ((x[0].permute(1, 0, 2, 3) + 1) / 2).clamp(0, 1).cpu()

    def vae_input(self, video: Tensor) -> Tensor:
        """`(T,3,H,W)` in [0,1] -> `(1,3,T,H,W)` in [-1,1] on the VAE's device and dtype."""
        vae = self.pipe.vae
        return (video * 2 - 1).permute(1, 0, 2, 3)[None].to(self.pipe._execution_device, vae.dtype)


class _WanI2V(_I2VModel):
    """Wan I2V (2.1 with a CLIP image encoder, or without one) in flow-matching form."""

    default_model = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
    pipeline = "WanImageToVideoPipeline"
    text_length = 512

    def __init__(self, pipe: Any, owner: GuidedCompleter):
        if pipe.config.expand_timesteps or pipe.transformer_2 is not None:
            raise InputError(
                "the guided sampler supports Wan 2.1-style I2V/FLF2V pipelines (one transformer, "
                "image latents as channels), not Wan 2.2 TI2V or two-expert models",
                field="completer.model",
            )
        self.pipe = pipe
        self.owner = owner
        self.temporal = pipe.vae_scale_factor_temporal
        self.spatial = pipe.vae_scale_factor_spatial
        self.multiple = self.spatial * pipe.transformer.config.patch_size[-1]
        cfg = pipe.vae.config
        self.mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1)
        self.std = torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1)

    def encode(self, video: Tensor) -> Tensor:
        """`(T,3,H,W)` in [0,1] -> normalised latents `(1,C,L,h,w)`."""
        vae = self.pipe.vae
        x = self.vae_input(video)
        z = vae.encode(x).latent_dist.mode().float()
        return (z - self.mean.to(z)) / self.std.to(z)

    def decode(self, z: Tensor) -> Tensor:
        vae = self.pipe.vae
        z = z * self.std.to(z) + self.mean.to(z)
        x = vae.decode(z.to(vae.dtype), return_dict=False)[0].float()
        return self.frames_from_vae(x)

    def cell_mask(self, cells: Tensor, like: Tensor) -> Tensor:
        return cells[None, None].expand_as(like).to(like)

    def prepare(self, video: Tensor, prompt: str, generator: Any) -> Tensor:
        owner, pipe = self.owner, self.pipe
        device = pipe._execution_device
        frames, _, height, width = video.shape
        embeds, negative = self.encode_prompt(prompt)
        dtype = pipe.transformer.dtype
        first, last = to_pil(video[0]), to_pil(video[-1])
        self.image_embeds = None
        if pipe.image_encoder is not None:
            images = [first, last] if owner.condition_last_frame else first
            image_embeds = pipe.encode_image(images, device).to(dtype)
            self.image_embeds = image_embeds.reshape(1, -1, image_embeds.shape[-1])
        proc = pipe.video_processor
        image = proc.preprocess(first, height=height, width=width).to(device, torch.float32)
        last_image = None
        if owner.condition_last_frame:
            last_image = proc.preprocess(last, height=height, width=width).to(device, torch.float32)
        noise, condition = pipe.prepare_latents(
            image, 1, pipe.vae.config.z_dim, height, width, frames,
            torch.float32, device, generator, None, last_image,
        )  # fmt: skip
        self.condition = condition.to(dtype)
        self.embeds = embeds.to(dtype)
        self.negative = negative.to(dtype) if self.cfg else None
        scheduler = pipe.scheduler
        scheduler.set_timesteps(owner.num_inference_steps, device=noise.device)
        self.timesteps = scheduler.timesteps
        self.sigmas = scheduler.sigmas.float().to(noise.device)
        return noise.float()

    def predict_x0(self, x: Tensor, i: int) -> Tensor:
        transformer = self.pipe.transformer
        inp = torch.cat([x, self.condition], dim=1).to(transformer.dtype)
        t = self.timesteps[i].expand(1)
        kw = {"encoder_hidden_states_image": self.image_embeds, "return_dict": False}
        v = transformer(hidden_states=inp, timestep=t, encoder_hidden_states=self.embeds, **kw)[0]
        if self.negative is not None:
            u = transformer(
                hidden_states=inp, timestep=t, encoder_hidden_states=self.negative, **kw
            )[0]
            v = u + self.owner.cfg_scale * (v - u)
        return x - self.sigmas[i] * v.float()


class _CogVideoXI2V(_I2VModel):
    """CogVideoX 1.0 I2V (v- or epsilon-prediction DDPM), run in flow-matching form."""

    default_model = "THUDM/CogVideoX-5b-I2V"
    pipeline = "CogVideoXImageToVideoPipeline"
    text_length = 226

    def __init__(self, pipe: Any, owner: GuidedCompleter):
        self.pipe = pipe
        self.owner = owner
        config = pipe.transformer.config
        if config.patch_size_t is not None:
            raise InputError(
                "the guided sampler supports CogVideoX 1.0 I2V (no temporal patches), not 1.5",
                field="completer.model",
            )
        self.temporal = pipe.vae_scale_factor_temporal
        self.spatial = pipe.vae_scale_factor_spatial
        self.multiple = self.spatial * config.patch_size
        self.scale = pipe.vae.config.scaling_factor

    def encode(self, video: Tensor) -> Tensor:
        """`(T,3,H,W)` in [0,1] -> scaled latents `(1,L,C,h,w)`."""
        vae = self.pipe.vae
        x = self.vae_input(video)
        z = vae.encode(x).latent_dist.mode().float() * self.scale
        return z.permute(0, 2, 1, 3, 4)

    def decode(self, z: Tensor) -> Tensor:
        vae = self.pipe.vae
        z = (z / self.scale).permute(0, 2, 1, 3, 4).to(vae.dtype)
        x = vae.decode(z).sample.float()
        return self.frames_from_vae(x)

    def cell_mask(self, cells: Tensor, like: Tensor) -> Tensor:
        return cells[None, :, None].expand_as(like).to(like)

    def prepare(self, video: Tensor, prompt: str, generator: Any) -> Tensor:
        owner, pipe = self.owner, self.pipe
        device = pipe._execution_device
        frames, _, height, width = video.shape
        embeds, negative = self.encode_prompt(prompt)
        dtype = pipe.transformer.dtype
        image = pipe.video_processor.preprocess(to_pil(video[0]), height=height, width=width)
        noise, image_latents = pipe.prepare_latents(
            image.to(device, pipe.vae.dtype), 1, pipe.vae.config.latent_channels, frames,
            height, width, torch.float32, device, generator, None,
        )  # fmt: skip
        self.image_latents = image_latents.to(dtype)
        self.embeds = embeds.to(dtype)
        self.negative = negative.to(dtype) if self.cfg else None
        config = pipe.transformer.config
        self.rotary = (
            pipe._prepare_rotary_positional_embeddings(height, width, noise.shape[1], device)
            if config.use_rotary_positional_embeddings
            else None
        )
        self.ofs = None if config.ofs_embed_dim is None else noise.new_full((1,), 2.0)
        scheduler = pipe.scheduler
        scheduler.set_timesteps(owner.num_inference_steps, device=noise.device)
        self.timesteps = scheduler.timesteps
        alphas = scheduler.alphas_cumprod.to(noise.device)[self.timesteps.long()].float()
        self.a, self.b = alphas.sqrt(), (1 - alphas).sqrt()
        self.v_pred = scheduler.config.prediction_type == "v_prediction"
        sig = self.b / (self.a + self.b)
        self.sigmas = torch.cat([sig, sig.new_zeros(1)])
        return noise.float() / (self.a[0] + self.b[0])

    def predict_x0(self, x: Tensor, i: int) -> Tensor:
        transformer = self.pipe.transformer
        a, b = self.a[i], self.b[i]
        x_t = x * (a + b)
        inp = torch.cat([x_t, self.image_latents], dim=2).to(transformer.dtype)
        kw = {
            "timestep": self.timesteps[i].expand(1),
            "ofs": self.ofs,
            "image_rotary_emb": self.rotary,
            "return_dict": False,
        }
        out = transformer(hidden_states=inp, encoder_hidden_states=self.embeds, **kw)[0].float()
        if self.negative is not None:
            u = transformer(hidden_states=inp, encoder_hidden_states=self.negative, **kw)[0].float()
            out = u + self.owner.cfg_scale * (out - u)
        return a * x_t - b * out if self.v_pred else (x_t - b * out) / a


_FAMILIES: dict[str, Any] = {"wan-i2v": _WanI2V, "cogvideox-i2v": _CogVideoXI2V}


class GuidedCompleter:
    """Training-free guided completion around an image-to-video pipeline.

    family: `"wan-i2v"` (default) or `"cogvideox-i2v"`.
    model: hub id (default Wan2.1 I2V 14B 480P / CogVideoX-5b-I2V), local directory or
        `tiny:<family>`.
    num_inference_steps: denoising steps (25).
    guidance_steps: steps (from the start) that get guidance and resampling (20); the rest
        denoise freely (early stopping). `guidance_steps >= num_inference_steps` disables it.
    step_size: guidance step on the normalised gradient (0 turns guidance off).
    resample_rounds: extra re-noise/denoise rounds per guided step (1).
    known_threshold: fraction of known pixels above which a latent cell is known (0.8).
    view_padding: repeat first/last frames for one latent frame at each end (True).
    cfg_scale: classifier-free guidance scale of the prompt (5.0; <= 1 skips the second pass).
    condition_last_frame: also condition on the last frame (Wan first-last-frame models).
    max_sequence_length: text tokens (None: the model's own, 512 for Wan, 226 for CogVideoX).
    height / width: working size (None: the clip's, rounded to the model's multiple).
    memory: dtype, offloading and VAE tiling/slicing (`MemoryOptions`).
    store: where the pipeline is loaded (shared with the other roles of a preset: the animator
        of the same model uses the same pipeline).
    """

    name = "guided"

    def __init__(
        self,
        model: str | None = None,
        *,
        family: str = "wan-i2v",
        device: str | torch.device = "cpu",
        memory: MemoryOptions | None = None,
        store: ModelStore | None = None,
        num_inference_steps: int = 25,
        guidance_steps: int = 20,
        step_size: float = 0.5,
        resample_rounds: int = 1,
        known_threshold: float = 0.8,
        view_padding: bool = True,
        cfg_scale: float = 5.0,
        negative_prompt: str = "",
        condition_last_frame: bool = False,
        max_sequence_length: int | None = None,
        height: int | None = None,
        width: int | None = None,
    ):
        if family not in _FAMILIES:
            raise InputError(
                f"unknown family {family!r}; use {', '.join(_FAMILIES)}", field="completer.family"
            )
        self.family = family
        self.model_id = model or _FAMILIES[family].default_model
        self.device = device
        self.memory = memory or MemoryOptions()
        self.store = store or ModelStore()
        self.num_inference_steps = num_inference_steps
        self.guidance_steps = guidance_steps
        self.step_size = step_size
        self.resample_rounds = resample_rounds
        self.known_threshold = known_threshold
        self.view_padding = view_padding
        self.cfg_scale = cfg_scale
        self.negative_prompt = negative_prompt
        self.condition_last_frame = condition_last_frame
        self.max_sequence_length = max_sequence_length
        self.height = height
        self.width = width
        self.last_trace: GuidedTrace | None = None
        self._model: Any = None

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role="completer")

    def _load(self) -> Any:
        if self._model is None:
            import diffusers

            adapter = _FAMILIES[self.family]
            pipe = self.store.pipeline(
                getattr(diffusers, adapter.pipeline),
                self.model_id,
                role="completer",
                device=self.device,
                memory=self.memory,
            )
            self._model = adapter(pipe, self)
        return self._model

    def known_cells(self, masks: Tensor, temporal: int, spatial: int) -> Tensor:
        """Known latent cells `(L,h,w)` bool of pixel masks `(T,H,W)` (T = temporal*k + 1).

        Latent frame 0 covers frame 0 alone (causal VAE), latent frame `l > 0` covers frames
        `temporal*(l-1)+1 ... temporal*l`; a cell is known when more than `known_threshold`
        of its pixels are.
        """
        m = masks.float()
        m = torch.cat([m[:1].expand(temporal - 1, -1, -1), m])[None, None]
        frac = F.avg_pool3d(m, kernel_size=(temporal, spatial, spatial))[0, 0]
        return frac > self.known_threshold

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
        """`(T,3,H,W)` in [0,1], holes generated, known pixels equal to `frames`.

        The sampler's record is left in `self.last_trace` (a `GuidedTrace`).
        """
        from diffusers.utils.torch_utils import randn_tensor

        model = self._load()
        frames, masks = frames.float().cpu(), masks.bool().cpu()
        total, _, height, width = frames.shape
        temporal = model.temporal
        work_h, work_w = working_size(self.height or height, self.width or width, model.multiple)

        pad = temporal if self.view_padding else 0
        count = valid_frame_count(total + 2 * pad, temporal)
        back = count - total - pad
        video = torch.cat(
            [frames[:1].expand(pad, -1, -1, -1), frames, frames[-1:].expand(back, -1, -1, -1)]
        )
        known = torch.cat([masks[:1].expand(pad, -1, -1), masks, masks[-1:].expand(back, -1, -1)])
        video = resize_video(video, work_h, work_w)
        known = resize_masks(known, work_h, work_w)

        z_known = model.encode(video)
        cells = self.known_cells(known, temporal, model.spatial)
        mask = model.cell_mask(cells, z_known)
        x = model.prepare(video, prompt, generator)
        sigmas = model.sigmas
        trace = GuidedTrace(
            sampled_frames=count,
            latent_frames=cells.shape[0],
            pad_front=pad,
            pad_back=back,
            known_cells=float(cells.float().mean()),
        )
        passes = 2 if model.negative is not None else 1
        steps = len(sigmas) - 1
        for i in range(steps):
            s, s_next = sigmas[i], sigmas[i + 1]
            guided = i < self.guidance_steps
            rounds = self.resample_rounds if guided else 0
            for r in range(rounds + 1):
                x0 = model.predict_x0(x, i)
                if guided and self.step_size > 0 and bool(cells.any()):
                    g = mask * (x0 - z_known)
                    x0 = x0 - self.step_size * g / g[mask.bool()].std().clamp_min(1e-6)
                x = (s_next / s) * x + (1 - s_next / s) * x0
                if r < rounds:
                    a = (1 - s) / (1 - s_next)
                    b = (s**2 - (a * s_next) ** 2).clamp_min(0).sqrt()
                    x = a * x + b * randn_tensor(x.shape, generator=generator, device=x.device)
            trace.steps.append(GuidedStep(i, float(s), guided, (rounds + 1) * passes))
            if progress is not None:
                progress(i + 1, steps)

        trace.latent_error = float(((x - z_known) ** 2 * mask).sum() / mask.sum().clamp_min(1))
        decoded = resize_video(model.decode(x)[pad : pad + total], height, width)
        model.pipe.maybe_free_model_hooks()  # with model offload: nothing stays on the device
        trace.raw = decoded
        self.last_trace = trace
        return torch.where(masks[:, None], frames, decoded)
