"""`dreamjourney eval PRED GT` (compare two clips) and `dreamjourney eval bench METHOD`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import Progress
from rich.table import Table
from typer._click.core import Context
from typer.core import TyperGroup

from dreamjourney.cli.console import console, err_console
from dreamjourney.cli.options import parse_key_values
from dreamjourney.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor


class _CompareByDefault(TyperGroup):
    """A group whose first argument, when it is not a subcommand, goes to `compare`."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["compare", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_CompareByDefault,
    no_args_is_help=True,
    help="Measure predictions against ground truth: `eval PRED GT --out report.json`, "
    "or run a benchmark: `eval bench METHOD --scenes DIR --out DIR`.",
)


def load_mask(path: Path, frames: int, height: int, width: int) -> Tensor:
    """A mask image (all frames), a folder of them or a video -> (T, H, W) bool (> 0.5 = True)."""
    from dreamjourney.io.clips import load_clip

    mask = load_clip(path, field="--mask")[0].mean(dim=1) > 0.5
    if tuple(mask.shape[-2:]) != (height, width):
        raise InputError(
            f"mask is {mask.shape[-1]}x{mask.shape[-2]}, frames are {width}x{height}",
            source=path,
            field="--mask",
        )
    if mask.shape[0] not in (1, frames):
        raise InputError(
            f"{mask.shape[0]} mask frames for {frames} frames", source=path, field="--mask"
        )
    return mask.expand(frames, height, width)


@app.command()
def compare(
    pred: Path = typer.Argument(..., help="Predicted video, or folder of frames."),
    gt: Path = typer.Argument(..., help="Ground-truth video, or folder of frames."),
    out: Path = typer.Option(..., "--out", "-o", help="Report JSON to write."),
    mask: Path | None = typer.Option(
        None, "--mask", help="Mask image, folder or video: white = counted."
    ),
    lpips_weights: Path | None = typer.Option(
        None, "--lpips-weights", help="LPIPS state dict (.pth / .safetensors); no LPIPS without."
    ),
) -> None:
    """PSNR, SSIM (and LPIPS) of PRED against GT, per frame and averaged."""
    from dreamjourney.eval.bench import json_safe
    from dreamjourney.eval.metrics import LPIPS, mean_over, psnr, ssim
    from dreamjourney.io.atomic import atomic_write_text
    from dreamjourney.io.clips import load_clip

    lpips = LPIPS.from_file(lpips_weights) if lpips_weights is not None else None
    p, g = load_clip(pred, field="PRED")[0], load_clip(gt, field="GT")[0]
    if p.shape[0] != g.shape[0]:
        raise InputError(f"{p.shape[0]} frames, but GT has {g.shape[0]}", source=pred)
    if p.shape != g.shape:
        raise InputError(
            f"frames are {p.shape[-1]}x{p.shape[-2]}, GT frames {g.shape[-1]}x{g.shape[-2]}",
            source=pred,
        )
    m = load_mask(mask, *p.shape[:1], *p.shape[-2:]) if mask is not None else None
    per_frame = {"psnr": psnr(p, g, m).tolist(), "ssim": ssim(p, g, m).tolist()}
    if lpips is not None:
        per_frame["lpips"] = lpips(p, g, m).tolist()
    means = {k: mean_over(v) for k, v in per_frame.items()}
    report = {
        "pred": str(pred),
        "gt": str(gt),
        "mask": str(mask) if mask is not None else None,
        "frames": int(p.shape[0]),
        "ssim_window": {"size": 11, "sigma": 1.5},
        "mean": means,
        "per_frame": per_frame,
    }
    atomic_write_text(out, json.dumps(json_safe(report), indent=1))
    table = Table("metric", "mean over frames")
    for k, v in means.items():
        table.add_row(k, f"{v:.4f}")
    console.print(table)
    console.print(f"report: {out}")


