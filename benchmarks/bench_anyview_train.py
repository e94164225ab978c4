"""AnyView training speed (and, with --learn, that the small model learns).

    python benchmarks/bench_anyview_train.py                     # small config, this CPU
    python benchmarks/bench_anyview_train.py --learn 300         # + train 300 steps, val losses
    python benchmarks/bench_anyview_train.py --config configs/anyview_1b3.toml   # needs CUDA

Small (pixel-space) configs run the real trainer (`train_anyview`: data loading, EMA, logging)
and report clips/s after warm-up steps, in four variants measured in the same run: torch's
default thread count vs one thread, gradient checkpointing off vs on.

Latent-space configs (a `model.vae`) are the real-size case: random weights of the configured
shape, pre-encoded random latents (the VAE is not part of the timed step), bf16 autocast,
AdamW; they report parameters, tokens, median step time and peak CUDA memory. Without CUDA they
say so and exit 0 (`--smoke` runs the same code on CPU with the model cut to 2 blocks and the
clip to 9 frames at 64x64, to check the code path only).

Scenes: the configs' synthetic sources (`dreamjourney.data.synth_scene`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dreamjourney.training.config import TrainConfig, load_train_config

REPO = Path(__file__).resolve().parents[1]


def timed_training(cfg: TrainConfig, warmup: int, steps: int) -> float:
    """Clips per second of `train_anyview` over `steps` steps after `warmup` steps."""
    from dreamjourney.training.anyview import train_anyview

    stamps: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run = cfg.model_copy(
            update={
                "output_dir": tmp,
                "steps": warmup + steps,
                "validation": None,
                "checkpoint_every": 10**9,
                "resume": None,
            }
        )
        train_anyview(
            run,
            progress=lambda s, _t, _l: stamps.__setitem__(s, time.perf_counter()),
        )
    clips = steps * cfg.batch_size * cfg.gradient_accumulation_steps
    return clips / (stamps[warmup + steps] - stamps[warmup])


def bench_small(cfg: TrainConfig, warmup: int, steps: int) -> None:
    default_threads = torch.get_num_threads()
    print(
        f"config: {cfg.frames} frames {cfg.width}x{cfg.height}, batch {cfg.batch_size}; synthetic scenes"
    )
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print(f"{'threads':>8} {'grad ckpt':>10} {'clips/s':>9} {'s/step':>8}")
    for threads in (default_threads, 1):
        for checkpointing in (False, True):
            torch.set_num_threads(threads)
            run = cfg.model_copy(update={"gradient_checkpointing": checkpointing})
            rate = timed_training(run, warmup, steps)
            print(f"{threads:>8} {checkpointing!s:>10} {rate:>9.2f} {cfg.batch_size / rate:>8.3f}")
    torch.set_num_threads(default_threads)


def learn(cfg: TrainConfig, steps: int, out: Path, threads: int) -> None:
    """Train `steps` steps of the small config with `threads` torch threads; print the
    validation loss curve."""
    from dreamjourney.training.anyview import train_anyview

    torch.set_num_threads(threads)
    run = cfg.model_copy(update={"steps": steps, "output_dir": str(out), "resume": None})
    t0 = time.perf_counter()
    result = train_anyview(run)
    print(f"trained {steps} steps in {time.perf_counter() - t0:.0f} s ({threads} thread(s))")
    for step, loss in result.val_losses:
        print(f"  step {step:>5}: validation loss {loss:.4f}")
    first, last = result.val_losses[0][1], result.val_losses[-1][1]
    print(f"validation loss {first:.4f} -> {last:.4f} ({100 * (1 - last / first):.0f}% lower)")


def bench_real_size(cfg: TrainConfig, warmup: int, steps: int, *, smoke: bool) -> None:
    from diffusers import AutoencoderKLWan

    from dreamjourney.camera import Cameras, look_at
    from dreamjourney.models.anyview import AnyViewTransformer, ray_maps
    from dreamjourney.pipelines.anyview_learned import vae_compression

    m = cfg.model
    frames, width, height, layers = cfg.frames, cfg.width, cfg.height, m.num_layers
    if smoke:
        frames, width, height, layers, device = 9, 64, 64, 2, torch.device("cpu")
    else:
        device = torch.device("cuda")
    vae = AutoencoderKLWan() if m.vae is not None and m.vae.kind == "wan" else None
    if vae is None:
        raise SystemExit(
            "the real-size benchmark expects a Wan VAE latent space (model.vae.kind = 'wan')"
        )
    (ct, cs), channels = vae_compression(vae), vae.config.z_dim
    model = AnyViewTransformer(
        in_channels=channels,
        patch_size=m.patch_size,
        num_layers=layers,
        num_attention_heads=m.num_attention_heads,
        attention_head_dim=m.attention_head_dim,
        ffn_dim=m.ffn_dim,
        freq_dim=m.freq_dim,
    ).to(device)
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)

    def orbit(start: float) -> Cameras:
        angles = start + torch.linspace(0, 0.5, frames)
        eye = torch.stack([2 * angles.sin(), torch.zeros(frames), -2 * angles.cos()], -1)
        return Cameras.create(
            look_at(eye, torch.zeros(frames, 3)), width=width, height=height, fov_deg=60
        )

    grid = (width // cs, height // cs)
    rays_in, rays_tgt = ray_maps(orbit(0.0), orbit(0.8), input_grid=grid, temporal_stride=ct)
    b = cfg.batch_size
    shape = (b, channels, (frames - 1) // ct + 1, height // cs, width // cs)
    x0, cond = torch.randn(shape, device=device), torch.randn(shape, device=device)
    rays_in = rays_in[None].expand(b, -1, -1, -1, -1).to(device)
    rays_tgt = rays_tgt[None].expand(b, -1, -1, -1, -1).to(device)
    pt, ph, pw = m.patch_size
    tokens = 2 * shape[2] // pt * (shape[3] // ph) * (shape[4] // pw)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sigma = torch.rand(b, device=device)
        s = sigma.view(-1, 1, 1, 1, 1)
        noise = torch.randn_like(x0)
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            pred = model((1 - s) * x0 + s * noise, sigma * 1000, cond, rays_in, rays_tgt).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise - x0)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    print(
        f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu (smoke test)'}"
    )
    print(
        f"parameters: {params / 1e9:.3f} B, {layers} blocks, width {m.num_attention_heads * m.attention_head_dim}"
    )
    print(
        f"clip: {frames} frames {width}x{height} -> latents {tuple(shape[1:])}, {tokens} tokens (both streams)"
    )
    print(f"batch {b}, {dtype}, gradient checkpointing {cfg.gradient_checkpointing}")
    print(
        f"step time: median {statistics.median(times):.3f} s over {len(times)} steps (min {min(times):.3f})"
    )
    if device.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "anyview_small.toml")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--learn", type=int, default=0, help="also train this many steps (small configs)"
    )
    parser.add_argument("--learn-threads", type=int, default=1, help="torch threads for --learn")
    parser.add_argument("--out", type=Path, default=None, help="run directory for --learn")
    parser.add_argument(
        "--smoke", action="store_true", help="real-size code path on CPU, tiny shapes"
    )
    args = parser.parse_args()
    cfg = load_train_config(args.config)
    if cfg.model.vae is None:
        bench_small(cfg, args.warmup, args.steps)
        if args.learn:
            out = args.out or Path(tempfile.mkdtemp(prefix="anyview_small_"))
            learn(cfg, args.learn, out, args.learn_threads)
        return
    if not torch.cuda.is_available() and not args.smoke:
        print(
            f"{args.config.name}: no CUDA device on this machine; the real-size benchmark needs a GPU. Skipped."
        )
        return
    bench_real_size(cfg, args.warmup, args.steps, smoke=args.smoke)


if __name__ == "__main__":
    main()
