"""Training clips for AnyView: mixed data domains, random input/target camera pairs.

Scenes follow the 4D scene format (`dreamjourney.data.Scene4D`): `name`, `scene_scale` and
`streams`, a mapping of synchronised `CameraStream`s with `frames`
(T, 3, H, W) in [0, 1] and `cameras` (T cameras). Any object with those fields works.

Clip i is a pure function of (seed, i): its domain (drawn by the sources' weights), scene,
camera pair and time window. Training is therefore reproducible and resumes exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from dreamjourney.camera import Cameras
from dreamjourney.errors import InputError
from dreamjourney.models.anyview.conditioning import PluckerLayout, ray_maps
from dreamjourney.training.config import SourceConfig


class StreamLike(Protocol):
    @property
    def frames(self) -> Tensor: ...
    @property
    def cameras(self) -> Cameras: ...


class SceneLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def scene_scale(self) -> float: ...
    @property
    def streams(self) -> Mapping[str, StreamLike]: ...


def load_source_scenes(source: SourceConfig) -> list[SceneLike]:
    """The scenes of one data source: generated (`synthetic`) or found under `path` (a scene, a
    folder of scenes or a folder of such folders, in any layout `load_any_scene` reads)."""
    from dreamjourney.data import find_scenes, load_any_scene, synth_scene

    if source.path is not None:
        return [load_any_scene(directory) for _, directory in find_scenes(Path(source.path))]
    s = source.synthetic
    if s is None:
        raise InputError("give exactly one of 'path' and 'synthetic'", field=f"data.{source.name}")
    return [
        synth_scene(s.seed + i, cameras=s.cameras, frames=s.frames, width=s.width, height=s.height)
        for i in range(s.count)
    ]


def check_scenes(source: SourceConfig, scenes: Sequence[SceneLike], frames: int) -> None:
    """InputError unless every scene can give `frames`-frame clips of the source's kind."""
    if not scenes:
        raise InputError("has no scenes", field=f"data.{source.name}")
    for scene in scenes:
        lengths = {len(s.cameras) for s in scene.streams.values()}
        lengths |= {s.frames.shape[0] for s in scene.streams.values()}
        if len(lengths) != 1 or min(lengths) < frames:
            raise InputError(
                f"scene {scene.name!r} has streams of {sorted(lengths)} frames; clips need "
                f"{frames} synchronised frames",
                field=f"data.{source.name}",
            )
        if source.kind != "monocular" and len(scene.streams) < 2:
            raise InputError(
                f"scene {scene.name!r} has one camera stream; {source.kind} multi-view clips "
                "need two",
                field=f"data.{source.name}",
            )


class ClipDataset(Dataset):
    """Clips `base + i * stride` (i < length) of a deterministic stream of training clips.

    Each item is a dict: `input_video`, `target_video` (3, T, H, W) in [0, 1]; `input_rays`,
    `target_rays` (6, F, h, w) on the model grid (moments divided by the scene's scale).
    Monocular sources
    pair a stream with itself; multi-view sources pair two distinct streams, at the same times.
    """

    def __init__(
        self,
        sources: Sequence[tuple[SourceConfig, Sequence[SceneLike]]],
        *,
        frames: int,
        width: int,
        height: int,
        temporal_stride: int,
        spatial_stride: int,
        layout: PluckerLayout,
        seed: int,
        length: int,
        base: int = 0,
        stride: int = 1,
    ):
        for source, scenes in sources:
            check_scenes(source, scenes, frames)
        self.sources = sources
        weights = np.array([s.weight for s, _ in sources], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.frames, self.width, self.height = frames, width, height
        self.temporal_stride, self.spatial_stride = temporal_stride, spatial_stride
        self.layout, self.seed = layout, seed
        self.length, self.base, self.stride = length, base, stride

    def __len__(self) -> int:
        return self.length

    def _clip(self, stream: StreamLike, start: int) -> tuple[Tensor, Cameras]:
        frames = stream.frames[start : start + self.frames].float()
        cams = stream.cameras[start : start + self.frames]
        if frames.shape[-2:] != (self.height, self.width):
            frames = F.interpolate(
                frames, size=(self.height, self.width), mode="bilinear", antialias=True
            ).clamp(0, 1)
            cams = cams.resize(self.width, self.height)
        return frames.transpose(0, 1).contiguous(), cams

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not 0 <= i < self.length:
            raise IndexError(f"clip {i} of {self.length}")
        rng = np.random.default_rng([self.seed, self.base + i * self.stride])
        source, scenes = self.sources[rng.choice(len(self.sources), p=self.weights)]
        scene = scenes[int(rng.integers(len(scenes)))]
        names = sorted(scene.streams)
        if source.kind == "monocular":
            pair = [names[rng.integers(len(names))]] * 2
        else:
            pair = [names[j] for j in rng.choice(len(names), size=2, replace=False)]
        total = len(scene.streams[pair[0]].cameras)
        start = int(rng.integers(total - self.frames + 1))
        video_in, cams_in = self._clip(scene.streams[pair[0]], start)
        video_tgt, cams_tgt = self._clip(scene.streams[pair[1]], start)
        grid = (self.width // self.spatial_stride, self.height // self.spatial_stride)
        rays_in, rays_tgt = ray_maps(
            cams_in,
            cams_tgt,
            input_grid=grid,
            temporal_stride=self.temporal_stride,
            scene_scale=float(scene.scene_scale),
            layout=self.layout,
        )
        return {
            "input_video": video_in,
            "target_video": video_tgt,
            "input_rays": rays_in,
            "target_rays": rays_tgt,
        }
