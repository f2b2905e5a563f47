"""Overlay slice choice, radiological display orientation and the rendered contours."""

from __future__ import annotations

import io
import math

import matplotlib.image as mpimg
import numpy as np
import pytest

from cervseg.metrics.slicewise import FALSE_POSITIVE, MISSED, PAIRED, SliceResult, slice_metrics
from cervseg.report.overlays import (
    PREDICTION_COLOUR, REFERENCE_COLOUR, choose, display_flips, extract_patch, median_slice, render, worst_slice,
)
from cervseg.volume import Geometry, Volume

POSITIONS = {
    "HFS": ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
    "FFS": ((0, 0, -1), (0, 1, 0), (-1, 0, 0)),
    "HFP": ((0, 0, 1), (0, -1, 0), (-1, 0, 0)),
    "FFP": ((0, 0, -1), (0, -1, 0), (1, 0, 0)),
}


def s(k, dice, status=PAIRED, ref=100, pred=100):
    nan = math.nan
    return SliceResult(k, float(k), status, dice, nan, nan, nan, nan, nan, ref, pred)


def test_worst_and_median_choice():
    slices = [s(1, 0.9), s(2, 0.5), s(3, 0.7), s(4, 0.8), s(5, 0.0, MISSED, ref=50, pred=0), s(6, 0.0, MISSED, ref=80, pred=0),
              s(7, 0.0, FALSE_POSITIVE, ref=0)]
    assert worst_slice(slices).slice_index == 6  # missed, larger reference
    assert median_slice(slices).slice_index == 3  # paired dice sorted 0.5 0.7 0.8 0.9 -> lower median 0.7
    assert worst_slice([s(7, 0.0, FALSE_POSITIVE, ref=0, pred=5), s(8, 0.0, FALSE_POSITIVE, ref=0, pred=9)]).slice_index == 8
    assert median_slice([s(7, 0.0, FALSE_POSITIVE, ref=0)]) is None


@pytest.mark.parametrize("position", list(POSITIONS))
def test_patient_left_is_on_the_image_right_and_anterior_up(position):
    g = Geometry((3, 60, 60), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0), POSITIONS[position])
    idx = np.indices(g.shape).reshape(3, -1).T
    x, y, _ = g.index_to_lps(idx).T.reshape(3, *g.shape)
    cx, cy = x.mean(), y.mean()
    ref = (np.abs(x - cx) < 20) & (np.abs(y - cy) < 20)
    pred = ref & (x > cx)  # prediction only on the patient's left half ...
    pred |= ref & (y < cy - 10)  # ... and on an anterior band
    results = slice_metrics(ref, pred, g)
    patch = extract_patch("p", "Bladder", "worst", results[1], ref, pred, g, Volume(np.zeros(g.shape), g))
    cols = np.nonzero(patch.prediction.any(axis=0))[0]
    half = patch.prediction.shape[1] / 2
    left_half = patch.prediction[:, int(half):].sum()
    right_half = patch.prediction[:, : int(half)].sum()
    assert left_half > right_half  # patient left drawn on the image right
    rows_with_full_width = [r for r in range(patch.prediction.shape[0]) if patch.prediction[r].sum() == patch.reference[r].sum() > 0]
    assert rows_with_full_width and max(rows_with_full_width) < patch.prediction.shape[0] / 2  # anterior band at the top
    assert cols.size


def test_display_flips_follow_axes():
    assert display_flips(Geometry.axial((2, 2, 2), (1, 1, 1), (0, 0, 0))) == (False, False)
    assert display_flips(Geometry((2, 2, 2), (1, 1, 1), (0, 0, 0), POSITIONS["HFP"])) == (True, True)


def test_render_draws_both_contours():
    g = Geometry.axial((3, 50, 50), (3.0, 0.8, 1.2), (0.0, 0.0, 0.0))
    ref = np.zeros(g.shape, bool)
    ref[1, 10:30, 10:30] = True
    pred = np.roll(ref, 6, axis=2)
    results = slice_metrics(ref, pred, g)
    patches = [extract_patch("p", "Rectum", w, results[0], ref, pred, g, None) for w in ("worst", "median")]
    png = render(patches)
    img = mpimg.imread(io.BytesIO(png))[..., :3]
    for colour in (REFERENCE_COLOUR, PREDICTION_COLOUR):
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
        assert (np.abs(img - rgb).max(axis=-1) < 0.15).sum() > 50, colour


def test_choose_worst_and_closest_to_pooled_median():
    g = Geometry.axial((3, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    m = np.zeros(g.shape, bool)
    m[1, 2:5, 2:5] = True
    def patch(p, which, dice):
        return extract_patch(p, "Bladder", which, s(1, dice), m, m, g, None)
    chosen = choose([patch("a", "worst", 0.3), patch("b", "worst", 0.1), patch("a", "median", 0.8), patch("b", "median", 0.6)],
                     [0.1, 0.55, 0.6, 0.62, 0.8])
    assert [(c.patient, c.which) for c in chosen] == [("b", "worst"), ("b", "median")]
