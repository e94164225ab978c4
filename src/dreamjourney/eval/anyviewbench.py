"""AnyViewBench as published: its episodes, scored with its protocol, tabulated like the paper.

A benchmark root holds `splits.json`::

    {"splits": {split: {"episodes": [name, ...], "redistributable": bool, "dir": folder}, ...},
     "groups": {group: [split, ...], ...}}

(a split may also be a bare list of episode names; its folder is then the split's name), and each
episode at `<root>/<dir>/<episode>/` in AnyView's unified layout (`metadata.json`: roles
`{input: cam1, target: cam0}` by default, `scale_factor`, `source.dataset`). Splits whose folder
is absent are skipped and listed in the results.

Protocol, per episode (`dreamjourney.data.anyview_protocol` for the grid and resize):

- frames: the longest prefix of 1 + 4k frames, at most 41, of both views;
- the method gets the input view at its native size and the target cameras at the target's
  snapped grid (576 long side; K scaled per axis), and the episode's Plücker moment scale
  (`scale_factor`, else the per-dataset table);
- ground truth: the target frames Lanczos-resized once from native to that grid;
- per frame, in float64 with both clamped to [0, 1]: PSNR = 10 log10(1 / MSE) over all pixels
  and channels; SSIM as scikit-image's default (`ssim_uniform`; `ssim="gaussian"` for ours);
  LPIPS-VGG (weights from a file, inputs x2 - 1, float64); a frame whose ground truth sums below
  0.01 (a black frame) is not scored;
- unweighted means: frames -> episode -> split -> group (`splits.json`), and the paper's panels:
  zero-shot (Argoverse, AssemblyHands, DDAD, DROID, Ego-Exo4D) and in-distribution, each a mean
  over its datasets' split means, shown beside the published numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dreamjourney.camera.formats.validate import read_json
from dreamjourney.data.anyview import load_anyview_scene
from dreamjourney.data.anyview_protocol import (
    LONG_SIDE,
    MAX_FRAMES,
    clip_length,
    moment_scale_for,
    resize_lanczos,
    snap_shape,
)
from dreamjourney.errors import InputError
from dreamjourney.eval.bench import NovelViewMethod, json_safe
from dreamjourney.eval.metrics import LPIPS, mean_over, psnr, ssim, ssim_uniform
from dreamjourney.io.atomic import atomic_write_text
from dreamjourney.io.video import write_video

SPLITS_FILE = "splits.json"
EMPTY_GT = 0.01  # a frame whose ground truth sums below this is not scored
METRICS = ("psnr", "ssim", "lpips")

# The paper's panels: dataset -> its splits (AnyViewBench split names).
ZERO_SHOT_PANEL = {
    "Argoverse": ("argoverse_FL", "argoverse_FR", "argoverse_LF", "argoverse_RF"),
    "AssemblyHands": ("assemblyhands",),
    "DDAD": ("ddad_FL", "ddad_FR", "ddad_LF", "ddad_RF"),
    "DROID": ("droid_OOD_LR", "droid_OOD_RL"),
    "Ego-Exo4D": tuple(
        f"egoexo4d_OOD_{v}" for v in ("01", "03", "10", "12", "21", "23", "30", "32")
    ),
}
IN_DISTRIBUTION_PANEL = {
    "DROID": ("droid_ID_LR", "droid_ID_RL"),
    "Ego-Exo4D": tuple(
        f"egoexo4d_ID_{v}" for v in ("01", "03", "10", "12", "21", "23", "30", "32")
    ),
    "LBM": ("lbmv12_LR", "lbmv12_RL"),
    "Kubric-4D": ("kubric4d_dir",),
    "Kubric-5D": ("kubric5d",),
    "Lyft": ("lyftl5_FL", "lyftl5_FR", "lyftl5_LF", "lyftl5_RF"),
    "ParDom-4D": ("pd4d_dir",),
    "Waymo": ("waymo_FL", "waymo_FR", "waymo_LF", "waymo_RF"),
}
PANELS = {"zero_shot": ZERO_SHOT_PANEL, "in_distribution": IN_DISTRIBUTION_PANEL}
# Published zero-shot PSNR / SSIM / LPIPS (AnyView-DVS README): the released model, and the paper.
REFERENCE = {
    "release": {
        "Argoverse": (11.89, 0.389, 0.657),
        "AssemblyHands": (10.52, 0.283, 0.717),
        "DDAD": (10.58, 0.304, 0.581),
        "DROID": (11.91, 0.397, 0.613),
        "Ego-Exo4D": (12.97, 0.273, 0.588),
        "mean": (11.57, 0.329, 0.631),
    },
    "paper": {
        "Argoverse": (11.87, 0.388, 0.645),
        "AssemblyHands": (10.39, 0.275, 0.711),
        "DDAD": (10.63, 0.314, 0.568),
        "DROID": (11.98, 0.399, 0.603),
        "Ego-Exo4D": (13.02, 0.281, 0.578),
        "mean": (11.58, 0.331, 0.621),
    },
}


@dataclass(frozen=True)
class Episode:
    name: str
    split: str
    directory: Path


@dataclass
class BenchRoot:
    """What `splits.json` lists and what is on disk."""

    root: Path
    episodes: list[Episode]
    groups: dict[str, list[str]]
    missing_splits: list[str]


def is_bench_root(path: str | Path) -> bool:
    return (Path(path) / SPLITS_FILE).is_file()


def read_bench_root(root: str | Path, splits: list[str] | None = None) -> BenchRoot:
    """Parse `root/splits.json` (see the module docstring); `splits` restricts the episodes."""
    root = Path(root)
    path = root / SPLITS_FILE
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("splits"), dict):
        raise InputError('expected {"splits": {name: {...}}, "groups": {...}}', source=path)
    episodes, missing = [], []
    known = list(data["splits"])
    for name in splits or []:
        if name not in known:
            raise InputError(f"no split {name!r}; known: {', '.join(known)}", field="--split")
    for name, entry in data["splits"].items():
        if splits and name not in splits:
            continue
        names, folder = (entry, name) if isinstance(entry, list) else (None, name)
        if isinstance(entry, dict):
            names, folder = entry.get("episodes"), entry.get("dir", name)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError("must list episode names", source=path, field=f"splits.{name}")
        if not isinstance(folder, str) or not (root / folder).is_dir():
            missing.append(name)
            continue
        episodes += [Episode(n, name, root / folder / n) for n in names]
    groups_raw = data.get("groups") or {}
    if not isinstance(groups_raw, dict):
        raise InputError("must map group names to lists of splits", source=path, field="groups")
    present = {e.split for e in episodes}
    groups = {g: [s for s in members if s in present] for g, members in groups_raw.items()}
    groups = {g: members for g, members in groups.items() if members}
    grouped = {s for members in groups.values() for s in members}
    groups.update({s: [s] for s in sorted(present - grouped)})  # a split in no group: its own
    if not episodes:
        raise InputError("lists no episode whose folder is present", source=path)
    return BenchRoot(root, episodes, groups, missing)


def _roles(directory: Path) -> tuple[str, str, dict[str, Any]]:
    """(input camera, target camera, `specific` block) of an episode's metadata."""
    meta = read_json(directory / "metadata.json")
    found = meta.get("specific") if isinstance(meta, dict) else None
    specific: dict[str, Any] = found if isinstance(found, dict) else {}
    roles = specific.get("roles")
    roles = roles if isinstance(roles, dict) else {}
    return roles.get("input", "cam1"), roles.get("target", "cam0"), specific