@app.command()
def consistency(
    video: Path = typer.Argument(
        ..., help="A generated video (or folder of frames), no ground truth."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Report JSON to write."),
    cameras: Path | None = typer.Option(
        None, "--cameras", help="Its cameras, one per frame (any supported camera file)."
    ),
    depth: Path | None = typer.Option(
        None, "--depth", help="(T, H, W) z-depth .npy, one map per frame (0 = unknown)."
    ),
    threshold: float = typer.Option(
        0.1, "--threshold", help="Mean abs RGB difference that agrees."
    ),
) -> None:
    """Reprojection consistency and temporal flicker between consecutive frames.

    With --cameras and --depth, frame t-1 is warped into camera t first, so camera motion does not
    count; without them only the raw flicker is reported.
    """
    from dreamjourney.camera.formats import load_cameras
    from dreamjourney.eval.bench import json_safe
    from dreamjourney.eval.metrics import mean_over, reprojection_consistency, temporal_flicker
    from dreamjourney.io.atomic import atomic_write_text
    from dreamjourney.io.clips import load_clip
    from dreamjourney.io.depth import load_depth

    if (cameras is None) != (depth is None):
        raise InputError("give both --cameras and --depth, or neither", field="--depth")
    frames = load_clip(video, field="VIDEO")[0]
    t, _, h, w = frames.shape
    per_frame: dict[str, list] = {}
    if cameras is not None and depth is not None:
        cams = load_cameras(cameras)
        if len(cams) != t:
            raise InputError(f"{len(cams)} cameras for {t} frames", source=cameras)
        cams = cams.resize(w, h) if (cams.width, cams.height) != (w, h) else cams
        d = load_depth(depth, (t, h, w))
        per_frame["consistency"] = reprojection_consistency(
            frames, cams, d, threshold=threshold
        ).tolist()
        per_frame["flicker"] = temporal_flicker(frames, cams, d).tolist()
    else:
        per_frame["flicker"] = temporal_flicker(frames).tolist()
    means = {k: mean_over(v) for k, v in per_frame.items()}
    report = {
        "video": str(video),
        "frames": t,
        "warped": cameras is not None,
        "threshold": threshold,
        "mean": means,
        "per_frame_pair": per_frame,
    }
    atomic_write_text(out, json.dumps(json_safe(report), indent=1))
    for k, v in means.items():
        console.print(f"{k}: {v:.4f}")
    console.print(f"report: {out}")


@app.command()
def bench(
    method: str = typer.Argument(
        ..., help="A registered method (copy-input, warp-input, geometry, learned, anyview)."
    ),
    scenes: Path = typer.Option(
        ...,
        "--scenes",
        help="A scene, a folder of scenes or of datasets, or an AnyViewBench root (splits.json).",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for results.json, results.md, videos/."
    ),
    pairs: str = typer.Option(
        "all", "--pairs", help="all, input or extreme camera pairs (not for AnyViewBench)."
    ),
    lpips_weights: Path | None = typer.Option(
        None, "--lpips-weights", help="LPIPS state dict (VGG for AnyViewBench); no LPIPS without."
    ),
    ssim: str | None = typer.Option(
        None,
        "--ssim",
        help="uniform (scikit-image's default, AnyViewBench's) or gaussian (11-tap, sigma 1.5); "
        "default: uniform on AnyViewBench, gaussian elsewhere.",
    ),
    split: list[str] = typer.Option(
        [], "--split", help="AnyViewBench: score only this split (repeatable)."
    ),
    device: str = typer.Option(
        "cpu", "--device", help="Where LPIPS runs (cuda: AnyViewBench's float64 LPIPS is slow)."
    ),
    videos: bool = typer.Option(True, "--videos/--no-videos", help="Side-by-side episode videos."),
    option: list[str] = typer.Option(
        [],
        "--option",
        help="KEY=VALUE passed to the method (VALUE read as JSON if it can be).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Run a novel-view METHOD on every episode and tabulate the metrics.

    On an AnyViewBench root the published protocol is used (see `dreamjourney.eval.anyviewbench`)
    and the paper's panels are printed beside the published numbers; on other scene sets every
    input/target camera pair (`--pairs`) is an episode.
    """
    from dreamjourney.eval.anyviewbench import is_bench_root, read_bench_root
    from dreamjourney.pipelines.novel_view import METHODS, build_method

    method_options = parse_key_values(option, option="--option")
    if method not in METHODS:
        build_method(method)  # the unknown-method error
    if ssim not in (None, "uniform", "gaussian"):
        raise InputError(f"must be uniform or gaussian, got {ssim!r}", field="--ssim")
    root = read_bench_root(scenes, split or None) if is_bench_root(scenes) else None
    if root is None and (split or ssim == "uniform"):
        raise InputError(
            "is only for AnyViewBench roots (a folder with splits.json); scene sets are scored "
            "with the gaussian SSIM",
            field="--split" if split else "--ssim",
        )
    built = build_method(method, **method_options)

    with Progress(console=err_console, transient=True, disable=quiet) as progress:
        task = progress.add_task(f"bench {method}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if root is not None:
            from dreamjourney.eval.anyviewbench import run_anyviewbench

            results = run_anyviewbench(
                built, root, out, name=method, method_options=method_options,
                lpips_weights=lpips_weights, lpips_device=device, ssim_kind=ssim or "uniform",
                videos=videos,
                progress=advance,
            )  # fmt: skip
        else:
            from dreamjourney.eval.bench import run_bench

            results = run_bench(
                built, scenes, out, name=method, method_options=method_options, pairs=pairs,
                lpips_weights=lpips_weights, lpips_device=device, videos=videos,
                progress=advance,
            )  # fmt: skip
    if root is not None:
        _print_anyviewbench(results)
    else:
        table = Table(
            "dataset", *results["metrics"], title=f"{method} ({len(results['episodes'])} episodes)"
        )
        for name, means in results["per_dataset"].items():
            table.add_row(
                name,
                *(f"{means[m]:.4f}" if means[m] is not None else "n/a" for m in results["metrics"]),
            )
        console.print(table)
    console.print(f"tables: {out / 'results.md'}")


def _print_anyviewbench(results: dict) -> None:
    """The paper's panels that have data (beside the published numbers), then the groups."""
    from dreamjourney.eval.anyviewbench import PANELS, REFERENCE, metric_cells, reference_cell

    metrics = results["metrics"]
    titles = {"zero_shot": "zero-shot", "in_distribution": "in-distribution"}
    for panel, title in titles.items():
        entry = results["panels"][panel]
        if not entry["datasets"]:
            continue
        table = Table("dataset", "PSNR", "SSIM", "LPIPS", *REFERENCE, title=f"AnyViewBench {title}")
        for dataset in (*PANELS[panel], "mean"):
            means = entry["mean"] if dataset == "mean" else entry["datasets"].get(dataset)
            if means is not None:
                refs = [
                    reference_cell(s, dataset) if panel == "zero_shot" else "" for s in REFERENCE
                ]
                table.add_row(dataset, *metric_cells(means, metrics), *refs)
        console.print(table)
    table = Table(
        "group", "PSNR", "SSIM", "LPIPS",
        title=f"{results['method']} on AnyViewBench ({len(results['episodes'])} episodes)",
    )  # fmt: skip
    for group, means in results["per_group"].items():
        table.add_row(group, *metric_cells(means, metrics))
    table.add_row("mean", *metric_cells(results["overall"], metrics))
    console.print(table)
