"""Summaries (pooled slices vs per patient), best-model marking and the table writers."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from cervseg.metrics.evaluate import METRICS, CaseResult, MetricRow
from cervseg.metrics.slicewise import MISSED, PAIRED, SliceResult
from cervseg.report.tables import (
    best_models, compare_table, format_mean_sd, metric_values, summarise, summary_table, write_summary_csv,
)


def sl(k: int, dice: float, status: str = PAIRED, hd95: float = 1.0) -> SliceResult:
    nan = math.nan
    paired = status == PAIRED
    return SliceResult(k, 5.0 * k, status, dice if paired else 0.0, hd95 if paired else nan, hd95 if paired else nan,
                       0.5 if paired else nan, 0.9 if paired else 0.0, 0.0, 10, 10 if paired else 0)


def case(patient: str, structure: str, values: dict[str, float], slices: list[SliceResult]) -> CaseResult:
    rows = [MetricRow(patient, structure, m, values.get(m, math.nan)) for m in METRICS]
    return CaseResult(patient, rows, {structure: slices})


@pytest.fixture
def cases():
    return [
        case("p1", "Bladder", {"dice_3d": 0.8, "hd95_3d_mm": 4.0}, [sl(1, 0.5), sl(2, 0.7), sl(3, 0.0, MISSED)]),
        case("p2", "Bladder", {"dice_3d": 0.9, "hd95_3d_mm": math.nan}, [sl(1, 0.9)]),
    ]


def test_slice_metrics_pool_paired_slices_of_all_patients(cases):
    values = metric_values(cases, "Bladder", "dice_2d")
    assert sorted(values) == [0.5, 0.7, 0.9]  # the missed slice is not averaged in
    summary = {s.metric: s for s in summarise(cases)}
    assert summary["dice_2d"].n == 3 and summary["dice_2d"].over == "slice"
    assert summary["dice_2d"].mean == pytest.approx(0.7)
    assert summary["dice_2d"].sd == pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1))


def test_patient_metrics_are_per_patient_and_drop_undefined(cases):
    summary = {s.metric: s for s in summarise(cases)}
    assert summary["dice_3d"].n == 2 and summary["dice_3d"].mean == pytest.approx(0.85)
    assert summary["hd95_3d_mm"].n == 1 and summary["hd95_3d_mm"].mean == 4.0
    assert math.isnan(summary["hd95_3d_mm"].sd)  # one value: no SD
    assert summary["hd95_3d_mm"].mean_sd() == "4.00"
    assert summary["dice_3d"].mean_sd() == f"0.850 ± {np.std([0.8, 0.9], ddof=1):.3f}"
    assert summary["msd_3d_mm"].n == 0 and summary["msd_3d_mm"].mean_sd() == "–"


def test_format_mean_sd_digits():
    assert format_mean_sd(0.91234, 0.0456, "dice_3d") == "0.912 ± 0.046"
    assert format_mean_sd(4.567, 1.234, "hd95_3d_mm") == "4.57 ± 1.23"
    assert format_mean_sd(12.34, 2.0, "volume_diff_pct") == "12.3 ± 2.0"


def test_summary_csv_and_table(cases, tmp_path):
    summaries = summarise(cases)
    write_summary_csv(summaries, tmp_path / "summary.csv")
    with open(tmp_path / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(METRICS)
    dice = next(r for r in rows if r["metric"] == "dice_3d")
    assert dice["n"] == "2" and float(dice["mean"]) == pytest.approx(0.85) and dice["over"] == "patient"
    table = summary_table(summaries)
    assert table.rows[0][0].text == "Bladder" and table.rows[0][1].text == "2"  # patients


def test_best_model_direction_and_ties():
    def summaries(**means):
        return {
            model: summarise([case("p", "Bladder", {"dice_3d": v, "hd95_3d_mm": 10 * v, "volume_diff_pct": v - 0.5}, [sl(1, v)])])
            for model, v in means.items()
        }

    by_model = {m: {(s.structure, s.metric): s for s in rows} for m, rows in summaries(a=0.9, b=0.7, c=0.9).items()}
    assert best_models(by_model, "Bladder", "dice_3d") == {"a", "c"}  # higher is better, tie
    assert best_models(by_model, "Bladder", "hd95_3d_mm") == {"b"}  # lower is better
    by_model = {m: {(s.structure, s.metric): s for s in rows} for m, rows in summaries(a=0.9, b=0.45).items()}
    assert best_models(by_model, "Bladder", "volume_diff_pct") == {"b"}  # closest to zero: |-0.05| < 0.4
    assert best_models(by_model, "Bladder", "volume_ref_ml") == set()  # descriptive: never marked
    table = compare_table(summaries(a=0.9, b=0.7))
    header = table.columns
    row = table.rows[0]
    cell = {h: c for h, c in zip(header, row)}
    assert cell["DSC 3D a"].best and not cell["DSC 3D b"].best
    assert cell["HD95 3D (mm) b"].best and not cell["HD95 3D (mm) a"].best


def test_compare_csv_marks_best(tmp_path):
    s = {m: summarise([case("p", "Rectum", {"dice_3d": v}, [sl(1, v)])]) for m, v in (("x", 0.6), ("y", 0.8))}
    compare_table(s).write_csv(tmp_path / "compare.csv")
    with open(tmp_path / "compare.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["DSC 3D y"] == "0.800 *" and rows[0]["DSC 3D x"] == "0.600"
