"""AnyView, the released model: one video of a dynamic scene -> the same moments from other cameras.

A diffusers pipeline around `AnyViewCosmosTransformer` (the released 2B DiT), the Wan2.1 VAE and
`AnyViewAB2Scheduler`, with the inputs built as the release builds them
(`dreamjourney.data.anyview_protocol`):

- Each view gets its own grid: the native size snapped to a long side of 576 (16:9 -> 576x304).
  Input frames are resized once with Lanczos; the output comes at the target's grid.
- Intrinsics: frame 0's K of each view, scaled per axis to its grid, for all frames (nonzero skew
  is refused). Poses are re-anchored in float64 so that the first target camera is the identity.
- Plücker maps [d, o x d] at every pixel (integer pixel coordinates) of every frame; moments are
  multiplied by `moment_scale` (1/8 for most scenes, 1/16 driving, 1/32 Kubric), everything is
  cast to bfloat16 and clamped to [-1, 1]; the direction and moment halves are each encoded by
  the VAE like a video.
- Streams of 52 channels (`RGB_CHANNELS`, ...): the target's rgb latent is generated, everything else
  is given. 35 steps of the AB2 sampler from sigma 80 with no guidance, one more evaluation at
  sigma 0.002; the initial noise of the target's rgb latent is 80 x NumPy
  `RandomState(100 * seed).standard_normal` (the release's seeding, seed 0 for every episode).

Clips are at most 41 frames of 1 + 4k. A longer video runs in windows of that length, each
sampled on its own (cameras re-anchored to the window's first target camera, the same seed):
windows start at 0, L, 2L, ...; the last one is moved back to end with the video and only its
frames not yet made are kept. Windows share nothing, so content can change at a window seam.

    pipe = AnyViewOfficialPipeline.from_pretrained("anyview_dvs_2b")   # a converted folder
    out = pipe(video, input_cameras, target_cameras)
    out.frames  # (T, 3, 304, 576) for a 16:9 target; out.cameras: the targets at that size
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import BaseOutput
from torch import Tensor

from dreamjourney.camera import Cameras, plucker_rays
from dreamjourney.data.anyview_protocol import (
    DEFAULT_MOMENT_SCALE,
    LONG_SIDE,
    MAX_FRAMES,
    clip_length,
    resize_lanczos,
    snap_shape,
)
from dreamjourney.errors import InputError, MissingWeightsError
from dreamjourney.models.anyview_official import (
    CAMS_INPUT_MASK,
    PLUCKER_CHANNELS,
    RELEASE_FILES,
    RGB_CHANNELS,
    RGB_INPUT_MASK,
    RGB_OUTPUT_MASK,
    STREAM_CHANNELS,
    AnyViewAB2Scheduler,
    AnyViewCosmosTransformer,
    load_released_transformer,
    load_wan_vae,
)
from dreamjourney.models.weights import MemoryOptions


@dataclass
class AnyViewOfficialPipelineOutput(BaseOutput):
    """frames: (T, 3, H, W) float32 in [0, 1] ("pt") or (T, H, W, 3) array ("np") at the target's
    grid; cameras: the target cameras at that size."""

    frames: Tensor | np.ndarray
    cameras: Cameras


def plucker_video(
    cameras: Cameras, reference_c2w: Tensor, grid: tuple[int, int], *, moment_scale: float
) -> Tensor:
    """(T, 6, H, W) bfloat16 Plücker maps [d, m] of one view on its grid, as the release makes
    them: frame 0's K scaled per axis to the grid for every frame (nonzero skew refused), poses
    re-anchored in float64 so that `reference_c2w` is the identity, integer pixel coordinates,
    moments times `moment_scale`, all clamped to [-1, 1]."""
    width, height = grid
    K = cameras.K[0].clone()
    if float(K[0, 1]) != 0.0:
        raise InputError("intrinsics with nonzero skew are not supported", field="cameras")
    K[0] *= width / cameras.width
    K[1] *= height / cameras.height
    relative = torch.linalg.inv(reference_c2w.double()) @ cameras.c2w.double()
    local = Cameras(K, relative.float(), width, height, cameras.times)
    rays = plucker_rays(local, order="dm", pixel_offset=0.0, moment_scale=moment_scale, clamp=1.0)
    return rays.to(torch.bfloat16)


def window_plan(num_frames: int, max_frames: int = MAX_FRAMES) -> list[tuple[int, int, int]]:
    """(start, length, keep_from) of each window over a video (see the module docstring):
    the window covers frames [start, start + length) and frames from start + keep_from on are new.
    """
    length = clip_length(num_frames, max_frames)
    plan, done = [], 0
    while done < num_frames:
        start = min(done, num_frames - length)
        plan.append((start, length, done - start))
        done = start + length
    return plan


class AnyViewOfficialPipeline(DiffusionPipeline):
    """(video, input cameras, target cameras) -> the target cameras' video, with the released
    AnyView model.

    Components:
        transformer: `AnyViewCosmosTransformer`.
        vae: diffusers `AutoencoderKLWan` (the Wan2.1 VAE).
        scheduler: `AnyViewAB2Scheduler`.
    """

    model_cpu_offload_seq = "transformer->vae"  # type: ignore[assignment]

    transformer: AnyViewCosmosTransformer
    vae: Any
    scheduler: AnyViewAB2Scheduler

    def __init__(
        self, transformer: AnyViewCosmosTransformer, vae: Any, scheduler: AnyViewAB2Scheduler
    ):
        super().__init__()
        self.register_modules(transformer=transformer, vae=vae, scheduler=scheduler)

    # ------------------------------------------------------------------ VAE
    def _latent_stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.vae.config
        mean = torch.tensor(cfg.latents_mean).view(1, -1, 1, 1, 1).to(like.device, torch.float32)
        std = torch.tensor(cfg.latents_std).view(1, -1, 1, 1, 1).to(like.device, torch.float32)
        return mean, std

    def encode(self, video: Tensor) -> Tensor:
        """(1, 3, T, H, W) in [-1, 1] -> (1, 16, 1 + (T-1)/4, H/8, W/8) normalised latent mean."""
        mu = self.vae.encode(video.to(self._execution_device, self.vae.dtype)).latent_dist.mode()
        mean, std = self._latent_stats(mu)
        return (mu.float() - mean) * (1.0 / std)

    def decode(self, latents: Tensor) -> Tensor:
        """(1, 16, F, h, w) normalised latent -> (1, 3, T, 8h, 8w) float32 in [0, 1]."""
        mean, std = self._latent_stats(latents)
        z = (latents.float() * std + mean).to(self.vae.dtype)
        return ((self.vae.decode(z).sample.float() + 1) / 2).clamp(0, 1)

    # ------------------------------------------------------------------ inputs
    def view_stream(
        self,
        cameras: Cameras,
        reference_c2w: Tensor,
        grid: tuple[int, int],
        *,
        moment_scale: float,
        frames: Tensor | None,
    ) -> Tensor:
        """One view's (1, 52, F, h, w) stream: its rgb latent (frames given: the input view) or
        zeros (the target view), the constant mask channels and its Plücker latents.

        Args:
            cameras: T cameras of the view, at their native size.
            reference_c2w: (4, 4) the first target camera: it becomes the identity.
            grid: (width, height) the view's model grid in pixels.
            moment_scale: multiplies the Plücker moments.
            frames: (T, 3, height, width) in [0, 1] at the grid, or None for the target.
        """
        rays = plucker_video(cameras, reference_c2w, grid, moment_scale=moment_scale)
        rays = rays.transpose(0, 1)[None]  # (1, 6, T, H, W)
        directions, moments = self.encode(rays[:, :3]), self.encode(rays[:, 3:])
        _, _, f, h, w = directions.shape
        stream = torch.zeros(1, STREAM_CHANNELS, f, h, w, device=directions.device)
        if frames is not None:
            stream[:, RGB_CHANNELS] = self.encode(frames.transpose(0, 1)[None] * 2 - 1)
        stream[:, RGB_INPUT_MASK] = float(frames is not None)
        stream[:, RGB_OUTPUT_MASK] = float(frames is None)
        stream[:, PLUCKER_CHANNELS] = torch.cat([directions, moments], dim=1)
        stream[:, CAMS_INPUT_MASK] = 1.0
        return stream

    # ------------------------------------------------------------------ sampling
    def denoise(self, x: Tensor, sigma: float, target: Tensor, input: Tensor) -> Tensor:
        """x0 of the target's rgb latent from the state `x` (EDM space) at noise level `sigma`."""
        c_skip, c_out, c_in, t = self.scheduler.preconditioning(sigma)
        target = target.clone()
        target[:, RGB_CHANNELS] = c_in * x
        dtype = self.transformer.dtype
        velocity = self.transformer(
            target.to(dtype),
            input.to(dtype),
            torch.tensor([t], device=target.device),
            return_dict=False,
        )[0]
        return c_skip * x + c_out * velocity[:, RGB_CHANNELS].float()

    def sample_window(
        self,
        frames: Tensor,
        input_cameras: Cameras,
        target_cameras: Cameras,
        target_grid: tuple[int, int],
        *,
        moment_scale: float,
        num_inference_steps: int,
        seed: int,
        step_done: Callable[[], None] | None = None,
    ) -> Tensor:
        """One clip of 1 + 4k frames (already on the input grid) -> (T, 3, H, W) target frames."""
        reference = target_cameras.c2w[0]
        grid_in = (frames.shape[-1], frames.shape[-2])
        input_stream = self.view_stream(
            input_cameras, reference, grid_in, moment_scale=moment_scale, frames=frames
        )
        target_stream = self.view_stream(
            target_cameras, reference, target_grid, moment_scale=moment_scale, frames=None
        )
        shape = (1, RGB_CHANNELS.stop - RGB_CHANNELS.start, *target_stream.shape[2:])
        noise = np.random.RandomState(100 * seed).standard_normal(int(np.prod(shape)))
        x = torch.from_numpy(noise.astype(np.float32).reshape(shape)).to(target_stream.device)
        x = x * self.scheduler.config["sigma_max"]
        self.scheduler.set_timesteps(num_inference_steps)
        sigmas = self.scheduler.sigmas
        x0_prev = None
        for i in range(num_inference_steps):
            x0 = self.denoise(x, float(sigmas[i]), target_stream, input_stream)
            x, x0_prev = self.scheduler.step(x0, i, x, x0_prev), x0
            if step_done is not None:
                step_done()
        x0 = self.denoise(x, float(sigmas[-1]), target_stream, input_stream)
        return self.decode(x0)[0].transpose(0, 1).cpu()

    @torch.no_grad()
    def __call__(
        self,
        video: Tensor,
        input_cameras: Cameras,
        target_cameras: Cameras,
        *,
        moment_scale: float = DEFAULT_MOMENT_SCALE,
        num_inference_steps: int = 35,
        seed: int = 0,
        long_side: int = LONG_SIDE,
        max_frames: int = MAX_FRAMES,
        output_type: str = "pt",
        return_dict: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> Any:
        """Re-film `video` from `target_cameras`, one output frame per input frame.

        Args:
            video: (T, 3, H, W) float in [0, 1] at its native size, filmed by `input_cameras`.
            input_cameras: T cameras of the input (OpenCV, c2w), of size W x H.
            target_cameras: T cameras to film from, same world; their size sets the output grid.
            moment_scale: Plücker moment scale: 1/8 (default), 1/16 driving, 1/32 Kubric.
            num_inference_steps: sampler steps (35 as released); one more model call follows.
            seed: the release's seeding (0 for every AnyViewBench episode).
            long_side: long side of the model grids in pixels (576 as released).
            max_frames: window length limit (41 as released; windows have 1 + 4k frames).
            output_type: "pt" -> (T, 3, H', W') tensor, "np" -> (T, H', W', 3) array.
            progress: called with (step, total) after each sampler step.

        Returns:
            `AnyViewOfficialPipelineOutput(frames, cameras)`, or `(frames, cameras)`.
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
        limit = 8 * min(self.transformer.config["max_size"][1:])
        if not 16 <= long_side <= limit:
            raise InputError(f"must be between 16 and {limit}, got {long_side}", field="long_side")
        grid_in = snap_shape(w, h, long_side)
        grid_out = snap_shape(target_cameras.width, target_cameras.height, long_side)
        frames_in = resize_lanczos(video, *grid_in)

        plan = window_plan(t, max_frames)
        total, done = len(plan) * num_inference_steps, 0

        def step_done() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        out = torch.empty(t, 3, grid_out[1], grid_out[0])
        for start, length, keep_from in plan:
            window = list(range(start, start + length))
            clip = self.sample_window(
                frames_in[start : start + length],
                input_cameras[window],
                target_cameras[window],
                grid_out,
                moment_scale=moment_scale,
                num_inference_steps=num_inference_steps,
                seed=seed,
                step_done=step_done,
            )
            out[start + keep_from : start + length] = clip[keep_from:length]
        self.maybe_free_model_hooks()
        cameras = target_cameras.resize(*grid_out)
        frames: Tensor | np.ndarray = out
        if output_type == "np":
            frames = out.permute(0, 2, 3, 1).numpy()
        if not return_dict:
            return (frames, cameras)
        return AnyViewOfficialPipelineOutput(frames=frames, cameras=cameras)


class AnyViewOfficialMethod:
    """The pipeline as a benchmark method (`dreamjourney.eval.bench.NovelViewMethod`).

    The moment scale is `moment_scale` when given (an override), else the episode's (AnyViewBench:
    its `scale_factor` or the per-dataset table), else 1/8. The prediction is Lanczos-resized to
    the target cameras' size when that is not the model's grid (AnyViewBench asks at the grid).
    """

    def __init__(
        self,
        pipeline: AnyViewOfficialPipeline,
        *,
        moment_scale: float | None = None,
        num_inference_steps: int = 35,
        seed: int = 0,
        long_side: int = LONG_SIDE,
    ):
        self.pipeline = pipeline
        self.moment_scale = moment_scale
        self.num_inference_steps = num_inference_steps
        self.seed = seed
        self.long_side = long_side

    def __call__(
        self,
        input_frames: Tensor,
        input_cameras: Cameras,
        target_cameras: Cameras,
        *,
        input_depth: Tensor | None = None,
        moment_scale: float | None = None,
    ) -> Tensor:
        scale = next(
            (s for s in (self.moment_scale, moment_scale) if s is not None), DEFAULT_MOMENT_SCALE
        )
        out = self.pipeline(
            input_frames,
            input_cameras,
            target_cameras,
            moment_scale=scale,
            num_inference_steps=self.num_inference_steps,
            seed=self.seed,
            long_side=self.long_side,
        )
        frames = out.frames
        return resize_lanczos(frames, target_cameras.width, target_cameras.height)


# ----------------------------------------------------------------------------- loading
def tiny_anyview_official_pipeline(seed: int = 0) -> AnyViewOfficialPipeline:
    """Random weights in the released architecture at a tiny size (2 blocks, width 32, a small
    Wan VAE): its output is noise; it exercises every code path."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    transformer = AnyViewCosmosTransformer(
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        text_embed_dim=32,
        text_length=8,
        adaln_lora_dim=8,
    )
    vae = AutoencoderKLWan(base_dim=8, num_res_blocks=1)
    return AnyViewOfficialPipeline(transformer, vae, AnyViewAB2Scheduler())


