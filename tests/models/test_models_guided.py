"""The guided completer (DreamJourney's stage I sampler) on tiny models of the real architectures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dreamjourney.camera import Cameras
from dreamjourney.errors import InputError
from dreamjourney.io.images import to_uint8
from dreamjourney.models.guided import GuidedCompleter, guidance_step
from dreamjourney.models.protocols import CompletionContext
from dreamjourney.models.video_common import WAN_NEGATIVE_PROMPT, pad_clip, telea_fill


def _known_equal(out: torch.Tensor, frames: torch.Tensor, masks: torch.Tensor) -> bool:
    keep = masks[:, None].expand_as(frames)
    return bool(torch.equal(out[keep], frames[keep]))


@pytest.fixture(scope="module")
def wan_guided(tiny_model) -> GuidedCompleter:
    """One guided completer on the tiny Wan I2V, loaded once; tests set its parameters."""
    completer = GuidedCompleter(tiny_model("wan-i2v"), cfg_scale=1.0)
    completer._load()
    return completer


def _configure(completer: GuidedCompleter, **kw) -> GuidedCompleter:
    defaults = dict(
        num_inference_steps=4,
        guidance_steps=3,
        lr=2.0,
        resample_rounds=1,
        view_padding=True,
        cfg_scale=1.0,
    )
    for key, value in {**defaults, **kw}.items():
        setattr(completer, key, value)
    return completer


def _small(masked_clip, frames_in: int = 9, size: int = 32):
    frames, masks = masked_clip
    return frames[:frames_in, :, :size, :size], masks[:frames_in, :size, :size]


def _context(start: torch.Tensor, frames: int) -> CompletionContext:
    h, w = start.shape[-2:]
    cameras = Cameras.create(torch.eye(4).repeat(frames, 1, 1), width=w, height=h, fov_deg=60.0)
    return CompletionContext(cameras=cameras, start_view=start)


# ---------------------------------------------------------------- the guidance step itself


def test_guidance_step_is_the_official_form():
    g = torch.Generator().manual_seed(0)
    x, x0, target = (torch.randn(1, 4, 3, 4, 4, generator=g) for _ in range(3))
    mask = (torch.rand(1, 1, 3, 4, 4, generator=g) > 0.5).float().expand_as(x)
    sigma, lr = 0.6, 0.025
    moved = guidance_step(x, x0, target, mask, sigma, lr)
    grad = mask * (x0 - target)
    # std over the whole gradient (zeros of unknown cells included); the official sampler's
    # lr * sqrt(sigma_ve) on x_ve = x0 + sigma_ve * eps is lr * sqrt(s (1 - s)) on x_s
    sigma_ve = sigma / (1 - sigma)
    step = lr * math.sqrt(sigma_ve) / (1 + sigma_ve)
    torch.testing.assert_close(moved, x - step * grad / grad.std())
    assert step == pytest.approx(lr * math.sqrt(sigma * (1 - sigma)))
    # applied to x_t: unknown cells keep their value exactly
    assert torch.equal(moved[mask == 0], x[mask == 0])
    # nothing to pull toward: no move
    assert torch.equal(guidance_step(x, target, target, mask, sigma, lr), x)


@pytest.mark.parametrize("share_known", [0.25, 0.5, 0.9])
def test_guidance_step_stays_bounded_for_a_near_uniform_offset(share_known):
    # the blurry x0 of early steps or a colour drift: x0 = z_known + 0.3 (+- 0.01) on known cells
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 16, 5, 8, 8, generator=g)
    x = torch.randn(1, 16, 5, 8, 8, generator=g)
    cells = torch.rand(1, 1, 5, 8, 8, generator=g) < share_known
    mask = cells.float().expand_as(z)
    x0 = z + 0.3 + 0.01 * torch.randn(z.shape, generator=g)
    sigma, lr = 0.5, 0.025
    moved = guidance_step(x, x0, z, mask, sigma, lr)
    share = float(mask.mean())
    # the move is lr*sqrt(s(1-s)) times about 1/sqrt(share(1-share)) latent std, whatever the
    # spread of the offset; normalising by the std over known cells only moved it ~15 std
    bound = 1.2 * lr * math.sqrt(sigma * (1 - sigma)) / math.sqrt(share * (1 - share))
    assert (moved - x).abs().max() <= bound
    assert (moved - x).abs().max() < 0.1
    assert torch.all((moved - x)[mask.bool()] < 0)  # toward z, which is 0.3 below x0


# ---------------------------------------------------------------- the sampler on tiny Wan I2V


def test_guided_pulls_known_regions_toward_the_input(wan_guided, masked_clip):
    frames, masks = masked_clip  # 9 frames, 64x64
    results = {}
    for lr in (0.0, 2.0):
        completer = _configure(wan_guided, lr=lr)
        out = completer.complete(frames, masks, generator=torch.Generator().manual_seed(3))
        assert _known_equal(out, frames, masks)
        results[lr] = completer.last_trace
    off, on = results[0.0], results[2.0]
    # in latent space, known cells end up much closer to the encoded input ...
    assert on.latent_error < 0.5 * off.latent_error
    # ... and so does the decoded clip, compared with the VAE's own reconstruction of the input
    adapter = wan_guided._load()
    with torch.no_grad():
        padded = torch.cat([frames[:1]] * 4 + [frames] + [frames[-1:]] * 4)
        recon = adapter.decode(adapter.encode(padded))[4:13]
    keep = masks[:, None].expand_as(frames)
    err = {k: float(((t.raw - recon)[keep] ** 2).mean()) for k, t in results.items()}
    assert err[2.0] < err[0.0]


def test_guided_moves_x_t_then_evaluates_the_model_again(wan_guided, masked_clip):
    frames, masks = _small(masked_clip)
    completer = _configure(wan_guided, num_inference_steps=3, guidance_steps=1, resample_rounds=0)
    adapter = completer._load()
    calls = []
    original = adapter.predict_x0

    def spy(x, i):
        x0 = original(x, i)
        calls.append((i, x.clone(), x0.clone()))
        return x0

    adapter.predict_x0 = spy
    try:
        completer.complete(frames, masks, generator=torch.Generator().manual_seed(0))
    finally:
        del adapter.predict_x0
    assert [i for i, _, _ in calls] == [0, 0, 1, 2]  # the guided step evaluates twice
    (_, x_a, x0_a), (_, x_b, _) = calls[:2]
    video, known = pad_clip(frames, masks, 4, 4)
    z = adapter.encode(telea_fill(video, known))
    cells = completer.known_cells(known, 4, 8)
    mask = adapter.cell_mask(cells, z)
    expected = guidance_step(x_a, x0_a, z, mask, float(adapter.sigmas[0]), completer.lr)
    torch.testing.assert_close(x_b, expected)
    assert not torch.equal(x_b, x_a)


def test_guided_early_stopping_and_resampling_schedule(wan_guided, masked_clip):
    frames, masks = _small(masked_clip)
    completer = _configure(wan_guided, num_inference_steps=5, guidance_steps=3, resample_rounds=2)
    progress = []
    completer.complete(
        frames,
        masks,
        generator=torch.Generator().manual_seed(0),
        progress=lambda i, n: progress.append((i, n)),
    )
    steps = completer.last_trace.steps
    assert [s.guided for s in steps] == [True, True, True, False, False]
    # a guided round evaluates the model twice (gradient, then the step at the moved x_t)
    assert [s.model_calls for s in steps] == [6, 6, 6, 1, 1]
    assert [s.sigma for s in steps] == sorted((s.sigma for s in steps), reverse=True)
    assert progress == [(i, 5) for i in range(1, 6)]
    completer = _configure(
        wan_guided, num_inference_steps=3, guidance_steps=1, resample_rounds=1, cfg_scale=2.0
    )
    completer.complete(frames, masks, generator=torch.Generator().manual_seed(0))
    assert [s.model_calls for s in completer.last_trace.steps] == [8, 2, 2]


@pytest.mark.parametrize(
    ("frames_in", "padding", "sampled", "latent", "front", "back"),
    [
        (9, True, 17, 5, 4, 4),
        (9, False, 9, 3, 0, 0),
        (7, True, 17, 5, 4, 6),
        (6, False, 9, 3, 0, 3),
    ],
)
def test_guided_view_padding_frame_counts(
    wan_guided, masked_clip, frames_in, padding, sampled, latent, front, back
):
    frames, masks = _small(masked_clip, frames_in)
    completer = _configure(
        wan_guided, num_inference_steps=1, guidance_steps=1, resample_rounds=0, view_padding=padding
    )
    out = completer.complete(frames, masks, generator=torch.Generator().manual_seed(0))
    trace = completer.last_trace
    assert out.shape == frames.shape and trace.raw.shape == frames.shape
    assert _known_equal(out, frames, masks)
    assert (trace.sampled_frames, trace.latent_frames, trace.pad_front, trace.pad_back) == (
        sampled,
        latent,
        front,
        back,
    )


def test_known_cells_threshold_is_strict():
    completer = GuidedCompleter("unused")
    masks = torch.ones(5, 16, 16, dtype=torch.bool)
    masks[1:5, :, :2] = False  # 75% of each cell of latent frame 1 known (2 of 8 columns missing)
    masks[0, :1, :8] = False  # latent frame 0 (frame 0 alone): top-left cell 87.5% known
    cells = completer.known_cells(masks, temporal=4, spatial=8)
    assert cells.shape == (2, 2, 2)
    assert cells[0].all()
    assert not cells[1, :, 0].any() and cells[1, :, 1].all()
    completer.known_threshold = 0.9
    assert not completer.known_cells(masks, temporal=4, spatial=8)[0, 0, 0]


def test_guided_conditions_on_the_complete_start_view_and_encodes_no_holes(wan_guided):
    # a partial clip whose holes are black (as the renderer leaves them) and a complete view
    t, h, w = 8, 32, 32
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    scene = torch.stack([0.3 + 0.5 * xx, 0.3 + 0.4 * yy, 0.5 * torch.ones_like(xx)])
    masks = torch.ones(t, h, w, dtype=torch.bool)
    for i in range(t):
        masks[i, :, w - 3 * (i + 1) :] = False
    frames = torch.where(masks[:, None], scene, torch.zeros(()))
    start = scene.clone()
    completer = _configure(wan_guided, num_inference_steps=2, guidance_steps=1)
    adapter, pipe = completer._load(), wan_guided._load().pipe
    seen: dict[str, list] = {"encode": [], "clip": [], "i2v": []}
    encode, encode_image, prepare_latents = adapter.encode, pipe.encode_image, pipe.prepare_latents

    def spy_encode(video):
        seen["encode"].append(video.clone())
        return encode(video)

    def spy_clip(images, device):
        seen["clip"].append(images)
        return encode_image(images, device)

    def spy_latents(image, *args):
        seen["i2v"].append(image.clone())
        return prepare_latents(image, *args)

    adapter.encode, pipe.encode_image, pipe.prepare_latents = spy_encode, spy_clip, spy_latents
    try:
        out = completer.complete(
            frames, masks, context=_context(start, t), generator=torch.Generator().manual_seed(0)
        )
    finally:
        del adapter.encode, pipe.encode_image, pipe.prepare_latents
    trace = completer.last_trace
    assert out.shape == frames.shape and _known_equal(out, frames, masks)
    # start view + 8 frames + 4 padding at each end -> 17 = 4k + 1
    assert (trace.lead, trace.pad_front, trace.pad_back, trace.sampled_frames) == (1, 4, 4, 17)
    # the I2V image and the CLIP image are the complete start view ...
    assert np.array_equal(np.asarray(seen["clip"][0]), to_uint8(start))
    i2v = (seen["i2v"][0][0].cpu() + 1) / 2
    assert (i2v - start).abs().max() < 1 / 255 + 1e-5
    # ... and the clip the VAE encodes opens with it and has no black holes left
    encoded = seen["encode"][0]
    assert (encoded[:5] - start).abs().max() < 1e-6
    holes = ~masks
    assert encoded[5:13].permute(1, 0, 2, 3)[:, holes].min() > 0.2


def test_guided_first_last_frame_model_gets_both_frames(tiny_model, masked_clip):
    frames, masks = _small(masked_clip)
    completer = GuidedCompleter(
        tiny_model("wan-flf2v"),
        condition_last_frame=True,
        num_inference_steps=2,
        guidance_steps=1,
        cfg_scale=1.0,
    )
    pipe = completer._load().pipe
    shapes = []
    forward = pipe.transformer.forward

    def spy(*args, **kwargs):
        shapes.append(tuple(kwargs["encoder_hidden_states_image"].shape))
        return forward(*args, **kwargs)

    pipe.transformer.forward = spy
    out = completer.complete(frames, masks, generator=torch.Generator().manual_seed(0))
    assert _known_equal(out, frames, masks)
    assert torch.isfinite(completer.last_trace.raw).all()
    # the two frames' CLIP tokens go in as a batch of two; the FLF2V embedder joins them
    tokens = pipe.transformer.config.pos_embed_seq_len // 2
    assert set(shapes) == {(2, tokens, pipe.transformer.config.image_dim)}


def test_guided_refuses_last_frame_conditioning_without_a_first_last_frame_model(tiny_model):
    completer = GuidedCompleter(tiny_model("wan-i2v"), condition_last_frame=True)
    with pytest.raises(InputError, match="first-last-frame model") as info:
        completer._load()
    assert "\n" not in str(info.value)


def test_guided_wan_defaults_follow_the_model_card(tiny_model):
    completer = GuidedCompleter(tiny_model("wan-i2v"))
    assert completer.lr == 0.025 and completer.negative_prompt == WAN_NEGATIVE_PROMPT
    assert GuidedCompleter("x", family="cogvideox-i2v").negative_prompt == ""


# ---------------------------------------------------------------- CogVideoX at its native size


def test_guided_cogvideox_runs_at_its_native_size(tiny_model, masked_clip):
    frames, masks = masked_clip
    frames, masks = frames[:, :, :48, :40], masks[:, :48, :40]  # not the model's size
    completer = GuidedCompleter(
        tiny_model("cogvideox-i2v"),
        family="cogvideox-i2v",
        num_inference_steps=3,
        guidance_steps=2,
        cfg_scale=1.0,
    )
    # learned positional embeddings: 8x8 latents (64x64 px) and 17 frames, nothing else
    assert completer.max_frames() == 17 - 1 - 8
    errors = {}
    for lr in (0.0, 2.0):
        completer.lr = lr
        out = completer.complete(frames, masks, generator=torch.Generator().manual_seed(0))
        assert out.shape == frames.shape and torch.isfinite(out).all()
        assert _known_equal(out, frames, masks)
        errors[lr] = completer.last_trace.latent_error
    trace = completer.last_trace
    assert trace.size == (64, 64) and trace.sampled_frames == 17 and trace.latent_frames == 5
    assert errors[2.0] < 0.5 * errors[0.0]
    # a shorter clip is padded up to the model's count
    completer.complete(frames[:5], masks[:5], generator=torch.Generator().manual_seed(0))
    assert completer.last_trace.sampled_frames == 17 and completer.last_trace.pad_back == 8
    # a longer one cannot be sampled: a one-line error naming the model
    with pytest.raises(InputError, match=r"samples exactly 17 frames") as info:
        completer.complete(torch.rand(10, 3, 48, 40), torch.ones(10, 48, 40, dtype=torch.bool))
    assert "cogvideox-i2v" in str(info.value) and "\n" not in str(info.value)
    sized = GuidedCompleter(tiny_model("cogvideox-i2v"), family="cogvideox-i2v", height=96)
    with pytest.raises(InputError, match="runs only at 64x64"):
        sized.max_frames()


# ---------------------------------------------------------------- the pre-fill


def test_telea_fill_fills_holes_smoothly_and_keeps_known_pixels():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 48), indexing="ij")
    truth = torch.stack([0.2 + 0.6 * xx, 0.2 + 0.6 * yy, 0.5 * torch.ones_like(xx)])
    known = torch.ones(3, 32, 48, dtype=torch.bool)
    known[0, 10:20, 15:30] = False
    known[2] = False
    frames = torch.where(known[:, None], truth, torch.zeros(()))
    out = telea_fill(frames, known)
    assert torch.equal(out[known[:, None].expand_as(out)], frames[known[:, None].expand_as(out)])
    hole = ~known[0]
    assert (out[0][:, hole] - truth[:, hole]).abs().mean() < 0.03  # black would be ~0.45 off
    assert torch.equal(out[1], frames[1])  # nothing to fill
    assert torch.all(out[2] == 0.5)  # nothing known: grey
