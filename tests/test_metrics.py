"""Metrics against hand-computed values, LPIPS weights files, warps on analytic planes."""

import math

import pytest
import torch

from dreamjourney.camera import Cameras
from dreamjourney.errors import InputError, MissingWeightsError
from dreamjourney.eval.metrics import (
    LPIPS,
    SSIM_C1,
    SSIM_C2,
    aggregate,
    psnr,
    reprojection_consistency,
    ssim,
    temporal_flicker,
)
from dreamjourney.eval.warp import backward_warp, forward_warp


def const(value, t=2, h=24, w=32):
    return torch.full((t, 3, h, w), value)


def test_psnr_of_a_constant_error():
    values = psnr(const(0.3), const(0.4))
    assert values.shape == (2,)
    assert torch.allclose(values, torch.full((2,), 20.0), atol=1e-4)  # 10 log10(1 / 0.01)
    assert psnr(const(0.3)[0], const(0.3)[0]).item() == math.inf


def test_masked_psnr_counts_only_the_mask():
    gt = const(0.5)
    pred = gt.clone()
    pred[..., :16] += 0.2  # left half: error 0.2
    pred[..., 16:] += 0.05  # right half: error 0.05
    left = torch.zeros(24, 32, dtype=torch.bool)
    left[:, :16] = True
    assert psnr(pred, gt, left)[0].item() == pytest.approx(10 * math.log10(1 / 0.04), abs=1e-3)
    assert psnr(pred, gt, ~left)[0].item() == pytest.approx(10 * math.log10(1 / 0.0025), abs=1e-3)
    mse_all = (0.04 + 0.0025) / 2
    assert psnr(pred, gt)[0].item() == pytest.approx(10 * math.log10(1 / mse_all), abs=1e-3)
    per_frame = torch.stack([left, ~left])  # (T, H, W) masks: one per frame
    got = psnr(pred, gt, per_frame)
    assert got[0].item() == pytest.approx(13.9794, abs=1e-3)
    assert got[1].item() == pytest.approx(26.0206, abs=1e-3)


def test_ssim_identical_is_one_and_constants_match_the_formula():
    img = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(img, img), torch.ones(3), atol=1e-5)
    a, b = 0.3, 0.5  # constant images: no variance, only the luminance term remains
    expected = (2 * a * b + SSIM_C1) / (a * a + b * b + SSIM_C1)
    assert torch.allclose(ssim(const(a), const(b)), torch.full((2,), expected), atol=1e-5)
    assert SSIM_C1 == pytest.approx(1e-4) and SSIM_C2 == pytest.approx(9e-4)
    noisy = (img + 0.1 * torch.randn(img.shape, generator=torch.Generator().manual_seed(1))).clamp(
        0, 1
    )
    assert bool((ssim(img, noisy) < 0.95).all())


def test_masked_ssim_selects_regions():
    gt = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    pred = gt.clone()
    pred[..., 24:] = 0.3
    gt[..., 24:] = 0.5
    left = torch.zeros(48, 48, dtype=torch.bool)
    left[:, :16] = True  # more than half a window (5 px) away from the seam at 24
    right = torch.zeros(48, 48, dtype=torch.bool)
    right[:, 32:] = True
    assert ssim(pred, gt, left).item() == pytest.approx(1.0, abs=1e-5)
    expected = (2 * 0.3 * 0.5 + SSIM_C1) / (0.3**2 + 0.5**2 + SSIM_C1)
    assert ssim(pred, gt, right).item() == pytest.approx(expected, abs=1e-5)
    assert expected < ssim(pred, gt).item() < 1


@pytest.fixture(scope="module")
def lpips_alex():
    torch.manual_seed(0)
    model = LPIPS("alex")
    for k in range(5):  # LPIPS' lin weights are non-negative
        w = getattr(model, f"lin{k}").model[1].weight
        w.data = w.data.abs()
    return model


def test_lpips_identical_is_zero_and_different_is_not(lpips_alex):
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    assert torch.equal(lpips_alex(a, a), torch.zeros(2))
    d = lpips_alex(a, b)
    assert d.shape == (2,) and bool((d > 0).all())
    # a mask over a region where the images agree lowers the distance
    c = a.clone()
    c[..., 32:] = b[..., 32:]
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[:, :24] = True
    assert bool((lpips_alex(c, a, mask) < 0.5 * lpips_alex(c, a)).all())


def test_lpips_state_dict_names_are_the_lpips_package_ones(lpips_alex):
    keys = set(lpips_alex.state_dict())
    assert {"net.slice1.0.weight", "net.slice2.3.weight", "net.slice5.10.bias"} <= keys
    assert {f"lin{k}.model.1.weight" for k in range(5)} <= keys
    assert {"scaling_layer.shift", "scaling_layer.scale"} <= keys


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_lpips_weights_file_round_trip(lpips_alex, tmp_path, suffix):
    path = tmp_path / f"lpips{suffix}"
    state = {f"module.{k}": v for k, v in lpips_alex.state_dict().items()}  # DataParallel prefix
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = LPIPS.from_file(path)
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(1, 3, 48, 48, generator=g), torch.rand(1, 3, 48, 48, generator=g)
    assert torch.allclose(loaded(a, b), lpips_alex(a, b))
    assert loaded.net_name == "alex"


