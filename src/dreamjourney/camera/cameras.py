"""A batched pinhole camera type.

Convention (the only one used inside dreamjourney):

- Camera axes are OpenCV: x right, y down, z forward (the camera looks down +z).
- Poses are camera-to-world (`c2w`), 4x4: ``x_world = c2w @ x_cam``.
- Intrinsics `K` are 3x3 in pixels for the stated width and height; the centre of pixel
  (i, j) (column i, row j) is at (i + 0.5, j + 0.5).
- World "up" for the look-at helpers is -y (so an identity camera is upright).

Every batch shares one image size. Times are in seconds.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

WORLD_UP = (0.0, -1.0, 0.0)


def _as_tensor(x: Tensor | Sequence, *, dtype: torch.dtype = torch.float32) -> Tensor:
    if isinstance(x, Tensor):
        return x.to(dtype)
    return torch.as_tensor(x, dtype=dtype)


def intrinsics_from_fov(
    fov_deg: float, width: int, height: int, *, axis: str = "horizontal"
) -> Tensor:
    """A 3x3 K with square pixels and the principal point at the image centre.

    Args:
        fov_deg: the full field of view in degrees along `axis`.
        axis: "horizontal" (fov spans `width`) or "vertical" (fov spans `height`).
    """
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
    if axis not in ("horizontal", "vertical"):
        raise ValueError(f"axis must be 'horizontal' or 'vertical', got {axis!r}")
    span = width if axis == "horizontal" else height
    f = 0.5 * span / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: Tensor | Sequence, target: Tensor | Sequence, up: Sequence = WORLD_UP) -> Tensor:
    """Camera-to-world poses (OpenCV axes) at `eye` looking at `target`.

    Args:
        eye, target: (..., 3) world points.
        up: the world up direction; the image's -y axis points as close to it as possible.
    Returns:
        (..., 4, 4) c2w.
    """
    eye_t, target_t = _as_tensor(eye), _as_tensor(target)
    up_t = _as_tensor(up).expand_as(eye_t)
    z = torch.nn.functional.normalize(target_t - eye_t, dim=-1)
    x = torch.linalg.cross(z, up_t, dim=-1)
    if bool((x.norm(dim=-1) < 1e-8).any()):
        raise ValueError("look_at: viewing direction is parallel to the up vector")
    x = torch.nn.functional.normalize(x, dim=-1)
    y = torch.linalg.cross(z, x, dim=-1)
    c2w = torch.zeros((*eye_t.shape[:-1], 4, 4))
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = x, y, z, eye_t
    c2w[..., 3, 3] = 1.0
    return c2w


def centre_crop_box(width: int, height: int, aspect: float) -> tuple[int, int, int, int]:
    """(left, top, crop_width, crop_height): the largest centred crop of a width x height image
    with the aspect ratio `aspect` (width / height), in whole pixels."""
    if width / height > aspect:
        cw, ch = max(1, round(height * aspect)), height
    else:
        cw, ch = width, max(1, round(width / aspect))
    return (width - cw) // 2, (height - ch) // 2, cw, ch


def pixel_centers(width: int, height: int, *, offset: float = 0.5, device=None) -> Tensor:
    """(H, W, 2) pixel coordinates (u, v) of each pixel, `offset` = 0.5 for centres."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=device) + offset,
        torch.arange(width, dtype=torch.float32, device=device) + offset,
        indexing="ij",
    )
    return torch.stack([u, v], dim=-1)


