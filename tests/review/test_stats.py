"""review-stats: weighted kappa against hand-computed values, Table 2 layout, the command's files."""

from __future__ import annotations

import csv
import math

import pytest
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.review.stats import MEAN_ROW, table2_rows, table2_text, weighted_kappa
from cervseg.review.store import ReviewStore, SliceMetric


def test_weighted_kappa_matches_a_hand_computed_example():
    # A = 1 1 2 2 3 4, B = 1 2 2 3 3 4: two one-step disagreements in six.
    # linear: observed 2/6; expected sum |i-j| a_i b_j / 36 = 42/36 -> kappa = 1 - (1/3)/(7/6) = 5/7
    # quadratic: expected 78/36 -> kappa = 1 - (1/3)/(13/6) = 11/13
    a, b = [1, 1, 2, 2, 3, 4], [1, 2, 2, 3, 3, 4]
    assert weighted_kappa(a, b, weights="linear") == pytest.approx(5 / 7)
    assert weighted_kappa(a, b, weights="quadratic") == pytest.approx(11 / 13)
    assert weighted_kappa(b, a) == pytest.approx(5 / 7)  # symmetric
    assert weighted_kappa([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    # raters that always disagree maximally, in opposite directions: worse than chance
    assert weighted_kappa([1, 4, 1, 4], [4, 1, 4, 1]) < 0
    assert math.isnan(weighted_kappa([], []))
    assert math.isnan(weighted_kappa([2, 2], [2, 2]))  # no variation: undefined, not 1
    with pytest.raises(ValueError):
        weighted_kappa([1], [1, 2])


def test_table2_counts_percentages_and_mean_row_as_in_the_papers(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    for z, grade in enumerate([1, 1, 1, 2]):
        store.add_grade("C", z, "Bladder", "Dr A", grade)
    for z, grade in enumerate([1, 3, 4, 4]):
        store.add_grade("C", z, "Rectum", "Dr A", grade)
    store.add_grade("C", 0, "Rectum", "Dr A", 4)  # a changed grade counts once, as its latest value
    rows = table2_rows(store.current_grades())
    bladder, rectum, mean = rows
    assert (bladder["Acceptable"], bladder["Acceptable %"], bladder["Minor revision %"]) == (3, 75.0, 25.0)
    assert (rectum["Acceptable"], rectum["Major revision"], rectum["Not acceptable"], rectum["slices"]) == (0, 1, 3, 4)
    assert mean["structure"] == MEAN_ROW
    assert (mean["Acceptable %"], mean["Minor revision %"], mean["Not acceptable %"]) == (37.5, 12.5, 37.5)
    text = table2_text(rows)
    assert text[0] == ["Anatomy", "Acceptable", "Minor revision", "Major revision", "Not acceptable"]
    assert text[1] == ["Bladder", "3 (75.00%)", "1 (25.00%)", "0 (0.00%)", "0 (0.00%)"]
    assert text[3] == [MEAN_ROW, "37.50%", "12.50%", "12.50%", "37.50%"]


def test_review_stats_command_writes_every_file(tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    grades_a = [1, 2, 2, 3, 1, 4]
    grades_b = [1, 2, 3, 3, 2, 4]
    for z, (ga, gb) in enumerate(zip(grades_a, grades_b)):
        store.add_grade("C", z, "Bladder", "Dr A", ga, seconds_on_slice=10 + z)
        store.add_grade("C", z, "Bladder", "Dr B", gb, seconds_on_slice=5)
    store.replace_slice_metrics("C", [SliceMetric("C", z, "Bladder", "paired", 1 - 0.1 * z, z, 10 * z) for z in range(6)])
    out = tmp_path / "stats"
    result = CliRunner().invoke(app, ["review-stats", "--db", str(tmp_path / "r.sqlite"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("table2.csv", "table2_long.csv", "kappa.csv", "grade_vs_metrics.csv", "review_time.csv",
                 "grade_vs_dice.png", "grade_vs_hd95.png", "grade_vs_apl.png"):
        assert (out / name).stat().st_size > 0, name
    (kappa,) = csv.DictReader(open(out / "kappa.csv", encoding="utf-8"))
    assert int(kappa["common_items"]) == 6
    assert float(kappa["kappa_linear"]) == pytest.approx(weighted_kappa(grades_a, grades_b), abs=1e-4)
    times = {r["reviewer"]: r for r in csv.DictReader(open(out / "review_time.csv", encoding="utf-8"))}
    assert float(times["Dr A"]["median_seconds_per_slice"]) == 12.5 and float(times["Dr B"]["mean_seconds_per_slice"]) == 5
    versus = list(csv.DictReader(open(out / "grade_vs_metrics.csv", encoding="utf-8")))
    assert len(versus) == 12 and {r["status"] for r in versus} == {"paired"}
    assert open(out / "grade_vs_dice.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_review_stats_refuses_a_missing_database(tmp_path):
    result = CliRunner().invoke(app, ["review-stats", "--db", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["review", "review-stats"])
def test_help_has_examples(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Examples" in result.output and f"cervseg {command} --" in result.output
