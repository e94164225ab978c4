"""The released AnyView model's cost: one episode, and one DiT evaluation against stock diffusers.

    python benchmarks/bench_anyview_official.py --device cuda       # real size, random weights
    python benchmarks/bench_anyview_official.py                     # CPU: reduced width and grid

What it measures, in one run:

- `episode`: `AnyViewOfficialPipeline` on one clip (41 frames of a 16:9 video, 576x304 grid,
  35 steps + 1 as released) with random weights of the released shapes (2B DiT, Wan2.1 VAE) in
  bfloat16: wall time of the VAE encodes, of the sampling, of the decode, and peak CUDA memory.
  The authors state about 25 s and 7 GB per episode on an H100.
- `dit forward`: one evaluation of our two-stream forward, against diffusers' stock
  `CosmosTransformer3DModel` (same blocks, the 2B Cosmos config with AnyView's 52 channels) on a
  single stream with the same number of tokens, taking turns, median of `--repeats`: what our
  forward adds (two patch embeddings, per-stream RoPE, the quirks) over stock diffusers.
- `scoring`: AnyViewBench's per-frame metrics of a 41-frame episode at 576x304: PSNR and
  scikit-image SSIM (CPU, float64), and LPIPS-VGG in float64 on the device.

On the CPU the DiT is cut to `--layers 2` blocks of width 256, everything runs in float32, the
episode is 5 frames with a 128 long side and 2 steps, and the scoring 5 frames, so that it
finishes in minutes; those figures compare the two forwards and check the code path, they say
nothing about the real model's speed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _clip(frames: int, width: int, height: int):
    from dreamjourney.camera import Cameras

    g = torch.Generator().manual_seed(0)
    video = torch.rand(frames, 3, height, width, generator=g)
    c2w = torch.eye(4).expand(frames, 4, 4).clone()
    cams_in = Cameras.create(c2w, width=width, height=height, fov_deg=60)
    moved = c2w.clone()
    moved[:, 0, 3] = torch.linspace(0, 1.0, frames)
    return video, cams_in, Cameras.create(moved, width=width, height=height, fov_deg=60)


def build(device: torch.device, dtype: torch.dtype, layers: int | None, width: int | None):
    from diffusers import AutoencoderKLWan, CosmosTransformer3DModel

    from dreamjourney.models.anyview_official import AnyViewAB2Scheduler, AnyViewCosmosTransformer
    from dreamjourney.pipelines.anyview_official import AnyViewOfficialPipeline

    size = {}
    if layers is not None:
        size["num_layers"] = layers
    if width is not None:
        size["num_attention_heads"] = width // 128
    torch.manual_seed(0)
    with torch.device(device):
        ours = AnyViewCosmosTransformer(**size).to(dtype).eval()
        stock = CosmosTransformer3DModel(
            in_channels=52, out_channels=52, num_attention_heads=size.get("num_attention_heads", 16),
            num_layers=size.get("num_layers", 28), rope_scale=(1.0, 3.0, 3.0),
            concat_padding_mask=False, extra_pos_embed_type=None,
        ).to(dtype).eval()  # fmt: skip
        vae = AutoencoderKLWan().to(dtype).eval()
    pipe = AnyViewOfficialPipeline(ours, vae, AnyViewAB2Scheduler())
    return pipe, stock


@torch.no_grad()
def bench_episode(pipe, device, frames, long_side, steps) -> None:
    from dreamjourney.data.anyview_protocol import snap_shape

    video, cams_in, cams_out = _clip(frames, 1920, 1080)
    grid = snap_shape(1920, 1080, long_side)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times: dict[str, float] = {"encode": 0.0, "decode": 0.0}
    encode, decode = pipe.encode, pipe.decode

    def timed(name, fn):
        def call(*args):
            _sync(device)
            start = time.perf_counter()
            out = fn(*args)
            _sync(device)
            times[name] += time.perf_counter() - start
            return out

        return call

    pipe.encode, pipe.decode = timed("encode", encode), timed("decode", decode)
    _sync(device)
    start = time.perf_counter()
    out = pipe(video, cams_in, cams_out, num_inference_steps=steps, long_side=long_side)
    _sync(device)
    total = time.perf_counter() - start
    pipe.encode, pipe.decode = encode, decode
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    print(
        f"episode: {frames} frames, grid {grid[0]}x{grid[1]}, {steps} steps + 1: "
        f"{total:.1f} s (VAE encodes {times['encode']:.1f} s, sampling "
        f"{total - times['encode'] - times['decode']:.1f} s, decode {times['decode']:.1f} s); "
        f"peak CUDA memory {peak:.2f} GiB; output {tuple(out.frames.shape)}"
    )


@torch.no_grad()
def bench_forward(pipe, stock, device, dtype, frames, long_side, repeats) -> None:
    from dreamjourney.data.anyview_protocol import snap_shape

    w, h = snap_shape(1920, 1080, long_side)
    latent = (1, 52, 1 + (frames - 1) // 4, h // 8, w // 8)
    target = torch.randn(latent, device=device, dtype=dtype)
    inp = torch.randn(latent, device=device, dtype=dtype)
    joint = torch.cat([target, inp], dim=2)  # one stream with as many tokens as both
    text = torch.randn(1, 512, 1024, device=device, dtype=dtype)
    t = torch.tensor([0.5], device=device)
    runs = {
        "ours (two streams)": lambda: pipe.transformer(target, inp, t),
        "stock diffusers (one stream)": lambda: stock(joint, t.to(dtype), text),
    }
    timings: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in runs.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            timings[name].append(time.perf_counter() - start)
    tokens = 2 * latent[2] * (latent[3] // 2) * (latent[4] // 2)
    for name, values in timings.items():
        print(f"dit forward, {tokens} tokens, {name}: median {statistics.median(values):.3f} s "
              f"over {repeats}")  # fmt: skip


@torch.no_grad()
def bench_scoring(device: torch.device, frames: int) -> None:
    from dreamjourney.eval.anyviewbench import score_frames
    from dreamjourney.eval.metrics import LPIPS

    g = torch.Generator().manual_seed(0)
    gt = torch.rand(frames, 3, 304, 576, generator=g)
    pred = (gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1)
    start = time.perf_counter()
    score_frames(pred, gt, lpips=None)
    psnr_ssim = time.perf_counter() - start
    lpips = LPIPS("vgg").double().to(device)
    start = time.perf_counter()
    score_frames(pred, gt, lpips=lpips)
    _sync(device)
    print(
        f"scoring {frames} frames at 576x304: PSNR + SSIM {psnr_ssim:.2f} s; with "
        f"LPIPS-VGG float64 on {device.type} {time.perf_counter() - start:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layers", type=int, default=None, help="DiT blocks (CPU default 4)")
    parser.add_argument("--no-scoring", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    real = device.type == "cuda"
    frames, long_side, steps = (41, 576, 35) if real else (5, 128, 2)
    layers = args.layers if args.layers is not None else (None if real else 2)
    width = None if real else 256
    dtype = torch.bfloat16 if real else torch.float32  # bfloat16 convolutions crawl on CPUs
    print(
        f"device {device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}; "
        f"DiT {'released size' if layers is None else f'{layers} blocks'}"
        f"{'' if width is None else f' of width {width}'}, {str(dtype)[6:]}, random weights"
    )
    pipe, stock = build(device, dtype, layers, width)
    bench_forward(pipe, stock, device, dtype, frames, long_side, args.repeats)
    bench_episode(pipe, device, frames, long_side, steps)
    if not args.no_scoring:
        bench_scoring(device, 41 if real else 5)


if __name__ == "__main__":
    main()
