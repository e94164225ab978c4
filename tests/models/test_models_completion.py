"""Completion backends: classical (offline) and vace on a tiny model (guided: test_models_guided)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dreamjourney.camera import Cameras, look_at
from dreamjourney.errors import InputError
from dreamjourney.io.images import to_uint8
from dreamjourney.models.classical import (
    MAX_EXTRA_LIFTS,
    ClassicalCompleter,
    background_sources,
    below_horizon,
    elevation,
    inpaint_frame,
    sky_model,
    upright,
)
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


def test_classical_fills_keyframes_through_the_world_in_order(masked_clip):
    frames, masks = masked_clip
    seen = []
    world = torch.full_like(frames, 0.25)

    def rerender(t: int, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        seen.append((t, frame.clone()))
        covered = torch.zeros_like(masks)
        covered[:, :32] = True  # the world covers the top half of every frame
        return world, covered, covered.float()

    cams = Cameras.create(torch.eye(4)[None].repeat(9, 1, 1), width=64, height=64, fov_deg=60.0)
    ctx = CompletionContext(cameras=cams, keyframes=(4, 8), rerender=rerender)
    out = ClassicalCompleter().complete(frames, masks, context=ctx)
    lifted = [t for t, _ in seen]
    # the keyframes first; then, as this world never covers the bottom half, the frames left
    # with the deepest holes, up to MAX_EXTRA_LIFTS of them
    assert lifted[:2] == [4, 8] and len(lifted) == 2 + MAX_EXTRA_LIFTS
    assert len(set(lifted)) == len(lifted) and seen[0][1].shape == (3, 64, 64)
    assert _known_equal(out, frames, masks)
    # what was lifted is what the frames show
    assert all(torch.equal(out[t], frame) for t, frame in seen)
    # the second keyframe was filled after the first one's lift: the world's pixels are in it
    assert torch.all(seen[1][1][:, :32][:, ~masks[8, :32]] == 0.25)
    # elsewhere, holes the world covers take the world's pixels exactly
    others = [t for t in range(9) if t not in lifted]
    top = torch.zeros(64, 64, dtype=torch.bool)
    top[:32] = True
    for t in others:
        assert torch.all(out[t][:, top & ~masks[t]] == 0.25)
        rest = ~masks[t] & ~top  # what the world does not cover is filled, not left as it was
        assert not torch.any(out[t][:, rest] == 0.25)


def test_classical_lifts_a_frame_the_keyframes_leave_deep_holes_in():
    # the keyframes are complete, but frame 2 sees round an object: a deep hole no lift
    # covers; it is filled and lifted once (the world then covers it for the frames around),
    # not filled again by PatchMatch in every frame
    frames = torch.rand(5, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    masks = torch.ones(5, 48, 48, dtype=torch.bool)
    masks[1:4, 10:30, 10:30] = False
    seen = []

    def rerender(t: int, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        seen.append(t)
        world = frames.clone()
        world[:, :, 10:30, 10:30] = frame[:, 10:30, 10:30]
        covered = torch.ones(5, 48, 48, dtype=torch.bool)
        return world, covered, covered.float()

    cams = Cameras.create(torch.eye(4)[None].repeat(5, 1, 1), width=48, height=48, fov_deg=60.0)
    ctx = CompletionContext(cameras=cams, keyframes=(0, 4), rerender=rerender)
    out = ClassicalCompleter().complete(frames, masks, context=ctx)
    assert seen == [1]  # (the first of the frames with the most deep hole pixels)
    assert torch.equal(out[2][:, 10:30, 10:30], out[1][:, 10:30, 10:30])
    assert torch.equal(out[3][:, 10:30, 10:30], out[1][:, 10:30, 10:30])


def test_classical_repeats_a_frame_rather_than_inventing_one():
    frames = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    masks = torch.ones(3, 32, 32, dtype=torch.bool)
    masks[1] = False  # nothing known: the frame before it is repeated, never a grey frame
    out = ClassicalCompleter().complete(frames, masks)
    assert torch.equal(out[1], frames[0])
    masks[:] = False
    with pytest.raises(ValueError, match="no frame of the clip has a known pixel"):
        ClassicalCompleter().complete(frames, masks)
    # a clip that sees nothing (a camera that left the scene) holds the view it continues from
    start = torch.rand(3, 32, 32)
    cameras = Cameras.create(torch.eye(4).repeat(3, 1, 1), width=32, height=32, fov_deg=60.0)
    context = CompletionContext(cameras=cameras, start_view=start)
    out = ClassicalCompleter().complete(frames, masks, context=context)
    assert all(torch.equal(frame, start) for frame in out)
    masks[2] = True  # the first frames take the start view too, not a later frame
    out = ClassicalCompleter().complete(frames, masks, context=context)
    assert torch.equal(out[0], start) and torch.equal(out[1], start)
    assert torch.equal(out[2], frames[2])


def test_inpaint_frame_edge_cases():
    frame = torch.rand(3, 8, 8)
    assert torch.equal(inpaint_frame(frame, torch.ones(8, 8, dtype=torch.bool)), frame)
    with pytest.raises(ValueError, match="no known pixel"):
        inpaint_frame(frame, torch.zeros(8, 8, dtype=torch.bool))


def _red_object_on_noise(
    h: int, w: int, rows: slice, cols: slice, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(3,h,w)` grey-blue noise texture at depth 3 with a red block at depth 1 on `rows`,
    `cols`; and the `(h,w)` depth."""
    g = torch.Generator().manual_seed(seed)
    image = torch.tensor([0.35, 0.45, 0.6])[:, None, None] + 0.15 * torch.rand(
        1, h, w, generator=g
    ).expand(3, h, w)
    depth = torch.full((h, w), 3.0)
    image[:, rows, cols] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    depth[rows, cols] = 1.0
    return image, depth


