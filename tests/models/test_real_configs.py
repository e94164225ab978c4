"""The real presets' backends, built from the published configs, run through their calls on meta.

No weights and no memory: every model is built on torch's meta device from the configs kept in
`dreamjourney/models/configs` and called at its preset's native size and frame counts
(`registry.NATIVE`; the completer gets a segment and its start view, as the journey calls it),
so shape, dtype and config errors (issue 11 items 1-2) fail here, for `wan`, `wan-guided`,
`cogvideox` and `easyanimate`. CPU work on real values (resizing, the Telea pre-fill, image
processors, tokenizers) runs for real. What the meta device cannot do is give a tensor's
value back to Python; each such read gets a fixed answer (`metarun.ANSWERS`) and must be one
of `KNOWN_ANSWERS`, which the tiny-model tests run with real numbers instead:

* `cpu` of the decoded clip (zeros come back): every backend's tiny test checks its output
  frames (e.g. known pixels kept) - test_models_completion, _guided, _animation, _easyanimate.
* `item` in a scheduler's step index lookup: every tiny run steps the real scheduler.
* `__bool__` / `__float__` in the guided sampler (the zero-gradient test of the guidance step,
  the trace's latent error): test_models_guided's guidance-step tests.
* `__bool__` / `tolist` in text generation (the stop test, the answer ids): the captioner's
  tiny end-to-end test.
* `torch.nonzero` and boolean-mask indexing of an unknown tensor assume every element is set.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
import torch

from dreamjourney.camera import Cameras
from dreamjourney.models import realconfigs
from dreamjourney.models.memory import compute_parameters, parameters
from dreamjourney.models.metarun import meta_mode, meta_part, provide_meta_models
from dreamjourney.models.protocols import CompletionContext
from dreamjourney.models.registry import NATIVE, Backends, build_backends

KNOWN_ANSWERS = re.compile(
    r"^(cpu at models/(vace|animation|guided|easyanimate|depth|video_common)\.py"  # the result's copy home
    r"|item at schedulers/scheduling_\w+\.py"  # the scheduler's step index lookup
    r"|__float__ at models/guided\.py"  # the trace's latent error
    r"|__bool__ at models/guided\.py"  # the guidance step's zero-gradient test
    r"|__bool__ at generation/utils\.py"  # the captioner's stop test
    r"|tolist at utils/generic\.py"  # the captioner's answer ids
    r"):\d+$"
)


@cache
def meta_backends(preset: str, **overrides: Any) -> Backends:
    config = {role: dict(options) for role, options in overrides.items()}
    backends = build_backends(preset, config=config, device="meta")
    provide_meta_models(backends)
    for role in ("completer", "animator"):
        backend = getattr(backends, role)
        backend.num_inference_steps = 1  # every step has the same shapes
        if hasattr(backend, "guidance_steps"):
            backend.guidance_steps = 1
    return backends


def clip(preset: str, frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A segment of the preset's native size and stage I frame count (or `frames`) with a hole,
    as expanded scalars (no memory)."""
    regime = NATIVE[preset]
    width, height = regime.size
    count = regime.frames if frames is None else frames
    video = torch.full((1, 1, 1, 1), 0.5).expand(count, 3, height, width)
    masks = torch.ones(count, height, width, dtype=torch.bool)
    masks[1:, :, width // 2 :] = False
    return video, masks


def complete(backends: Backends, preset: str) -> Any:
    """The completer's call as the journey makes it: a segment and the view it continues from."""
    frames, masks = clip(preset)
    width, height = NATIVE[preset].size
    poses = torch.eye(4).repeat(len(frames), 1, 1)
    cameras = Cameras.create(poses, width=width, height=height, fov_deg=60.0)
    context = CompletionContext(cameras=cameras, start_view=frames[0])
    out, _ = run(
        lambda: backends.completer.complete(frames, masks, prompt="a tree", context=context)
    )
    assert out.shape == frames.shape
    return out


def run(call: Any) -> tuple[Any, dict[str, int]]:
    with meta_mode() as mode:
        out = call()
    unknown = [where for where in mode.answered if not KNOWN_ANSWERS.match(where)]
    assert not unknown, f"new reads of meta values, check what they decide: {unknown}"
    return out, mode.answered


def transformer_inputs(backends: Backends, role: str) -> list[torch.Size]:
    """Record the latent shapes the role's transformer is called with."""
    model = getattr(backends, role).model_id
    entry = realconfigs.catalogue()[model]
    transformer = backends.store.get((entry["pipeline"], model), lambda: None).transformer
    seen: list[torch.Size] = []
    transformer._forward_pre_hooks.clear()
    transformer.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append((args[0] if args else kwargs["hidden_states"]).shape),
        with_kwargs=True,
    )
    return seen


