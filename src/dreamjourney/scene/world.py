"""A persistent, fused, time-stamped point cloud with a memory budget.

A journey keeps one World: each new frame adds only the pixels the world could not render
from that frame's camera (its holes), so revisiting a place adds nothing; a moving region
replaces what the world showed there; a voxel grid keeps one point per cell; and when the
cloud outgrows `max_points` the points farthest from the newest camera and oldest go first.

A frame added as `observed` (the photo: a view of the real scene, where every other frame is
generated) keeps its free space: the space between its camera and the surfaces it saw is
empty, so a later frame's point that would stand there (in front of what the photo shows, seen
from the photo's camera) is moved back along its own ray until it is not (its own frame sees
it unchanged), or not added if that is more than FREE_SPACE_REACH times as far.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import Tensor

from dreamjourney.camera import Cameras, pixel_centers
from dreamjourney.io.atomic import atomic_path
from dreamjourney.scene.pointcloud import PointCloud, unproject
from dreamjourney.scene.raster import RenderOutput, rasterize

NPZ_FORMAT = "dreamjourney.world/1"
# A dynamic region's old points are dropped if they lie in front of the new surface or within
# this fraction of its depth behind it.
DYNAMIC_DEPTH_MARGIN = 0.05
# A point is in an observed view's free space if it lies nearer than the view's depth at its
# pixel by more than this fraction of that depth.
FREE_SPACE_MARGIN = 0.05
# A point in that free space is moved back along its ray by one of these factors, the least
# that takes it out (up to FREE_SPACE_REACH times as far).
FREE_SPACE_REACH = 8.0
FREE_SPACE_STEPS = 24


class World:
    """A fused point cloud that grows frame by frame.

    Args:
        max_points: memory budget; beyond it the least useful points are evicted.
        voxel_size: world-space cell size for deduplication (one point per cell); None
            keeps every new point (new points are still only taken from holes).
        age_horizon: seconds of age that weigh as much as one median camera distance when
            choosing points to evict.
    """

    def __init__(
        self,
        max_points: int = 2_000_000,
        voxel_size: float | None = None,
        *,
        age_horizon: float = 10.0,
        device: torch.device | str = "cpu",
    ):
        if max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {max_points}")
        if voxel_size is not None and not voxel_size > 0:
            raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
        self.max_points = int(max_points)
        self.voxel_size = voxel_size
        self.age_horizon = float(age_horizon)
        self.cloud = PointCloud.empty(device=device)
        self.evicted = 0
        # (camera, (H,W) z-depth, 0 = none) of each frame added as `observed`
        self.observed: list[tuple[Cameras, Tensor]] = []

    def __len__(self) -> int:
        return len(self.cloud)

    @property
    def device(self) -> torch.device:
        return self.cloud.device

    # ------------------------------------------------------------------ growing
    def add_frame(
        self,
        image: Tensor,
        depth: Tensor,
        camera: Cameras,
        *,
        time: float = 0.0,
        new_only: bool = True,
        dynamic_mask: Tensor | None = None,
        observed: bool = False,
    ) -> int:
        """Fuse one frame into the world.

        Args:
            image: (3, H, W) colours in [0, 1] at the camera's size.
            depth: (H, W) z-depth in world units; <= 0 = none.
            camera: the frame's camera (a batch of one).
            time: seconds stamped on the new points.
            new_only: add only pixels that are holes in the world's render from `camera`.
            dynamic_mask: (H, W) bool, True where the scene moved (cover both the old and the new
                place of a moving object): the world's points seen there are dropped and
                the frame's pixels there are added.
            observed: the frame is a view of the real scene (not generated): no later frame
                adds a point in its free space (`behind_free_space`).
        Returns:
            The number of points added (before any eviction).
        """
        if len(camera) != 1:
            raise ValueError(f"add_frame needs one camera, got {len(camera)}")
        h, w = camera.height, camera.width
        if image.shape[-2:] != (h, w) or depth.shape != (h, w):
            raise ValueError(
                f"add_frame: image {tuple(image.shape)} and depth {tuple(depth.shape)} do not "
                f"match the camera's {w}x{h}"
            )
        image, depth, camera = image.to(self.device), depth.to(self.device), camera.to(self.device)
        take = torch.ones(h, w, dtype=torch.bool, device=self.device)
        dynamic = None if dynamic_mask is None else dynamic_mask.to(self.device, torch.bool)
        if dynamic is not None and len(self) and bool(dynamic.any()):
            self._drop_dynamic(depth, camera, dynamic)
        if new_only and len(self):
            take = ~self.render(camera).mask[0]
            if dynamic is not None:
                take |= dynamic
        if dynamic is None and self.observed:
            depth = self.behind_free_space(depth, camera)
        new = unproject(image, depth, camera, mask=take, time=time)
        if self.voxel_size is not None and len(new):
            new = new[self._unoccupied(new.points, self.voxel_size)]
        self.cloud = PointCloud.cat([self.cloud, new])
        if observed:
            self.observed.append((camera, depth.float()))
        if len(self) > self.max_points:
            self._evict(camera, time)
        return len(new)

    def behind_free_space(self, depth: Tensor, camera: Cameras) -> Tensor:
        """`depth` (H,W) of a frame from `camera`, with each pixel whose point lies in an
        observed view's free space (`in_free_space`) moved back along its ray, by the least of
        FREE_SPACE_STEPS factors up to FREE_SPACE_REACH that takes it out; 0 (no point) where
        none does. A fill of a hole that a view of the far side of the scene shows, lifted at
        the depth of the hole's far side, may stand between the photo's camera and what the
        photo shows: moved back, that view still sees it where it filled the hole."""
        todo = self.in_free_space(depth, camera).reshape(-1)
        if not bool(todo.any()):
            return depth
        h, w = depth.shape
        # only the pixels in free space are moved: their rays are unprojected once per factor
        uv = pixel_centers(w, h, device=self.device).reshape(-1, 2)[todo][None]
        start = depth.reshape(-1)[todo]
        moved = torch.zeros_like(start)
        pending = torch.ones_like(start, dtype=torch.bool)
        factors = torch.logspace(0.0, math.log10(FREE_SPACE_REACH), FREE_SPACE_STEPS)
        for factor in factors[1:].tolist():
            free = self._in_free_space(camera.unproject(uv, (start * factor)[None])[0])
            out_now = pending & ~free
            moved = torch.where(out_now, start * factor, moved)
            pending &= free
            if not bool(pending.any()):
                break
        out = depth.reshape(-1).clone()
        out[todo] = moved  # 0 where no factor took it out
        return out.reshape(h, w)

    def in_free_space(self, depth: Tensor, camera: Cameras) -> Tensor:
        """`(H,W)` bool: pixels of a frame (z-depth `depth` (H,W) from `camera`) whose point
        lies in the free space of an observed view: it projects into that view nearer than the
        view's depth there by more than FREE_SPACE_MARGIN of it. The view saw past that spot,
        so nothing stands there."""
        h, w = depth.shape
        uv = pixel_centers(w, h, device=self.device).reshape(1, -1, 2)
        valid = depth.reshape(1, -1) > 0
        xyz = camera.unproject(uv, torch.where(valid, depth.reshape(1, -1), 1.0))[0]
        return (self._in_free_space(xyz) & valid[0]).reshape(h, w)

    def _in_free_space(self, xyz: Tensor) -> Tensor:
        """`(P,)` bool: world points `xyz` (P,3) in the free space of an observed view."""
        out = torch.zeros(len(xyz), dtype=torch.bool, device=self.device)
        for view, seen in self.observed:
            (uv_view,), (z,) = view.project(xyz)
            col, row = uv_view[:, 0].floor().long(), uv_view[:, 1].floor().long()
            inside = (z > 0) & (col >= 0) & (col < view.width) & (row >= 0) & (row < view.height)
            there = seen[row.clamp(0, view.height - 1), col.clamp(0, view.width - 1)]
            out |= inside & (there > 0) & (z < there * (1 - FREE_SPACE_MARGIN))
        return out

    def _drop_dynamic(self, depth: Tensor, camera: Cameras, dynamic: Tensor) -> None:
        """Remove points that project into the dynamic region, in front of (or just behind)
        the frame's new surface there; the static background farther back stays."""
        uv, z = camera.project(self.cloud.points)
        uv, z = uv[0], z[0]
        col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside = (z > 0) & (col >= 0) & (col < camera.width) & (row >= 0) & (row < camera.height)
        pix = row.clamp(0, camera.height - 1) * camera.width + col.clamp(0, camera.width - 1)
        new_depth = depth.reshape(-1)[pix]
        limit = torch.where(new_depth > 0, new_depth * (1 + DYNAMIC_DEPTH_MARGIN), math.inf)
        drop = inside & dynamic.reshape(-1)[pix] & (z <= limit)
        self.cloud = self.cloud[~drop]

    @staticmethod
    def _voxel_keys(points: Tensor, voxel_size: float) -> Tensor:
        cells = torch.floor(points / voxel_size).long()
        # 21 bits per axis: unique within +-1M cells of the origin
        cells = cells.clamp(-(2**20), 2**20 - 1) + 2**20
        return (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]

    def _unoccupied(self, points: Tensor, voxel_size: float) -> Tensor:
        """(P,) bool: the first new point of each voxel that no world point occupies yet."""
        keys = self._voxel_keys(points, voxel_size)
        free = ~torch.isin(keys, self._voxel_keys(self.cloud.points, voxel_size))
        _, inverse = torch.unique(keys, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), len(keys), device=keys.device)
        first.scatter_reduce_(0, inverse, torch.arange(len(keys), device=keys.device), "amin")
        is_first = torch.zeros(len(keys), dtype=torch.bool, device=keys.device)
        is_first[first] = True
        return free & is_first

    def _evict(self, camera: Cameras, now: float) -> None:
        """Keep the `max_points` points with the lowest cost: distance from `camera` in units
        of the median distance, plus age in units of `age_horizon`."""
        dist = (self.cloud.points - camera.centers[0]).norm(dim=-1)
        cost = dist / dist.median().clamp_min(1e-12)
        cost += (now - self.cloud.times).clamp_min(0) / self.age_horizon
        keep = torch.topk(cost, self.max_points, largest=False).indices.sort().values
        self.evicted += len(self) - len(keep)
        self.cloud = self.cloud[keep]

    # ------------------------------------------------------------------ viewing
    def render(self, cameras: Cameras, *, background: float = 0.0) -> RenderOutput:
        """Render the world from N cameras; see `rasterize`."""
        return rasterize(self.cloud, cameras, background=background)

    def median_depth(self, camera: Cameras) -> float:
        """Median z-depth of what `camera` (one camera) sees of the world; if it sees nothing,
        of all points in front of it."""
        out = self.render(camera[0])
        if bool(out.mask.any()):
            return float(out.depth[out.mask].median())
        _, z = camera[0].to(self.device).project(self.cloud.points)
        z = z[0][z[0] > 0]
        if len(z) == 0:
            raise ValueError("median_depth: no world point is in front of the camera")
        return float(z.median())

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Everything needed to resume, as one .npz, written atomically."""
        c = self.cloud.to("cpu")
        arrays = {
            "format": np.array(NPZ_FORMAT),
            "points": c.points.numpy(),
            "colors": c.colors.numpy(),
            "radii": c.radii.numpy(),
            "times": c.times.numpy(),
            "axes": (torch.zeros(0, 2, 3) if c.axes is None else c.axes).numpy(),
            "max_points": np.array(self.max_points),
            "voxel_size": np.array(np.nan if self.voxel_size is None else self.voxel_size),
            "age_horizon": np.array(self.age_horizon),
            "evicted": np.array(self.evicted),
            "observed": np.array(len(self.observed)),
        }
        for i, (view, depth) in enumerate(self.observed):
            arrays[f"observed_{i}_K"] = view.K[0].cpu().numpy()
            arrays[f"observed_{i}_c2w"] = view.c2w[0].cpu().numpy()
            arrays[f"observed_{i}_depth"] = depth.cpu().numpy()
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path, *, device: torch.device | str = "cpu") -> World:
        """Load a world written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != NPZ_FORMAT:
                raise ValueError(f"{path}: not a {NPZ_FORMAT} file")
            voxel = float(data["voxel_size"])
            world = cls(
                int(data["max_points"]),
                None if math.isnan(voxel) else voxel,
                age_horizon=float(data["age_horizon"]),
                device=device,
            )
            points, colors, radii, times, axes = (
                torch.from_numpy(data[k]).to(device)
                for k in ("points", "colors", "radii", "times", "axes")
            )
            has_axes = len(axes) == len(points)
            world.cloud = PointCloud(points, colors, radii, times, axes if has_axes else None)
            world.evicted = int(data["evicted"])
            # worlds saved before observed views were kept have none
            for i in range(int(data["observed"]) if "observed" in data else 0):
                depth = torch.from_numpy(data[f"observed_{i}_depth"]).to(device)
                h, w = depth.shape
                K, c2w = (torch.from_numpy(data[f"observed_{i}_{k}"])[None] for k in ("K", "c2w"))
                world.observed.append((Cameras(K, c2w, w, h, torch.zeros(1)).to(device), depth))
        return world

    def save_ply(self, path: str | Path) -> None:
        """Binary PLY with x, y, z, 8-bit red/green/blue (MeshLab, Blender, CloudCompare) and
        the extra per-vertex properties `radius` and `time`."""
        save_ply(self.cloud, path)