def _object_beside_a_hole() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """96x96 grey-blue noise texture (depth 3) with a red square (depth 1) whose right side
    touches a 20 px hole that a camera move opened behind it."""
    image, depth = _red_object_on_noise(96, 96, slice(20, 76), slice(10, 40), seed=3)
    known = torch.ones(96, 96, dtype=torch.bool)
    known[24:72, 40:60] = False
    return torch.where(known[None], image, torch.zeros_like(image)), known, depth


def test_patchmatch_fill_never_copies_a_nearer_object_into_a_hole():
    image, known, depth = _object_beside_a_hole()
    out = inpaint_frame(image, known, depth=torch.where(known, depth, 0.0))
    fill = out[:, ~known]
    red = (fill[0] > 0.6) & (fill[1] < 0.3)
    assert not red.any()
    # texture, not a smooth wash: the fill varies like the background it copies
    assert fill.std(dim=1).mean() > 0.5 * image[:, known & (depth > 2)].std(dim=1).mean()
    # without the depth, sources are unrestricted and the object bleeds into the hole
    free = inpaint_frame(image, known)[:, ~known]
    assert ((free[0] > 0.6) & (free[1] < 0.3)).any()
    assert torch.equal(out, inpaint_frame(image, known, depth=torch.where(known, depth, 0.0)))


def test_patchmatch_fill_at_the_frame_edge_never_copies_a_wide_near_object():
    # a pan opens a 24 px band at the left edge beside a near object 96 px wide: no far side
    # is in reach of the band, so the background is what lies farthest along its rows
    image, depth = _red_object_on_noise(96, 160, slice(10, 86), slice(24, 120), seed=4)
    known = torch.ones(96, 160, dtype=torch.bool)
    known[:, :24] = False
    out = inpaint_frame(image, known, depth=torch.where(known, depth, 0.0))
    fill = out[:, ~known]
    assert not ((fill[0] > 0.6) & (fill[1] < 0.3)).any()
    sources = background_sources(known.numpy(), torch.where(known, depth, 0.0).numpy())
    assert not sources[10:86, 24:120].any() and sources[:, 128:].all()


def test_patchmatch_fills_ground_with_ground_not_with_what_stands_on_it():
    # a ground plane below the horizon (row 32) recedes row by row; a brown shed stands on it
    # at row 80, beside the band a pan opens at the left edge: near its foot it is as far as
    # the ground beside it, so depth alone would let it be copied into the band
    g = torch.Generator().manual_seed(5)
    h, w = 96, 128
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    image = torch.tensor([0.3, 0.5, 0.95])[:, None, None].expand(3, h, w).clone()
    image[:, 32:] = torch.tensor([0.2, 0.55, 0.2])[:, None, None] + 0.1 * torch.rand(
        1, h - 32, w, generator=g
    )
    depth = torch.where(rows > 32, 60.0 / (rows - 31.5), 100.0)
    image[:, 56:81, 24:64] = torch.tensor([0.45, 0.25, 0.1])[:, None, None]
    depth[56:81, 24:64] = 60.0 / (80 - 31.5)
    known = torch.ones(h, w, dtype=torch.bool)
    known[:, :24] = False
    below = rows > 32
    out = inpaint_frame(image, known, depth=torch.where(known, depth, 0.0), below=below)
    ground = out[:, ~known & below]
    brown = (ground[0] > 0.35) & (ground[1] < 0.35)
    assert not brown.any()
    standing = upright(known.numpy(), torch.where(known, depth, 0.0).numpy())
    assert standing[56:78, 24:64].all() and not standing[33:94, 70:].any()