@dataclass
class Cameras:
    """N pinhole cameras sharing one image size.

    Attributes:
        K: (N, 3, 3) intrinsics in pixels.
        c2w: (N, 4, 4) camera-to-world poses, OpenCV axes (x right, y down, z forward).
        width, height: image size in pixels.
        times: (N,) seconds.
    """

    K: Tensor
    c2w: Tensor
    width: int
    height: int
    times: Tensor

    def __post_init__(self) -> None:
        self.K = _as_tensor(self.K)
        self.c2w = _as_tensor(self.c2w)
        if self.K.ndim == 2:
            self.K = self.K.expand(self.c2w.shape[0] if self.c2w.ndim == 3 else 1, 3, 3).clone()
        if self.c2w.ndim == 2:
            self.c2w = self.c2w[None]
        n = self.c2w.shape[0]
        if self.K.shape[0] == 1 and n > 1:
            self.K = self.K.expand(n, 3, 3).clone()
        self.times = _as_tensor(self.times).reshape(-1)
        if self.K.shape != (n, 3, 3) or self.c2w.shape != (n, 4, 4) or self.times.shape != (n,):
            raise ValueError(
                f"Cameras: K {tuple(self.K.shape)}, c2w {tuple(self.c2w.shape)} and times "
                f"{tuple(self.times.shape)} do not describe the same {n} cameras"
            )
        self.width, self.height = int(self.width), int(self.height)
        if self.width < 1 or self.height < 1:
            raise ValueError(
                f"Cameras: image size must be positive, got {self.width}x{self.height}"
            )

    # ----------------------------------------------------------------- construction
    @classmethod
    def create(
        cls,
        c2w: Tensor | Sequence,
        *,
        width: int,
        height: int,
        K: Tensor | Sequence | None = None,
        fov_deg: float | None = None,
        fov_axis: str = "horizontal",
        times: Tensor | Sequence | None = None,
        fps: float = 24.0,
    ) -> Cameras:
        """Cameras from poses and either `K` or a field of view (`fov_axis` says which one).

        c2w: (N, 4, 4) or (4, 4), OpenCV axes. Without `times`, frame i is at i / fps seconds.
        """
        c2w_t = _as_tensor(c2w)
        if c2w_t.ndim == 2:
            c2w_t = c2w_t[None]
        n = c2w_t.shape[0]
        if K is None:
            if fov_deg is None:
                raise ValueError("Cameras.create needs K or fov_deg")
            K = intrinsics_from_fov(fov_deg, width, height, axis=fov_axis)
        K_t = _as_tensor(K)
        if K_t.ndim == 2:
            K_t = K_t.expand(n, 3, 3).clone()
        times_t = torch.arange(n, dtype=torch.float32) / fps if times is None else times
        return cls(K=K_t, c2w=c2w_t, width=width, height=height, times=_as_tensor(times_t))

    @classmethod
    def cat(cls, cameras: Sequence[Cameras]) -> Cameras:
        """Concatenate batches of the same image size along the batch axis."""
        if not cameras:
            raise ValueError("Cameras.cat needs at least one batch")
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise ValueError(f"Cameras.cat: image sizes differ: {sorted(sizes)}")
        return cls(
            K=torch.cat([c.K for c in cameras]),
            c2w=torch.cat([c.c2w for c in cameras]),
            width=cameras[0].width,
            height=cameras[0].height,
            times=torch.cat([c.times for c in cameras]),
        )

    # ----------------------------------------------------------------- batch access
    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, index: int | slice | Tensor | Sequence[int]) -> Cameras:
        """Always returns a batch: `cams[3]` is a batch of one."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Cameras(
            K=self.K[index],
            c2w=self.c2w[index],
            width=self.width,
            height=self.height,
            times=self.times[index],
        )

    def to(self, device: torch.device | str) -> Cameras:
        return Cameras(
            self.K.to(device), self.c2w.to(device), self.width, self.height, self.times.to(device)
        )

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    def with_times(self, times: Tensor | Sequence) -> Cameras:
        return Cameras(self.K, self.c2w, self.width, self.height, _as_tensor(times))

    def digest(self) -> str:
        """SHA-256 (hex) of the intrinsics, poses, times (as float64) and image size: the same
        for the same cameras, whatever their dtype or device."""
        h = hashlib.sha256()
        for t in (self.K, self.c2w, self.times):
            h.update(t.detach().double().cpu().numpy().tobytes())
        h.update(f"{self.width}x{self.height}".encode())
        return h.hexdigest()

    # ----------------------------------------------------------------- derived values
    @property
    def w2c(self) -> Tensor:
        """(N, 4, 4) world-to-camera, computed in closed form (R^T, -R^T t)."""
        R, t = self.c2w[:, :3, :3], self.c2w[:, :3, 3:]
        w2c = torch.zeros_like(self.c2w)
        w2c[:, :3, :3] = R.transpose(1, 2)
        w2c[:, :3, 3:] = -R.transpose(1, 2) @ t
        w2c[:, 3, 3] = 1.0
        return w2c

    @property
    def centers(self) -> Tensor:
        """(N, 3) camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    @property
    def forward(self) -> Tensor:
        """(N, 3) viewing directions (+z camera axis) in world coordinates."""
        return self.c2w[:, :3, 2]

    @property
    def fx(self) -> Tensor:
        return self.K[:, 0, 0]

    @property
    def fy(self) -> Tensor:
        return self.K[:, 1, 1]

    def fov_deg(self, axis: str = "horizontal") -> Tensor:
        """(N,) full field of view in degrees along `axis` ("horizontal" or "vertical")."""
        span, f = (self.width, self.fx) if axis == "horizontal" else (self.height, self.fy)
        return torch.rad2deg(2 * torch.atan(0.5 * span / f))

    # ----------------------------------------------------------------- transforms
    def world_to_camera(self, points: Tensor) -> Tensor:
        """World points (P, 3) or (N, P, 3) -> camera-frame points (N, P, 3)."""
        w2c = self.w2c
        pts = points if points.ndim == 3 else points[None].expand(len(self), -1, -1)
        return pts @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]

    def camera_to_world(self, points: Tensor) -> Tensor:
        """Camera-frame points (N, P, 3) -> world points (N, P, 3)."""
        return points @ self.c2w[:, :3, :3].transpose(1, 2) + self.c2w[:, None, :3, 3]

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points (P, 3) or (N, P, 3) -> pixel coords (N, P, 2) and z-depth (N, P).

        Points behind the camera get z <= 0; their pixel coordinates are meaningless.
        """
        cam = self.world_to_camera(points)
        z = cam[..., 2]
        uvw = cam @ self.K.transpose(1, 2)
        uv = uvw[..., :2] / z.clamp_min(1e-12)[..., None]
        return uv, z

    def unproject(self, uv: Tensor, depth: Tensor, *, depth_kind: str = "z") -> Tensor:
        """Pixel coords (N, P, 2) and depth (N, P) -> world points (N, P, 3).

        depth_kind: "z" (distance along the optical axis) or "ray" (Euclidean distance from
        the camera centre).
        """
        rays = self.pixel_rays_camera(uv)
        if depth_kind == "z":
            cam = rays * depth[..., None]
        elif depth_kind == "ray":
            cam = torch.nn.functional.normalize(rays, dim=-1) * depth[..., None]
        else:
            raise ValueError(f"depth_kind must be 'z' or 'ray', got {depth_kind!r}")
        return self.camera_to_world(cam)

    def pixel_rays_camera(self, uv: Tensor) -> Tensor:
        """Pixel coords (N, P, 2) -> camera-frame ray directions with z = 1, (N, P, 3)."""
        fx, fy = self.K[:, None, 0, 0], self.K[:, None, 1, 1]
        cx, cy, s = self.K[:, None, 0, 2], self.K[:, None, 1, 2], self.K[:, None, 0, 1]
        y = (uv[..., 1] - cy) / fy
        x = (uv[..., 0] - cx - s * y) / fx
        return torch.stack([x, y, torch.ones_like(x)], dim=-1)

    def rays(self, *, offset: float = 0.5) -> tuple[Tensor, Tensor]:
        """World-space rays through every pixel.

        Returns origins (N, H, W, 3) and unit directions (N, H, W, 3).
        """
        uv = pixel_centers(self.width, self.height, offset=offset, device=self.device)
        uv = uv.reshape(1, -1, 2).expand(len(self), -1, -1)
        dirs = self.pixel_rays_camera(uv) @ self.c2w[:, :3, :3].transpose(1, 2)
        dirs = torch.nn.functional.normalize(dirs, dim=-1).reshape(
            len(self), self.height, self.width, 3
        )
        origins = self.centers[:, None, None, :].expand_as(dirs)
        return origins, dirs

    def relative_to(self, reference_c2w: Tensor) -> Cameras:
        """The same cameras expressed in the frame of `reference_c2w` (4, 4): c2w' = ref^-1 c2w."""
        ref_inv = torch.linalg.inv(reference_c2w.to(self.c2w))
        return Cameras(self.K, ref_inv @ self.c2w, self.width, self.height, self.times)

    def transform(self, world_transform: Tensor) -> Cameras:
        """Apply a rigid world transform (4, 4) to every pose: c2w' = T c2w."""
        return Cameras(
            self.K, world_transform.to(self.c2w) @ self.c2w, self.width, self.height, self.times
        )

    # ----------------------------------------------------------------- image-size changes
    def resize(self, width: int, height: int) -> Cameras:
        """Cameras for the same views resampled to width x height (fx, cx scale with width)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.clone()
        K[:, 0, :] *= sx
        K[:, 1, :] *= sy
        K[:, 2, :] = torch.tensor([0.0, 0.0, 1.0])
        return Cameras(K, self.c2w, width, height, self.times)

    def fit(self, width: int, height: int) -> Cameras:
        """Cameras for the image centre-cropped to the aspect of width x height, then resized to
        it (as `dreamjourney.io.images.fit_image` does to the image): no anisotropic stretch
        beyond the rounding of the crop to whole pixels."""
        if (width, height) == (self.width, self.height):
            return self
        left, top, cw, ch = centre_crop_box(self.width, self.height, width / height)
        return self.crop(left, top, cw, ch).resize(width, height)

    def crop(self, left: int, top: int, width: int, height: int) -> Cameras:
        """Cameras for the crop [left, left+width) x [top, top+height).

        Negative `left`/`top`, or a size past the border, pads instead: `crop(-m, -m, W+2m, H+2m)`
        is the same camera with an m-pixel margin all round (a wider field of view).
        """
        K = self.K.clone()
        K[:, 0, 2] -= left
        K[:, 1, 2] -= top
        return Cameras(K, self.c2w, width, height, self.times)

    def pad(self, margin: int) -> Cameras:
        """The same cameras with `margin` extra pixels on every side (wider field of view)."""
        return self.crop(-margin, -margin, self.width + 2 * margin, self.height + 2 * margin)
