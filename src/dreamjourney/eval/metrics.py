"""Image and video metrics, per frame, each optionally restricted to a mask.

Images are float32 in [0, 1], (3, H, W) or (T, 3, H, W); masks bool (H, W) or (T, H, W),
True = counted. Every metric returns one value per frame, shape (T,); `mean_over` averages
per-frame values over frames, then episodes, then datasets (AnyView's protocol).

- PSNR in dB for a data range of 1.
- SSIM (Wang et al. 2004) with an 11x11 Gaussian window, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2,
  on each RGB channel then averaged; the SSIM map keeps the image size (reflection padding) so
  that a mask can select pixels. `ssim_uniform` is scikit-image's default instead (7x7 uniform
  window, sample covariance, a 3-pixel border left out), the SSIM AnyViewBench publishes.
- LPIPS (Zhang et al. 2018): the project's AlexNet or VGG16 feature network and its 1x1 "lin"
  layers, weights from a file the user provides; it runs in the dtype it is cast to.

Float64 inputs are computed in float64, anything else in float32.
- With no ground truth: `reprojection_consistency` and `temporal_flicker` between consecutive
  frames, from the cameras and a depth per frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamjourney.camera.cameras import Cameras
from dreamjourney.errors import InputError, MissingWeightsError
from dreamjourney.eval.warp import backward_warp

SSIM_SIGMA = 1.5
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


def _batch(x: Tensor) -> Tensor:
    return x[None] if x.ndim == 3 else x


def _float(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()


def _check_pair(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    pred, gt = _float(_batch(pred)), _float(_batch(gt))
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(gt.shape)} differ")
    return pred, gt


def _mask(mask: Tensor | None, like: Tensor) -> Tensor:
    """(H, W) or (T, H, W) bool -> (T, 1, H, W) float weights; all ones without a mask."""
    t, _, h, w = like.shape
    if mask is None:
        return torch.ones(t, 1, h, w, device=like.device, dtype=like.dtype)
    m = mask if mask.ndim == 3 else mask[None]
    if m.shape[-2:] != (h, w) or m.shape[0] not in (1, t):
        raise ValueError(f"mask {tuple(mask.shape)} does not fit images {tuple(like.shape)}")
    return m.to(like.device, like.dtype).expand(t, h, w)[:, None]


def psnr(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """(T,) PSNR in dB (data range 1) over the masked pixels; inf where equal, nan if empty."""
    pred, gt = _check_pair(pred, gt)
    m = _mask(mask, pred)
    se = ((pred - gt) ** 2 * m).sum(dim=(1, 2, 3))
    mse = se / (m.sum(dim=(1, 2, 3)) * pred.shape[1])
    return 10 * torch.log10(1.0 / mse)


def _gaussian(window: int, sigma: float) -> Tensor:
    x = torch.arange(window, dtype=torch.float32) - (window - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(pred: Tensor, gt: Tensor, *, window: int = 11, sigma: float = SSIM_SIGMA) -> Tensor:
    """(T, H, W) SSIM per pixel (mean over RGB) with a Gaussian window (reflection padding)."""
    pred, gt = _check_pair(pred, gt)
    t, c, h, w = pred.shape
    g = _gaussian(window, sigma).to(pred)
    pad = window // 2
    if min(h, w) <= pad:
        raise ValueError(f"SSIM needs images larger than {pad} pixels, got {w}x{h}")

    def blur(x: Tensor) -> Tensor:
        x = F.pad(x.reshape(-1, 1, h, w), (pad, pad, pad, pad), mode="reflect")
        x = F.conv2d(x, g.view(1, 1, 1, -1))
        return F.conv2d(x, g.view(1, 1, -1, 1))

    mu_x, mu_y = blur(pred), blur(gt)
    var_x = blur(pred * pred) - mu_x**2
    var_y = blur(gt * gt) - mu_y**2
    cov = blur(pred * gt) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return (num / den).reshape(t, c, h, w).mean(dim=1)


def ssim(
    pred: Tensor,
    gt: Tensor,
    mask: Tensor | None = None,
    window: int = 11,
    *,
    sigma: float = SSIM_SIGMA,
) -> Tensor:
    """(T,) mean SSIM over the masked pixels (see `ssim_map`); nan if the mask is empty."""
    pred, gt = _check_pair(pred, gt)
    m = _mask(mask, pred)[:, 0]
    s = ssim_map(pred, gt, window=window, sigma=sigma)
    return (s * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2))


def ssim_uniform(pred: Tensor, gt: Tensor) -> Tensor:
    """(T,) float64 SSIM as scikit-image computes it by default (`structural_similarity` with
    `data_range=1`): 7x7 uniform window, sample covariance, per channel then averaged, the mean
    taken without a 3-pixel border. No mask."""
    from skimage.metrics import structural_similarity

    pred, gt = _check_pair(pred, gt)
    p, g = pred.double().cpu().numpy(), gt.double().cpu().numpy()
    values = [
        structural_similarity(a, b, channel_axis=0, data_range=1.0)
        for a, b in zip(p, g, strict=True)
    ]
    return torch.tensor(values, dtype=torch.float64)


# --------------------------------------------------------------------------- LPIPS

# (layer list, slice boundaries, feature channels per slice), as torchvision's AlexNet / VGG16
# `features` and as the `lpips` package slices them, so that its state dicts load as they are.
_ALEX = (
    [("conv", 3, 64, 11, 4, 2), ("relu",), ("pool",), ("conv", 64, 192, 5, 1, 2), ("relu",),
     ("pool",), ("conv", 192, 384, 3, 1, 1), ("relu",), ("conv", 384, 256, 3, 1, 1), ("relu",),
     ("conv", 256, 256, 3, 1, 1), ("relu",)],
    (0, 2, 5, 8, 10, 12),
    (64, 192, 384, 256, 256),
)  # fmt: skip


def _vgg16() -> tuple[list[tuple], tuple[int, ...], tuple[int, ...]]:
    layers: list[tuple] = []
    c_in = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(("pool",))
        else:
            layers += [("conv", c_in, v, 3, 1, 1), ("relu",)]
            c_in = int(v)
    return layers, (0, 4, 9, 16, 23, 30), (64, 128, 256, 512, 512)


def _layer(spec: tuple, pool: int) -> nn.Module:
    if spec[0] == "conv":
        _, c_in, c_out, k, stride, pad = spec
        return nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad)
    if spec[0] == "relu":
        return nn.ReLU()
    return nn.MaxPool2d(kernel_size=pool, stride=2)


class _Features(nn.Module):
    def __init__(self, layers: list[tuple], bounds: tuple[int, ...], pool: int):
        super().__init__()
        for s in range(5):
            block = nn.Sequential()
            for i in range(bounds[s], bounds[s + 1]):
                block.add_module(str(i), _layer(layers[i], pool))
            self.add_module(f"slice{s + 1}", block)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for s in range(5):
            x = getattr(self, f"slice{s + 1}")(x)
            outs.append(x)
        return outs


class _ScalingLayer(nn.Module):
    shift: Tensor
    scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale


class _Lin(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """Learned perceptual distance (lower = more similar), per frame.

    The module's parameter names are those of the `lpips` package (`net.sliceK.*`, `linK.model.1.
    weight`, `scaling_layer.*`), so a state dict saved from `lpips.LPIPS(net="alex")` loads as it
    is. Build it with `LPIPS.from_file(path)`; a bare `LPIPS()` has random weights (tests).
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in ("alex", "vgg"):
            raise InputError(f"unknown LPIPS network {net!r}; known: alex, vgg", field="net")
        layers, bounds, channels = _ALEX if net == "alex" else _vgg16()
        self.net_name = net
        self.scaling_layer = _ScalingLayer()
        self.net = _Features(layers, bounds, pool=3 if net == "alex" else 2)
        for k, c in enumerate(channels):
            self.add_module(f"lin{k}", _Lin(c))
        self.eval().requires_grad_(False)

    @classmethod
    def from_file(cls, path: str | Path, *, net: str | None = None) -> LPIPS:
        """Load a state dict (.pth/.pt via torch.load, or .safetensors); `net` is detected."""
        path = Path(path)
        if not path.is_file():
            raise MissingWeightsError(
                "LPIPS weights not found; export them where the `lpips` package works with "
                "torch.save(lpips.LPIPS(net='vgg').state_dict(), 'lpips_vgg.pth') (net='alex' "
                "for AlexNet; AnyViewBench uses VGG) and pass that file",
                source=path,
            )
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(f"cannot read LPIPS weights ({exc})", source=path) from None
        if not isinstance(state, Mapping):
            raise InputError("is not a state dict", source=path)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if net is None:
            net = "vgg" if "net.slice1.2.weight" in state else "alex"
        model = cls(net)
        expected = model.state_dict()
        missing = [k for k in expected if k not in state and not k.startswith("scaling_layer.")]
        if missing:
            raise InputError(
                f"not LPIPS-{net} weights: {len(missing)} tensors missing",
                source=path,
                field=missing[0],
            )
        for key, value in expected.items():
            if key in state and tuple(state[key].shape) != tuple(value.shape):
                raise InputError(
                    f"shape {tuple(state[key].shape)}, expected {tuple(value.shape)}",
                    source=path,
                    field=key,
                )
        model.load_state_dict({k: state.get(k, v) for k, v in expected.items()})
        return model

    @torch.no_grad()
    def forward(self, pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
        """(T,) distances between (T, 3, H, W) images in [0, 1], averaged over masked pixels,
        computed in the module's dtype (`LPIPS(...).double()` for AnyViewBench's float64)."""
        pred, gt = _check_pair(pred, gt)
        weight = next(self.parameters())
        pred, gt = pred.to(weight.device, weight.dtype), gt.to(weight.device, weight.dtype)
        m = _mask(mask, pred)
        fa = self.net(self.scaling_layer(pred * 2 - 1))
        fb = self.net(self.scaling_layer(gt * 2 - 1))
        total = torch.zeros(pred.shape[0], device=weight.device, dtype=weight.dtype)
        for k, (a, b) in enumerate(zip(fa, fb, strict=True)):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d = getattr(self, f"lin{k}").model((a - b) ** 2)
            w = F.interpolate(m, size=d.shape[-2:], mode="area")
            total += (d * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3))
        return total.cpu()


# --------------------------------------------------------------------------- no ground truth


def _warp_pairs(frames: Tensor, cameras: Cameras, depth: Tensor, depth_tolerance: float):
    """For t = 1..T-1: frame t-1 warped into camera t, and where that is valid."""
    if not (len(frames) == len(cameras) == len(depth)):
        raise ValueError(f"{len(frames)} frames, {len(cameras)} cameras, {len(depth)} depths")
    for t in range(1, len(frames)):
        warped, valid = backward_warp(
            frames[t - 1],
            cameras[t - 1],
            cameras[t],
            depth[t],
            source_depth=depth[t - 1],
            depth_tolerance=depth_tolerance,
        )
        yield warped, valid


def reprojection_consistency(
    frames: Tensor,
    cameras: Cameras,
    depth: Tensor,
    *,
    threshold: float = 0.1,
    depth_tolerance: float = 0.05,
) -> Tensor:
    """(T-1,) share of pixels of frame t whose colour agrees with frame t-1 after warping.

    Each pixel of frame t with depth is moved into camera t-1 with `depth[t]` and compared with
    the colour frame t-1 shows there (bilinear); pixels that leave the view or are occluded in
    t-1 (its depth differs by more than `depth_tolerance`, relative) are not counted. A pixel
    agrees when its mean absolute RGB difference is below `threshold`. nan where none counts.
    """
    shares = []
    for t, (warped, valid) in enumerate(_warp_pairs(frames, cameras, depth, depth_tolerance), 1):
        agree = (warped - frames[t]).abs().mean(0) < threshold
        shares.append((agree & valid).sum() / valid.sum())
    return torch.stack(shares).float() if shares else torch.zeros(0)


def temporal_flicker(
    frames: Tensor,
    cameras: Cameras | None = None,
    depth: Tensor | None = None,
    *,
    depth_tolerance: float = 0.05,
) -> Tensor:
    """(T-1,) mean absolute RGB change between consecutive frames.

    With cameras and depth the previous frame is first warped into the current camera, so camera
    motion does not count as flicker, and only pixels valid in both frames are averaged.
    """
    if cameras is None or depth is None:
        return (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3))
    out = []
    for t, (warped, valid) in enumerate(_warp_pairs(frames, cameras, depth, depth_tolerance), 1):
        diff = (warped - frames[t]).abs().mean(0)
        out.append((diff * valid).sum() / valid.sum())
    return torch.stack(out).float() if out else torch.zeros(0)


# --------------------------------------------------------------------------- aggregation


def mean_over(values: Iterable[float]) -> float:
    """Mean ignoring nan (empty masks); nan if nothing is left. An inf PSNR makes it inf."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    t = t[~torch.isnan(t)]
    return float(t.mean()) if len(t) else float("nan")


def aggregate(
    records: list[dict], metrics: Iterable[str], levels: tuple[str, ...] = ("dataset",)
) -> dict:
    """Average per-episode records level by level.

    Each record holds a per-episode mean for every metric name (frames already averaged) and a
    key for every level. Episodes are averaged within each dataset, then datasets are averaged,
    so every dataset weighs the same. Returns {"per_<level>": {key: {metric: mean}}, "overall":
    {metric: mean}}.
    """
    metrics = list(metrics)
    groups: list[dict] = records
    out: dict = {}
    for level in levels:
        by_key: dict[str, list[dict]] = {}
        for rec in groups:
            by_key.setdefault(str(rec[level]), []).append(rec)
        means = {
            k: {m: mean_over(r[m] for r in recs) for m in metrics} for k, recs in by_key.items()
        }
        out[f"per_{level}"] = means
        groups = [dict(v, **{level: k}) for k, v in means.items()]
    out["overall"] = {m: mean_over(r[m] for r in groups) for m in metrics}
    return out
