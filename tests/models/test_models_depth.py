"""Depth backends: tiny Depth Anything / Depth Pro, heuristic wiring, depth files, missing weights."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image

from dreamjourney.errors import InputError, MissingWeightsError
from dreamjourney.io.images import to_uint8
from dreamjourney.models.depth import (
    DepthAnythingDepth,
    DepthProDepth,
    FileDepth,
    HeuristicDepth,
    disparity_to_depth,
)
from dreamjourney.models.protocols import DepthEstimator


def test_disparity_to_depth_is_inverse_and_bounded():
    disparity = torch.linspace(-3.0, 5.0, 9).view(3, 3)  # shift and sign are arbitrary
    depth = disparity_to_depth(disparity, range_ratio=10.0)
    assert depth.median() == pytest.approx(1.0)
    assert depth.max() / depth.min() == pytest.approx(10.0, rel=1e-5)
    flat = depth.flatten()
    assert torch.all(flat[1:] < flat[:-1])  # larger disparity = nearer
    # z = 1 / (affine map of disparity onto [1/R, 1]), up to the median normalisation
    unit = (disparity - disparity.min()) / (disparity.max() - disparity.min())
    expected = 1 / (unit * 0.9 + 0.1)
    torch.testing.assert_close(depth, expected / expected.median())
    assert torch.all(disparity_to_depth(torch.zeros(2, 2)) == 1.0)


def test_depth_anything_tiny(tiny_model):
    estimator = DepthAnythingDepth(tiny_model("depth-anything"))
    assert isinstance(estimator, DepthEstimator)
    image = torch.rand(3, 40, 56)
    result = estimator.estimate(image)
    assert result.depth.shape == (40, 56) and result.depth.dtype == torch.float32
    assert torch.all(result.depth > 0) and result.depth.median() == pytest.approx(1.0)
    assert result.metric is False and result.focal_px is None
    assert result.space == "disparity"  # an affine-invariant disparity: aligned in 1 / depth
    # depth is the inverse of the model's relative disparity: nearest where disparity peaks
    inputs = estimator._processor(images=Image.fromarray(to_uint8(image)), return_tensors="pt")
    with torch.no_grad():
        disparity = estimator._model(**inputs).predicted_depth[0]
    disparity = torch.nn.functional.interpolate(
        disparity[None, None], size=(40, 56), mode="bilinear"
    )[0, 0]
    assert result.depth.flatten().argmin() == disparity.flatten().argmax()
    assert result.depth.flatten().argmax() == disparity.flatten().argmin()


def test_depth_pro_tiny_gives_metric_depth_and_focal(tiny_model):
    estimator = DepthProDepth(tiny_model("depth-pro"))
    result = estimator.estimate(torch.rand(3, 40, 56))
    assert result.depth.shape == (40, 56) and torch.all(result.depth > 0)
    assert result.metric is True and result.space == "depth"
    assert result.focal_px is not None and result.focal_px > 0


class _DepthProHeads(torch.nn.Module):
    """Depth Pro's two outputs, fixed: canonical inverse depth `inverse` and a field of view."""

    def __init__(self, inverse: torch.Tensor, fov_deg: float):
        super().__init__()
        self.inverse, self.fov = inverse, torch.tensor([fov_deg])

    def forward(self, pixel_values):
        if pixel_values.shape != (1, 3, *self.inverse.shape):
            raise ValueError(f"expected the model's input size, got {tuple(pixel_values.shape)}")
        return types.SimpleNamespace(predicted_depth=self.inverse[None], field_of_view=self.fov)


def test_depth_pro_metric_depth_from_the_field_of_view():
    """Depth Pro predicts inverse depth for a canonical image width: with a 90 degree field of
    view, f = W / 2 and metric depth = f / (W * inverse) = 1 / (2 * inverse)."""
    estimator = DepthProDepth("unused")
    inverse = torch.full((32, 32), 0.25)
    inverse[:, 16:] = 0.125  # the right half twice as far
    estimator._model = _DepthProHeads(inverse, fov_deg=90.0)
    estimator._pre = {
        "size": {"height": 32, "width": 32},
        "mean": torch.zeros(3, 1, 1),
        "std": torch.ones(3, 1, 1),
    }
    result = estimator.estimate(torch.rand(3, 40, 64))  # not the model's size: resized back
    assert result.metric is True and result.focal_px == pytest.approx(32.0)
    assert result.depth.shape == (40, 64)
    assert torch.allclose(result.depth[:, :28], torch.tensor(2.0))
    assert torch.allclose(result.depth[:, 36:], torch.tensor(4.0))


