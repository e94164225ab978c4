"""Smooth camera paths through keyframes; joining and continuing paths.

Keyframes are `Cameras` whose `times` (seconds, strictly increasing) place them on the path.
Between them, camera centres follow a natural cubic spline (C2), rotations a cubic rotation
spline (`scipy.spatial.transform.RotationSpline`, continuous angular velocity; with two keys it
is a slerp), and K is interpolated linearly. Poses are OpenCV c2w throughout.

The keyframe *file* (`dreamjourney.keyframes/1`) is read by `dreamjourney.camera.formats`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, RotationSpline

from dreamjourney.camera.cameras import Cameras

_ARC_SAMPLES = 64  # arc-length samples per output frame for constant-speed reparametrisation


def interpolate_path(
    keys: Cameras,
    num_frames: int,
    *,
    constant_speed: bool = False,
) -> Cameras:
    """`num_frames` cameras through the keyframes `keys`, from the first to the last.

    Args:
        keys: (K >= 2) keyframes; `keys.times` must be strictly increasing. The path is
            computed on the CPU and returned on keys' device.
        num_frames: output frames, evenly spaced in time over [first, last] key time.
        constant_speed: move the camera centre at a constant speed along the same curve (the
            keys are then passed at other times); a path that only rotates keeps its timing.
    Returns:
        Cameras (num_frames,), times evenly spaced from the first to the last key time.
    """
    if len(keys) < 2:
        raise ValueError("interpolate_path needs at least two keyframes")
    tau = _key_times(keys)
    times = np.linspace(tau[0], tau[-1], num_frames)
    if not constant_speed:
        return sample_path(keys, torch.from_numpy(times))
    position = CubicSpline(tau, keys.c2w.double().cpu().numpy()[:, :3, 3], bc_type="natural")
    query = torch.from_numpy(_constant_speed_times(position, times))
    return sample_path(keys, query).with_times(torch.from_numpy(times).float().to(keys.device))


def sample_path(keys: Cameras, times: torch.Tensor) -> Cameras:
    """The smooth path through the keyframes `keys` (as `interpolate_path` lays it) at `times`
    (seconds, any order; held at the first and last key outside their range).

    Args:
        keys: (K >= 2) keyframes with strictly increasing times.
        times: (N,) query times.
    Returns:
        Cameras (N,) at `times`, on keys' device.
    """
    device = keys.device
    keys = keys.to("cpu")
    tau = _key_times(keys)
    c2w = keys.c2w.double().numpy()
    position = CubicSpline(tau, c2w[:, :3, 3], bc_type="natural")
    rotation = RotationSpline(tau, Rotation.from_matrix(c2w[:, :3, :3]))
    query = np.clip(times.double().cpu().numpy(), tau[0], tau[-1])
    out = np.zeros((len(query), 4, 4))
    out[:, :3, :3] = rotation(query).as_matrix()
    out[:, :3, 3] = position(query)
    out[:, 3, 3] = 1.0
    K = keys.K.double().numpy().reshape(len(keys), 9)
    K_out = np.stack([np.interp(query, tau, K[:, j]) for j in range(9)], axis=-1)
    return Cameras(
        torch.from_numpy(K_out.reshape(-1, 3, 3)).float(),
        torch.from_numpy(out).float(),
        keys.width,
        keys.height,
        times.float().cpu(),
    ).to(device)


def _key_times(keys: Cameras) -> np.ndarray:
    tau = keys.times.double().cpu().numpy()
    if not np.all(np.diff(tau) > 0):
        raise ValueError("keyframe times must be strictly increasing")
    return tau


def _constant_speed_times(position: CubicSpline, times: np.ndarray) -> np.ndarray:
    """Key-time parameters at which the centre has covered equal arc lengths."""
    dense = np.linspace(times[0], times[-1], _ARC_SAMPLES * len(times))
    pts = position(dense)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    if arc[-1] <= 1e-9 * max(1.0, float(np.abs(pts).max())):
        return times
    return np.interp(np.linspace(0.0, arc[-1], len(times)), arc, dense)


def resample_path(cameras: Cameras, num_frames: int, *, constant_speed: bool = False) -> Cameras:
    """The same path with `num_frames` cameras, evenly spaced from its first to its last camera.

    The cameras are taken as keyframes at their times when those strictly increase, else at
    their indices; output times run evenly from the first to the last camera's time.
    """
    if len(cameras) == 1:
        return Cameras(
            cameras.K.expand(num_frames, 3, 3).clone(),
            cameras.c2w.expand(num_frames, 4, 4).clone(),
            cameras.width,
            cameras.height,
            cameras.times.expand(num_frames).clone(),
        )
    times = cameras.times
    timed = bool((times[1:] > times[:-1]).all())
    index = torch.arange(len(cameras), dtype=torch.float32, device=cameras.device)
    keys = cameras if timed else cameras.with_times(index)
    out = interpolate_path(keys, num_frames, constant_speed=constant_speed)
    if timed:
        return out
    return out.with_times(
        torch.linspace(float(times[0]), float(times[-1]), num_frames, device=cameras.device)
    )


def continue_path(path: Cameras, start: Cameras) -> Cameras:
    """`path` moved rigidly so that its first camera sits at `start`'s last pose and time.

    c2w'_i = c2w_start @ inv(c2w_0) @ c2w_i; times shift so frame 0 is at start's time.
    """
    anchor = start.c2w[-1].double() @ torch.linalg.inv(path.c2w[0].double())
    c2w = (anchor @ path.c2w.double()).float()
    c2w[0] = start.c2w[-1]
    times = path.times - path.times[0] + start.times[-1]
    return Cameras(path.K, c2w, path.width, path.height, times)


def concat_paths(paths: Sequence[Cameras], *, fps: float = 24.0) -> Cameras:
    """Fly the paths one after another: each continues from the previous one's last camera.

    Every later path is moved rigidly onto the end of the one before (`continue_path`) and its
    first camera, now a duplicate of that end, is dropped; times run on at 1/fps per frame.
    """
    if not paths:
        raise ValueError("concat_paths needs at least one path")
    joined = [paths[0]]
    for path in paths[1:]:
        moved = continue_path(path, joined[-1])
        if len(moved) > 1:
            joined.append(moved[1:])
    out = Cameras.cat(joined)
    t0 = float(paths[0].times[0])
    return out.with_times(t0 + torch.arange(len(out), dtype=torch.float64).float() / fps)


def resample_to_clip(cameras: Cameras, times: torch.Tensor) -> tuple[Cameras, str]:
    """A camera file's path at the frames of a clip, which are at `times` (N,) seconds.

    With as many cameras as frames they are taken one per frame. Otherwise, when the cameras'
    times strictly increase and cover the clip's duration, each frame gets the camera at its own
    moment (both clocks counted from their first frame); else the path is resampled by index,
    evenly from its first to its last camera. K and the image size are the file's.

    Returns:
        The cameras, stamped with `times`, and how they were taken: "one per frame", "on time"
        or "by index".
    """
    n = len(times)
    if len(cameras) == n:
        return cameras.with_times(times), "one per frame"
    t = cameras.times
    timed = len(cameras) > 1 and bool((t[1:] > t[:-1]).all())
    covers = timed and float(t[-1] - t[0]) >= float(times[-1] - times[0]) * (1 - 1e-6)
    if covers:
        return sample_path(cameras, t[0] + (times - times[0])).with_times(times), "on time"
    return resample_path(cameras, n).with_times(times), "by index"
