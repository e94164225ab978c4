"""Completion backends: classical (offline) and vace on a tiny model (guided: test_models_guided)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dreamjourney.camera import Cameras
from dreamjourney.errors import InputError
from dreamjourney.io.images import to_uint8
from dreamjourney.models.classical import ClassicalCompleter, inpaint_frame
from dreamjourney.models.protocols import Completer, CompletionContext
from dreamjourney.models.vace import VaceCompleter
from dreamjourney.models.video_common import WAN_NEGATIVE_PROMPT, pipeline_frames


def _known_equal(out: torch.Tensor, frames: torch.Tensor, masks: torch.Tensor) -> bool:
    keep = masks[:, None].expand_as(frames)
    return bool(torch.equal(out[keep], frames[keep]))


def test_classical_fills_every_hole_and_keeps_known_pixels(masked_clip):
    frames, masks = masked_clip
    holes = frames.clone()
    holes[~masks[:, None].expand_as(frames)] = 0.0
    calls = []
    out = ClassicalCompleter().complete(holes, masks, progress=lambda i, n: calls.append((i, n)))
    assert out.shape == frames.shape
    assert _known_equal(out, holes, masks)
    # the hole is filled from its surroundings: on a smooth gradient that is far closer to the
    # truth than filling it with the clip's mean colour
    hole = ~masks[:, None].expand_as(frames)
    mean_fill = frames.permute(1, 0, 2, 3)[:, masks].mean(1)[None, :, None, None].expand_as(frames)
    baseline = (mean_fill[hole] - frames[hole]).abs().mean()
    assert (out[hole] - frames[hole]).abs().mean() < 0.5 * baseline
    assert (out[hole] > 0.02).float().mean() > 0.9  # no black left where the gradient is bright
    assert calls == [(i + 1, 9) for i in range(9)]


def test_classical_uses_the_rerendered_world_for_consistency(masked_clip):
    frames, masks = masked_clip
    seen = []
    world = torch.full_like(frames, 0.25)

    def rerender(last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(last.clone())
        covered = torch.zeros_like(masks)
        covered[:, :32] = True  # the world covers the top half of every frame
        return world, covered

    cams = Cameras.create(torch.eye(4)[None].repeat(9, 1, 1), width=64, height=64, fov_deg=60.0)
    ctx = CompletionContext(cameras=cams, rerender=rerender)
    out = ClassicalCompleter().complete(frames, masks, context=ctx)
    assert len(seen) == 1 and seen[0].shape == (3, 64, 64)
    assert _known_equal(out, frames, masks)
    # the last frame is the inpainted last view that was lifted into the world
    assert torch.equal(out[-1], seen[0])
    # elsewhere, holes the world covers take the world's pixels exactly
    take = (~masks[:-1]) & torch.zeros_like(masks[:-1]).index_fill_(1, torch.arange(32), True)
    assert torch.all(out[:-1].permute(1, 0, 2, 3)[:, take] == 0.25)
    # and what the world does not cover is inpainted, not left at the input's value
    rest = (~masks[:-1]).clone()
    rest[:, :32] = False
    assert rest.any() and not torch.any(out[:-1].permute(1, 0, 2, 3)[:, rest] == 0.25)


def test_inpaint_frame_edge_cases():
    frame = torch.rand(3, 8, 8)
    assert torch.equal(inpaint_frame(frame, torch.ones(8, 8, dtype=torch.bool)), frame)
    assert torch.all(inpaint_frame(frame, torch.zeros(8, 8, dtype=torch.bool)) == 0.5)


def test_vace_completes_a_masked_clip(tiny_model, masked_clip):
    frames, masks = masked_clip
    completer = VaceCompleter(tiny_model("wan-vace"), num_inference_steps=2, guidance_scale=1.0)
    assert isinstance(completer, Completer)
    pipe = completer._load()
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        seen["output"] = type(pipe).__call__(pipe, **kwargs)
        return seen["output"]

    completer._pipe = spy
    steps = []
    out = completer.complete(
        frames,
        masks,
        prompt="a photo",
        generator=torch.Generator().manual_seed(0),
        progress=lambda i, n: steps.append(i),
    )
    assert out.shape == frames.shape and torch.isfinite(out).all()
    assert _known_equal(out, frames, masks)
    assert steps == [1, 2]
    # the holes hold what the model made (64x64, 9 frames: its own size and count)
    holes = ~masks[:, None].expand_as(frames)
    assert torch.equal(out[holes], pipeline_frames(seen["output"])[holes])
    # the pipeline got the partial video and a mask that is white exactly on the holes
    assert seen["num_frames"] == 9 and len(seen["video"]) == len(seen["mask"]) == 9
    white = torch.stack([torch.from_numpy(np.array(m)) == 255 for m in seen["mask"]])
    assert torch.equal(white, ~masks)
    # holes are painted grey 128, as VACE's annotators and diffusers' example prepare them;
    # known pixels are the input's
    video = torch.stack([torch.from_numpy(np.array(f)) for f in seen["video"]])
    assert torch.all(video[~masks] == 128)
    expected = torch.stack([torch.from_numpy(to_uint8(f)) for f in frames])
    assert torch.equal(video[masks], expected[masks])
    # the model card's negative prompt unless another is given
    assert seen["negative_prompt"] == WAN_NEGATIVE_PROMPT
    assert seen["negative_prompt"].startswith("Bright tones, overexposed, static")
    # 7 frames are padded to 9 with the last frame and its mask, and cut back
    out = completer.complete(frames[:7], masks[:7], generator=torch.Generator().manual_seed(0))
    assert out.shape == (7, 3, 64, 64) and seen["num_frames"] == 9
    video, mask = [np.asarray(v) for v in seen["video"]], [np.asarray(m) for m in seen["mask"]]
    assert all(np.array_equal(v, video[6]) for v in video[7:])
    assert all(np.array_equal(m, mask[6]) for m in mask[7:])
    assert torch.equal(out[holes[:7]], pipeline_frames(seen["output"])[:7][holes[:7]])


def _telea(frame: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The previous offline fill: OpenCV Telea over the whole hole."""
    holes = (~known).numpy().astype(np.uint8) * 255
    out = cv2.inpaint(to_uint8(frame), holes, 5.0, cv2.INPAINT_TELEA)
    return torch.from_numpy(out).permute(2, 0, 1).float() / 255.0


