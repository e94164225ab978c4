"""What the pipelines hand to real models: the complete view a segment continues from, depth
aligned in the space its estimator is right in, the photo's focal length from a metric depth
model, and clip lengths a fixed-length model cannot hold refused before any work."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamjourney.camera.formats import load_cameras
from dreamjourney.errors import InputError
from dreamjourney.io.images import load_image
from dreamjourney.io.video import read_video
from dreamjourney.models.depth import HeuristicDepth, disparity_to_depth
from dreamjourney.models.protocols import DepthResult
from dreamjourney.models.registry import build_backends
from dreamjourney.pipelines.anyview_geometry import temporally_consistent_depth
from dreamjourney.pipelines.journey import JourneyConfig, JourneyPipeline, fit_image
from dreamjourney.scene import align_depth
from helpers import small_journey_config

W, H = 64, 48


def _photo(path: Path) -> Path:
    a = np.zeros((H, W, 3), np.uint8)
    a[:] = [70, 150, 50]
    a[: H // 2] = [120, 170, 230]
    a[H // 2 - 8 : H // 2 + 4, 10:22] = [200, 50, 40]
    a[..., 1] += (np.arange(W) % 7 * 3).astype(np.uint8)[None]
    Image.fromarray(a).save(path)
    return path


def _config(**overrides) -> JourneyConfig:
    """`small_journey_config` with 3 frames a segment, 2 of them moving."""
    return small_journey_config(**{"frames_per_segment": 3, "motion_frames": 2, **overrides})


class _RecordingCompleter:
    """The offline completer, recording the start view it is given."""

    def __init__(self, inner):
        self.inner = inner
        self.views: list[torch.Tensor] = []

    def complete(self, frames, masks, *, prompt="", context=None, generator=None, progress=None):
        self.views.append(context.start_view.clone())
        return self.inner.complete(frames, masks, context=context, generator=generator)


class _DimmingAnimator:
    """Stage II without a model: the view darkens a little frame by frame."""

    def animate(self, image, prompt, num_frames, *, generator=None, progress=None):
        fade = 1 - 0.1 * torch.arange(num_frames).float() / max(num_frames - 1, 1)
        return image[None] * fade[:, None, None, None]


def test_each_segment_is_conditioned_on_the_view_it_continues_from(tmp_path):
    image = _photo(tmp_path / "photo.png")
    backends = build_backends("offline")
    recorder = _RecordingCompleter(backends.completer)
    backends.completer = recorder
    backends.animator = _DimmingAnimator()
    pipe = JourneyPipeline(backends)
    result = pipe(image, tmp_path / "run", config=_config(), num_segments=2, seed=1)
    assert len(recorder.views) == 2
    # segment 0 continues from the photo, complete ...
    assert torch.equal(recorder.views[0], fit_image(load_image(image), W, H))
    # ... segment 1 from the last frame the video shows before it: segment 0's last animated
    # frame, as decoded from disk (so a resumed run sees the same pixels)
    animated, _ = read_video(result.run.segment_dir(0) / "animated.mp4")
    assert torch.equal(recorder.views[1], animated[-1])
    video, _ = read_video(result.run.video_path)
    assert (recorder.views[1] - video[3 + 2 - 1]).abs().mean() < 0.02

    # an interrupted run resumed later gives its completer the same view
    again = JourneyPipeline(build_backends("offline"))
    second = _RecordingCompleter(again.backends.completer)
    again.backends.completer = second
    again.backends.animator = _DimmingAnimator()
    again(image, tmp_path / "resumed", config=_config(), num_segments=1, seed=1)
    again(image, tmp_path / "resumed", config=_config(), extend=1, seed=1)
    assert torch.equal(second.views[1], recorder.views[1])


class _AffineDisparityDepth:
    """A perfect relative depth model: the true disparity 2 / z + 0.7, as Depth Anything V2
    gives it (up to scale and shift), turned into depth by the Depth Anything backend's own
    `disparity_to_depth`."""

    def __init__(self, z: torch.Tensor):
        self.z = z

    def estimate(self, image: torch.Tensor) -> DepthResult:
        depth = disparity_to_depth(2.0 / self.z + 0.7)
        return DepthResult(depth=depth, metric=False, space="disparity")


def _slanted_ground() -> torch.Tensor:
    """(H, W) true z-depth of a slanted plane seen from a camera: 1.5 (bottom) to 8 (top)."""
    v = torch.linspace(0, 1, H)[:, None].expand(H, W)
    u = torch.linspace(0, 1, W)[None].expand(H, W)
    return 1.0 / (1 / 8 + (1 / 1.5 - 1 / 8) * v + 0.05 * u)


def test_relative_depth_is_aligned_in_disparity_space():
    z = _slanted_ground()
    known = torch.zeros(H, W, dtype=torch.bool)
    known[:, : W // 2] = True  # what the world already holds; the right half is newly revealed
    target = torch.where(known, z, torch.zeros(()))
    backends = build_backends("offline")
    backends.depth = _AffineDisparityDepth(z)
    pipe = JourneyPipeline(backends)
    aligned = pipe._aligned_depth(torch.rand(3, H, W), target, known)
    revealed = ~known
    error = ((aligned - z).abs() / z)[revealed].mean()
    assert error < 1e-3
    # a scale and shift in depth cannot undo an affine map of 1 / depth: that fit is far off
    depth_fit = align_depth(disparity_to_depth(2.0 / z + 0.7), target, known).aligned
    assert ((depth_fit - z).abs() / z)[revealed].mean() > 0.05


def test_anyview_depth_over_time_is_aligned_in_disparity_space():
    z = _slanted_ground()
    frames = torch.rand(1, 3, H, W).expand(3, -1, -1, -1).clone()  # a static scene
    # each frame's estimate: its own affine map of the disparity, as Depth Anything gives it
    depths = torch.stack(
        [disparity_to_depth(a / z + b) for a, b in [(2.0, 0.7), (0.5, 0.1), (3.0, 2.0)]]
    )
    aligned = temporally_consistent_depth(depths, frames, space="disparity")
    for t in range(3):
        torch.testing.assert_close(aligned[t], depths[0], rtol=1e-4, atol=1e-4)


class _FocalDepth:
    """Pop-up depth with a focal length, as Depth Pro gives one (40 px for a 64 px wide image)."""

    def estimate(self, image: torch.Tensor) -> DepthResult:
        depth = HeuristicDepth().estimate(image).depth
        return DepthResult(depth=depth, metric=True, focal_px=40.0)


@pytest.mark.parametrize(("fov", "focal"), [(None, 40.0), (50.0, 32 / math.tan(math.radians(25)))])
def test_photo_camera_takes_the_depth_models_focal_length_unless_a_fov_is_given(
    tmp_path, fov, focal
):
    image = _photo(tmp_path / "photo.png")
    backends = build_backends("offline")
    backends.depth = _FocalDepth()
    result = JourneyPipeline(backends)(
        image, tmp_path / "run", config=_config(fov_deg=fov), num_segments=2
    )
    cameras = load_cameras(result.run.cameras_path)
    assert torch.allclose(cameras.K[:, 0, 0], torch.tensor(focal), rtol=1e-5)
    expected_fov = math.degrees(2 * math.atan(32 / focal))
    assert result.run.manifest.fov_deg == pytest.approx(expected_fov)


class _FixedLength:
    """A backend whose model holds a fixed number of frames; it must never be run."""

    model_id = "fixed/model"

    def __init__(self, limit: int):
        self.limit = limit

    def max_frames(self) -> int:
        return self.limit

    def complete(self, *args, **kwargs):
        raise AssertionError("ran")

    def animate(self, *args, **kwargs):
        raise AssertionError("ran")


@pytest.mark.parametrize(
    ("role", "overrides", "flag", "message"),
    [
        ("completer", {"frames_per_segment": 9}, "--frames", "at most 8 here, not 9"),
        ("animator", {"motion_frames": 8}, "--motion-frames", "at most 7 here, not 8"),
    ],
)
def test_clips_a_fixed_length_model_cannot_hold_are_refused_before_any_work(
    tmp_path, role, overrides, flag, message
):
    image = _photo(tmp_path / "photo.png")
    backends = build_backends("offline")
    setattr(backends, role, _FixedLength(8))
    if role == "completer":
        backends.animator = None
    with pytest.raises(InputError, match=message) as info:
        JourneyPipeline(backends)(image, tmp_path / "run", config=_config(**overrides))
    assert info.value.field == flag and "fixed/model" in str(info.value)
    assert not (tmp_path / "run").exists()
