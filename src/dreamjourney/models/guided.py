"""`guided` completion: DreamJourney's stage I sampler, training-free, around an I2V model.

An image-to-video model (Wan I2V / FLF2V or CogVideoX I2V, driven through their diffusers
components: transformer, VAE, scheduler, text and image encoders) is conditioned on complete
frames and steered toward the partial clip, as the official DreamJourney sampler does:

* **complete conditioning**: the clip opens with the complete view it continues from
  (`context.start_view`, every pixel known), which is the I2V image and the CLIP image; with
  `condition_last_frame` (first-last-frame models) the clip's last frame is the second one;
* **pre-fill**: holes are filled by OpenCV Telea before VAE encoding (`telea_fill`), so latent
  cells that are mostly known are not darkened by black holes;
* **known cells**: a latent cell (one latent frame x one VAE block) is known when more than
  `known_threshold` (80%) of the pixels it covers are known;
* **posterior guidance** (`guidance_step`): at each guided step the noisy latent `x_t` moves
  against the gradient of the masked squared error between the model's clean estimate and the
  encoded clip, normalised by its std over the whole tensor and scaled by `lr * sqrt(sigma)`
  (lr 0.025); the model is then evaluated again at the moved latent for the step itself;
* **resampling** (RePaint, optional): after a step from sigma_i to sigma_{i+1} the latent is
  re-noised back to sigma_i and the step taken again, `resample_rounds` extra times;
* **early stopping**: guidance and resampling run for the first `guidance_steps` steps only
  (20 of 25 by default); the remaining steps denoise freely;
* **view padding**: the first and last frames are repeated `temporal` times (one latent frame,
  4 frames for Wan) at each end before encoding and cut after decoding.

Steps are first-order (DDIM, which equals Euler in flow-matching form `x_s = (1-s) x0 + s eps`)
on the model's own noise schedule; a DDPM-style model (CogVideoX, v-prediction) is run in the
same form through `x_s = x_t / (sqrt(a) + sqrt(1-a))`, `s = sqrt(1-a) / (sqrt(a) + sqrt(1-a))`.
The clip is sampled at the model's size (CogVideoX-5b-I2V: its native 720x480 and 49 frames),
decoded, cut, resized back, and the known pixels are copied from the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.models.protocols import CompletionContext, Progress
from dreamjourney.models.video_common import (
    WAN_NEGATIVE_PROMPT,
    ClipGrid,
    at_model_size,
    check_requested_size,
    native_grid,
    pad_clip,
    set_flow_shift,
    telea_fill,
    to_pil,
)
from dreamjourney.models.weights import MemoryOptions, ModelStore, resolve_weights

# diffusers' Wan attention splits image from text tokens at 512 from the end of the context.
WAN_TEXT_LENGTH = 512


def guidance_step(
    x: Tensor, x0: Tensor, target: Tensor, mask: Tensor, sigma: float, lr: float
) -> Tensor:
    """One posterior-guidance step on the noisy latent `x` at flow-matching noise level `sigma`.

    The gradient of the masked squared error `|mask * (x0 - target)|^2` between the model's
    clean estimate `x0` and the encoded clip `target` is taken with respect to `x` through the
    identity (the official sampler differentiates with respect to a latent its model input is
    detached from), normalised by its standard deviation over the whole tensor, zeros of the
    unknown cells included, and scaled by `lr * sqrt(sigma_ve)`, where `sigma_ve = s / (1 - s)`
    is the noise level of the variance-exploding latent `x_ve = x0 + sigma_ve * eps` the
    official sampler steps on; on our `x = x_ve / (1 + sigma_ve)` that is a step of
    `lr * sqrt(s * (1 - s))`. All tensors have `x`'s shape; returns the moved `x`.
    """
    g = mask * (x0 - target)
    std = g.std()
    if not bool(std > 0):
        return x
    return x - lr * math.sqrt(max(sigma * (1.0 - sigma), 0.0)) * g / std


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

    sampled_frames: frames sampled (start view + input + padding, up to the model's count).
    latent_frames: latent frames the transformer saw.
    pad_front / pad_back: frames added before / after the start view and input (cut after
        decoding); lead: 1 when a start view opened the clip, else 0.
    known_cells: fraction of latent cells counted as known.
    size: `(height, width)` the model ran at.
    steps: one `GuidedStep` per denoising step.
    raw: the decoded clip `(T,3,H,W)` before known pixels are copied back.
    latent_error: mean squared error on known cells between final latents and the encoded clip.
    """

    sampled_frames: int = 0
    latent_frames: int = 0
    pad_front: int = 0
    pad_back: int = 0
    lead: int = 0
    known_cells: float = 0.0
    size: tuple[int, int] = (0, 0)
    steps: list[GuidedStep] = field(default_factory=list)
    raw: Tensor | None = None
    latent_error: float = 0.0


