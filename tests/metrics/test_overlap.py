"""Overlap measures: hand-computed cases, MONAI's compute_dice and a brute-force count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice

from cervseg.metrics import overlap
from tests.metrics import bruteforce


def cube(shape, start, size) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[tuple(slice(s, s + size) for s in start)] = True
    return m


def test_offset_cubes_hand_computed():
    # two 10^3 cubes shifted by 3 voxels along x: intersection 10*10*7
    a = cube((20, 20, 20), (2, 2, 2), 10)
    b = cube((20, 20, 20), (2, 2, 5), 10)
    assert overlap.dice(a, b) == pytest.approx(0.7)
    assert overlap.jaccard(a, b) == pytest.approx(700 / 1300)
    assert overlap.volume_ml(a, (3.0, 1.0, 2.0)) == pytest.approx(1000 * 6 / 1000)
    assert overlap.volume_difference_percent(a, b) == 0.0


def test_volume_difference_sign_and_empty():
    a = cube((10, 10, 10), (0, 0, 0), 4)  # 64 voxels
    b = cube((10, 10, 10), (0, 0, 0), 2)  # 8 voxels
    assert overlap.volume_difference_percent(a, b) == pytest.approx(100 * (8 - 64) / 64)
    assert math.isnan(overlap.volume_difference_percent(np.zeros_like(a), b))


def test_empty_conventions():
    empty = np.zeros((5, 5), bool)
    one = empty.copy()
    one[2, 2] = True
    assert math.isnan(overlap.dice(empty, empty))
    assert math.isnan(overlap.jaccard(empty, empty))
    assert overlap.dice(one, empty) == 0.0
    assert overlap.dice(empty, one) == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        overlap.dice(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


@pytest.mark.parametrize("seed", range(4))
def test_dice_matches_monai_and_bruteforce(seed):
    a = bruteforce.blob((12, 14, 16), seed)
    b = bruteforce.blob((12, 14, 16), seed + 100)
    assert a.any() and b.any()
    ours = overlap.dice(a, b)
    monai = compute_dice(
        torch.from_numpy(b[None, None].astype(np.float32)),
        torch.from_numpy(a[None, None].astype(np.float32)),
        include_background=True,
    ).item()
    assert ours == pytest.approx(monai, abs=1e-6)
    assert ours == pytest.approx(bruteforce.dice(a, b), abs=1e-12)
