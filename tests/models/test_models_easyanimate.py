"""The `easyanimate` preset: EasyAnimate V5.1 InP as stage I completer and stage II animator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dreamjourney.models import realconfigs
from dreamjourney.models.easyanimate import EasyAnimateAnimator, EasyAnimateCompleter
from dreamjourney.models.protocols import Animator, Completer
from dreamjourney.models.registry import build_backends
from dreamjourney.pipelines.journey import JourneyConfig, JourneyPipeline

REAL = "alibaba-pai/EasyAnimateV5.1-12b-zh-InP-diffusers"


class _Recorder:
    """Stands in for a pipeline: records each call's keyword arguments, then runs it."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.pipe(**kwargs)


def _spy(backend) -> list[dict]:
    recorder = _Recorder(backend._load())
    backend.store.provide(("EasyAnimateInpaintPipeline", backend.model_id), recorder)
    return recorder.calls


@pytest.fixture
def easyanimate(tiny_model):
    backends = build_backends(
        "easyanimate",
        config={
            "completer": {"model": tiny_model("easyanimate"), "num_inference_steps": 2},
            "animator": {"model": tiny_model("easyanimate"), "num_inference_steps": 2},
        },
    )
    return backends


def test_completer_gives_the_pipeline_the_clip_and_its_holes(easyanimate, masked_clip):
    frames, masks = masked_clip
    frames, masks = frames[:6, :, :60, :52], masks[:6, :60, :52]  # 6 frames, 52x60: rounded
    completer = easyanimate.completer
    assert isinstance(completer, EasyAnimateCompleter) and isinstance(completer, Completer)
    calls = _spy(completer)
    out = completer.complete(frames, masks, prompt="a tree")
    assert out.shape == frames.shape
    keep = masks[:, None].expand_as(frames)
    assert torch.equal(out[keep], frames[keep])
    (call,) = calls
    assert call["num_frames"] == 9 and (call["height"], call["width"]) == (64, 48)
    video, mask = call["video"], call["mask_video"]
    assert video.shape == (1, 3, 9, 64, 48) and mask.shape == (1, 1, 9, 64, 48)
    assert 0 <= float(video.min()) and float(video.max()) <= 1  # the pipeline normalises
    assert set(mask.unique().tolist()) == {0.0, 255.0}  # white = generate
    assert torch.equal(mask[0, 0, 0] == 0, torch.ones(64, 48, dtype=torch.bool))  # frame 0 known
    assert bool((mask[0, 0, 5:] == 255).any()) and torch.equal(mask[0, 0, 6], mask[0, 0, 5])


def test_animator_keeps_the_view_as_frame_zero(easyanimate):
    animator = easyanimate.animator
    assert isinstance(animator, EasyAnimateAnimator) and isinstance(animator, Animator)
    calls = _spy(animator)
    image = torch.rand(3, 32, 48)
    out = animator.animate(image, "leaves sway", 6)
    assert out.shape == (6, 3, 32, 48) and torch.equal(out[0], image)
    (call,) = calls
    assert call["num_frames"] == 9
    mask = call["mask_video"][0, 0]
    assert bool((mask[0] == 0).all()) and bool((mask[1:] == 255).all())
    assert torch.equal(call["video"][0, :, 0], image)


def test_completer_and_animator_share_the_pipeline(easyanimate):
    assert easyanimate.completer._load() is easyanimate.animator._load()


def test_tiny_model_carries_the_real_structural_flags(tiny_model):
    pipe = EasyAnimateCompleter(tiny_model("easyanimate"))._load()
    real = realconfigs.component_config(REAL, "transformer")
    flags = (
        "add_norm_text_encoder",
        "resize_inpaint_mask_directly",
        "add_noise_in_inpaint_model",
        "enable_text_attention_mask",
        "time_position_encoding_type",
        "after_norm",
        "patch_size",
    )
    assert {f: pipe.transformer.config[f] for f in flags} == {f: real[f] for f in flags}
    # in-channels: latents + one resized mask channel + masked-video latents, as in V5.1 InP
    latent = pipe.vae.config.latent_channels
    assert pipe.transformer.config.in_channels == 2 * latent + 1
    assert real["in_channels"] == 2 * 16 + 1
    assert (
        pipe.vae.config.cache_mag_vae == realconfigs.component_config(REAL, "vae")["cache_mag_vae"]
    )
    assert (
        type(pipe.text_encoder).__name__
        == realconfigs.component_config(REAL, "text_encoder")["architectures"][0]
    )


def test_tiny_easyanimate_runs_a_journey_segment(tiny_model, tmp_path):
    """The preset end to end: depth, EasyAnimate completion, captioning, EasyAnimate animation."""
    easy = {"model": tiny_model("easyanimate"), "num_inference_steps": 2}
    backends = build_backends(
        "easyanimate",
        config={
            "depth": {"model": tiny_model("depth-anything")},
            "completer": easy,
            "animator": easy,
            "captioner": {"model": tiny_model("qwen2.5-vl"), "max_new_tokens": 4},
        },
    )
    photo = Path(__file__).resolve().parents[2] / "examples" / "garden.png"
    config = JourneyConfig(
        trajectory="pan-right", width=48, height=32, frames_per_segment=5, motion_frames=4
    )
    run = JourneyPipeline(backends)
    result = run(photo, tmp_path / "run", config=config, num_segments=1, seed=1)
    manifest = json.loads(result.run.manifest_path.read_text())
    assert [s["status"] for s in manifest["segments"]] == ["done"]
    assert result.num_frames == 5 + 4
    assert manifest["backends"]["roles"]["animator"]["name"] == "easyanimate-i2v"
