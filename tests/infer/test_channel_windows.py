"""Resampling each channel only where it is not ~0 gives what resampling everything gives."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from cervseg.data.grid import SliceGrid
from cervseg.infer.channel_windows import QA_LEVEL, active_box, decide_channels, probability_bytes


def _probabilities(seed: int, n: int = 3, channels: int = 4, size: int = 64) -> np.ndarray:
    """Smooth blobs of probability on a near-zero background, one channel empty, one at the edge."""
    rng = np.random.default_rng(seed)
    probs = np.zeros((n, channels, size, size), dtype=np.float32)
    yy, xx = np.mgrid[:size, :size]
    for c in range(channels - 1):
        cy, cx = (rng.uniform(8, size - 8, 2) if c else (2.0, size - 3.0))  # channel 0 touches the edge
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(3, 8) ** 2))
        for k in range(n):
            probs[k, c] = np.clip(gaussian_filter(blob * rng.uniform(0.6, 1.0), 1.0), 0, 1)
    probs[:, channels - 1] = 1e-4  # nothing: below every level
    return probs


def _dense(probs: np.ndarray, grid: SliceGrid, threshold: float):
    on_window = grid.window_of(probs)
    return on_window > threshold, probability_bytes(on_window)


@pytest.mark.parametrize("step, origin", [((2.5, 2.5), (-20.3, -11.7)), ((1.6, 2.0), (3.2, -0.4)),
                                          ((0.8, 0.8), (10.0, 5.5))])
def test_same_masks_and_kept_probabilities_as_resampling_everything(step, origin):
    grid = SliceGrid((160, 150), origin, step, (64, 64))
    probs = _probabilities(int(step[0] * 10))
    masks, kept = _dense(probs, grid, 0.5)
    rows, cols = grid.covered_window()
    got_masks = np.zeros_like(masks)
    got_kept = np.ones_like(kept)
    seen = []
    for c, (r, k), mask, values in decide_channels(probs, grid, 0.5, keep=True):
        seen.append(c)
        window = (slice(None), c, slice(r.start - rows.start, r.stop - rows.start),
                  slice(k.start - cols.start, k.stop - cols.start))
        got_masks[window] = mask
        got_kept[window] = values
    assert 3 not in seen and 0 in seen  # the empty channel is skipped, the edge one is not
    np.testing.assert_array_equal(got_masks, masks)
    np.testing.assert_array_equal(got_kept, kept)
    assert masks[:, :3].any()


def test_without_kept_probabilities_only_the_threshold_matters():
    grid = SliceGrid((160, 150), (-20.3, -11.7), (2.5, 2.5), (64, 64))
    probs = _probabilities(3)
    masks, _ = _dense(probs, grid, 0.7)
    rows, cols = grid.covered_window()
    got = np.zeros_like(masks)
    for c, (r, k), mask, values in decide_channels(probs, grid, 0.7, keep=False):
        assert values is None
        got[:, c, r.start - rows.start:r.stop - rows.start, k.start - cols.start:k.stop - cols.start] = mask
    np.testing.assert_array_equal(got, masks)


def test_active_box_is_the_levels_reach_plus_one_pixel():
    p = np.zeros((2, 10, 12), dtype=np.float32)
    p[0, 3, 4] = 0.9
    p[1, 6, 9] = QA_LEVEL
    assert active_box(p, QA_LEVEL) == (slice(2, 8), slice(3, 11))
    assert active_box(p, 0.5) == (slice(2, 5), slice(3, 6))
    p[0, 0, 11] = 1.0
    assert active_box(p, 0.5) == (slice(0, 5), slice(3, 12))  # clipped at the grid's edges
    assert active_box(np.zeros((1, 4, 4)), QA_LEVEL) is None
