"""Scene4D-shaped stand-ins for the AnyView tests and benchmarks.

`dreamjourney.data` (Scene4D, CameraStream, synth_scene) is being written on another branch; until
it is merged, these small dataclasses with the contract's fields and an analytic ray-cast scene
(a checkered ground plane and coloured spheres that move over time, filmed by cameras on a
circle) let the AnyView training code be tested. Replace with `dreamjourney.data.synth_scene`
once it is on main.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dreamjourney.camera import Cameras, look_at


@dataclass
class CameraStream:
    name: str
    frames: Tensor  # (T, 3, H, W) in [0, 1]
    cameras: Cameras  # T cameras, with times
    depth: Tensor | None = None


@dataclass
class Scene4D:
    name: str
    fps: float
    scene_scale: float
    input_camera: str
    streams: dict[str, CameraStream]


def _render(cams: Cameras, centers: Tensor, colors: Tensor, radius: float) -> Tensor:
    """Ray-cast a ground plane (y = 1) and spheres (per camera: centers (N, S, 3)) -> (N, 3, H, W)."""
    origins, dirs = cams.rays()
    n, h, w, _ = dirs.shape
    o, d = origins.reshape(n, -1, 3), dirs.reshape(n, -1, 3)
    t_plane = torch.where(d[..., 1] > 1e-6, (1.0 - o[..., 1]) / d[..., 1], torch.inf)
    hit = o + t_plane[..., None].clamp(max=1e6) * d
    checker = ((hit[..., 0].floor() + hit[..., 2].floor()) % 2)[..., None]
    img = torch.where(
        torch.isfinite(t_plane)[..., None],
        0.25 + 0.5 * checker * torch.tensor([0.9, 0.8, 0.6]),
        torch.tensor([0.55, 0.7, 0.95]) - 0.3 * d[..., 1:2].clamp(max=0).abs(),
    )
    depth = t_plane.clone()
    for s in range(centers.shape[1]):
        oc = o - centers[:, None, s]
        b = (oc * d).sum(-1)
        disc = b**2 - (oc * oc).sum(-1) + radius**2
        t_s = torch.where(disc > 0, -b - disc.clamp(min=0).sqrt(), torch.inf)
        closer = (t_s > 0) & (t_s < depth)
        normal = torch.nn.functional.normalize(oc + t_s.clamp(max=1e6)[..., None] * d, dim=-1)
        shade = 0.35 + 0.65 * (-normal[..., 1:2]).clamp(min=0)
        img = torch.where(closer[..., None], colors[s] * shade, img)
        depth = torch.where(closer, t_s, depth)
    return img.reshape(n, h, w, 3).permute(0, 3, 1, 2).clamp(0, 1).contiguous()


def standin_scene(
    seed: int, *, cameras: int = 3, frames: int = 8, width: int = 32, height: int = 32
) -> Scene4D:
    """A dynamic scene filmed by `cameras` synchronised cameras around it, `frames` frames each."""
    g = torch.Generator().manual_seed(seed)
    num_spheres = 3
    colors = torch.rand(num_spheres, 3, generator=g) * 0.8 + 0.2
    start = (torch.rand(num_spheres, 3, generator=g) - 0.5) * torch.tensor([2.0, 0.0, 2.0])
    start[:, 1] = 0.6
    velocity = (torch.rand(num_spheres, 3, generator=g) - 0.5) * torch.tensor([0.15, 0.0, 0.15])
    times = torch.arange(frames, dtype=torch.float32)
    centers = start[None] + times[:, None, None] * velocity[None]  # (T, S, 3)
    phase0 = float(torch.rand((), generator=g)) * 2 * math.pi
    streams = {}
    for c in range(cameras):
        angle = phase0 + 2 * math.pi * c / cameras
        eye = torch.tensor([3.0 * math.sin(angle), -0.6, -3.0 * math.cos(angle)])
        c2w = look_at(eye.expand(frames, 3), torch.tensor([0.0, 0.6, 0.0]).expand(frames, 3))
        cams = Cameras.create(c2w, width=width, height=height, fov_deg=60.0, fps=10.0)
        name = f"cam{c}"
        streams[name] = CameraStream(name, _render(cams, centers, colors, 0.45), cams)
    return Scene4D(f"standin-{seed}", 10.0, 3.0, "cam0", streams)