def test_patchmatch_fill_skips_sources_too_scattered_to_hold_a_patch():
    # every 4th pixel is a preferred source: over MIN_SOURCES of them, but no 7x7 patch of
    # sources; PatchMatch given nothing to copy paints black, so the next choice is taken
    from dreamjourney.models.classical import _patchmatch_fill

    g = np.random.default_rng(6)
    img = (120 + 60 * g.random((64, 96, 1)) * np.ones((1, 1, 3))).astype(np.uint8)
    holes = np.zeros((64, 96), bool)
    holes[20:44, 30:60] = True
    scattered = np.zeros_like(holes)
    scattered[::2, ::2] = True
    out = _patchmatch_fill(img, holes, [scattered & ~holes, ~holes], 3, seed=0)
    assert out[holes].min() >= 100


def test_below_horizon_splits_a_level_camera_at_its_principal_row():
    K = torch.tensor([[50.0, 0.0, 32.0], [0.0, 50.0, 20.5], [0.0, 0.0, 1.0]])
    level = Cameras.create(torch.eye(4), width=64, height=48, K=K)
    below = below_horizon(level)
    # pixel centres v + 0.5 below the principal row 20.5 (image y points down, world up is -y)
    assert not below[:20].any() and below[21:].all()
    pitched = Cameras.create(
        look_at(torch.zeros(3), torch.tensor([0.0, 1.0, 1.0])), width=64, height=48, K=K
    )
    assert below_horizon(pitched).all()  # looking 45 degrees down, the horizon is off the top


def _blue_sky_landscape() -> torch.Tensor:
    """128x96 seen by a level camera of 60 degrees: a sky that goes from pale blue at the
    horizon (row 48) to deep blue 25 degrees up, by elevation as a real sky does, over
    textured green ground."""
    g = torch.Generator().manual_seed(7)
    camera = Cameras.create(torch.eye(4), width=128, height=96, fov_deg=60)
    t = (1 - elevation(camera) / 25).clamp(0, 1)
    image = torch.stack([0.2 + 0.4 * t, 0.4 + 0.35 * t, 0.9 + 0.05 * t])
    image[:, 48:] = torch.tensor([0.25, 0.55, 0.2])[:, None, None] + 0.1 * torch.rand(
        1, 48, 128, generator=g
    )
    return image


def test_sky_model_gives_the_photos_sky_by_elevation():
    camera = Cameras.create(torch.eye(4), width=128, height=96, fov_deg=60)
    view = _blue_sky_landscape()
    model = sky_model(view, camera)
    assert model is not None
    degrees = elevation(camera)[:, 64]
    for row in (2, 10):  # (the pop-up labels the pale sky lower down as sky only in part)
        colour = model[int(degrees[row])]
        assert np.abs(colour - view[:, row, 64].numpy()).max() < 0.05, (row, colour)
    assert (model[:, 2] > model[:, 0] + 0.5).all()  # blue at every elevation
    assert model[20, 0] < model[3, 0] - 0.03  # deeper higher up
    close_up = torch.tensor([0.5, 0.3, 0.2])[:, None, None] + 0.3 * torch.rand(
        1, 96, 128, generator=torch.Generator().manual_seed(8)
    )
    assert sky_model(close_up.expand(3, 96, 128), camera) is None


def test_classical_paints_the_sky_where_a_frame_shows_none_of_it():
    # an orbit looking back where the photo never looked: above the horizon the frame shows
    # only a slate roof; copied from it, the hole above would be a slate sky
    camera = Cameras.create(torch.eye(4), width=128, height=96, fov_deg=60)
    frame = _blue_sky_landscape()
    frame[:, :48] = torch.tensor([0.35, 0.33, 0.45])[:, None, None]
    known = torch.ones(96, 128, dtype=torch.bool)
    known[:40, :64] = False
    context = CompletionContext(cameras=camera, start_view=_blue_sky_landscape())
    out = ClassicalCompleter().complete(frame[None], known[None], context=context)[0]
    fill = out[:, ~known]
    assert (fill[2] > fill[0] + 0.25).all()  # blue, not slate
    top, bottom = out[:, 2, 10], out[:, 36, 10]
    assert top[0] < bottom[0] - 0.03  # deeper blue higher up, as in the photo