def save_ply(cloud: PointCloud, path: str | Path) -> None:
    """Write `cloud` as a binary little-endian PLY point cloud, atomically."""
    c = cloud.to("cpu")
    rgb = (c.colors[:, :3].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    vertex = np.empty(
        len(c),
        dtype=[
            ("x", "f4"), ("y", "f4"), ("z", "f4"),
            ("red", "u1"), ("green", "u1"), ("blue", "u1"),
            ("radius", "f4"), ("time", "f4"),
        ],
    )  # fmt: skip
    pts = c.points.numpy()
    vertex["x"], vertex["y"], vertex["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    vertex["radius"], vertex["time"] = c.radii.numpy(), c.times.numpy()
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")], text=False).write(str(tmp))


def load_ply(path: str | Path) -> PointCloud:
    """Read a PLY point cloud: xyz, and colours, radius and time where present."""
    vertex = PlyData.read(str(path))["vertex"]
    names = vertex.data.dtype.names or ()
    n = vertex.count
    points = torch.from_numpy(np.stack([vertex[a] for a in "xyz"], axis=1).astype(np.float32))
    if {"red", "green", "blue"} <= set(names):
        rgb = np.stack([vertex[a] for a in ("red", "green", "blue")], axis=1)
        colors = torch.from_numpy(rgb.astype(np.float32) / 255.0)
    else:
        colors = torch.full((n, 3), 0.5)

    def column(name: str) -> Tensor:
        if name not in names:
            return torch.zeros(n)
        return torch.from_numpy(np.array(vertex[name], dtype=np.float32))

    return PointCloud(points, colors, column("radius"), column("time"))
