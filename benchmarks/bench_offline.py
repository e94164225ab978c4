"""The `offline` preset on real photos: holes, blank frames, fill texture, flicker, speed.

For each photo (scikit-image's data images and `examples/garden.png`, centre-cropped to the
size) and each trajectory, a journey of `--segments` segments runs with the `offline` preset
(stage I only), its completer wrapped so that every clip it gets and returns is kept. Reported,
per trajectory and over all photos:

- `holes@4`, `holes@N`: share of hole pixels in the first segment's render after 4 and after
  N (`--frames`) frames: what the world and its depth leave for the completer;
- `uniform`: share of the journey's frames that are near-uniform (per-frame standard deviation
  of all pixels below 0.02, e.g. the mid-grey of a frame with nothing known);
- `texture`: band-pass energy (Gaussian blur of 1 minus blur of 4 pixels, of the grey image) of
  the completed frames over their hole pixels, over that of the photo: 1 = as textured as the
  photo, 0 = flat paint;
- `flat`: share of the journey's frames whose band-pass energy (as for `texture`) is below
  FLAT_SHARE of the photo's: frames that are not uniform but are washes of a tone or two;
- `flicker`: mean absolute change between consecutive completed frames on pixels that are holes
  in both, over the same on pixels known in both: how much more the fills change than the
  scene does under the same camera move. A flat fill scores low however it moves (there is
  nothing to change), a textured one that moves with the world scores its texture;
- `pair px`: pixels per pair of consecutive frames that are holes in both, the sample that
  `flicker`, `flick/tex` and `warp` are measured on (a few pixels make those ratios noise);
- `flick/tex`: `flicker` over the ratio of band-pass energy on those hole pixels to that on
  those known pixels: about 1 where the fills move with the world whatever their texture,
  above 1 where they change more than their texture explains;
- `warp`: the warping error (Lai et al. 2018) on pixels that are holes in both of two
  consecutive completed frames, over that on pixels known in both: each frame is compared with
  the next one warped back by the optical flow between them (OpenCV's DIS, on the completed
  frames; pixels that fail a forward-backward check or leave the frame are left out). What moves
  with the world, textured or not, is predicted by the flow and scores low; what changes
  otherwise (a fill made again differently, a patch that pops) does not, and scores high;
- `s/seg`: wall seconds per segment (the manifest's), `cpu/seg`: this process's CPU seconds.

`--before REV` runs the same measurement, in the same run and on the same photos, on the source
tree of git revision REV (extracted to a temporary folder; each tree runs in its own process).

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_offline.py --before main
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ("garden", "astronaut", "camera", "chelsea", "coffee", "rocket", "motorcycle", "grass")
UNIFORM_STD = 0.02
FLAT_SHARE = 0.1


def write_photos(names: list[str], folder: Path) -> dict[str, Path]:
    """The named photos as PNG files in `folder` (scikit-image ships them; no download)."""
    import skimage.data
    from PIL import Image

    out = {}
    for name in names:
        if name == "garden":
            out[name] = REPO / "examples" / "garden.png"
            continue
        if name == "motorcycle":
            array = skimage.data.stereo_motorcycle()[0]
        else:
            array = getattr(skimage.data, name)()
        path = folder / f"{name}.png"
        Image.fromarray(array).save(path)
        out[name] = path
    return out


def warp_residual(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(T,3,H,W)` -> `(T-1,H,W)` residual `|frame_t - warp(frame_t+1)|` (channel mean) and
    `(T-1,H,W)` bool where the flow is trusted (forward-backward consistent within a pixel, and
    the warped position inside the frame)."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    _, _, h, w = frames.shape
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float32)
    grey = [(f.mean(0) * 255).clip(0, 255).astype(np.uint8) for f in frames]
    residuals, trusted = [], []
    for t in range(len(frames) - 1):
        ahead = dis.calc(grey[t], grey[t + 1], None)
        back = dis.calc(grey[t + 1], grey[t], None)
        to = grid + ahead
        image = np.ascontiguousarray(frames[t + 1].transpose(1, 2, 0)).astype(np.float32)
        warped = cv2.remap(image, to[..., 0], to[..., 1], cv2.INTER_LINEAR)
        back_at = cv2.remap(back, to[..., 0], to[..., 1], cv2.INTER_LINEAR)
        inside = (
            (to[..., 0] >= 0) & (to[..., 0] <= w - 1) & (to[..., 1] >= 0) & (to[..., 1] <= h - 1)
        )
        residuals.append(np.abs(frames[t].transpose(1, 2, 0) - warped).mean(-1))
        trusted.append(inside & (np.linalg.norm(ahead + back_at, axis=-1) < 1.0))
    return np.stack(residuals), np.stack(trusted)


def band_energy(frames: np.ndarray) -> np.ndarray:
    """`(T,3,H,W)` -> `(T,H,W)` absolute band-pass of the grey image."""
    import cv2

    out = []
    for frame in frames:
        grey = frame.mean(0).astype(np.float32)
        out.append(
            np.abs(cv2.GaussianBlur(grey, (0, 0), 1.0) - cv2.GaussianBlur(grey, (0, 0), 4.0))
        )
    return np.stack(out)


class Recorder:
    """A completer that passes every call to `inner` and keeps (frames, masks, output)."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.name = inner.name
        self.fills_background = getattr(inner, "fills_background", False)
        self.clips: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def check_weights(self) -> None:
        self.inner.check_weights()

    def complete(self, frames, masks, **kwargs):  # type: ignore[no-untyped-def]
        out = self.inner.complete(frames, masks, **kwargs)
        self.clips.append((frames.numpy(), masks.numpy(), out.numpy()))
        return out