def test_heuristic_depth_passes_a_camera_with_the_fov(monkeypatch):
    import dreamjourney.scene as scene

    seen = {}
    real = scene.heuristic_depth

    def spy(image, camera):
        seen["fov"] = float(camera.fov_deg("horizontal")[0])
        seen["size"] = (camera.width, camera.height)
        seen["depth"] = real(image, camera)
        return seen["depth"]

    monkeypatch.setattr(scene, "heuristic_depth", spy)
    result = HeuristicDepth(fov_deg=50.0).estimate(torch.rand(3, 24, 32))
    assert seen["fov"] == pytest.approx(50.0) and seen["size"] == (32, 24)
    assert result.depth.dtype == torch.float32 and torch.equal(result.depth, seen["depth"].float())
    assert result.metric is False and result.focal_px is None


def test_file_depth_round_trip_and_rest(tmp_path):
    depth = np.random.default_rng(0).uniform(0.5, 3.0, (12, 16)).astype(np.float32)
    np.save(tmp_path / "d.npy", depth)
    rest = FileDepth(tmp_path / "d.npy")  # any estimator serves as `rest`
    backend = FileDepth(tmp_path / "d.npy", metric=True, rest=rest)
    first = backend.estimate(torch.rand(3, 12, 16))
    assert first.metric and torch.equal(first.depth, torch.from_numpy(depth))
    # later images go to `rest` (here another file backend, on its own first call)
    second = backend.estimate(torch.rand(3, 24, 32))  # same aspect -> nearest resize
    assert second.depth.shape == (24, 32) and torch.equal(
        second.depth[::2, ::2], torch.from_numpy(depth)
    )
    alone = FileDepth(tmp_path / "d.npy")
    alone.estimate(torch.rand(3, 12, 16))
    with pytest.raises(InputError, match=r"depth\.rest"):
        alone.estimate(torch.rand(3, 12, 16))


def test_file_depth_npz_and_bad_files(tmp_path):
    np.savez(tmp_path / "d.npz", depth=np.ones((4, 4), np.float32))
    assert FileDepth(tmp_path / "d.npz").estimate(torch.rand(3, 4, 4)).depth.sum() == 16
    np.savez(tmp_path / "other.npz", z=np.ones((4, 4)))
    np.save(tmp_path / "neg.npy", -np.ones((4, 4)))
    np.save(tmp_path / "cube.npy", np.ones((2, 4, 4)))
    (tmp_path / "text.npy").write_text("not numpy")
    cases = {
        "other.npz": "no 'depth' array",
        "neg.npy": "negative values",
        "cube.npy": r"expected \(H, W\)",
        "text.npy": "cannot read depth",
        "missing.npy": "not found",
    }
    for name, message in cases.items():
        with pytest.raises(InputError, match=message) as info:
            FileDepth(tmp_path / name).estimate(torch.rand(3, 4, 4))
        assert name in str(info.value) and "\n" not in str(info.value)
    np.save(tmp_path / "wide.npy", np.ones((4, 8), np.float32))
    with pytest.raises(InputError, match="different aspect"):
        FileDepth(tmp_path / "wide.npy").estimate(torch.rand(3, 4, 4))


def test_missing_weights_name_the_model_places_and_remedy(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError) as info:
        DepthAnythingDepth("depth-anything/Depth-Anything-V2-Large-hf").estimate(
            torch.rand(3, 8, 8)
        )
    msg = str(info.value)
    assert "'depth-anything/Depth-Anything-V2-Large-hf'" in msg
    assert str(tmp_path / "hub") in msg
    assert "huggingface-cli download depth-anything/Depth-Anything-V2-Large-hf" in msg
    assert "local directory" in msg and "\n" not in msg
    # a local directory that does not exist, and one without the files
    with pytest.raises(MissingWeightsError, match=str(tmp_path / "nowhere")):
        DepthAnythingDepth(str(tmp_path / "nowhere")).check_weights()
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="loading failed"):
        DepthProDepth(str(tmp_path / "empty")).estimate(torch.rand(3, 8, 8))


def test_hub_cache_is_searched_and_an_incomplete_copy_is_named(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from dreamjourney.models.weights import find_weights

    cache = tmp_path / "hub"
    repo = cache / "models--apple--DepthPro-hf"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert find_weights("apple/DepthPro-hf") == snapshot
    assert find_weights("apple/other") is None
    with pytest.raises(MissingWeightsError) as info:
        DepthProDepth("apple/DepthPro-hf").estimate(torch.rand(3, 8, 8))
    msg = str(info.value)
    assert "'apple/DepthPro-hf'" in msg and f"cached copy {snapshot} is incomplete" in msg
