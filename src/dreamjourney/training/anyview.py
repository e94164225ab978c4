"""Train the learned AnyView model with accelerate (`dreamjourney train anyview --config FILE`).

One process here; the same code runs multi-GPU / multi-node under `accelerate launch`, with
FSDP or DeepSpeed when the config names one. Flow matching on the target stream: with clean
target x0, noise n and sigma in (0, 1), the model sees x = (1 - sigma) x0 + sigma n and
predicts n - x0 (the velocity `FlowMatchEulerDiscreteScheduler` integrates at sampling time).

Output directory: `checkpoints/step-NNNNNNN/` (accelerate state: model, optimizer, LR schedule,
RNG; ours: step counter and EMA, see `dreamjourney.training.checkpoint`), `logs/` (TensorBoard),
and `pipeline/` (the final `AnyViewPipeline`, EMA weights when EMA is on) that
`AnyViewPipeline.from_pretrained` loads.
"""

from __future__ import annotations

import pickle
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from dreamjourney.errors import InputError
from dreamjourney.models.anyview.transformer import AnyViewTransformer
from dreamjourney.models.weights import load_pretrained
from dreamjourney.pipelines.anyview_learned import AnyViewPipeline
from dreamjourney.training.checkpoint import (
    TrainerState,
    checkpoint_dir,
    list_checkpoints,
    load_ema,
    read_trainer_state,
    save_trainer_state,
)
from dreamjourney.training.config import ModelConfig, SourceConfig, TrainConfig
from dreamjourney.training.data import ClipDataset, SceneLike, load_source_scenes

SceneLoader = Callable[[SourceConfig], Sequence[SceneLike]]


@dataclass
class TrainResult:
    """What a run did: its last step, the train losses of the steps it ran (one per optimizer
    step), (step, loss) validation points, and the final pipeline (also saved to `pipeline_dir`)."""

    step: int
    losses: list[float]
    val_losses: list[tuple[int, float]]
    pipeline: AnyViewPipeline
    pipeline_dir: Path
    resumed_from: Path | None = None
    seconds: float = 0.0
    clips: int = 0


def build_pipeline(config: ModelConfig) -> AnyViewPipeline:
    """A fresh pipeline: transformer (random, or from a Wan transformer), scheduler, frozen VAE."""
    from diffusers import AutoencoderKLCogVideoX, AutoencoderKLWan
    from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
        FlowMatchEulerDiscreteScheduler,
    )

    vae: Any = None
    if config.vae is not None:
        vae_cls: Any = AutoencoderKLWan if config.vae.kind == "wan" else AutoencoderKLCogVideoX
        vae = load_pretrained(
            vae_cls,
            config.vae.path,
            role="VAE",
            option="[model.vae] path",
            subfolder=config.vae.subfolder,
        )
        vae.requires_grad_(False).eval()
    in_channels = 3
    if vae is not None:
        in_channels = int(getattr(vae.config, "z_dim", None) or vae.config.latent_channels)
    plucker = config.plucker
    layout_args = {
        "plucker_order": plucker.order,
        "plucker_pixel_offset": plucker.pixel_offset,
        "moment_scale": plucker.moment_scale,
        "moment_clamp": plucker.clamp,
    }
    if config.pretrained_wan is not None:
        transformer = AnyViewTransformer.from_pretrained_wan(
            config.pretrained_wan, subfolder=config.pretrained_subfolder, **layout_args
        )
        if transformer.config.in_channels != in_channels:
            raise InputError(
                f"the Wan transformer works on {transformer.config.in_channels} channels but the "
                f"model space has {in_channels}",
                field="model.pretrained_wan",
            )
    else:
        transformer = AnyViewTransformer(
            in_channels=in_channels,
            patch_size=config.patch_size,
            num_layers=config.num_layers,
            num_attention_heads=config.num_attention_heads,
            attention_head_dim=config.attention_head_dim,
            ffn_dim=config.ffn_dim,
            freq_dim=config.freq_dim,
            **layout_args,
        )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=config.flow_shift)
    return AnyViewPipeline(transformer=transformer, scheduler=scheduler, vae=vae)


def sample_sigmas(n: int, kind: str, shift: float, generator: torch.Generator) -> Tensor:
    """(n,) noise levels in (0, 1): logit-normal or uniform, then the scheduler's time shift."""
    device = generator.device
    if kind == "logit_normal":
        u = torch.sigmoid(torch.randn(n, generator=generator, device=device))
    else:
        u = torch.rand(n, generator=generator, device=device)
    return shift * u / (1 + (shift - 1) * u)