def _gradient_with_holes() -> tuple[torch.Tensor, torch.Tensor]:
    """A 48x64 smooth 2-D colour gradient, a 16 px band at the left border and a square blob."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    image = torch.stack([0.2 + 0.6 * xx, 0.2 + 0.6 * yy, 0.2 + 0.3 * (xx + yy)])
    known = torch.ones(48, 64, dtype=torch.bool)
    known[:, :16] = False
    known[16:40, 24:48] = False
    return image, known


def test_inpaint_frame_fills_large_holes_and_keeps_known_pixels():
    image, known = _gradient_with_holes()
    holes = torch.where(known[None], image, torch.zeros_like(image))
    out = inpaint_frame(holes, known)
    assert torch.equal(out[:, known], holes[:, known])
    # no hole left: the image is nowhere darker than 0.2, so no fill pixel is near black
    assert torch.isfinite(out).all() and out[:, ~known].min() > 0.1 and out.max() <= 1.0
    assert torch.equal(out, inpaint_frame(holes, known))  # deterministic


def test_inpaint_frame_smooth_gradient_is_closer_to_the_truth_than_opencv_alone():
    image, known = _gradient_with_holes()
    blob_only = known | (torch.arange(64) < 16)
    for mask in (known, blob_only):
        holes = torch.where(mask[None], image, torch.zeros_like(image))
        new = (inpaint_frame(holes, mask) - image)[:, ~mask].abs().mean()
        old = (_telea(holes, mask) - image)[:, ~mask].abs().mean()
        assert new < 0.92 * old


def test_inpaint_frame_continues_texture_into_a_wide_border_band():
    # vertical stripes 4 px wide; the left 24 columns are missing
    stripes = ((torch.arange(64) // 4) % 2).float() * 0.6 + 0.2
    image = stripes.expand(3, 48, 64).clone()
    known = torch.ones(48, 64, dtype=torch.bool)
    known[:, :24] = False
    holes = torch.where(known[None], image, torch.zeros_like(image))

    def ripple(img: torch.Tensor) -> float:
        """Horizontal detail inside the band, away from its edge."""
        return float(img[:, :, :16].diff(dim=2).abs().mean())

    new, old = inpaint_frame(holes, known, grain=0.0), _telea(holes, known)
    assert ripple(new) > 3 * ripple(old)
    assert ripple(new) > 0.2 * ripple(image)


def test_classical_completer_rejects_bad_parameters():
    with pytest.raises(InputError, match="grain"):
        ClassicalCompleter(grain=-1.0)
    with pytest.raises(InputError, match="vertical"):
        ClassicalCompleter(vertical=0.0)
    with pytest.raises(InputError, match="method"):
        ClassicalCompleter(method="magic")
