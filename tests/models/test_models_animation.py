"""Animation backends on tiny image-to-video pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamjourney.io.images import to_uint8
from dreamjourney.models.animation import I2VAnimator
from dreamjourney.models.protocols import Animator
from dreamjourney.models.video_common import pipeline_frames, valid_frame_count, working_size


def test_frame_and_size_rounding():
    assert [valid_frame_count(n, 4) for n in (1, 2, 5, 6, 9)] == [1, 5, 5, 9, 9]
    assert [valid_frame_count(n, 8) for n in (7, 9, 10)] == [9, 9, 17]
    assert working_size(48, 70, 16) == (48, 64) and working_size(5, 5, 32) == (32, 32)


@pytest.mark.parametrize(
    ("family", "size", "sampled"),
    [("wan-i2v", 16, 9), ("cogvideox-i2v", 16, 9), ("ltx-i2v", 32, 9)],
)
def test_animate_tiny(tiny_model, family, size, sampled):
    animator = I2VAnimator(family, tiny_model(family), num_inference_steps=2, guidance_scale=1.0)
    assert isinstance(animator, Animator)
    pipe = animator._load()
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        seen["output"] = type(pipe).__call__(pipe, **kwargs)
        return seen["output"]

    animator._pipe = spy
    image = torch.rand(3, 2 * size, size)  # the model's own size: no resizing
    steps = []
    clip = animator.animate(
        image,
        "clouds drift",
        6,
        generator=torch.Generator().manual_seed(0),
        progress=lambda i, n: steps.append((i, n)),
    )
    assert steps == [(1, 2), (2, 2)]
    # the model got the photo, the prompt and a frame count its VAE takes ...
    assert seen["prompt"] == "clouds drift" and seen["num_frames"] == sampled
    assert (seen["height"], seen["width"]) == (2 * size, size)
    assert np.array_equal(np.asarray(seen["image"]), to_uint8(image))
    # ... and the clip is its first 6 frames, which move (not the photo held still)
    made = pipeline_frames(seen["output"])
    assert clip.dtype == torch.float32 and torch.equal(clip, made[:6])
    assert (clip[1:] - clip[:1]).abs().amax() > 0.01 and (clip - image).abs().amax() > 0.01
    # any other size is worked at the model's multiple and resized back
    other = animator.animate(torch.rand(3, 48, 40), "x", 6, generator=torch.Generator())
    assert other.shape == (6, 3, 48, 40) and seen["height"] % size == seen["width"] % size == 0
    assert other.min() >= 0 and other.max() <= 1
