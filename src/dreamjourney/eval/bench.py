"""The novel-view benchmark: run a method on every input/target camera pair of a scene set.

An episode is (scene, input camera, target camera): the method gets the input camera's video
(and its depth, where the scene has one), the input cameras and the target cameras, and must
return what the target camera sees at the same times. PSNR, SSIM (and LPIPS, given weights) are
averaged over the frames of an episode, then over the episodes of a dataset, then over datasets.

`pairs`: "all" = every ordered pair of distinct cameras; "input" = the scene's input camera to
every other one; "extreme" = the ordered pairs whose viewing directions differ by at least
`EXTREME_ANGLE_DEG` or whose centres are at least `EXTREME_BASELINE` scene scales apart (at frame
0): opposite sides, 90 degrees apart, large baselines.

Output in `out_dir`: `results.json` (every episode, aggregates, settings), `results.md` (the same
as Markdown tables) and `videos/<dataset>__<scene>__<input>__<target>.mp4` (input | prediction |
ground truth side by side).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from dreamjourney.camera.cameras import Cameras
from dreamjourney.data.loaders import find_scenes, load_any_scene
from dreamjourney.data.scene import CameraStream, Scene4D
from dreamjourney.errors import InputError
from dreamjourney.eval.metrics import LPIPS, aggregate, psnr, ssim
from dreamjourney.eval.warp import backward_warp, forward_warp
from dreamjourney.io.atomic import atomic_write_text
from dreamjourney.io.video import write_video

EXTREME_ANGLE_DEG = 60.0
EXTREME_BASELINE = 1.0
PAIRS = ("all", "input", "extreme")


class NovelViewMethod(Protocol):
    """What the benchmarks call; methods are built by name in `dreamjourney.pipelines.novel_view`."""

    def __call__(
        self,
        input_frames: Tensor,
        input_cameras: Cameras,
        target_cameras: Cameras,
        *,
        input_depth: Tensor | None,
        moment_scale: float | None,
    ) -> Tensor:
        """(T, 3, H, W) input video, T input and T target cameras -> (T, 3, H', W') prediction
        at the target cameras' size.

        `input_depth` is the input camera's (T, H, W) depth where the scene has it;
        `moment_scale` the episode's Plücker moment scale where the benchmark defines one
        (AnyViewBench). Methods ignore what they do not use."""
        ...


class CopyInput:
    """The input frame as the prediction (resized to the target size if they differ)."""

    def __call__(
        self, input_frames, input_cameras, target_cameras, *, input_depth=None, moment_scale=None
    ):
        size = (target_cameras.height, target_cameras.width)
        if tuple(input_frames.shape[-2:]) == size:
            return input_frames.clone()
        return torch.nn.functional.interpolate(
            input_frames, size=size, mode="bilinear", antialias=True, align_corners=False
        )


class WarpInput:
    """The input RGB-D frame splatted into the target camera (z-buffer), holes black."""

    def __call__(
        self, input_frames, input_cameras, target_cameras, *, input_depth=None, moment_scale=None
    ):
        if input_depth is None:
            raise InputError("warp-input needs the input camera's depth", field="input_depth")
        return torch.stack(
            [
                forward_warp(input_frames[t], input_depth[t], input_cameras[t], target_cameras[t])[
                    0
                ]
                for t in range(len(input_frames))
            ]
        )


def camera_pairs(scene: Scene4D, pairs: str = "all") -> list[tuple[str, str]]:
    """(input, target) camera names of a scene's episodes (see the module docstring)."""
    if pairs not in PAIRS:
        raise InputError(f"unknown pairs {pairs!r}; known: {', '.join(PAIRS)}", field="--pairs")
    names = scene.camera_names
    if pairs == "input":
        return [(scene.input_camera, n) for n in names if n != scene.input_camera]
    out = [(a, b) for a in names for b in names if a != b]
    if pairs == "extreme":
        out = [(a, b) for a, b in out if _is_extreme(scene, scene.streams[a], scene.streams[b])]
    return out


def _is_extreme(scene: Scene4D, a: CameraStream, b: CameraStream) -> bool:
    cos = float((a.cameras.forward[0] * b.cameras.forward[0]).sum().clamp(-1, 1))
    baseline = float((a.cameras.centers[0] - b.cameras.centers[0]).norm())
    return (
        math.degrees(math.acos(cos)) >= EXTREME_ANGLE_DEG
        or baseline >= EXTREME_BASELINE * scene.scene_scale
    )


def _common_frames(a: CameraStream, b: CameraStream) -> tuple[Tensor, Tensor]:
    """Indices into a and b of the frames both cameras have (same time within 0.1 ms)."""
    close = (a.cameras.times[:, None] - b.cameras.times[None, :]).abs() < 1e-4
    ia, ib = close.nonzero(as_tuple=True)
    return ia, ib


def covisible_mask(a: CameraStream, b: CameraStream, ia: Tensor, ib: Tensor) -> Tensor | None:
    """(T, H, W) bool: pixels of target `b` whose surface the input `a` sees at the same time.

    Needs both cameras' depth (None otherwise): a target pixel counts when its 3D point projects
    inside the input image, in front of it, and is not hidden there (see `backward_warp`).
    """
    if a.depth is None or b.depth is None:
        return None
    return torch.stack(
        [
            backward_warp(
                a.frames[i],
                a.cameras[int(i)],
                b.cameras[int(j)],
                b.depth[j],
                source_depth=a.depth[i],
            )[1]
            for i, j in zip(ia, ib, strict=True)
        ]
    )


