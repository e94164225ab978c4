"""Distances into holes and the depth behind them."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dreamjourney.scene.holes import far_side, hole_distance


def test_hole_distance_is_the_exact_euclidean_distance():
    rng = np.random.default_rng(0)
    for _ in range(10):
        holes = np.zeros((60, 90), bool)
        for y, x, h, w in rng.integers(0, 60, (4, 4)):
            holes[y : y + h, x : x + w] = True
        holes |= rng.random(holes.shape) < 0.02
        got = hole_distance(holes)
        np.testing.assert_allclose(got, ndimage.distance_transform_edt(holes), atol=1e-4)
        assert (got[~holes] == 0).all()
    assert np.isinf(hole_distance(np.ones((4, 5), bool))).all()
    assert (hole_distance(np.zeros((4, 5), bool)) == 0).all()


def test_far_side_reaches_across_a_hole_to_the_background():
    # an object at depth 1 (columns 0-19), a hole (20-29) a move opened, background at 5
    depth = np.where(np.arange(50) < 20, 1.0, 5.0)[None].repeat(12, 0)
    known = np.ones_like(depth, bool)
    known[:, 20:30] = False
    far = far_side(known, np.where(known, depth, 0.0))
    assert (far[:, 20:30] == 5.0).all()
    assert (far_side(np.zeros_like(known), np.zeros_like(depth)) == 0).all()  # nothing known
