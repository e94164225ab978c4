"""Procedural dynamic scenes with exact ground truth, rendered by a small vectorised ray caster.

World: OpenCV-style, up is -y; the ground is the plane y = 0 (inside a backdrop cylinder of radius
`BACKDROP_RADIUS`), objects stand on it at y < 0. Every surface is analytic (plane, inner cylinder
wall, box, sphere, capped cylinder); a pixel takes the nearest hit along its centre ray, so the
z-depth is exact. Textures are procedural (checkers in each object's own frame, modulated by smooth
noise) so that photometric errors show; shading is Lambertian (view-independent) with one
directional light, so a surface point has the same colour in every camera at the same time.
Rays that hit nothing see a sky gradient with depth 0.

Cameras (the first `cameras` of this list, then random exocentric ones):
    exo_front  static, looking at the centre from azimuth a0 (the input camera)
    exo_back   static, the opposite side (a0 + 180 deg)
    exo_side   static, 90 degrees away, farther and higher (a large baseline)
    ego_walk   moving egocentric: walks along an arc at head height looking ahead
    orbit      moving exocentric: orbits the scene
    exo_high   static, steep top-down view
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dreamjourney.camera.cameras import Cameras, look_at
from dreamjourney.data.types import CameraStream, Scene4D, depth_scale

BACKDROP_RADIUS = 10.0
BACKDROP_HEIGHT = 8.0
LOOK_TARGET = (0.0, -0.6, 0.0)
LIGHT = torch.nn.functional.normalize(torch.tensor([0.4, -1.0, 0.3]), dim=0)
AMBIENT = 0.35
EPS = 1e-4
CAMERA_KINDS = ("exo_front", "exo_back", "exo_side", "ego_walk", "orbit", "exo_high")


@dataclass
class _Object:
    """A textured solid. `size`: box half extents; sphere (r, r, r); cylinder (r, half height, r)."""

    kind: str
    size: Tensor
    center: Tensor
    amplitude: Tensor  # (3,) oscillation of the centre, zeros for a static object
    freq: float  # Hz
    phase: float
    axis: Tensor  # (3,) unit rotation axis
    spin: float  # rad/s
    angle0: float
    colors: Tensor  # (2, 3)
    cells: float  # checker cells per world unit

    @property
    def bound(self) -> float:
        """Radius of a sphere around the centre that holds the whole object."""
        if self.kind == "box":
            return float(self.size.norm())
        return float(self.size[:2].norm()) if self.kind == "cylinder" else float(self.size[0])

    def pose(self, t: float) -> tuple[Tensor, Tensor]:
        """Rotation (3, 3) local->world and centre (3,) at time t (seconds)."""
        center = self.center + self.amplitude * math.sin(2 * math.pi * self.freq * t + self.phase)
        return _axis_angle(self.axis, self.angle0 + self.spin * t), center


def _axis_angle(axis: Tensor, angle: float) -> Tensor:
    k = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return torch.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


# --------------------------------------------------------------------------- intersections
# Each takes local-frame ray origins o (R, 3) and unit directions d (R, 3) and returns the hit
# distance t (R,) (inf on a miss) and the local normal (R, 3) at the hit.


def _safe(d: Tensor) -> Tensor:
    return torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)


def _hit_box(o: Tensor, d: Tensor, half: Tensor) -> tuple[Tensor, Tensor]:
    inv = 1.0 / _safe(d)
    t1, t2 = (-half - o) * inv, (half - o) * inv
    tmin_axes = torch.minimum(t1, t2)
    tnear, axis = tmin_axes.max(dim=1)
    tfar = torch.maximum(t1, t2).min(dim=1).values
    hit = (tfar >= tnear) & (tnear > EPS)
    normal = torch.zeros_like(o)
    normal.scatter_(1, axis[:, None], -torch.sign(d.gather(1, axis[:, None])))
    return torch.where(hit, tnear, torch.full_like(tnear, math.inf)), normal


def _hit_sphere(o: Tensor, d: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    b = (o * d).sum(1)
    disc = b * b - ((o * o).sum(1) - radius * radius)
    t = -b - disc.clamp_min(0).sqrt()
    t = torch.where((disc >= 0) & (t > EPS), t, torch.full_like(t, math.inf))
    hit_t = torch.where(torch.isfinite(t), t, torch.zeros_like(t))
    return t, (o + hit_t[:, None] * d) / radius


def _hit_cylinder(o: Tensor, d: Tensor, radius: float, half: float) -> tuple[Tensor, Tensor]:
    """A capped cylinder around the local y axis, y in [-half, half]."""
    inf = torch.full_like(o[:, 0], math.inf)
    a = (d[:, 0] ** 2 + d[:, 2] ** 2).clamp_min(1e-12)
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    disc = b * b - a * (o[:, 0] ** 2 + o[:, 2] ** 2 - radius * radius)
    t_side = (-b - disc.clamp_min(0).sqrt()) / a
    y_side = o[:, 1] + t_side * d[:, 1]
    t_side = torch.where((disc >= 0) & (t_side > EPS) & (y_side.abs() <= half), t_side, inf)
    dy = _safe(d[:, 1])
    t_caps = []
    for y in (-half, half):
        tc = (y - o[:, 1]) / dy
        x, z = o[:, 0] + tc * d[:, 0], o[:, 2] + tc * d[:, 2]
        t_caps.append(torch.where((tc > EPS) & (x * x + z * z <= radius * radius), tc, inf))
    t_all = torch.stack([t_side, *t_caps])
    t, which = t_all.min(dim=0)
    p = o + torch.where(torch.isfinite(t), t, torch.zeros_like(t))[:, None] * d
    side_n = torch.stack([p[:, 0], torch.zeros_like(t), p[:, 2]], 1) / radius
    cap_n = torch.zeros_like(p)
    cap_n[:, 1] = torch.where(which == 1, -1.0, 1.0)
    return t, torch.where((which == 0)[:, None], side_n, cap_n)


def _hit_ground(o: Tensor, d: Tensor) -> Tensor:
    t = -o[:, 1] / _safe(d[:, 1])
    x, z = o[:, 0] + t * d[:, 0], o[:, 2] + t * d[:, 2]
    ok = (t > EPS) & (x * x + z * z <= BACKDROP_RADIUS**2)
    return torch.where(ok, t, torch.full_like(t, math.inf))


def _hit_backdrop(o: Tensor, d: Tensor) -> Tensor:
    """The inside of the backdrop wall (cameras stand inside it): the far root."""
    a = (d[:, 0] ** 2 + d[:, 2] ** 2).clamp_min(1e-12)
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    disc = b * b - a * (o[:, 0] ** 2 + o[:, 2] ** 2 - BACKDROP_RADIUS**2)
    t = (-b + disc.clamp_min(0).sqrt()) / a
    y = o[:, 1] + t * d[:, 1]
    ok = (disc >= 0) & (t > EPS) & (y <= 0) & (y >= -BACKDROP_HEIGHT)
    return torch.where(ok, t, torch.full_like(t, math.inf))


# --------------------------------------------------------------------------- textures


class _Noise:
    """Smooth deterministic 3D noise in [-1, 1]: a mean of random plane waves."""

    def __init__(self, rng: np.random.Generator, waves: int = 8):
        dirs = rng.normal(size=(waves, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        freqs = rng.uniform(2.0, 9.0, size=(waves, 1))
        self.w = torch.tensor(dirs * freqs, dtype=torch.float32)
        self.phase = torch.tensor(rng.uniform(0, 2 * math.pi, size=waves), dtype=torch.float32)

    def __call__(self, p: Tensor, offset: float = 0.0) -> Tensor:
        return torch.sin(p @ self.w.T + self.phase + offset).mean(1) * 1.6


def _checker(coords: Tensor) -> Tensor:
    """(M, k) coordinates in cells -> (M,) float parity 0/1."""
    return torch.floor(coords).sum(1).remainder(2)


def _mix(colors: Tensor, parity: Tensor, noise: Tensor) -> Tensor:
    base = colors[0] * (1 - parity[:, None]) + colors[1] * parity[:, None]
    return (base * (1.0 + 0.18 * noise[:, None])).clamp(0, 1)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


# --------------------------------------------------------------------------- scene layout


def _make_objects(rng: np.random.Generator) -> list[_Object]:
    count = int(rng.integers(5, 8))
    shapes = ["box", "sphere", "cylinder"]
    kinds = [*shapes, *rng.choice(shapes, count - 3)]
    placed: list[tuple[np.ndarray, float]] = []
    objects = []
    for i, kind in enumerate(kinds):
        moving = i % 2 == 1
        if kind == "box":
            half = rng.uniform(0.25, 0.6, size=3)
            size, ground_h, reach = half, half[1], float(np.linalg.norm(half[[0, 2]]))
        elif kind == "sphere":
            r = rng.uniform(0.3, 0.6)
            size, ground_h, reach = np.array([r, r, r]), r, r
        else:
            r, h = rng.uniform(0.2, 0.45), rng.uniform(0.3, 0.8)
            size, ground_h, reach = np.array([r, h, r]), h, r
        heading = rng.uniform(0, 2 * math.pi)
        amp = rng.uniform(0.3, 0.7) if moving else 0.0
        amplitude = amp * np.array([math.cos(heading), 0.0, math.sin(heading)])
        if kind == "sphere" and moving:
            amplitude[1] = -0.5 * amp  # bounces up (-y) and down while it rolls
        for _ in range(200):
            xz = rng.uniform(-2.6, 2.6, size=2)
            if np.hypot(*xz) + reach + amp > 3.4:
                continue
            if all(np.hypot(*(xz - q)) > reach + amp + rq + 0.15 for q, rq in placed):
                break
        placed.append((xz, reach + amp))
        # a box spins about y so that it stays on the ground; a sphere about any axis
        axis = rng.normal(size=3) if kind == "sphere" else np.array([0.0, 1.0, 0.0])
        hue = rng.uniform()
        colors = [_hsv(hue, 0.75, 0.95), _hsv((hue + 0.5) % 1, 0.35, 0.55)]
        objects.append(
            _Object(
                kind=kind,
                size=torch.tensor(size, dtype=torch.float32),
                center=torch.tensor([xz[0], -ground_h - abs(amplitude[1]), xz[1]]).float(),
                amplitude=torch.tensor(amplitude, dtype=torch.float32),
                freq=float(rng.uniform(0.3, 0.7)),
                phase=0.0 if kind == "sphere" else float(rng.uniform(0, 2 * math.pi)),
                axis=torch.nn.functional.normalize(torch.tensor(axis, dtype=torch.float32), dim=0),
                spin=float(rng.uniform(0.6, 2.0)) * (1 if rng.uniform() < 0.5 else -1) * moving,
                angle0=float(rng.uniform(0, 2 * math.pi)),
                colors=torch.tensor(colors, dtype=torch.float32),
                cells=float(rng.choice([3.0, 4.0, 5.0])),
            )
        )
    return objects


def make_cameras(
    rng: np.random.Generator, count: int, times: Tensor, width: int, height: int, fov_deg: float
) -> dict[str, Cameras]:
    """Camera name -> T cameras, the kinds listed in the module docstring."""
    a0 = float(rng.uniform(0, 2 * math.pi))
    target = torch.tensor(LOOK_TARGET).expand(len(times), 3)

    def ring(azimuth: Tensor | float, radius: float, height_: Tensor | float) -> Tensor:
        az = torch.as_tensor(azimuth, dtype=torch.float32).expand(len(times))
        h = torch.as_tensor(height_, dtype=torch.float32).expand(len(times))
        return torch.stack([radius * torch.cos(az), -h, radius * torch.sin(az)], dim=1)

    rigs: dict[str, Cameras] = {}
    for i in range(count):
        kind = CAMERA_KINDS[i] if i < len(CAMERA_KINDS) else f"exo_{i}"
        if kind == "exo_front":
            c2w = look_at(ring(a0, 6.0, 2.0), target)
        elif kind == "exo_back":
            c2w = look_at(ring(a0 + math.pi, 6.0, 2.0), target)
        elif kind == "exo_side":
            c2w = look_at(ring(a0 + math.pi / 2, 8.0, 3.5), target)
        elif kind == "ego_walk":
            beta = a0 - 2.2 + 0.5 * times
            eye = ring(beta, 4.4, 1.6 + 0.04 * torch.sin(2 * math.pi * 1.8 * times))
            c2w = look_at(eye, ring(beta + 0.9, 1.6, 0.7))
        elif kind == "orbit":
            c2w = look_at(ring(a0 + math.pi / 4 + 0.4 * times, 7.0, 2.5), target)
        elif kind == "exo_high":
            c2w = look_at(ring(a0 + 1.25 * math.pi, 4.0, 6.0), target)
        else:
            az, r, h = rng.uniform(0, 2 * math.pi), rng.uniform(5.0, 8.0), rng.uniform(1.5, 4.0)
            c2w = look_at(ring(float(az), float(r), float(h)), target)
        rigs[kind] = Cameras.create(c2w, width=width, height=height, fov_deg=fov_deg, times=times)
    return rigs


# --------------------------------------------------------------------------- renderer


class _Renderer:
    def __init__(self, rng: np.random.Generator):
        self.objects = _make_objects(rng)
        self.noise = _Noise(rng)
        self.ground_colors = torch.tensor([[0.78, 0.74, 0.66], [0.33, 0.36, 0.30]])
        self.backdrop_hue = float(rng.uniform())
        self.backdrop_palette = torch.tensor([_hsv(h / 63, 0.45, 0.85) for h in range(64)])

    def render(self, origins: Tensor, dirs: Tensor, t: float) -> tuple[Tensor, Tensor]:
        """Rays (R, 3) at time t -> colour (R, 3) and hit distance (R,) (inf = sky)."""
        hits = [_hit_ground(origins, dirs), _hit_backdrop(origins, dirs)]
        normals: list[Tensor | None] = [None, None]
        poses = [obj.pose(t) for obj in self.objects]
        for obj, (R, c) in zip(self.objects, poses, strict=True):
            # only rays that pass the object's bounding sphere are intersected exactly
            oc = c - origins
            along = (oc * dirs).sum(1)
            near = ((oc * oc).sum(1) - along * along <= obj.bound**2) & (along + obj.bound > 0)
            idx = near.nonzero().squeeze(1)
            o, d = (origins[idx] - c) @ R, dirs[idx] @ R
            if obj.kind == "box":
                th, n = _hit_box(o, d, obj.size)
            elif obj.kind == "sphere":
                th, n = _hit_sphere(o, d, float(obj.size[0]))
            else:
                th, n = _hit_cylinder(o, d, float(obj.size[0]), float(obj.size[1]))
            t_all = torch.full_like(along, math.inf)
            t_all[idx] = th
            n_all = torch.zeros_like(origins)
            n_all[idx] = n
            hits.append(t_all)
            normals.append(n_all)
        dist, which = torch.stack(hits).min(dim=0)
        color = self._sky(dirs)
        for s in range(len(hits)):
            sel = (which == s) & torch.isfinite(dist)
            if not bool(sel.any()):
                continue
            p = origins[sel] + dist[sel, None] * dirs[sel]
            if s == 0:
                albedo, normal = self._ground(p), torch.tensor([[0.0, -1.0, 0.0]]).expand_as(p)
            elif s == 1:
                albedo = self._backdrop(p)
                normal = -torch.nn.functional.normalize(p * torch.tensor([1.0, 0.0, 1.0]), dim=1)
            else:
                obj, (R, c) = self.objects[s - 2], poses[s - 2]
                local = (p - c) @ R
                albedo = self._object(obj, local, s)
                normal = normals[s][sel] @ R.T  # type: ignore[index]
            color[sel] = albedo * (AMBIENT + (1 - AMBIENT) * (normal @ LIGHT).clamp_min(0)[:, None])
        return color, dist

    def _sky(self, dirs: Tensor) -> Tensor:
        up = (-dirs[:, 1]).clamp(0, 1)[:, None]
        return torch.tensor([0.75, 0.85, 0.95]) * (1 - up) + torch.tensor([0.35, 0.55, 0.9]) * up

    def _ground(self, p: Tensor) -> Tensor:
        parity = _checker(p[:, [0, 2]] / 0.5)
        return _mix(self.ground_colors, parity, self.noise(p))

    def _backdrop(self, p: Tensor) -> Tensor:
        angle = torch.atan2(p[:, 2], p[:, 0])
        coords = torch.stack([angle * BACKDROP_RADIUS / 0.8, p[:, 1] / 0.8], 1)
        parity = _checker(coords)
        hue = (self.backdrop_hue + angle / (2 * math.pi)).remainder(1)
        tint = self.backdrop_palette[(hue * 63).round().long()]
        shade = (0.7 + 0.3 * parity)[:, None] * (1.0 + 0.15 * self.noise(p * 0.5, 1.0))[:, None]
        return (tint * shade).clamp(0, 1)

    def _object(self, obj: _Object, local: Tensor, index: int) -> Tensor:
        if obj.kind == "sphere":
            n = local / obj.size[0]
            lon = torch.atan2(n[:, 2], n[:, 0]) / (2 * math.pi) * 8
            lat = torch.asin(n[:, 1].clamp(-1, 1)) / math.pi * 6
            parity = _checker(torch.stack([lon, lat], 1))
        elif obj.kind == "cylinder":
            lon = torch.atan2(local[:, 2], local[:, 0]) / (2 * math.pi) * 8
            parity = _checker(torch.stack([lon, local[:, 1] * obj.cells], 1))
        else:
            parity = _checker(local * obj.cells + 0.5)
        return _mix(obj.colors, parity, self.noise(local, 1.3 * index))


def synth_scene(
    seed: int,
    *,
    cameras: int = 4,
    frames: int = 24,
    width: int = 256,
    height: int = 256,
    fps: float = 24.0,
    fov_deg: float = 60.0,
) -> Scene4D:
    """A procedural dynamic scene filmed by `cameras` cameras for `frames` frames.

    Deterministic per `seed`. Every stream has RGB (T, 3, H, W) and exact z-depth (T, H, W) (0 on
    the sky); all cameras share the times i / fps. The input camera is `exo_front`;
    `scene_scale` is its median depth at frame 0.
    """
    if cameras < 1 or frames < 1 or width < 1 or height < 1:
        raise ValueError("synth_scene: cameras, frames, width and height must be positive")
    rng = np.random.default_rng(seed)
    renderer = _Renderer(rng)
    times = torch.arange(frames, dtype=torch.float32) / fps
    rigs = make_cameras(rng, cameras, times, width, height, fov_deg)
    names = list(rigs)
    rays = [rigs[n].rays() for n in names]  # each (T, H, W, 3) origins and dirs
    rgb = torch.empty(len(names), frames, height, width, 3)
    depth = torch.empty(len(names), frames, height, width)
    for k in range(frames):
        origins = torch.stack([r[0][k] for r in rays]).reshape(-1, 3)
        dirs = torch.stack([r[1][k] for r in rays]).reshape(-1, 3)
        color, dist = renderer.render(origins, dirs, float(times[k]))
        forward = torch.stack([rigs[n].forward[k] for n in names])  # (C, 3)
        cos = (dirs.reshape(len(names), -1, 3) * forward[:, None]).sum(-1)
        z = torch.where(torch.isfinite(dist), dist, torch.zeros_like(dist)).reshape(len(names), -1)
        rgb[:, k] = color.reshape(len(names), height, width, 3)
        depth[:, k] = (z * cos).reshape(len(names), height, width)
    streams = {
        n: CameraStream(n, rgb[i].permute(0, 3, 1, 2).contiguous(), rigs[n], depth[i].contiguous())
        for i, n in enumerate(names)
    }
    scale = depth_scale(depth[0]) or 1.0
    return Scene4D(f"synth_{seed:04d}", fps, scale, names[0], streams)
