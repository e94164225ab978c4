"""Depth backends: Depth Anything V2 and Depth Pro (transformers), heuristic pop-up, a user file.

Every backend returns z-depth `(H,W)` at the input image's resolution. Relative estimators say
`metric=False` and are normalised to a median depth of 1; those whose output is an
affine-invariant disparity say `space="disparity"` (align them in 1 / depth).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from dreamjourney.errors import InputError
from dreamjourney.io.depth import load_depth
from dreamjourney.io.images import to_uint8
from dreamjourney.models.protocols import DepthEstimator, DepthResult
from dreamjourney.models.weights import (
    ModelStore,
    load_pretrained,
    parse_dtype,
    resident,
    resolve_weights,
)


def disparity_to_depth(disparity: Tensor, *, range_ratio: float = 100.0) -> Tensor:
    """Relative (affine-invariant) disparity `(H,W)` -> z-depth `(H,W)` with median 1.

    The disparity is mapped affinely onto `[1/range_ratio, 1]` (nearest pixel -> 1, farthest
    -> 1/range_ratio), inverted, and divided by its median, so the far/near depth ratio is at
    most `range_ratio` and never infinite, whatever shift the estimator's output carries.
    """
    d = disparity.float()
    lo, hi = d.min(), d.max()
    unit = (d - lo) / (hi - lo) if hi > lo else torch.ones_like(d)
    depth = 1.0 / (unit * (1.0 - 1.0 / range_ratio) + 1.0 / range_ratio)
    return depth / depth.median()


def _resize(x: Tensor, height: int, width: int) -> Tensor:
    return F.interpolate(x[None, None], size=(height, width), mode="bilinear", align_corners=False)[
        0, 0
    ]


class DepthAnythingDepth:
    """Depth Anything (V1/V2) relative depth through `AutoModelForDepthEstimation`.

    model: hub id (default Depth Anything V2 Large), local directory, or `tiny:depth-anything`.
    range_ratio: the largest far/near depth ratio (see `disparity_to_depth`).
    offload: keep the model on the CPU except while it runs.
    """

    name = "depth-anything-v2"

    def __init__(
        self,
        model: str = "depth-anything/Depth-Anything-V2-Large-hf",
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = None,
        range_ratio: float = 100.0,
        offload: bool = False,
        store: ModelStore | None = None,
    ):
        self.model_id = model
        self.device = torch.device(device)
        self.dtype = parse_dtype(dtype) or torch.float32
        self.range_ratio = range_ratio
        self.offload = offload
        self.store = store or ModelStore()
        self._model: Any = None
        self._processor: Any = None

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role="depth")

    def _load(self) -> None:
        if self._model is None:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation

            def load() -> tuple[Any, Any]:
                processor = load_pretrained(AutoImageProcessor, self.model_id, role="depth")
                model = load_pretrained(
                    AutoModelForDepthEstimation, self.model_id, role="depth", dtype=self.dtype
                )
                return processor, model.to("cpu" if self.offload else self.device).eval()

            self._processor, self._model = self.store.get(("depth", self.model_id), load)

    @torch.no_grad()
    def estimate(self, image: Tensor) -> DepthResult:
        """z-depth `(H,W)` of `image` `(3,H,W)`, median 1, `metric=False`.

        The model's output is an affine-invariant disparity, so the depth is right up to a
        scale and shift of its inverse: `space="disparity"`.
        """
        self._load()
        height, width = image.shape[-2:]
        inputs = self._processor(images=Image.fromarray(to_uint8(image)), return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        with resident(self._model, self.device, self.offload):
            disparity = self._model(pixel_values=pixels).predicted_depth[0].float().cpu()
        depth = disparity_to_depth(_resize(disparity, height, width), range_ratio=self.range_ratio)
        return DepthResult(depth=depth.contiguous(), metric=False, focal_px=None, space="disparity")


class DepthProDepth:
    """Apple Depth Pro through `DepthProForDepthEstimation`: metric depth and a focal length.

    The focal length comes from the model's field-of-view head: `f = 0.5 W / tan(fov/2)` in
    pixels of the input image. Preprocessing (normalise, then resize to the model's size) is
    done here because transformers' Depth Pro processor needs torchvision.
    offload: keep the model on the CPU except while it runs.
    """

    name = "depth-pro"

    def __init__(
        self,
        model: str = "apple/DepthPro-hf",
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype | None = None,
        offload: bool = False,
        store: ModelStore | None = None,
    ):
        self.model_id = model
        self.device = torch.device(device)
        self.dtype = parse_dtype(dtype) or torch.float32
        self.offload = offload
        self.store = store or ModelStore()
        self._model: Any = None
        self._pre: dict[str, Any] = {}

    def check_weights(self) -> None:
        resolve_weights(self.model_id, role="depth")

    def _load(self) -> None:
        if self._model is None:
            from transformers import DepthProForDepthEstimation

            def load() -> tuple[dict[str, Any], Any]:
                model = load_pretrained(
                    DepthProForDepthEstimation, self.model_id, role="depth", dtype=self.dtype
                )
                path = resolve_weights(self.model_id, role="depth") / "preprocessor_config.json"
                pre = json.loads(path.read_text()) if path.exists() else {}
                settings = {
                    "size": pre.get("size", {"height": 1536, "width": 1536}),
                    "mean": torch.tensor(pre.get("image_mean", [0.5] * 3)).view(3, 1, 1),
                    "std": torch.tensor(pre.get("image_std", [0.5] * 3)).view(3, 1, 1),
                }
                return settings, model.to("cpu" if self.offload else self.device).eval()

            self._pre, self._model = self.store.get(("depth", self.model_id), load)

    @torch.no_grad()
    def estimate(self, image: Tensor) -> DepthResult:
        """Metric z-depth `(H,W)` in metres and the focal length in pixels."""
        self._load()
        height, width = image.shape[-2:]
        size = self._pre["size"]
        x = (image.float().cpu() - self._pre["mean"]) / self._pre["std"]
        x = F.interpolate(x[None], size=(size["height"], size["width"]), mode="bilinear")
        with resident(self._model, self.device, self.offload):
            out = self._model(pixel_values=x.to(self.device, self.dtype))
            canonical = out.predicted_depth[0].float().cpu()
            fov = out.field_of_view
        focal: float | None = None
        if fov is not None:
            focal = float(0.5 * width / torch.tan(0.5 * torch.deg2rad(fov[0].float().cpu())))
            canonical = canonical * width / focal
        depth = 1.0 / _resize(canonical, height, width).clamp(1e-4, 1e4)
        return DepthResult(depth=depth.contiguous(), metric=fov is not None, focal_px=focal)


class HeuristicDepth:
    """Offline pop-up depth (`dreamjourney.scene.heuristic_depth`), relative, median about 1.

    fov_deg: horizontal field of view assumed for the image.
    """

    name = "heuristic"

    def __init__(self, *, fov_deg: float = 60.0):
        self.fov_deg = fov_deg

    def check_weights(self) -> None:
        """Needs no weights."""

    def estimate(self, image: Tensor) -> DepthResult:
        from dreamjourney.camera import Cameras
        from dreamjourney.scene import heuristic_depth

        height, width = image.shape[-2:]
        camera = Cameras.create(
            torch.eye(4)[None], width=width, height=height, fov_deg=self.fov_deg
        )
        depth = heuristic_depth(image, camera).float()
        return DepthResult(depth=depth, metric=False, focal_px=None)


class FileDepth:
    """The input image's depth from a user's `.npy` (or `.npz` with a `depth` array) file.

    The file gives the depth of the first image this backend sees (the journey's input photo):
    z-depth `(H,W)`, 0 = unknown, resized (nearest) when its aspect ratio matches the image's.
    Every later image goes to `rest`, another depth backend named in the config; without one,
    a later call is an error rather than a silent reuse of the file.

    metric: whether the file's depth is in metres.
    """

    name = "file"

    def __init__(
        self, path: str | Path, *, metric: bool = False, rest: DepthEstimator | None = None
    ):
        self.path = Path(path)
        self.metric = metric
        self.rest = rest
        self._used = False

    def check_weights(self) -> None:
        if not self.path.is_file():
            raise InputError("depth file not found", source=self.path)
        check = getattr(self.rest, "check_weights", None)
        if check is not None:
            check()

    def load(self) -> Tensor:
        """The file's depth `(H,W)` float32, validated."""
        if not self.path.is_file():
            raise InputError("depth file not found", source=self.path)
        return load_depth(self.path)

    def estimate(self, image: Tensor) -> DepthResult:
        if self._used:
            if self.rest is None:
                raise InputError(
                    "a depth file gives only the input image's depth; set depth.rest to a "
                    "backend (e.g. 'heuristic') for the frames after it",
                    source=self.path,
                )
            return self.rest.estimate(image)
        depth = self.load()
        height, width = image.shape[-2:]
        if depth.shape != (height, width):
            dh, dw = depth.shape
            if abs(dw / dh - width / height) > 0.01 * width / height:
                raise InputError(
                    f"depth is {dw}x{dh} but the image is {width}x{height} (different aspect)",
                    source=self.path,
                )
            depth = F.interpolate(depth[None, None], size=(height, width), mode="nearest")[0, 0]
        self._used = True
        return DepthResult(depth=depth, metric=self.metric, focal_px=None)