def flow_matching_loss(
    pipe: AnyViewPipeline,
    model: torch.nn.Module,
    batch: dict[str, Tensor],
    generator: torch.Generator,
    *,
    timestep_sampling: str,
    shift: float,
) -> Tensor:
    """Mean squared error of the predicted target-stream velocity (a scalar)."""
    with torch.no_grad():
        x0 = pipe.encode_video(batch["target_video"]).float()
        cond = pipe.encode_video(batch["input_video"]).float()
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    sigma = sample_sigmas(x0.shape[0], timestep_sampling, shift, generator).to(x0.device)
    s = sigma.view(-1, 1, 1, 1, 1)
    noisy = (1 - s) * x0 + s * noise
    timestep = sigma * pipe.scheduler.config["num_train_timesteps"]
    pred = model(noisy, timestep, cond, batch["input_rays"], batch["target_rays"]).sample
    return F.mse_loss(pred.float(), noise - x0)


def _flat_hparams(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat_hparams(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float, str, bool)):
            out[f"{prefix}{k}"] = v
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


def _resume_from(config: TrainConfig, ckpt_root: Path) -> tuple[Path, TrainerState] | None:
    """The checkpoint to resume from and its state (None: a fresh start)."""
    if config.resume is None:
        return None
    if config.resume == "latest":
        found = list_checkpoints(ckpt_root)
        if not found:
            return None
        path = found[-1]
    else:
        path = Path(config.resume)
        if not path.is_dir():
            raise InputError("no such checkpoint directory", source=path, field="resume")
    return path, read_trainer_state(path)


