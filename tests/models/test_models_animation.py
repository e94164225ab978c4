"""Animation backends on tiny image-to-video pipelines."""

from __future__ import annotations

import pytest
import torch

from dreamjourney.models.animation import I2VAnimator
from dreamjourney.models.protocols import Animator
from dreamjourney.models.video_common import valid_frame_count, working_size


def test_frame_and_size_rounding():
    assert [valid_frame_count(n, 4) for n in (1, 2, 5, 6, 9)] == [1, 5, 5, 9, 9]
    assert [valid_frame_count(n, 8) for n in (7, 9, 10)] == [9, 9, 17]
    assert working_size(48, 70, 16) == (48, 64) and working_size(5, 5, 32) == (32, 32)


@pytest.mark.parametrize("family", ["wan-i2v", "cogvideox-i2v", "ltx-i2v"])
def test_animate_tiny(tiny_model, family):
    animator = I2VAnimator(family, tiny_model(family), num_inference_steps=2, guidance_scale=1.0)
    assert isinstance(animator, Animator)
    image = torch.rand(3, 48, 40)  # not a multiple of the models' sizes: resized and back
    steps = []
    clip = animator.animate(
        image,
        "clouds drift",
        6,
        generator=torch.Generator().manual_seed(0),
        progress=lambda i, n: steps.append((i, n)),
    )
    assert clip.shape == (6, 3, 48, 40) and clip.dtype == torch.float32
    assert torch.isfinite(clip).all() and clip.min() >= 0 and clip.max() <= 1
    assert steps == [(1, 2), (2, 2)]