class _I2VModel:
    """What the Wan and CogVideoX adapters share: prompt encoding and the VAE's input layout."""

    pipe: Any
    owner: GuidedCompleter
    grid: ClipGrid
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
            max_sequence_length=self.text_length,
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
    """Wan 2.1 I2V / FLF2V (CLIP image tokens, image latents as channels), flow matching."""

    default_model = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
    pipeline = "WanImageToVideoPipeline"
    family_grid = ClipGrid(temporal=4, spatial=8, patch=2)
    negative_prompt = WAN_NEGATIVE_PROMPT
    text_length = WAN_TEXT_LENGTH

    def __init__(self, pipe: Any, owner: GuidedCompleter):
        if pipe.config.expand_timesteps or pipe.transformer_2 is not None:
            raise InputError(
                "the guided sampler supports Wan 2.1-style I2V/FLF2V pipelines (one transformer, "
                "image latents as channels), not Wan 2.2 TI2V or two-expert models",
                field="completer.model",
            )
        config = pipe.transformer.config
        # a first-last-frame transformer embeds the two frames' CLIP tokens with positions
        if owner.condition_last_frame and config.pos_embed_seq_len is None:
            raise InputError(
                f"condition_last_frame needs a first-last-frame model (its transformer has "
                f"pos_embed_seq_len, e.g. Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers); "
                f"{owner.model_id} has none",
                field="completer.condition_last_frame",
            )
        self.pipe = pipe
        self.owner = owner
        self.grid = ClipGrid(
            pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial, config.patch_size[-1]
        )
        vae = pipe.vae.config
        self.mean = torch.tensor(vae.latents_mean).view(1, vae.z_dim, 1, 1, 1)
        self.std = torch.tensor(vae.latents_std).view(1, vae.z_dim, 1, 1, 1)

    def encode(self, video: Tensor) -> Tensor:
        """`(T,3,H,W)` in [0,1] -> normalised latents `(1,C,L,h,w)`."""
        vae = self.pipe.vae
        z = vae.encode(self.vae_input(video)).latent_dist.mode().float()
        return (z - self.mean.to(z)) / self.std.to(z)

    def decode(self, z: Tensor) -> Tensor:
        vae = self.pipe.vae
        z = z * self.std.to(z) + self.mean.to(z)
        x = vae.decode(z.to(vae.dtype), return_dict=False)[0].float()
        return self.frames_from_vae(x)

    def cell_mask(self, cells: Tensor, like: Tensor) -> Tensor:
        return cells[None, None].expand_as(like).to(like)

    def prepare(self, video: Tensor, prompt: str, generator: Any) -> Tensor:
        """Condition on `video[0]` (and `video[-1]`), encode the prompt; -> initial noise."""
        owner, pipe = self.owner, self.pipe
        device = pipe._execution_device
        frames, _, height, width = video.shape
        embeds, negative = self.encode_prompt(prompt)
        dtype = pipe.transformer.dtype
        first, last = to_pil(video[0]), to_pil(video[-1])
        self.image_embeds = None
        if pipe.image_encoder is not None:
            # (1 or 2, tokens, dim): a first-last-frame embedder joins the two frames itself
            images = [first, last] if owner.condition_last_frame else first
            self.image_embeds = pipe.encode_image(images, device).to(dtype)
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
    family_grid = ClipGrid(temporal=4, spatial=8, patch=2)
    negative_prompt = ""

    def __init__(self, pipe: Any, owner: GuidedCompleter):
        self.pipe = pipe
        self.owner = owner
        config = pipe.transformer.config
        if config.patch_size_t is not None:
            raise InputError(
                "the guided sampler supports CogVideoX 1.0 I2V (no temporal patches), not 1.5",
                field="completer.model",
            )
        if owner.condition_last_frame:
            raise InputError(
                "CogVideoX I2V conditions on one frame", field="completer.condition_last_frame"
            )
        grid = ClipGrid(
            pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial, config.patch_size
        )
        self.grid = native_grid(grid, config)
        self.text_length = config.max_text_seq_length
        self.scale = pipe.vae.config.scaling_factor

    def encode(self, video: Tensor) -> Tensor:
        """`(T,3,H,W)` in [0,1] -> scaled latents `(1,L,C,h,w)`."""
        vae = self.pipe.vae
        z = vae.encode(self.vae_input(video)).latent_dist.mode().float() * self.scale
        return z.permute(0, 2, 1, 3, 4)

    def decode(self, z: Tensor) -> Tensor:
        vae = self.pipe.vae
        z = (z / self.scale).permute(0, 2, 1, 3, 4).to(vae.dtype)
        x = vae.decode(z).sample.float()
        return self.frames_from_vae(x)

    def cell_mask(self, cells: Tensor, like: Tensor) -> Tensor:
        return cells[None, :, None].expand_as(like).to(like)

    def prepare(self, video: Tensor, prompt: str, generator: Any) -> Tensor:
        """Condition on `video[0]`, encode the prompt; -> initial noise (flow-matching form)."""
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

    family: `"wan-i2v"` (default; Wan 2.1 I2V or FLF2V) or `"cogvideox-i2v"`.
    model: hub id (default Wan2.1 I2V 14B 480P / CogVideoX-5b-I2V), local directory or
        `tiny:<family>`.
    num_inference_steps: denoising steps (25).
    guidance_steps: steps (from the start) that get guidance and resampling (20); the rest
        denoise freely (early stopping). `guidance_steps >= num_inference_steps` disables it.
    lr: the guidance step's learning rate (0.025, the official value; 0 turns guidance off).
    resample_rounds: extra RePaint re-noise/denoise rounds per guided step (1; 0 turns it off).
    known_threshold: fraction of known pixels above which a latent cell is known (0.8).
    view_padding: repeat first/last frames for one latent frame at each end (True).
    cfg_scale: classifier-free guidance scale of the prompt (5.0; <= 1 skips the second pass).
    negative_prompt: the model card's by default (Wan's; none for CogVideoX).
    condition_last_frame: also condition on the last frame (first-last-frame models).
    flow_shift: the scheduler's timestep shift (None: the checkpoint's; Wan only).
    height / width: working size (None: the clip's, rounded to the model's multiple); a model
        with a fixed native size (CogVideoX-5b-I2V) always runs at it.
    memory: dtype, offloading and VAE tiling/slicing (`MemoryOptions`); Wan's VAE and image
        encoder stay float32.
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
        lr: float = 0.025,
        resample_rounds: int = 1,
        known_threshold: float = 0.8,
        view_padding: bool = True,
        cfg_scale: float = 5.0,
        negative_prompt: str | None = None,
        condition_last_frame: bool = False,
        flow_shift: float | None = None,
        height: int | None = None,
        width: int | None = None,
    ):
        if family not in _FAMILIES:
            raise InputError(
                f"unknown family {family!r}; use {', '.join(_FAMILIES)}", field="completer.family"
            )
        adapter = _FAMILIES[family]
        self.family = family
        self.model_id = model or adapter.default_model
        self.device = device
        self.memory = memory or MemoryOptions()
        self.store = store or ModelStore()
        self.num_inference_steps = num_inference_steps
        self.guidance_steps = guidance_steps
        self.lr = lr
        self.resample_rounds = resample_rounds
        self.known_threshold = known_threshold
        self.view_padding = view_padding
        self.cfg_scale = cfg_scale
        self.negative_prompt = (
            adapter.negative_prompt if negative_prompt is None else negative_prompt
        )
        self.condition_last_frame = condition_last_frame
        self.flow_shift = flow_shift
        self.height = height
        self.width = width
        self.last_trace: GuidedTrace | None = None
        self._model: Any = None

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role="completer")

    def max_frames(self) -> int | None:
        """The most frames one `complete` call with a start view can fill (None: any number).

        Reads the checkpoint's transformer config only (no weights).
        """
        import diffusers

        adapter = _FAMILIES[self.family]
        cls = getattr(diffusers, adapter.pipeline)
        config = self.store.transformer_config(cls, self.model_id, role="completer")
        grid = native_grid(adapter.family_grid, config)
        check_requested_size(grid, self.height, self.width, field="completer")
        if grid.frames is None:
            return None
        return grid.frames - 1 - 2 * self._padding(grid)

    def _padding(self, grid: ClipGrid) -> int:
        return grid.temporal if self.view_padding else 0

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
            set_flow_shift(pipe, self.flow_shift, field="completer.flow_shift")
            model = adapter(pipe, self)
            check_requested_size(model.grid, self.height, self.width, field="completer")
            self._model = model
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

        `context.start_view`, when given, opens the sampled clip as a complete frame. The
        sampler's record is left in `self.last_trace` (a `GuidedTrace`).
        """
        model = self._load()
        grid = model.grid
        frames, masks = frames.float().cpu(), masks.bool().cpu()
        total, _, height, width = frames.shape
        start = None if context is None else context.start_view
        if start is not None:
            frames_in = torch.cat([start[None].float().cpu(), frames])
            masks_in = torch.cat([torch.ones_like(masks[:1]), masks])
        else:
            frames_in, masks_in = frames, masks
        lead = len(frames_in) - total
        pad = self._padding(grid)
        count = grid.frame_count(len(frames_in) + 2 * pad)
        if count is None:
            raise InputError(
                f"{self.model_id} samples exactly {grid.frames} frames; {total} frames "
                f"(+{lead} start view, +{2 * pad} view padding) do not fit",
                field="completer",
            )
        back = count - len(frames_in) - pad
        video, known = pad_clip(frames_in, masks_in, pad, back)
        video = telea_fill(video, known)
        size = grid.model_size(self.height or height, self.width or width)
        trace = GuidedTrace(
            sampled_frames=count, pad_front=pad, pad_back=back, lead=lead, size=size
        )
        keep = slice(pad + lead, pad + lead + total)
        decoded = at_model_size(
            lambda clip, clip_known: self._sample(
                model, clip, clip_known, prompt, generator, progress, trace
            ),
            video,
            size,
            keep,
            masks=known,
        )
        trace.raw = decoded
        self.last_trace = trace
        return torch.where(masks[:, None], frames, decoded)

    def _sample(
        self,
        model: Any,
        video: Tensor,
        known: Tensor,
        prompt: str,
        generator: torch.Generator | None,
        progress: Progress | None,
        trace: GuidedTrace,
    ) -> Tensor:
        """Guided sampling of the filled clip `video` `(N,3,h,w)` at the model's size, with
        known pixels `known` `(N,h,w)` -> the decoded clip `(N,3,h,w)`."""
        from diffusers.utils.torch_utils import randn_tensor

        z_known = model.encode(video)
        cells = self.known_cells(known, model.grid.temporal, model.grid.spatial)
        mask = model.cell_mask(cells, z_known)
        x = model.prepare(video, prompt, generator)
        sigmas = model.sigmas
        trace.latent_frames = cells.shape[0]
        trace.known_cells = float(cells.float().mean())
        passes = 2 if model.negative is not None else 1
        steer = self.lr > 0 and bool(cells.any())
        steps = len(sigmas) - 1
        for i in range(steps):
            s, s_next = sigmas[i], sigmas[i + 1]
            guided = i < self.guidance_steps
            rounds = self.resample_rounds if guided else 0
            for r in range(rounds + 1):
                if guided and steer:
                    x0 = model.predict_x0(x, i)
                    x = guidance_step(x, x0, z_known, mask, float(s), self.lr)
                x0 = model.predict_x0(x, i)
                x = (s_next / s) * x + (1 - s_next / s) * x0
                if r < rounds:
                    a = (1 - s) / (1 - s_next)
                    b = (s**2 - (a * s_next) ** 2).clamp_min(0).sqrt()
                    x = a * x + b * randn_tensor(x.shape, generator=generator, device=x.device)
            evals = (rounds + 1) * (2 if guided and steer else 1) * passes
            trace.steps.append(GuidedStep(i, float(s), guided, evals))
            if progress is not None:
                progress(i + 1, steps)
        trace.latent_error = float(((x - z_known) ** 2 * mask).sum() / mask.sum().clamp_min(1))
        decoded = model.decode(x)
        model.pipe.maybe_free_model_hooks()  # with model offload: nothing stays on the device
        return decoded