def cogvideox_native(shape: torch.Size) -> bool:
    """CogVideoX-5b-I2V's learned positional embedding holds 13 x 60 x 90 latents only."""
    config = realconfigs.component_config("THUDM/CogVideoX-5b-I2V", "transformer")
    frames = (config["sample_frames"] - 1) // 4 + 1
    return tuple(shape[1:2]) + tuple(shape[-2:]) == (
        frames,
        config["sample_height"],
        config["sample_width"],
    )


@pytest.mark.parametrize("preset", list(NATIVE))
def test_completer_runs_the_real_config_at_native_size(preset):
    backends = meta_backends(preset)
    seen = transformer_inputs(backends, "completer")
    complete(backends, preset)
    assert seen
    if preset == "cogvideox":  # issue 11 item 1: its learned positions fit one grid only
        assert all(cogvideox_native(shape) for shape in seen), seen


@pytest.mark.parametrize("preset", list(NATIVE))
def test_animator_runs_the_real_config_at_native_size(preset):
    backends = meta_backends(preset)
    frames, _ = clip(preset, NATIVE[preset].motion_frames + 1)
    seen = transformer_inputs(backends, "animator")
    out, _ = run(lambda: backends.animator.animate(frames[0], "a tree", len(frames)))
    assert out.shape == frames.shape
    assert seen
    if preset == "cogvideox":
        assert all(cogvideox_native(shape) for shape in seen), seen


@pytest.mark.parametrize("preset", ["wan", "wan-guided"])  # Qwen2.5-VL 7B and 3B
def test_depth_and_captioner_run_the_real_configs(preset):
    backends = meta_backends(preset)
    frames, _ = clip(preset)
    depth, _ = run(lambda: backends.depth.estimate(frames[0]))
    assert depth.depth.shape == frames.shape[-2:]
    with pytest.warns(UserWarning, match="captioner answer unusable"):  # its answer is zeros
        caption, _ = run(lambda: backends.captioner.caption(frames[0]))
    assert caption.fallback


def test_guided_first_last_frame_runs_the_real_flf2v_config():
    """Issue 11 item 2: the real FLF2V image embedder joins the two frames' tokens itself."""
    backends = meta_backends(
        "wan-guided",
        completer=(
            ("model", "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers"),
            ("condition_last_frame", True),
        ),
    )
    seen = transformer_inputs(backends, "completer")
    complete(backends, "wan-guided")
    assert seen


def test_parameter_table_matches_the_published_configs():
    def build(model: str, component: str) -> torch.nn.Module:
        return meta_part(model, component, torch.bfloat16)  # the meta checks' builds

    assert compute_parameters(build) == parameters()


def test_pipelines_of_one_text_encoder_config_share_its_build():
    """As `ModelStore` shares identical text encoder files: `gpu_check` holds one UMT5-XXL."""
    backends = meta_backends("wan")
    completer, animator = (
        backends.store.get((realconfigs.catalogue()[b.model_id]["pipeline"], b.model_id), list)
        for b in (backends.completer, backends.animator)
    )
    assert completer is not animator and completer.text_encoder is animator.text_encoder
