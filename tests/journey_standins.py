"""Temporary stand-ins for the geom, models and traj APIs (contracts.md) until they land on main.

`install()` puts minimal modules that satisfy the contracts into sys.modules.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import numpy as np
import torch

from dreamjourney.camera import Cameras
from dreamjourney.errors import InputError


@dataclass
class RenderOutput:
    image: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor


class World:
    def __init__(self, max_points=2_000_000, voxel_size=None):
        self.max_points = max_points
        self.points = torch.zeros(0, 3)
        self.colors = torch.zeros(0, 3)

    def __len__(self):
        return self.points.shape[0]

    def render(self, cameras):
        n, h, w = len(cameras), cameras.height, cameras.width
        image = torch.zeros(n, 3, h, w)
        depth = torch.zeros(n, h, w)
        index = torch.full((n, h, w), -1, dtype=torch.long)
        if len(self):
            uv, z = cameras.project(self.points)
            for i in range(n):
                u = uv[i, :, 0].floor().long()
                v = uv[i, :, 1].floor().long()
                ok = (z[i] > 1e-3) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
                ids = torch.nonzero(ok)[:, 0]
                pix = (v[ids] * w + u[ids]).numpy()
                order = np.lexsort((z[i, ids].numpy(), pix))
                pix, ids = pix[order], ids[order]
                first = np.ones(len(pix), bool)
                first[1:] = pix[1:] != pix[:-1]
                pix, ids = torch.from_numpy(pix[first]), ids[torch.from_numpy(first)]
                index[i].view(-1)[pix] = ids
                depth[i].view(-1)[pix] = z[i, ids]
                image[i].view(3, -1)[:, pix] = self.colors[ids].T
        return RenderOutput(image, depth, index >= 0, index)

    def add_frame(self, image, depth, camera, *, time=0.0, new_only=True, dynamic_mask=None):
        keep = depth > 0
        if new_only:
            keep &= ~self.render(camera).mask[0]
        if dynamic_mask is not None:
            keep |= dynamic_mask & (depth > 0)
        h, w = depth.shape
        vv, uu = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        uv = torch.stack([uu, vv], -1)[keep].float()[None] + 0.5
        pts = camera.unproject(uv, depth[keep][None])[0]
        self.points = torch.cat([self.points, pts])[-self.max_points :]
        self.colors = torch.cat([self.colors, image[:, keep].T])[-self.max_points :]
        return int(keep.sum())

    def median_depth(self, camera):
        r = self.render(camera)
        return float(r.depth[0][r.mask[0]].median())

    def save(self, path):
        np.savez(
            path, points=self.points.numpy(), colors=self.colors.numpy(), max_points=self.max_points
        )

    @classmethod
    def load(cls, path):
        with np.load(path) as f:
            world = cls(int(f["max_points"]))
            world.points = torch.from_numpy(f["points"])
            world.colors = torch.from_numpy(f["colors"])
        return world

    def save_ply(self, path):
        with open(path, "w") as f:
            f.write(f"ply\nformat ascii 1.0\nelement vertex {len(self)}\nend_header\n")


@dataclass
class DepthAlignment:
    scale: float
    shift: float
    aligned: torch.Tensor


def align_depth(pred, target, mask, *, space="depth"):
    a = torch.stack([pred[mask], torch.ones_like(pred[mask])], 1).double()
    sol = torch.linalg.lstsq(a, target[mask].double()[:, None]).solution[:, 0]
    aligned = (pred * sol[0] + sol[1]).float().clamp_min(1e-3)
    return DepthAlignment(float(sol[0]), float(sol[1]), aligned)


def make_trajectory(
    name,
    num_frames,
    *,
    scene_scale=1.0,
    width=512,
    height=512,
    fov_deg=60.0,
    start=None,
    seed=0,
    fps=24.0,
    **options,
):
    if name != "forward":
        raise InputError(f"unknown trajectory preset {name!r}; presets: forward")
    if start is None:
        start = Cameras.create(torch.eye(4), width=width, height=height, fov_deg=fov_deg)
    step = torch.eye(4).repeat(num_frames, 1, 1)
    step[:, 2, 3] = torch.arange(num_frames) * 0.02 * scene_scale
    c2w = start.c2w[0] @ step
    t0 = float(start.times[0])
    return Cameras(
        start.K[0:1].repeat(num_frames, 1, 1),
        c2w,
        start.width,
        start.height,
        t0 + torch.arange(num_frames) / fps,
    )


def resolve_trajectory(
    spec, num_frames, *, scene_scale, width, height, fov_deg, start=None, seed=0, fps=24.0
):
    from pathlib import Path

    from dreamjourney.camera.formats import load_cameras

    if Path(spec).exists():
        return load_cameras(spec)
    if spec != "forward":
        raise InputError("neither a preset (forward) nor an existing camera file", source=spec)
    return make_trajectory(
        spec,
        num_frames,
        scene_scale=scene_scale,
        width=width,
        height=height,
        fov_deg=fov_deg,
        start=start,
        seed=seed,
        fps=fps,
    )


@dataclass
class DepthResult:
    depth: torch.Tensor
    metric: bool = False
    focal_px: float | None = None


@dataclass
class CompletionContext:
    cameras: Cameras
    rerender: object = None


@dataclass
class Caption:
    prompt: str
    objects: list
    raw: str
    fallback: bool


class Depth:
    def estimate(self, image):
        h = image.shape[1]
        rows = torch.linspace(2.0, 1.0, h)[:, None]
        return DepthResult((rows + 0.1 * image.mean(0)).float())


class Completer:
    def complete(self, frames, masks, *, prompt="", context=None, generator=None, progress=None):
        out = frames.clone()
        last = frames[-1].clone()
        noise = torch.rand(3, generator=generator)
        last[:, ~masks[-1]] = noise[:, None]
        if context is not None and context.rerender is not None:
            frames, masks = context.rerender(last)
            out = frames.clone()
        for t in range(out.shape[0]):
            hole = ~masks[t]
            out[t][:, hole] = noise[:, None]
            if progress:
                progress(t + 1, out.shape[0])
        out[-1] = last if context is None else out[-1]
        return out


class Animator:
    def animate(self, image, prompt, num_frames, *, generator=None, progress=None):
        frames = image[None].repeat(num_frames, 1, 1, 1)
        h, w = image.shape[1:]
        for t in range(1, num_frames):
            frames[t, :, : h // 4, t % w] = torch.rand(3, 1, generator=generator)
        return frames


class Captioner:
    def caption(self, image):
        return Caption("a garden, leaves moving", ["leaves"], "", True)


@dataclass
class Backends:
    depth: object
    completer: object
    animator: object
    captioner: object
    info: dict
    is_noise: bool = False


def build_backends(preset="offline", *, config=None, device="cpu", dtype=None):
    if preset not in ("offline", "tiny"):
        raise InputError(f"unknown preset {preset!r}", field="--preset")
    return Backends(
        Depth(), Completer(), Animator(), Captioner(), {"preset": preset}, preset == "tiny"
    )


def load_config(path):
    import json

    return json.loads(open(path).read())


def install():
    mods = {
        "dreamjourney.scene": dict(World=World, align_depth=align_depth, RenderOutput=RenderOutput),
        "dreamjourney.camera.trajectories": dict(
            PRESETS={"forward": None},
            make_trajectory=make_trajectory,
            resolve_trajectory=resolve_trajectory,
        ),
        "dreamjourney.models": {},
        "dreamjourney.models.protocols": dict(
            CompletionContext=CompletionContext, DepthResult=DepthResult
        ),
        "dreamjourney.models.registry": dict(
            Backends=Backends, build_backends=build_backends, load_config=load_config
        ),
    }
    for name, attrs in mods.items():
        try:
            __import__(name)
            continue
        except ImportError:
            pass
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module


if __name__ == "__main__":
    install()
    sys.argv[0] = "dreamjourney"
    from dreamjourney.cli import main

    main()
