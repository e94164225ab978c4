"""GPU check: every real preset at its native size with random weights, one journey segment.

    PYTHONPATH=src python benchmarks/gpu_check.py            # on a GPU: about 10 minutes
    PYTHONPATH=src python benchmarks/gpu_check.py --tiny     # on the CPU: the tiny models

Nothing is downloaded: each preset's models are built from their published configs
(`dreamjourney.models.realconfigs`) with random weights, directly on the GPU in their loading
dtypes, then placed as the offload setting says. One segment of `dreamjourney journey` runs
(depth, stage I completion, captioning, stage II animation, at the preset's native size and
frame count, `--steps` denoising steps), once without offload and once with the offload that
`dreamjourney models` says fits a 24 GiB card. For every stage it prints the calls, seconds
and peak accelerator memory, next to the GiB the memory table computes for the weights (the
difference is activations). The frames are noise: this measures time and memory.

`--tiny` runs the same script on the CPU with the tiny random models of the real architectures
at 64x64 (no peak memory there): the check that the script itself works.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "Wan-AI/Wan2.1-VACE-1.3B-diffusers": "tiny:wan-vace",
    "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": "tiny:wan-i2v",
    "THUDM/CogVideoX-5b-I2V": "tiny:cogvideox-i2v",
    "alibaba-pai/EasyAnimateV5.1-12b-zh-InP-diffusers": "tiny:easyanimate",
    "Qwen/Qwen2.5-VL-7B-Instruct": "tiny:qwen2.5-vl",
    "Qwen/Qwen2.5-VL-3B-Instruct": "tiny:qwen2.5-vl",
    "depth-anything/Depth-Anything-V2-Large-hf": "tiny:depth-anything",
}
"""A real model -> the tiny random model of its architecture (`--tiny`)."""
TINY_SIZE = 64
TINY_FRAMES = 9
"""`--tiny`: clip size in pixels, and frames per clip where a model takes any number."""

STAGE_METHODS = {"depth": "estimate", "completer": "complete", "captioner": "caption"}
STAGE_METHODS["animator"] = "animate"


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Parameters are created in `dtype` (a 14B model never exists in float32)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def random_part(device: str, dtype: torch.dtype) -> Callable[[str, str], Any]:
    """`make(model, component)` for `realconfigs.provide_models`: random weights on `device`."""
    from dreamjourney.models import realconfigs
    from dreamjourney.models.weights import component_dtype

    def make(model: str, component: str) -> Any:
        if component == "scheduler":
            return realconfigs.build_component(model, component)
        pipeline = realconfigs.catalogue()[model].get("pipeline", "")
        wanted = component_dtype(pipeline, component, dtype)
        with default_dtype(wanted):
            return realconfigs.build_component(model, component, device=device, dtype=wanted)

    return make


def place(backends: Any, device: str) -> None:
    """Put provided models where a load would: pipelines by their memory options (once for a
    pipeline two roles share), depth and captioning models on the device unless they offload."""
    from dreamjourney.models import realconfigs

    placed: set[tuple[str, str]] = set()
    for role in ("depth", "completer", "animator", "captioner"):
        backend = getattr(backends, role)
        model = backend.model_id
        entry = realconfigs.catalogue()[model]
        key = (entry["pipeline"], model) if "pipeline" in entry else (role, model)
        stored = backends.store.get(key, lambda: None)
        if key in placed:
            continue
        placed.add(key)
        if "pipeline" in entry:
            backend.memory.apply(stored, device)
        else:
            stored[-1].to("cpu" if backend.offload else device)


class Meter:
    """Seconds and peak accelerator memory of every call of each stage's method."""

    def __init__(self, device: str):
        self.cuda = torch.device(device).type == "cuda"
        self.stages: dict[str, dict[str, float]] = {}

    def wrap(self, stage: str, backend: Any) -> None:
        method = getattr(backend, STAGE_METHODS[stage])

        def measured(*args: Any, **kwargs: Any) -> Any:
            if self.cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                peak = float("nan")
                if self.cuda:
                    torch.cuda.synchronize()
                    peak = torch.cuda.max_memory_allocated() / (1 << 30)
                row = self.stages.setdefault(stage, {"calls": 0, "seconds": 0.0, "peak": 0.0})
                row["calls"] += 1
                row["seconds"] += time.perf_counter() - start
                row["peak"] = max(row["peak"], peak) if self.cuda else peak

        setattr(backend, STAGE_METHODS[stage], measured)