def test_lpips_missing_or_wrong_weights(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"nowhere\.pth: LPIPS weights not found"):
        LPIPS.from_file(tmp_path / "nowhere.pth")
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match=r"bad\.pth \[net\.slice1\.0\.weight\]: not LPIPS-alex"):
        LPIPS.from_file(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match=r"junk\.pth: cannot read LPIPS weights"):
        LPIPS.from_file(tmp_path / "junk.pth")


def test_lpips_vgg_identical_is_zero():
    model = LPIPS("vgg")
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.net.modules()) == 13
    a = torch.rand(1, 3, 32, 32)
    assert model(a, a).item() == 0.0


# --------------------------------------------------------------------------- warps and no-GT


def plane_scene(shift_px=3, depth=4.0, w=32, h=24):
    """A fronto-parallel textured plane at z = depth seen by two cameras `shift_px` apart."""
    K = torch.tensor([[40.0, 0, w / 2], [0, 40.0, h / 2], [0, 0, 1]])
    c2w = torch.eye(4).repeat(2, 1, 1)
    c2w[1, 0, 3] = shift_px * depth / 40.0  # the second camera moved right: content moves left
    cams = Cameras.create(c2w, width=w, height=h, K=K)
    g = torch.Generator().manual_seed(5)
    image = torch.rand(3, h, w, generator=g)
    return cams, image, torch.full((h, w), depth)


def test_forward_warp_shifts_a_plane_by_whole_pixels():
    cams, image, depth = plane_scene()
    out, out_depth, mask = forward_warp(image, depth, cams[0], cams[1])
    assert torch.allclose(out[:, :, :-3], image[:, :, 3:])
    assert bool(mask[:, :-3].all()) and not bool(mask[:, -3:].any())
    assert bool((out[:, :, -3:] == 0).all()) and bool((out_depth[:, -3:] == 0).all())
    assert torch.allclose(out_depth[:, :-3], depth[:, 3:])


def test_forward_warp_z_buffer_keeps_the_nearest_point():
    cams, image, depth = plane_scene(shift_px=0)
    # a near patch at half the depth; moving the camera by 3 px at the far depth moves it by 6 px
    depth[8:16, 10:18] = 2.0
    cams.c2w[1, 0, 3] = 3 * 4.0 / 40.0
    out, out_depth, _ = forward_warp(image, depth, cams[0], cams[1])
    assert torch.allclose(out[:, 8:16, 4:12], image[:, 8:16, 10:18])  # the patch, in front
    assert bool((out_depth[8:16, 4:12] == 2.0).all())


def test_backward_warp_and_occlusion():
    cams, image, depth = plane_scene()
    warped, valid = backward_warp(image, cams[0], cams[1], depth, source_depth=depth)
    assert torch.allclose(warped[:, :, :-3], image[:, :, 3:], atol=1e-5)
    assert bool(valid[:, :-3].all()) and not bool(valid[:, -3:].any())
    occluder = depth.clone()
    occluder[:, 10:20] = 1.0  # the source sees something nearer there
    _, valid = backward_warp(image, cams[0], cams[1], depth, source_depth=occluder)
    assert not bool(valid[:, 7:17].any()) and bool(valid[:, :7].all())


def test_reprojection_consistency_and_flicker():
    cams, image, depth = plane_scene()
    # frame 1 is what camera 1 sees of the plane: its pixel x is the source's x + 3
    seen = torch.zeros_like(image)
    seen[:, :, :-3] = image[:, :, 3:]
    frames = torch.stack([image, seen])
    depths = torch.stack([depth, depth])
    share = reprojection_consistency(frames, cams, depths)
    assert share.shape == (1,) and share.item() == pytest.approx(1.0)
    assert temporal_flicker(frames, cams, depths).item() == pytest.approx(0.0, abs=1e-6)
    # without the cameras the motion reads as flicker
    assert temporal_flicker(frames).item() > 0.1
    broken = frames.clone()
    broken[1, :, :, :10] = 1 - broken[1, :, :, :10]
    share_b = reprojection_consistency(broken, cams, depths).item()
    valid_cols = 32 - 3
    assert share_b == pytest.approx((valid_cols - 10) / valid_cols, abs=0.05)
    assert temporal_flicker(broken, cams, depths).item() > 0.05


def test_aggregate_frames_then_episodes_then_datasets():
    records = [
        {"dataset": "a", "psnr": 10.0},
        {"dataset": "a", "psnr": 20.0},
        {"dataset": "a", "psnr": 30.0},
        {"dataset": "b", "psnr": 40.0},
    ]
    out = aggregate(records, ["psnr"])
    assert out["per_dataset"] == {"a": {"psnr": 20.0}, "b": {"psnr": 40.0}}
    assert out["overall"]["psnr"] == 30.0  # not the episode mean 25
