"""Rows per case x structure x metric, and the CSV files built from them."""

from __future__ import annotations

import csv
import logging
import math

import numpy as np
import pytest

from cervseg.errors import GeometryError, StructureError
from cervseg.metrics import overlap
from cervseg.metrics.evaluate import GRADES, METRICS, SLICE_COLUMNS, evaluate_case, write_metrics_csv, write_slices_csv
from cervseg.metrics.slicewise import PAIRED
from cervseg.metrics.surface import surface_distances
from cervseg.volume import Geometry, LabelMap
from tests.metrics import bruteforce


@pytest.fixture
def maps():
    geometry = Geometry.axial((8, 30, 32), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    ref = LabelMap(geometry)
    pred = LabelMap(geometry)
    a = np.zeros(geometry.shape, bool)
    a[1:7] = bruteforce.blob((6, 30, 32), 1, threshold=0.5)
    b = np.zeros(geometry.shape, bool)
    b[2:8] = bruteforce.blob((6, 30, 32), 2, threshold=0.5)
    ref["Bladder"], pred["Bladder"] = a, b
    ref["Rectum"], pred["Rectum"] = a, a  # perfect
    ref["Prostate"] = b  # reference only
    return ref, pred


def test_rows_cover_every_metric_of_common_structures(maps, caplog):
    ref, pred = maps
    with caplog.at_level(logging.WARNING):
        case = evaluate_case("p1", ref, pred)
    assert "Prostate" in caplog.text
    assert {r.structure for r in case.rows} == {"Bladder", "Rectum"}
    assert len(case.rows) == 2 * len(METRICS)
    a, b = ref["Bladder"], pred["Bladder"]
    assert case.value("Bladder", "dice_3d") == pytest.approx(overlap.dice(a, b))
    assert case.value("Bladder", "hd95_3d_mm") == pytest.approx(surface_distances(a, b, (3.0, 1.0, 1.0)).hd95())
    paired = [s for s in case.slices["Bladder"] if s.status == PAIRED]
    assert case.value("Bladder", "dice_2d") == pytest.approx(np.mean([s.dice for s in paired]))
    assert case.value("Bladder", "hd95_2d_mm") == pytest.approx(np.mean([s.hd95_mm for s in paired]))
    assert case.value("Bladder", "slices_missed") == 1  # slice 1
    assert case.value("Bladder", "slices_false_positive") == 1  # slice 7
    assert case.value("Bladder", "slices_paired") == 5
    assert case.value("Bladder", "slices_reference") == 6
    assert case.value("Bladder", "apl_mm") == pytest.approx(sum(s.apl_mm for s in case.slices["Bladder"]))
    assert case.value("Bladder", "volume_ref_ml") == pytest.approx(a.sum() * 3.0 / 1000)
    for metric in ("dice_3d", "dice_2d", "surface_dice_3d", "surface_dice_2d"):
        assert case.value("Rectum", metric) == 1.0
    for metric in ("hd95_3d_mm", "hd_3d_mm", "msd_3d_mm", "apl_mm", "volume_diff_pct"):
        assert case.value("Rectum", metric) == 0.0


def test_metric_catalogue_is_consistent():
    for name, info in METRICS.items():
        assert info.name == name
        assert info.better in ("higher", "lower", "zero", "")
        assert info.over in ("patient", "slice")
        assert name.endswith("_mm") == (info.unit == "mm")


def test_no_common_structure_is_an_error(maps):
    ref, _ = maps
    other = LabelMap(ref.geometry, {"SpinalCord": np.zeros(ref.geometry.shape, bool)})
    with pytest.raises(StructureError, match="no structures in common"):
        evaluate_case("p1", ref, other)


def test_grid_mismatch_is_an_error(maps):
    ref, _ = maps
    shifted = Geometry.axial(ref.geometry.shape, ref.geometry.spacing, (0.0, 0.0, 1.5))
    pred = LabelMap(shifted, {"Bladder": ref["Bladder"]})
    with pytest.raises(GeometryError, match="does not match"):
        evaluate_case("p1", ref, pred)


def test_empty_prediction_counts_all_slices_missed(maps):
    ref, _ = maps
    pred = LabelMap(ref.geometry, {"Bladder": np.zeros(ref.geometry.shape, bool)})
    case = evaluate_case("p1", ref, pred)
    assert case.value("Bladder", "dice_3d") == 0.0
    assert math.isnan(case.value("Bladder", "hd95_3d_mm"))
    assert math.isnan(case.value("Bladder", "dice_2d"))
    assert case.value("Bladder", "slices_missed") == 6
    assert case.value("Bladder", "volume_diff_pct") == -100.0


def test_csv_files_round_trip(maps, tmp_path):
    ref, pred = maps
    pred = LabelMap(ref.geometry, {"Bladder": pred["Bladder"], "Rectum": np.zeros(ref.geometry.shape, bool)})
    case = evaluate_case("p1", ref, pred)
    write_metrics_csv([case], tmp_path / "metrics.csv")
    write_slices_csv([case], tmp_path / "slices.csv")
    with open(tmp_path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(case.rows) + 1
    assert [(r["structure"], r["value"], r["note"]) for r in rows if r["metric"] == "not_evaluated"] == [
        ("Prostate", "", "no prediction")]
    by_key = {(r["structure"], r["metric"]): r for r in rows}
    assert float(by_key["Bladder", "dice_3d"]["value"]) == pytest.approx(case.value("Bladder", "dice_3d"), rel=1e-5)
    assert by_key["Rectum", "hd95_3d_mm"]["value"] == ""  # undefined, not zero
    assert by_key["Bladder", "hd95_3d_mm"]["unit"] == "mm"
    with open(tmp_path / "slices.csv", newline="") as fh:
        slices = list(csv.DictReader(fh))
    assert tuple(slices[0].keys()) == SLICE_COLUMNS
    assert len(slices) == sum(len(v) for v in case.slices.values())
    assert {s["status"] for s in slices if s["structure"] == "Rectum"} == {"missed"}
    assert all(s["grade"] == "" for s in slices)
    assert GRADES == ("Acceptable", "Minor revision", "Major revision", "Not acceptable")


def test_an_empty_reference_is_not_scored_as_a_miss() -> None:
    """Contours between slices rasterise to nothing: "reference empty", never Dice 0."""
    g = Geometry.axial((4, 10, 10), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    a = np.zeros(g.shape, bool)
    a[1:3, 2:6, 2:6] = True
    empty = np.zeros(g.shape, bool)
    for score_missing in (False, True):
        case = evaluate_case("P", LabelMap(g, {"Bladder": a, "Prostate": empty}),
                             LabelMap(g, {"Bladder": a, "Prostate": a}), score_missing=score_missing)
        assert case.not_evaluated == {"Prostate": "reference empty"}
        assert {r.structure for r in case.rows} == {"Bladder"} and "Prostate" not in case.slices


def test_missing_prediction_is_a_complete_miss_when_asked() -> None:
    """An RTSTRUCT leaves empty structures out; with a template they must still count."""
    g = Geometry.axial((4, 10, 10), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    a = np.zeros(g.shape, bool)
    a[1:3, 2:6, 2:6] = True
    reference = LabelMap(g, {"Bladder": a, "Rectum": a.copy()})
    prediction = LabelMap(g, {"Bladder": a})
    default = evaluate_case("P", reference, prediction)
    assert default.not_evaluated == {"Rectum": "no prediction"}
    strict = evaluate_case("P", reference, prediction, score_missing=True)
    assert strict.not_evaluated == {}
    assert strict.value("Rectum", "dice_3d") == 0.0
    assert strict.value("Rectum", "slices_missed") == 2.0
    assert strict.value("Bladder", "dice_3d") == 1.0