def run(preset: str, setting: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One segment of `preset` under offload `setting`; returns the measurements."""
    from dreamjourney.models import realconfigs
    from dreamjourney.models.registry import NATIVE, build_backends, resolve_specs
    from dreamjourney.pipelines.journey import JourneyConfig, JourneyPipeline

    config: dict[str, Any] = {"offload": setting, "dtype": "float32" if args.tiny else "bfloat16"}
    if args.tiny:
        for role, spec in resolve_specs(preset).items():
            if spec and spec.get("model") in TINY:
                config[role] = {"model": TINY[spec["model"]]}
                if role in ("completer", "animator"):
                    config[role].update(height=TINY_SIZE, width=TINY_SIZE)
    backends = build_backends(preset, config=config, device=args.device)
    if args.tiny:  # as many frames as the tiny models take (a fixed-size one takes 17)
        width = height = TINY_SIZE
        frames = getattr(backends.completer, "max_frames", lambda: None)() or TINY_FRAMES
        motion = (getattr(backends.animator, "max_frames", lambda: None)() or TINY_FRAMES) - 1
    else:
        regime = NATIVE[preset]
        (width, height), frames, motion = regime.size, regime.frames, regime.motion_frames
    started = time.perf_counter()
    if not args.tiny:
        realconfigs.provide_models(backends, random_part(args.device, torch.bfloat16))
        place(backends, args.device)
    built = time.perf_counter() - started
    for role in ("completer", "animator"):
        getattr(backends, role).num_inference_steps = args.steps
    backends.captioner.max_new_tokens = 8
    meter = Meter(args.device)
    for stage in STAGE_METHODS:
        meter.wrap(stage, getattr(backends, stage))
    journey = JourneyConfig(
        trajectory="forward",
        frames_per_segment=frames,
        motion_frames=motion,
        width=width,
        height=height,
    )
    JourneyPipeline(backends)(
        ROOT / "examples" / "garden.png",
        out / f"{preset}-{setting}",
        config=journey,
        num_segments=1,
        device=args.device,
    )
    del backends
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"preset": preset, "offload": setting, "build_s": built, "stages": meter.stages}


def settings_for(preset: str, tiny: bool) -> list[str]:
    """No offload, and the offload the memory table says fits 24 GiB (none on the CPU)."""
    from dreamjourney.models.memory import fitting_setting, preset_table

    fit = fitting_setting(preset_table(preset)) or "sequential"
    return ["none"] if tiny else list(dict.fromkeys(["none", fit]))


def _gib(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.1f}"  # None or NaN: none


def report(results: list[dict[str, Any]], steps: int, tiny: bool) -> str:
    """The table: per preset, offload setting and stage, the measurements and the weights the
    memory table computes for the real models (not for `--tiny`)."""
    from dreamjourney.models.memory import STAGES, preset_table

    lines = [
        f"{'preset':12} {'offload':10} {'stage':10} {'calls':>5} {'seconds':>8} "
        f"{'peak GiB':>9} {'weights GiB':>12}"
    ]
    for result in results:
        computed = preset_table(result["preset"])[result["offload"]]
        for stage in STAGES:
            row = result["stages"][stage]
            weights = None if tiny else computed[stage]
            lines.append(
                f"{result['preset']:12} {result['offload']:10} {stage:10} {row['calls']:5d} "
                f"{row['seconds']:8.1f} {_gib(row['peak']):>9} {_gib(weights):>12}"
            )
        lines.append(f"{'':12} {'':10} (building the random models: {result['build_s']:.0f} s)")
    lines.append(f"{steps} denoising steps per clip; peak = torch.cuda.max_memory_allocated")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default=None, help="comma-separated (default: all real)")
    parser.add_argument(
        "--offload",
        default=None,
        help="comma-separated settings (default: none and the 24 GiB fit)",
    )
    parser.add_argument("--steps", type=int, default=2, help="denoising steps per clip")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU at 64x64")
    parser.add_argument(
        "--out", type=Path, default=None, help="run directories (default: temporary)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    from dreamjourney.models.registry import NATIVE

    presets = args.presets.split(",") if args.presets else list(NATIVE)
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU, or with --tiny on the CPU", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        for preset in presets:
            chosen = args.offload.split(",") if args.offload else settings_for(preset, args.tiny)
            for setting in chosen:
                start = time.perf_counter()
                results.append(run(preset, setting, args, out))
                print(f"{preset} / {setting}: {time.perf_counter() - start:.0f} s", flush=True)
    print(report(results, args.steps, args.tiny))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