def measure_tree(args: argparse.Namespace) -> None:
    """Child process: every photo and trajectory with the source tree on `sys.path`; prints
    one JSON line."""
    import torch

    from dreamjourney.io.images import load_image
    from dreamjourney.io.video import iter_video
    from dreamjourney.models.registry import build_backends
    from dreamjourney.pipelines.journey import JourneyConfig, JourneyPipeline, fit_image

    torch.manual_seed(0)
    width, height = (int(v) for v in args.size.split("x"))
    photos = json.loads(args.photos)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, path in photos.items():
        photo = fit_image(load_image(path), width, height).numpy()
        photo_energy = float(band_energy(photo[None]).mean())
        for trajectory in args.trajectories.split(","):
            backends = build_backends("offline")
            recorder = Recorder(backends.completer)
            backends.completer = recorder  # type: ignore[assignment]
            clips = recorder.clips
            config = JourneyConfig(
                trajectory=trajectory,
                frames_per_segment=args.frames,
                motion=False,
                width=width,
                height=height,
            )
            with tempfile.TemporaryDirectory() as tmp:
                cpu0 = time.process_time()
                result = JourneyPipeline(backends)(
                    path, Path(tmp) / "run", config=config, num_segments=args.segments
                )
                cpu = time.process_time() - cpu0
                video = np.stack([f.numpy() for f in iter_video(result.video)])
                records = result.run.manifest.segments
                if args.save:
                    save_strip(video, Path(args.save) / f"{args.label}-{name}-{trajectory}.png")
            stds = video.reshape(len(video), -1).std(axis=1)
            frame_energy = band_energy(video).mean(axis=(1, 2))
            fill_energy, fill_pixels, flicker_hole, flicker_known = 0.0, 0, [], []
            texture_hole, texture_known, warp_hole, warp_known = [], [], [], []
            pair_pixels = []
            for _, masks, out in clips:
                holes = ~masks
                energy = band_energy(out)
                fill_energy += float(energy[holes].sum())
                fill_pixels += int(holes.sum())
                change = np.abs(out[1:] - out[:-1]).mean(1)
                both_holes, both_known = holes[1:] & holes[:-1], masks[1:] & masks[:-1]
                pair_pixels.append(float(both_holes.sum()) / len(both_holes))
                if both_holes.any() and both_known.any():
                    flicker_hole.append(float(change[both_holes].mean()))
                    flicker_known.append(float(change[both_known].mean()))
                    texture_hole.append(float(energy[1:][both_holes].mean()))
                    texture_known.append(float(energy[1:][both_known].mean()))
                residual, trusted = warp_residual(out)
                hole_ok, known_ok = both_holes & trusted, both_known & trusted
                if hole_ok.any() and known_ok.any():
                    warp_hole.append(float(residual[hole_ok].mean()))
                    warp_known.append(float(residual[known_ok].mean()))
            first_masks = clips[0][1]
            results.setdefault(name, {})[trajectory] = {
                "holes@4": float(1 - first_masks[min(3, len(first_masks) - 1)].mean()),
                "holes@N": float(1 - first_masks[-1].mean()),
                "uniform": float((stds < UNIFORM_STD).mean()),
                "texture": fill_energy / max(fill_pixels, 1) / photo_energy
                if fill_pixels
                else float("nan"),
                "flat": float((frame_energy < FLAT_SHARE * photo_energy).mean()),
                "flicker": float(np.mean(flicker_hole) / np.mean(flicker_known))
                if flicker_hole
                else float("nan"),
                "pair px": float(np.mean(pair_pixels)),
                "flick/tex": float(
                    np.mean(flicker_hole)
                    / np.mean(flicker_known)
                    / (np.mean(texture_hole) / np.mean(texture_known))
                )
                if flicker_hole
                else float("nan"),
                "warp": float(np.mean(warp_hole) / np.mean(warp_known))
                if warp_hole
                else float("nan"),
                "s/seg": float(np.mean([r.seconds["total"] for r in records])),
                "cpu/seg": cpu / len(records),
            }
            print(f"{args.label} {name} {trajectory}: {results[name][trajectory]}", file=sys.stderr)
    print(json.dumps(results))