def _psnr_visible(
    pred: Tensor, gt: Tensor, a: CameraStream, b: CameraStream, ia: Tensor, ib: Tensor
) -> float:
    """Mean PSNR over the frames, on the target pixels visible in the input (nan if unknown)."""
    mask = covisible_mask(a, b, ia, ib)
    if mask is None:
        return float("nan")
    values = psnr(pred, gt, mask)
    values = values[~values.isnan()]  # frames where the input sees none of the target
    return float(values.mean()) if len(values) else float("nan")


def json_safe(value):
    """`value` with non-finite floats (inf PSNR, nan of empty masks) as None, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def run_bench(
    method: NovelViewMethod,
    scenes_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str,
    method_options: Mapping[str, Any] | None = None,
    pairs: str = "all",
    lpips_weights: str | Path | None = None,
    lpips_device: str = "cpu",
    videos: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Run `method` on every episode of the scenes under `scenes_dir`; write the tables.

    `scenes_dir` is one scene, a folder of scenes (one dataset, named after the folder) or a
    folder of such folders (one dataset each). `name` and `method_options` are recorded.
    Returns what `results.json` holds.
    """
    method_name = name
    method_options = dict(method_options or {})
    lpips = LPIPS.from_file(lpips_weights).to(lpips_device) if lpips_weights is not None else None
    found = find_scenes(Path(scenes_dir))
    out_dir = Path(out_dir)
    metrics = ["psnr", "psnr_visible", "ssim"] + (["lpips"] if lpips is not None else [])
    records = []
    plans = []
    for dataset, path in found:
        scene = load_any_scene(path)
        plans.append((dataset, scene, camera_pairs(scene, pairs)))
    total = sum(len(p[2]) for p in plans)
    for dataset, scene, episode_pairs in plans:
        for src, dst in episode_pairs:
            a, b = scene.streams[src], scene.streams[dst]
            ia, ib = _common_frames(a, b)
            if len(ia) == 0:
                raise InputError(f"cameras {src} and {dst} share no frame times", source=scene.name)
            depth = a.depth[ia] if a.depth is not None else None
            pred = method(
                a.frames[ia], a.cameras[ia], b.cameras[ib], input_depth=depth, moment_scale=None
            )
            gt = b.frames[ib]
            if pred.shape != gt.shape:
                raise RuntimeError(
                    f"method {method_name} returned {tuple(pred.shape)}, expected {tuple(gt.shape)}"
                )
            pred = pred.clamp(0, 1)
            rec = {
                "dataset": dataset,
                "scene": scene.name,
                "input": src,
                "target": dst,
                "frames": len(ia),
                "psnr": float(psnr(pred, gt).mean()),
                "psnr_visible": _psnr_visible(pred, gt, a, b, ia, ib),
                "ssim": float(ssim(pred, gt).mean()),
            }
            if lpips is not None:
                rec["lpips"] = float(lpips(pred, gt).mean())
            if videos:
                inp = a.frames[ia]
                if inp.shape[-2:] != gt.shape[-2:]:
                    inp = CopyInput()(inp, a.cameras[ia], b.cameras[ib])
                name = f"{dataset}__{scene.name}__{src}__{dst}.mp4"
                write_video(
                    out_dir / "videos" / name, torch.cat([inp, pred, gt], dim=-1), fps=scene.fps
                )
                rec["video"] = f"videos/{name}"
            records.append(rec)
            if progress is not None:
                progress(len(records), total)
    results = {
        "method": method_name,
        "method_options": {k: str(v) for k, v in method_options.items()},
        "pairs": pairs,
        "scenes_dir": str(scenes_dir),
        "metrics": metrics,
        "episodes": records,
        **aggregate(records, metrics, ("dataset",)),
    }
    results = json_safe(results)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1))
    atomic_write_text(out_dir / "results.md", markdown_tables(results))
    return results


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def markdown_tables(results: dict) -> str:
    """The results as Markdown: overall, per dataset, per episode."""
    metrics = results["metrics"]
    head = "| " + " | ".join(metrics) + " |"
    rule = "|" + "---|" * len(metrics)
    lines = [
        f"# {results['method']} (pairs: {results['pairs']})",
        "",
        "## Overall (mean over datasets)",
        "",
        head,
        rule,
        "| " + " | ".join(_fmt(results["overall"][m]) for m in metrics) + " |",
        "",
        "## Per dataset (mean over episodes)",
        "",
        "| dataset " + head,
        "|---" + rule,
    ]
    for name, means in results["per_dataset"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(means[m]) for m in metrics) + " |")
    lines += ["", "## Per episode (mean over frames)", ""]
    lines += ["| dataset | scene | input | target | frames " + head, "|---|---|---|---|---" + rule]
    for e in results["episodes"]:
        cells = [e["dataset"], e["scene"], e["input"], e["target"], str(e["frames"])]
        lines.append("| " + " | ".join(cells + [_fmt(e[m]) for m in metrics]) + " |")
    return "\n".join(lines) + "\n"