def pipeline_from_release(
    checkpoint: str | Path,
    *,
    vae: str | Path | None = None,
    text_embedding: str | Path | None = None,
) -> AnyViewOfficialPipeline:
    """The pipeline from the released files: the DiT checkpoint, and by default the release's
    `tokenizer.pth` (Wan2.1 VAE) and `default_text_emb.pt` beside it. The VAE is cast to the
    DiT's dtype (bfloat16), as the release runs it."""
    checkpoint = Path(checkpoint)
    here = checkpoint.parent
    text_embedding = text_embedding or here / RELEASE_FILES["text_embedding"]
    vae = vae or here / RELEASE_FILES["vae"]
    if not Path(vae).exists() and vae == here / RELEASE_FILES["vae"]:
        raise MissingWeightsError(
            f"the Wan2.1 VAE was not found beside the checkpoint ({vae}); put the release's "
            f"{RELEASE_FILES['vae']} there, or give a diffusers Wan2.1 VAE (e.g. "
            "Wan-AI/Wan2.1-T2V-1.3B-Diffusers in the local cache) to `dreamjourney models "
            "convert-anyview --vae`",
            field="vae",
        )
    transformer = load_released_transformer(checkpoint, text_embedding)
    wan = _cast(load_wan_vae(vae), transformer.dtype)
    return AnyViewOfficialPipeline(transformer, wan, AnyViewAB2Scheduler())