def save_strip(video: np.ndarray, path: Path, count: int = 8) -> None:
    """`count` evenly spaced frames of `video` `(T,3,H,W)` side by side, as a PNG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    picks = np.linspace(0, len(video) - 1, count).round().astype(int)
    strip = np.concatenate([video[i].transpose(1, 2, 0) for i in picks], axis=1)
    Image.fromarray((strip * 255 + 0.5).clip(0, 255).astype(np.uint8)).save(path)


def run_tree(src: Path, label: str, args: argparse.Namespace, photos: dict[str, Path]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    command = [
        sys.executable, __file__, "--child", "--label", label, "--size", args.size,
        "--frames", str(args.frames), "--segments", str(args.segments),
        "--trajectories", args.trajectories,
        "--photos", json.dumps({k: str(v) for k, v in photos.items()}),
    ]  # fmt: skip
    if args.save:
        command += ["--save", str(args.save)]
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", help="git revision to measure too, in the same run")
    parser.add_argument("--photos", default=",".join(PHOTOS))
    parser.add_argument("--trajectories", default="pan-left,forward,orbit")
    parser.add_argument("--size", default="384x288", help="WxH")
    parser.add_argument("--frames", type=int, default=16, help="frames per segment")
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--save", type=Path, help="folder for a strip of frames per journey")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="now", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure_tree(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        photos = write_photos(args.photos.split(","), Path(tmp))
        trees = {}
        if args.before:
            before = Path(tmp) / "before"
            before.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.before, "src"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
            trees["before"] = run_tree(before / "src", "before", args, photos)
        trees["now"] = run_tree(REPO / "src", "now", args, photos)
    print(
        f"offline preset, {args.size}, {args.segments} segments of {args.frames} frames"
        + (f"; before = {args.before}" if args.before else "")
    )
    keys = ("holes@4", "holes@N", "uniform", "flat", "texture", "flicker", "pair px", "flick/tex",
            "warp", "s/seg", "cpu/seg")  # fmt: skip
    print("| trajectory | photo | tree | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---:|" * len(keys))
    for trajectory in args.trajectories.split(","):
        for photo in [*photos, "mean"]:
            for label, tree in trees.items():
                if photo == "mean":
                    values = [
                        float(np.nanmean([tree[p][trajectory][k] for p in photos])) for k in keys
                    ]
                else:
                    values = [tree[photo][trajectory][k] for k in keys]
                cells = [f"{v:.1%}" if k.startswith(("holes", "uniform", "flat"))
                         else f"{v:.0f}" if k == "pair px" else f"{v:.2f}"
                         for k, v in zip(keys, values, strict=True)]  # fmt: skip
                name = f"**{photo}**" if photo == "mean" else photo
                print(f"| {trajectory} | {name} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