def _sky_over_ground() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """96x96: smooth blue sky over rows 0-47, striped green ground below, and the hole a pan
    opens at the left edge across the horizon (rows 36-71, columns 0-39)."""
    image = torch.empty(3, 96, 96)
    image[:, :48] = torch.tensor([0.3, 0.5, 0.95])[:, None, None]
    stripes = (torch.arange(96) // 3 % 2).float()[:, None].expand(96, 96)
    image[:, 48:] = torch.tensor([0.1, 0.5, 0.1])[:, None, None] + 0.2 * stripes[48:]
    known = torch.ones(96, 96, dtype=torch.bool)
    known[36:72, :40] = False
    below = torch.zeros(96, 96, dtype=torch.bool)
    below[48:] = True
    return torch.where(known[None], image, torch.zeros_like(image)), known, below


def test_patchmatch_fills_each_side_of_the_horizon_from_its_own_side():
    image, known, below = _sky_over_ground()
    out = inpaint_frame(image, known, below=below)
    ground, sky = out[:, ~known & below], out[:, ~known & ~below]
    assert not (ground[2] > 0.6).any()  # no sky blue in the ground
    assert (ground[1] > ground[2] + 0.2).all() and ground[1].std() > 0.05  # striped green
    assert (sky[2] > 0.9).all()
    # without the horizon, the sky is copied into the ground
    free = inpaint_frame(image, known)[:, ~known & below]
    assert (free[2] > 0.6).float().mean() > 0.05


def test_the_two_sides_of_the_horizon_fill_the_same_bytes_on_every_run():
    # the sides are filled in two threads: each PatchMatch call must start from the seed
    image, known, below = _sky_over_ground()
    runs = [inpaint_frame(image, known, below=below, seed=5) for _ in range(4)]
    assert all(torch.equal(runs[0], run) for run in runs[1:])
    assert not torch.equal(runs[0], inpaint_frame(image, known, below=below, seed=6))


def test_background_sources_exclude_the_near_side_of_a_hole():
    _, known, depth = _object_beside_a_hole()
    sources = background_sources(known.numpy(), torch.where(known, depth, 0.0).numpy())
    assert not sources[20:76, 10:40].any()  # the object
    assert sources[:, 70:].all() and sources[:15].all()  # the background around


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

    new, old = inpaint_frame(holes, known), _telea(holes, known)
    assert ripple(new) > 3 * ripple(old)
    assert ripple(new) > 0.2 * ripple(image)


@pytest.mark.parametrize("name", ["coffee", "grass"])
def test_inpaint_frame_fill_is_no_sharper_than_the_photo_it_copies(name):
    # PatchMatch's seams between copied patches add pixel-scale detail the photo does not have,
    # which shimmers when the fill is re-rendered from a moving camera; its texture at 2-8 px
    # (what makes it look like the photo) stays
    import skimage.data

    photo = cv2.resize(getattr(skimage.data, name)(), (384, 288), interpolation=cv2.INTER_AREA)
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    frame = torch.from_numpy(photo).permute(2, 0, 1).float() / 255
    known = torch.ones(288, 384, dtype=torch.bool)
    known[:, :60] = False
    grey = inpaint_frame(frame, known).mean(0).numpy()
    fine = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    band = np.abs(cv2.GaussianBlur(grey, (0, 0), 1) - cv2.GaussianBlur(grey, (0, 0), 4))
    fill, rest = np.s_[:, 4:56], np.s_[:, 64:]
    assert fine[fill].mean() < 0.9 * fine[rest].mean()
    assert band[fill].mean() > 0.6 * band[rest].mean()


def test_classical_completer_rejects_bad_parameters():
    with pytest.raises(InputError, match="band"):
        ClassicalCompleter(band=-1.0)
    with pytest.raises(InputError, match="patch_size"):
        ClassicalCompleter(patch_size=0)
    with pytest.raises(InputError, match="radius"):
        ClassicalCompleter(radius=0.0)