def _cast(module: Any, dtype: torch.dtype) -> Any:
    # nn.Module.to, not ModelMixin.to: the latter warns about float32-kept modules when the
    # model has none
    return torch.nn.Module.to(module, dtype) if module.dtype != dtype else module


def convert_release(
    checkpoint: str | Path,
    out: str | Path,
    *,
    vae: str | Path | None = None,
    text_embedding: str | Path | None = None,
) -> Path:
    """Write the released files as a diffusers pipeline folder (`save_pretrained`).

    The folder is written beside `out` and renamed into place when complete; an existing `out`
    that is not empty is refused.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError("exists and is not an empty folder; choose another", source=out)
    pipe = pipeline_from_release(checkpoint, vae=vae, text_embedding=text_embedding)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        pipe.save_pretrained(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_anyview_official(
    model: str | None,
    *,
    preset: str = "offline",
    device: str | torch.device = "cpu",
    memory: MemoryOptions | None = None,
) -> AnyViewOfficialPipeline:
    """The released AnyView pipeline for the command line and the benchmark.

    Args:
        model: `anyview_dvs_2b.pt` (with `tokenizer.pth` and `default_text_emb.pt` beside it),
            a folder written by `dreamjourney models convert-anyview`, or a hub id in the cache.
        preset: with no `model`, "tiny" builds `tiny_anyview_official_pipeline()` (noise).
        device: where to run it.
        memory: dtype (default bfloat16, as the release runs), CPU offload, VAE tiling/slicing.
    """
    memory = memory or MemoryOptions()
    dtype = memory.torch_dtype or torch.bfloat16  # the release runs in bfloat16
    if model is None:
        if preset != "tiny":
            raise MissingWeightsError(
                "the anyview method needs the released AnyView model: pass --model (eval bench: "
                "--option model=) anyview_dvs_2b.pt (with tokenizer.pth and default_text_emb.pt beside "
                "it) or a folder made by `dreamjourney models convert-anyview` (see README, 'The "
                "released AnyView model'), or use --preset tiny for random weights",
                field="--model",
            )
        pipe = tiny_anyview_official_pipeline()
    elif Path(model).expanduser().is_file():
        pipe = pipeline_from_release(Path(model).expanduser())
    else:
        from dreamjourney.models.weights import load_pretrained

        pipe = load_pretrained(AnyViewOfficialPipeline, model, role="anyview", torch_dtype=dtype)
    _cast(pipe.transformer, dtype)
    _cast(pipe.vae, dtype)
    pipe.set_progress_bar_config(disable=True)
    return memory.apply(pipe, device)


def anyview_method(
    model: str | None = None,
    *,
    preset: str = "offline",
    device: str = "cpu",
    dtype: str | None = None,
    cpu_offload: bool = False,
    vae_tiling: bool = False,
    moment_scale: float | None = None,
    num_inference_steps: int = 35,
    seed: int = 0,
    long_side: int = LONG_SIDE,
) -> AnyViewOfficialMethod:
    """The benchmark method "anyview": `load_anyview_official` wrapped in `AnyViewOfficialMethod`."""
    memory = MemoryOptions(dtype=dtype, cpu_offload=cpu_offload, vae_tiling=vae_tiling)
    pipe = load_anyview_official(model, preset=preset, device=device, memory=memory)
    return AnyViewOfficialMethod(
        pipe,
        moment_scale=moment_scale,
        num_inference_steps=num_inference_steps,
        seed=seed,
        long_side=long_side,
    )
