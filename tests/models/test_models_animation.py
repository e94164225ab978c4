"""Animation backends on tiny image-to-video pipelines of the real architectures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamjourney.errors import InputError
from dreamjourney.io.images import to_uint8
from dreamjourney.models.animation import FAMILIES, I2VAnimator
from dreamjourney.models.protocols import Animator
from dreamjourney.models.video_common import pipeline_frames, valid_frame_count, working_size


def test_frame_and_size_rounding():
    assert [valid_frame_count(n, 4) for n in (1, 2, 5, 6, 9)] == [1, 5, 5, 9, 9]
    assert [valid_frame_count(n, 8) for n in (7, 9, 10)] == [9, 9, 17]
    assert working_size(48, 70, 16) == (48, 64) and working_size(5, 5, 32) == (32, 32)


def _spy(animator: I2VAnimator) -> dict:
    """Record the keyword arguments and the output of the animator's pipeline call."""
    pipe = animator._load()
    seen: dict = {}

    def spy(**kwargs):
        seen.update(kwargs)
        seen["output"] = type(pipe).__call__(pipe, **kwargs)
        return seen["output"]

    animator._pipe = spy
    spy.transformer = pipe.transformer
    return seen


@pytest.mark.parametrize(
    ("family", "model_size", "sampled"),
    [
        ("wan-i2v", (48, 32), 9),
        # learned positional embeddings: only its sample size and frame count, whatever is asked
        ("cogvideox-i2v", (64, 64), 17),
        ("ltx-i2v", (64, 32), 9),
    ],
)
def test_animate_tiny(tiny_model, family, model_size, sampled):
    animator = I2VAnimator(family, tiny_model(family), num_inference_steps=2, guidance_scale=1.0)
    assert isinstance(animator, Animator)
    seen = _spy(animator)
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
    assert (seen["height"], seen["width"], seen["num_frames"]) == (*model_size, sampled)
    # the model card's negative prompt by default
    assert seen["negative_prompt"] == FAMILIES[family].negative_prompt
    assert (seen["negative_prompt"] != "") == (family != "cogvideox-i2v")
    # at the model's own size the model gets the photo and the clip is its first 6 frames,
    # which move (not the photo held still)
    photo = torch.rand(3, *model_size)
    clip = animator.animate(photo, "x", 6, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(np.asarray(seen["image"]), to_uint8(photo))
    assert torch.equal(clip, pipeline_frames(seen["output"])[:6])
    assert (clip - photo).abs().amax() > 0.01 and (clip[1:] - clip[:1]).abs().amax() > 0.01


def test_fixed_length_animator_refuses_longer_clips(tiny_model):
    animator = I2VAnimator("cogvideox-i2v", tiny_model("cogvideox-i2v"), num_inference_steps=1)
    assert animator.max_frames() == 17
    assert I2VAnimator("wan-i2v", tiny_model("wan-i2v")).max_frames() is None
    with pytest.raises(InputError, match="generates exactly 17 frames, not 18") as info:
        animator.animate(torch.rand(3, 16, 16), "x", 18)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="runs only at 64x64"):
        I2VAnimator("cogvideox-i2v", tiny_model("cogvideox-i2v"), width=128).max_frames()


def test_flow_shift_sets_the_scheduler(tiny_model):
    animator = I2VAnimator("wan-i2v", tiny_model("wan-i2v"), flow_shift=5.0)
    scheduler = animator._load().scheduler
    assert scheduler.config.flow_shift == 5.0 and scheduler.config.use_flow_sigmas
    default = I2VAnimator("wan-i2v", tiny_model("wan-i2v"))._load().scheduler
    assert default.config.flow_shift == 3.0  # the checkpoint's own
    scheduler.set_timesteps(4)
    default.set_timesteps(4)
    assert torch.all(scheduler.sigmas[1:-1] > default.sigmas[1:-1])  # more time at high noise
    with pytest.raises(InputError, match="flow-matching scheduler"):
        I2VAnimator("cogvideox-i2v", tiny_model("cogvideox-i2v"), flow_shift=5.0)._load()


def test_wan_vae_and_image_encoder_stay_float32(tiny_model):
    from dreamjourney.models.weights import MemoryOptions

    animator = I2VAnimator(
        "wan-i2v",
        tiny_model("wan-i2v"),
        memory=MemoryOptions(dtype="bfloat16"),
        num_inference_steps=1,
        guidance_scale=1.0,
    )
    pipe = animator._load()
    assert pipe.vae.dtype == torch.float32 and pipe.image_encoder.dtype == torch.float32
    assert pipe.transformer.dtype == torch.bfloat16 and pipe.text_encoder.dtype == torch.bfloat16
    clip = animator.animate(torch.rand(3, 32, 32), "x", 2)
    assert clip.shape == (2, 3, 32, 32) and torch.isfinite(clip).all()