def _load_accelerate_state(accelerator: Any, path: Path) -> None:
    """accelerate's part of a checkpoint (model, optimizer, LR schedule, RNG), loaded with
    `weights_only=True`; a file it refuses or a model of another shape is an `InputError`."""
    try:
        accelerator.load_state(str(path))
    except (pickle.UnpicklingError, OSError, RuntimeError, KeyError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot load the checkpoint: {first}", source=path) from exc


def _plugins(config: TrainConfig) -> dict[str, Any]:
    if config.distributed == "fsdp":
        from accelerate import FullyShardedDataParallelPlugin

        return {"fsdp_plugin": FullyShardedDataParallelPlugin()}
    if config.distributed == "deepspeed":
        from accelerate import DeepSpeedPlugin
        from accelerate.utils import is_deepspeed_available

        if not is_deepspeed_available():
            raise InputError(
                "DeepSpeed is not installed (pip install deepspeed)", field="distributed"
            )
        plugin = DeepSpeedPlugin(
            zero_stage=2, gradient_accumulation_steps=config.gradient_accumulation_steps
        )
        # Our data loader is not passed through accelerate, so DeepSpeed cannot infer this.
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = config.batch_size
        return {"deepspeed_plugin": plugin}
    return {}


class _Validator:
    """Mean loss over fixed held-out clips, each with its own fixed noise and noise level."""

    def __init__(self, dataset: ClipDataset, seed: int, batch_size: int):
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
        self.seed = seed

    @torch.no_grad()
    def __call__(self, pipe: AnyViewPipeline, model: torch.nn.Module, config: TrainConfig) -> float:
        model.eval()
        total, count = 0.0, 0
        device = next(model.parameters()).device
        for i, batch in enumerate(self.loader):
            batch = {k: v.to(device) for k, v in batch.items()}
            gen = torch.Generator(device).manual_seed(self.seed + i)
            loss = flow_matching_loss(
                pipe, model, batch, gen, timestep_sampling="uniform", shift=config.model.flow_shift
            )
            n = batch["target_video"].shape[0]
            total += float(loss) * n
            count += n
        model.train()
        return total / count


def train_anyview(
    config: TrainConfig,
    *,
    scene_loader: SceneLoader = load_source_scenes,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train (or resume training) as `config` says; returns when `config.steps` steps are done.

    Args:
        config: the validated training config.
        scene_loader: source config -> scenes (default: synthetic generator or scene folders).
        progress: called with (step, total steps, loss) after every optimizer step.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    out = Path(config.output_dir)
    ckpt_root = out / "checkpoints"
    resume = _resume_from(config, ckpt_root)
    cuda = torch.cuda.is_available()
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision if cuda else "no",
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with="tensorboard",
        project_config=ProjectConfiguration(
            project_dir=str(out), logging_dir=str(out / config.logging_dir)
        ),
        cpu=not cuda,
        **_plugins(config),
    )
    set_seed(config.seed)

    pipe = build_pipeline(config.model)
    model = pipe.transformer
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
        accelerator.mixed_precision, torch.float32
    )
    if pipe.vae is not None:
        pipe.vae.to(accelerator.device, dtype=weight_dtype)
    pipe.check_size(config.frames, config.width, config.height, what="config")
    temporal, spatial = pipe.compression
    layout = pipe.plucker_layout

    def dataset(sources, *, seed: int, length: int, base: int = 0, stride: int = 1) -> ClipDataset:
        return ClipDataset(
            sources,
            frames=config.frames,
            width=config.width,
            height=config.height,
            temporal_stride=temporal,
            spatial_stride=spatial,
            layout=layout,
            seed=seed,
            length=length,
            base=base,
            stride=stride,
        )

    sources = [(s, list(scene_loader(s))) for s in config.data]
    validator = None
    if config.validation is not None:
        val_sources = [(config.validation, list(scene_loader(config.validation)))]
        val_ds = dataset(val_sources, seed=config.seed + 7919, length=config.validation_clips)
        validator = _Validator(val_ds, config.seed + 104729, config.batch_size)

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    lr_scheduler = get_scheduler(
        "constant_with_warmup", optimizer, num_warmup_steps=config.warmup_steps
    )
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    names = [name for name, _ in accelerator.unwrap_model(model).named_parameters()]
    ema = None
    if config.ema.enabled:
        ema = EMAModel(
            accelerator.unwrap_model(model).parameters(),
            decay=config.ema.decay,
            update_after_step=config.ema.update_after_step,
            model_cls=AnyViewTransformer,
            model_config=accelerator.unwrap_model(model).config,
        )
        ema.to(accelerator.device)
    start = 0
    if resume is not None:
        _load_accelerate_state(accelerator, resume[0])
        if ema is not None:
            load_ema(resume[0], resume[1], ema, names, accelerator.device)
        start = resume[1].step

    # Each optimizer step consumes `per_step` clips over all processes; clip indices continue
    # where the checkpoint stopped, interleaved across processes.
    per_process = config.batch_size * config.gradient_accumulation_steps
    per_step = per_process * accelerator.num_processes
    train_ds = dataset(
        sources,
        seed=config.seed,
        length=max(config.steps - start, 0) * per_process,
        base=start * per_step + accelerator.process_index,
        stride=accelerator.num_processes,
    )
    loader = DataLoader(
        train_ds, batch_size=config.batch_size, shuffle=False, num_workers=config.num_workers
    )
    if accelerator.is_main_process:
        accelerator.init_trackers("anyview", config=_flat_hparams(config.model_dump()))

    def validate(step: int) -> None:
        if validator is None:
            return
        if ema is not None:
            ema.store(model.parameters())
            ema.copy_to(model.parameters())
        loss = validator(pipe, model, config)
        if ema is not None:
            ema.restore(model.parameters())
        val_losses.append((step, loss))
        accelerator.log({"val/loss": loss}, step=step)

    losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    if start == 0:
        validate(0)
    step, micro, accumulated = start, 0, 0.0
    t_loop = time.perf_counter()
    model.train()
    for batch in loader:
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        micro_index = start * config.gradient_accumulation_steps + micro
        gen = torch.Generator(accelerator.device).manual_seed(
            config.seed * 1_000_003 + micro_index * accelerator.num_processes
            + accelerator.process_index
        )  # fmt: skip
        micro += 1
        with accelerator.accumulate(model):
            loss = flow_matching_loss(
                pipe,
                model,
                batch,
                gen,
                timestep_sampling=config.timestep_sampling,
                shift=config.model.flow_shift,
            )
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        accumulated += float(loss.detach()) / config.gradient_accumulation_steps
        if not accelerator.sync_gradients:
            continue
        step += 1
        if ema is not None:
            ema.step(model.parameters())
        losses.append(accumulated)
        if step % config.log_every == 0 or step == config.steps:
            elapsed = time.perf_counter() - t_loop
            accelerator.log(
                {
                    "train/loss": accumulated,
                    "train/lr": lr_scheduler.get_last_lr()[0],
                    "train/clips_per_s": (step - start) * per_step / max(elapsed, 1e-9),
                },
                step=step,
            )
        if progress is not None:
            progress(step, config.steps, accumulated)
        accumulated = 0.0
        if step % config.checkpoint_every == 0 or step == config.steps:
            saved = checkpoint_dir(ckpt_root, step)
            accelerator.save_state(str(saved))
            if accelerator.is_main_process:
                save_trainer_state(saved, step, ema, names)
                if config.checkpoints_total_limit is not None:
                    for old in list_checkpoints(ckpt_root)[: -config.checkpoints_total_limit]:
                        shutil.rmtree(old)
        if step % config.validate_every == 0 or step == config.steps:
            validate(step)
    loop_seconds = time.perf_counter() - t_loop

    accelerator.wait_for_everyone()
    final = accelerator.unwrap_model(model)
    if ema is not None:
        ema.copy_to(final.parameters())
    pipe.transformer = final
    pipe_dir = out / "pipeline"
    if accelerator.is_main_process:
        pipe.save_pretrained(str(pipe_dir))
    accelerator.end_training()
    return TrainResult(
        step=step,
        losses=losses,
        val_losses=val_losses,
        pipeline=pipe,
        pipeline_dir=pipe_dir,
        resumed_from=None if resume is None else resume[0],
        seconds=loop_seconds,
        clips=(step - start) * per_step,
    )
