"""Temporary stand-ins for the models API (contracts.md) until it lands on main.

`install()` puts minimal modules that satisfy the contracts into sys.modules.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import torch

from dreamjourney.camera import Cameras
from dreamjourney.errors import InputError


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
