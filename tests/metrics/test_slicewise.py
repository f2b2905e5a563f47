"""Per-slice metrics: status convention, slice positions, values against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cervseg.metrics.slicewise import FALSE_POSITIVE, MISSED, PAIRED, mean_over_paired, slice_metrics
from cervseg.volume import Geometry
from tests.metrics import bruteforce


@pytest.fixture
def case():
    geometry = Geometry.axial((10, 24, 26), (2.5, 0.8, 1.1), (-40.0, -30.0, 100.0))
    ref = np.zeros(geometry.shape, bool)
    pred = ref.copy()
    for z in range(2, 7):
        ref[z] = bruteforce.blob((24, 26), 10 + z, threshold=0.5)
    for z in range(3, 9):
        pred[z] = bruteforce.blob((24, 26), 20 + z, threshold=0.5)
    assert all(ref[z].any() for z in range(2, 7)) and all(pred[z].any() for z in range(3, 9))
    return geometry, ref, pred


def test_status_convention(case):
    geometry, ref, pred = case
    results = slice_metrics(ref, pred, geometry, tolerance_mm=2.0)
    status = {r.slice_index: r.status for r in results}
    assert status == {2: MISSED, 3: PAIRED, 4: PAIRED, 5: PAIRED, 6: PAIRED, 7: FALSE_POSITIVE, 8: FALSE_POSITIVE}
    for r in results:
        assert r.slice_z_mm == pytest.approx(100.0 + 2.5 * r.slice_index)
        if r.status != PAIRED:
            assert r.dice == 0.0 and r.surface_dice == 0.0
            assert math.isnan(r.hd95_mm) and math.isnan(r.hd_mm) and math.isnan(r.msd_mm)


def test_paired_values_match_bruteforce(case):
    geometry, ref, pred = case
    in_plane = geometry.spacing[1:]
    pixel = float(np.mean(in_plane))
    for r in slice_metrics(ref, pred, geometry, tolerance_mm=2.0):
        a, b = ref[r.slice_index], pred[r.slice_index]
        if r.status == PAIRED:
            both = bruteforce.pooled(a, b, in_plane)
            assert r.dice == pytest.approx(bruteforce.dice(a, b))
            assert r.hd95_mm == pytest.approx(np.percentile(both, 95), abs=1e-4)
            assert r.hd_mm == pytest.approx(both.max(), abs=1e-4)
            assert r.msd_mm == pytest.approx(both.mean(), abs=1e-4)
            assert r.surface_dice == pytest.approx((both <= 2.0).mean())
            assert r.apl_mm == pytest.approx((bruteforce.directed(a, b, in_plane) > 2.0).sum() * pixel)
        elif r.status == MISSED:  # the whole reference contour must be drawn
            assert r.apl_mm == pytest.approx(len(bruteforce.boundary_points(a)) * pixel)
        else:
            assert r.apl_mm == 0.0
        assert r.reference_pixels == a.sum() and r.prediction_pixels == b.sum()


def test_mean_over_paired_ignores_missed_and_false_positive(case):
    geometry, ref, pred = case
    results = slice_metrics(ref, pred, geometry)
    paired = [r.dice for r in results if r.status == PAIRED]
    assert len(paired) == 4
    assert mean_over_paired(results, "dice") == pytest.approx(np.mean(paired))
    assert math.isnan(mean_over_paired([r for r in results if r.status != PAIRED], "dice"))


def test_slice_position_follows_the_normal_for_feet_first():
    # feet-first: slice axis points to -z; positions are still increasing along the normal
    geometry = Geometry((4, 6, 6), (3.0, 1.0, 1.0), (0.0, 0.0, 50.0), ((0, 0, -1), (0, 1, 0), (-1, 0, 0)))
    ref = np.zeros(geometry.shape, bool)
    ref[1:3, 2:4, 2:4] = True
    results = slice_metrics(ref, ref, geometry)
    assert [r.slice_index for r in results] == [1, 2]
    normal = geometry.slice_normal_coordinates()
    assert [r.slice_z_mm for r in results] == pytest.approx([normal[1], normal[2]])
    assert all(r.dice == 1.0 and r.hd95_mm == 0.0 for r in results)


def test_empty_structure_has_no_slices():
    geometry = Geometry.axial((3, 5, 5), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    empty = np.zeros(geometry.shape, bool)
    assert slice_metrics(empty, empty, geometry) == []