def episode_moment_scale(specific: Mapping[str, Any], split: str) -> float:
    """The episode's `scale_factor`, else the table's value for its source dataset or split."""
    value = specific.get("scale_factor")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    source = specific.get("source")
    dataset = source.get("dataset") if isinstance(source, dict) else None
    return moment_scale_for(dataset if isinstance(dataset, str) else split)


def score_frames(
    pred: Tensor, gt: Tensor, *, lpips: LPIPS | None, ssim_kind: str = "uniform"
) -> dict[str, list[float]]:
    """Per-frame PSNR, SSIM (and LPIPS) in float64 of the frames whose ground truth is not black."""
    pred, gt = pred.double().clamp(0, 1), gt.double().clamp(0, 1)
    keep = gt.sum(dim=(1, 2, 3)) >= EMPTY_GT
    pred, gt = pred[keep], gt[keep]
    if not len(gt):
        return {m: [] for m in METRICS if m != "lpips" or lpips is not None}
    values = {
        "psnr": psnr(pred, gt).tolist(),
        "ssim": (ssim_uniform(pred, gt) if ssim_kind == "uniform" else ssim(pred, gt)).tolist(),
    }
    if lpips is not None:
        values["lpips"] = lpips(pred, gt).tolist()
    return values


def run_anyviewbench(
    method: NovelViewMethod,
    root: str | Path | BenchRoot,
    out_dir: str | Path,
    *,
    name: str,
    method_options: Mapping[str, Any] | None = None,
    lpips_weights: str | Path | None = None,
    lpips_device: str = "cpu",
    ssim_kind: str = "uniform",
    splits: list[str] | None = None,
    long_side: int = LONG_SIDE,
    max_frames: int = MAX_FRAMES,
    videos: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Score `method` on the AnyViewBench root `root` (a path, or `read_bench_root`'s result);
    write `results.json` and `results.md` (and per-episode `videos/`) to `out_dir`. LPIPS runs
    on `lpips_device` (in float64 it wants a GPU: ~17 s a 576x304 frame on a 2-core CPU).
    Returns what `results.json` holds."""
    if ssim_kind not in ("uniform", "gaussian"):
        raise InputError(f"must be uniform or gaussian, got {ssim_kind!r}", field="--ssim")
    bench = root if isinstance(root, BenchRoot) else read_bench_root(root, splits)
    lpips = None
    if lpips_weights is not None:
        lpips = LPIPS.from_file(lpips_weights)
        if lpips.net_name != "vgg":
            raise InputError(
                f"AnyViewBench scores LPIPS with VGG; these are LPIPS-{lpips.net_name} weights",
                source=lpips_weights,
            )
        lpips = lpips.double().to(lpips_device)
    out_dir = Path(out_dir)
    metrics = [m for m in METRICS if m != "lpips" or lpips is not None]
    records = []
    for index, episode in enumerate(bench.episodes):
        records.append(
            _run_episode(
                method, episode, lpips, ssim_kind, long_side, max_frames,
                out_dir if videos else None,
            )
        )  # fmt: skip
        if progress is not None:
            progress(index + 1, len(bench.episodes))
    per_split = {
        s: {m: mean_over(r[m] for r in records if r["split"] == s) for m in metrics}
        for s in dict.fromkeys(r["split"] for r in records)
    }
    per_group = {
        g: {m: mean_over(per_split[s][m] for s in members) for m in metrics}
        for g, members in bench.groups.items()
    }
    panels = {}
    for panel, datasets in PANELS.items():
        rows = {
            d: {m: mean_over(per_split[s][m] for s in members if s in per_split) for m in metrics}
            for d, members in datasets.items()
            if any(s in per_split for s in members)
        }
        mean = {m: mean_over(r[m] for r in rows.values()) for m in metrics} if rows else None
        panels[panel] = {"datasets": rows, "mean": mean}
    results = {
        "benchmark": "AnyViewBench",
        "method": name,
        "method_options": {k: str(v) for k, v in (method_options or {}).items()},
        "root": str(bench.root),
        "protocol": {
            "max_frames": max_frames,
            "long_side": long_side,
            "ssim": ssim_kind,
            "lpips": "vgg" if lpips is not None else None,
            "empty_gt_sum": EMPTY_GT,
        },
        "metrics": metrics,
        "missing_splits": bench.missing_splits,
        "episodes": records,
        "per_split": per_split,
        "per_group": per_group,
        "panels": panels,
        "overall": {m: mean_over(v[m] for v in per_group.values()) for m in metrics},
    }
    results = json_safe(results)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1))
    atomic_write_text(out_dir / "results.md", markdown_tables(results))
    return results


def _run_episode(
    method: NovelViewMethod,
    episode: Episode,
    lpips: LPIPS | None,
    ssim_kind: str,
    long_side: int,
    max_frames: int,
    video_dir: Path | None,
) -> dict:
    cam_in, cam_out, specific = _roles(episode.directory)
    scene = load_anyview_scene(episode.directory)
    for cam in (cam_in, cam_out):
        if cam not in scene.streams:
            raise InputError(
                f"has no camera {cam!r} (cameras: {', '.join(scene.camera_names)})",
                source=episode.directory,
            )
    a, b = scene.streams[cam_in], scene.streams[cam_out]
    t = clip_length(min(len(a), len(b)), max_frames)
    grid = snap_shape(b.width, b.height, long_side)
    gt = resize_lanczos(b.frames[:t], *grid)
    pred = method(
        a.frames[:t],
        a.cameras[:t],
        b.cameras[:t].resize(*grid),
        input_depth=None if a.depth is None else a.depth[:t],
        moment_scale=episode_moment_scale(specific, episode.split),
    )
    if tuple(pred.shape) != tuple(gt.shape):
        raise RuntimeError(f"the method returned {tuple(pred.shape)}, expected {tuple(gt.shape)}")
    values = score_frames(pred, gt, lpips=lpips, ssim_kind=ssim_kind)
    record: dict[str, Any] = {
        "episode": episode.name,
        "split": episode.split,
        "frames": t,
        "frames_scored": len(values["psnr"]),
        **{m: mean_over(v) for m, v in values.items()},
    }
    if video_dir is not None:
        shown = resize_lanczos(a.frames[:t], round(a.width * grid[1] / a.height), grid[1])
        name = f"{episode.split}__{episode.name}.mp4"
        write_video(
            video_dir / "videos" / name,
            torch.cat([shown, pred.clamp(0, 1), gt], dim=-1),
            fps=scene.fps,
        )
        record["video"] = f"videos/{name}"
    return record


def metric_cells(means: Mapping[str, Any] | None, metrics: list[str]) -> list[str]:
    """PSNR, SSIM, LPIPS formatted as the paper does (2, 3, 3 decimals; n/a when missing)."""
    digits = {"psnr": 2, "ssim": 3, "lpips": 3}
    out = []
    for m in METRICS:
        value = None if means is None or m not in metrics else means.get(m)
        ok = isinstance(value, float) and math.isfinite(value)
        out.append(f"{value:.{digits[m]}f}" if ok else "n/a")
    return out


def reference_cell(source: str, dataset: str) -> str:
    """The published zero-shot "PSNR / SSIM / LPIPS" of `dataset` ("release" or "paper")."""
    ref = REFERENCE[source].get(dataset)
    return (
        " / ".join(f"{v:.2f}" if i == 0 else f"{v:.3f}" for i, v in enumerate(ref)) if ref else ""
    )


def markdown_tables(results: dict) -> str:
    """The paper's panels (ours beside the published numbers), then groups, splits, episodes."""
    metrics = results["metrics"]
    head = "| PSNR ↑ | SSIM ↑ | LPIPS ↓ |"
    lines = [f"# {results['method']} on AnyViewBench", ""]
    if results["missing_splits"]:
        lines += [f"Splits not present: {', '.join(results['missing_splits'])}.", ""]
    titles = {"zero_shot": "Zero-shot", "in_distribution": "In-distribution"}
    for panel, title in titles.items():
        entry = results["panels"][panel]
        lines += [f"## {title}", ""]
        if not entry["datasets"]:
            lines += ["No episode of this panel was scored.", ""]
            continue
        lines += [
            f"| dataset {head} release (PSNR / SSIM / LPIPS) | paper |",
            "|---|---|---|---|---|---|",
        ]
        for dataset in (*PANELS[panel], "mean"):
            means = entry["mean"] if dataset == "mean" else entry["datasets"].get(dataset)
            if means is None:
                continue
            refs = [reference_cell(s, dataset) if panel == "zero_shot" else "" for s in REFERENCE]
            lines.append(f"| {dataset} | " + " | ".join(metric_cells(means, metrics) + refs) + " |")
        if panel == "in_distribution":
            lines += ["", "Published in-distribution numbers: see the paper's tables."]
        lines.append("")
    lines += ["## Groups (splits.json)", "", f"| group {head}", "|---|---|---|---|"]
    for group, means in results["per_group"].items():
        lines.append(f"| {group} | " + " | ".join(metric_cells(means, metrics)) + " |")
    lines += ["", f"Mean over groups: {' / '.join(metric_cells(results['overall'], metrics))}", ""]
    lines += ["## Splits", "", f"| split {head}", "|---|---|---|---|"]
    for split, means in results["per_split"].items():
        lines.append(f"| {split} | " + " | ".join(metric_cells(means, metrics)) + " |")
    lines += [
        "",
        "## Episodes",
        "",
        f"| episode | split | frames scored {head}",
        "|---|---|---|---|---|---|",
    ]
    for e in results["episodes"]:
        cells = [e["episode"], e["split"], f"{e['frames_scored']}/{e['frames']}"]
        lines.append("| " + " | ".join(cells + metric_cells(e, metrics)) + " |")
    return "\n".join(lines) + "\n"
