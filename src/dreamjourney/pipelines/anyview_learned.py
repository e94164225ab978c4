"""AnyView, learned: one video of a dynamic scene -> the same moments from other cameras.

A diffusers pipeline around `AnyViewTransformer`: the input video is encoded (by a video VAE, or
kept in pixel space scaled to [-1, 1] when there is no VAE), both camera paths become Plücker ray
maps on the model's grid relative to the first target camera, and the target video is sampled
from noise with flow matching (`FlowMatchEulerDiscreteScheduler`), then decoded.

    pipe = AnyViewPipeline.from_pretrained("path/to/anyview")
    frames = pipe(video, input_cameras, target_cameras, num_inference_steps=30).frames
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
    FlowMatchEulerDiscreteScheduler,
)
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from dreamjourney.camera import Cameras
from dreamjourney.data.types import depth_scale
from dreamjourney.errors import InputError, MissingWeightsError
from dreamjourney.models.anyview.conditioning import PluckerLayout, ray_maps
from dreamjourney.models.anyview.transformer import AnyViewTransformer


@dataclass
class AnyViewPipelineOutput(BaseOutput):
    """frames: (T, 3, H, W) float32 tensor in [0, 1] ("pt"), or (T, H, W, 3) float32 array ("np")."""

    frames: Tensor | np.ndarray


def vae_compression(vae: Any) -> tuple[int, int]:
    """(temporal, spatial) compression of a diffusers video VAE (Wan or CogVideoX); (1, 1) for None."""
    if vae is None:
        return 1, 1
    if hasattr(vae, "temperal_downsample"):  # AutoencoderKLWan (sic)
        patch = getattr(vae.config, "patch_size", None) or 1
        return 2 ** sum(vae.temperal_downsample), 2 ** len(vae.temperal_downsample) * patch
    if hasattr(vae.config, "temporal_compression_ratio"):  # AutoencoderKLCogVideoX
        return int(vae.config.temporal_compression_ratio), 2 ** (
            len(vae.config.block_out_channels) - 1
        )
    raise TypeError(f"unsupported video VAE {type(vae).__name__}: use Wan or CogVideoX")


class AnyViewPipeline(DiffusionPipeline):
    """(video, input cameras, target cameras) -> video from the target cameras.

    Components:
        transformer: `AnyViewTransformer`.
        scheduler: `FlowMatchEulerDiscreteScheduler`.
        vae: `AutoencoderKLWan` or `AutoencoderKLCogVideoX`, or None to work in pixel space
            (the transformer's `in_channels` is then 3).
    """

    model_cpu_offload_seq = "transformer->vae"  # type: ignore[assignment]
    _optional_components = ["vae"]  # noqa: RUF012  (diffusers declares it a plain list)

    transformer: AnyViewTransformer
    scheduler: FlowMatchEulerDiscreteScheduler
    vae: Any

    def __init__(
        self,
        transformer: AnyViewTransformer,
        scheduler: FlowMatchEulerDiscreteScheduler,
        vae: Any = None,
    ):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae)

    # ------------------------------------------------------------------ building blocks
    @property
    def compression(self) -> tuple[int, int]:
        """(temporal, spatial) factors between video frames/pixels and model grid cells."""
        return vae_compression(getattr(self, "vae", None))

    @property
    def plucker_layout(self) -> PluckerLayout:
        c: Any = self.transformer.config
        return PluckerLayout(
            order=c.plucker_order,
            pixel_offset=c.plucker_pixel_offset,
            moment_scale=c.moment_scale,
            clamp=c.moment_clamp,
        )

    def check_size(self, num_frames: int, width: int, height: int, *, what: str) -> None:
        """InputError unless the model can take `num_frames` frames of width x height."""
        ct, cs = self.compression
        pt, ph, pw = self.transformer.config["patch_size"]
        if num_frames < 1:
            raise InputError("has no frames", field=what)
        if (num_frames - 1) % ct or ((num_frames - 1) // ct + 1) % pt:
            need = f"1 + {ct}k" if ct > 1 else f"a multiple of {pt}"
            raise InputError(f"{num_frames} frames; the model needs {need} frames", field=what)
        if width % (cs * pw) or height % (cs * ph):
            raise InputError(
                f"size {width}x{height}: width must be a multiple of {cs * pw} and height of "
                f"{cs * ph}",
                field=what,
            )

    def encode_video(self, video: Tensor) -> Tensor:
        """(B, 3, T, H, W) in [0, 1] -> (B, C, F, h, w) model-space video (VAE mode, normalised)."""
        x = video * 2 - 1
        vae = getattr(self, "vae", None)
        if vae is None:
            return x
        z = vae.encode(x.to(vae.device, vae.dtype)).latent_dist.mode()
        mean, std = self._latent_stats(z)
        return (z - mean) / std

    def decode_latents(self, latents: Tensor) -> Tensor:
        """(B, C, F, h, w) model-space video -> (B, 3, T, H, W) in [0, 1]."""
        vae = getattr(self, "vae", None)
        if vae is not None:
            mean, std = self._latent_stats(latents)
            latents = vae.decode((latents * std + mean).to(vae.device, vae.dtype)).sample
        return (latents.float() / 2 + 0.5).clamp(0, 1)

    def _latent_stats(self, z: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.vae.config
        if getattr(cfg, "latents_mean", None) is not None:  # Wan: per-channel statistics
            shape = (1, -1, 1, 1, 1)
            mean = torch.tensor(cfg.latents_mean).view(shape)
            std = torch.tensor(cfg.latents_std).view(shape)
            return mean.to(z), std.to(z)
        return torch.zeros((), device=z.device, dtype=z.dtype), torch.tensor(
            1.0 / cfg.scaling_factor, device=z.device, dtype=z.dtype
        )

    def camera_rays(
        self, input_cameras: Cameras, target_cameras: Cameras, *, scene_scale: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """Both streams' Plücker maps (6, F, h, w) on the model grid, in the model's layout."""
        ct, cs = self.compression
        return ray_maps(
            input_cameras,
            target_cameras,
            input_grid=(input_cameras.width // cs, input_cameras.height // cs),
            target_grid=(target_cameras.width // cs, target_cameras.height // cs),
            temporal_stride=ct,
            scene_scale=scene_scale,
            layout=self.plucker_layout,
        )

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        video: Tensor,
        input_cameras: Cameras,
        target_cameras: Cameras,
        *,
        scene_scale: float = 1.0,
        num_inference_steps: int = 30,
        generator: torch.Generator | None = None,
        latents: Tensor | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> Any:
        """Re-film `video` from `target_cameras`, one output frame per input frame.

        Args:
            video: (T, 3, H, W) float in [0, 1], filmed by `input_cameras` (T cameras, H x W).
            input_cameras: T cameras of the input video (OpenCV, c2w, any world frame).
            target_cameras: T cameras to render from, same world frame; their size sets the
                output size.
            scene_scale: world units per scene unit (e.g. the input's median depth); camera
                translations are divided by it before the model's moment scale.
            num_inference_steps: flow-matching Euler steps.
            generator: seeds the initial noise.
            latents: (1, C, F, h, w) initial noise instead of drawing it.
            output_type: "pt" -> (T, 3, H, W) tensor, "np" -> (T, H, W, 3) float32 array.
            progress: called with (step, total) after each denoising step.

        Returns:
            `AnyViewPipelineOutput(frames)` (a 1-tuple `(frames,)` when `return_dict` is False).
        """
        if output_type not in ("pt", "np"):
            raise InputError(f"must be 'pt' or 'np', got {output_type!r}", field="output_type")
        if video.ndim != 4 or video.shape[1] != 3:
            raise InputError(f"must be (T, 3, H, W), got {tuple(video.shape)}", field="video")
        t, _, h, w = video.shape
        for name, cams in (("input_cameras", input_cameras), ("target_cameras", target_cameras)):
            if len(cams) != t:
                raise InputError(f"has {len(cams)} cameras for {t} video frames", field=name)
        if (input_cameras.width, input_cameras.height) != (w, h):
            raise InputError(
                f"are {input_cameras.width}x{input_cameras.height} but the video is {w}x{h}",
                field="input_cameras",
            )
        self.check_size(t, w, h, what="video")
        self.check_size(t, target_cameras.width, target_cameras.height, what="target_cameras")

        device = self._execution_device
        dtype = self.transformer.dtype
        cond = self.encode_video(video.to(device).transpose(0, 1)[None])
        rays_in, rays_tgt = self.camera_rays(input_cameras, target_cameras, scene_scale=scene_scale)
        rays_in, rays_tgt = rays_in[None].to(device, dtype), rays_tgt[None].to(device, dtype)
        _, cs = self.compression
        shape = (1, cond.shape[1], rays_tgt.shape[2], target_cameras.height // cs,
                 target_cameras.width // cs)  # fmt: skip
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise InputError(f"must be {shape}, got {tuple(latents.shape)}", field="latents")
        latents = latents.to(device, torch.float32)

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        for i, step_t in enumerate(timesteps):
            velocity = self.transformer(
                latents.to(dtype), step_t.expand(1), cond.to(dtype), rays_in, rays_tgt,
                return_dict=False,
            )[0]  # fmt: skip
            latents = self.scheduler.step(
                velocity.float(),
                step_t,
                latents,  # type: ignore[arg-type]
                return_dict=False,
            )[0]
            if progress is not None:
                progress(i + 1, len(timesteps))

        frames = self.decode_latents(latents)[0].transpose(0, 1).float().cpu()[:t]
        self.maybe_free_model_hooks()
        out: Tensor | np.ndarray = frames
        if output_type == "np":
            out = frames.permute(0, 2, 3, 1).numpy()
        if not return_dict:
            return (out,)
        return AnyViewPipelineOutput(frames=out)


class AnyViewNovelView:
    """The pipeline as a `dreamjourney.eval.bench.NovelViewMethod`: any frame count and size.

    Frames are resized to the nearest size the model takes (and cameras with them), the clip
    is padded to a frame count the VAE takes by repeating its last frame, and the result is cut
    and resized back to the target cameras' size. The scene scale is the median positive depth
    of the first input frame when depth is given (as training data defines it, see
    `dreamjourney.data.types.depth_scale`), else `scene_scale`.
    """

    def __init__(
        self,
        pipeline: AnyViewPipeline,
        *,
        num_inference_steps: int = 30,
        seed: int = 0,
        scene_scale: float = 1.0,
    ):
        self.pipeline = pipeline
        self.num_inference_steps = num_inference_steps
        self.seed = seed
        self.scene_scale = scene_scale

    def __call__(
        self,
        input_frames: Tensor,
        input_cameras: Cameras,
        target_cameras: Cameras,
        *,
        input_depth: Tensor | None = None,
        moment_scale: float | None = None,
    ) -> Tensor:
        """(T, 3, H, W) input frames in [0, 1] -> (T, 3, H', W') frames seen by `target_cameras`
        (`moment_scale`, AnyViewBench's per-dataset value, is not used: the model has its own)."""
        t = input_frames.shape[0]
        ct, cs = self.pipeline.compression
        _, ph, pw = self.pipeline.transformer.config["patch_size"]
        padded = t if ct == 1 else 1 + ct * -(-(t - 1) // ct)
        index = torch.arange(padded).clamp(max=t - 1)

        def model_size(cams: Cameras) -> tuple[int, int]:
            mw, mh = cs * pw, cs * ph
            return max(mw, round(cams.width / mw) * mw), max(mh, round(cams.height / mh) * mh)

        w_in, h_in = model_size(input_cameras)
        w_out, h_out = model_size(target_cameras)
        video = F.interpolate(
            input_frames[index], size=(h_in, w_in), mode="bilinear", antialias=True
        )
        scale = depth_scale(input_depth) or self.scene_scale
        out = self.pipeline(
            video.clamp(0, 1),
            input_cameras[index.tolist()].resize(w_in, h_in),
            target_cameras[index.tolist()].resize(w_out, h_out),
            scene_scale=scale,
            num_inference_steps=self.num_inference_steps,
            generator=torch.Generator().manual_seed(self.seed),
        )
        if not isinstance(out, AnyViewPipelineOutput) or not isinstance(out.frames, Tensor):
            raise TypeError(
                f"{type(self.pipeline).__name__} returned {type(out).__name__}, expected "
                "AnyViewPipelineOutput with a tensor of frames"
            )
        frames = out.frames[:t]
        size = (target_cameras.height, target_cameras.width)
        if frames.shape[-2:] != size:
            frames = F.interpolate(frames, size=size, mode="bilinear", antialias=True).clamp(0, 1)
        return frames


def tiny_anyview_pipeline(seed: int = 0) -> AnyViewPipeline:
    """A random-weight pixel-space AnyView pipeline (2 blocks, 16x16 patches): its output is
    noise; it exercises every code path (sizes must be multiples of 16)."""
    torch.manual_seed(seed)
    transformer = AnyViewTransformer(
        in_channels=3,
        patch_size=(1, 16, 16),
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=24,
        ffn_dim=96,
        freq_dim=32,
    )
    return AnyViewPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler())


def load_anyview_pipeline(
    model: str | None, *, preset: str = "offline", device: str | torch.device = "cpu"
) -> AnyViewPipeline:
    """The learned AnyView pipeline for the command line.

    Args:
        model: a directory saved by `AnyViewPipeline.save_pretrained` (e.g. `pipeline/` of a
            `dreamjourney train anyview` run) or a hub id already in the local cache.
        preset: with no `model`, "tiny" builds `tiny_anyview_pipeline()` (noise); any other
            preset is an error, since there is no published AnyView model to fall back to.
        device: where to run it.

    Raises:
        MissingWeightsError: no model given (outside "tiny"), or its files are not on disk.
    """
    if model is None:
        if preset != "tiny":
            raise MissingWeightsError(
                "the learned method needs a trained AnyView pipeline (a directory or hub id): "
                "train one with `dreamjourney train anyview --config configs/anyview_small.toml` "
                "and pass its pipeline/ directory, or use --preset tiny for a random-weight model",
                field="--model",
            )
        return tiny_anyview_pipeline().to(device)
    from dreamjourney.models.weights import load_pretrained

    return load_pretrained(AnyViewPipeline, model, role="anyview").to(device)


def learned_method(
    model: str | None = None,
    *,
    preset: str = "offline",
    num_inference_steps: int = 30,
    seed: int = 0,
    scene_scale: float = 1.0,
    device: str = "cpu",
) -> AnyViewNovelView:
    """The learned method of the benchmark (`dreamjourney.pipelines.novel_view.METHODS`) and of
    `dreamjourney anyview --method learned`: `load_anyview_pipeline(model, preset=...)` wrapped
    in `AnyViewNovelView` (`scene_scale` serves inputs without depth)."""
    pipe = load_anyview_pipeline(model, preset=preset, device=device)
    return AnyViewNovelView(
        pipe, num_inference_steps=num_inference_steps, seed=seed, scene_scale=scene_scale
    )
