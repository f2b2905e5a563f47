"""study-report on hand-built scores: the tables, the paired tests and the verdicts have known answers."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.config import config_to_dict
from cervseg.metrics.evaluate import CaseResult, MetricRow
from cervseg.metrics.slicewise import PAIRED, SliceResult
from cervseg.study.config import load_study_config
from cervseg.study.plan import STUDY_FILE, expand
from cervseg.study.scoring import write_scores
from tests.study.support import study_config
from tests.study.test_stats import DIFF, enumerated_p

PATIENTS = ["P1", "P2", "P3", "P4"]
SEEDS = [0, 1]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _slice(i: int, dice: float, hd95: float) -> SliceResult:
    return SliceResult(i, float(i), PAIRED, dice, hd95, hd95, hd95 / 2, dice, 0.0, 10, 10)


def _case(patient: str, values: dict[str, dict[str, float]], slices: dict[str, list[SliceResult]]) -> CaseResult:
    case = CaseResult(patient)
    for structure, metrics in values.items():
        case.rows += [MetricRow(patient, structure, m, v) for m, v in metrics.items()]
        case.slices[structure] = slices.get(structure, [])
    return case


def build_study(folder: Path, rectum_diff: list[float], skip: tuple[str, ...] = (),
                bladder_diff: list[float] = DIFF) -> Path:
    """A study folder with scores written as `cervseg study` writes them.

    Per (patient, seed) pair k = 4 * seed + patient index: unet's dice_2d is 0.5 (Bladder)
    and 0.6 (Rectum); resau's is that + bladder_diff[k] and + rectum_diff[k] (Rectum).
    dice_3d is 0.7 + 0.1 * seed for resau and 0.6 for unet on every patient.
    """
    cfg = load_study_config(study_config(folder, seeds=SEEDS))
    runs = expand(cfg)
    (cfg.out_dir).mkdir(parents=True)
    (cfg.out_dir / STUDY_FILE).write_text(yaml.safe_dump(config_to_dict(cfg)), encoding="utf-8")
    for r in runs:
        if r.run_id in skip:
            continue
        cases = []
        for i, p in enumerate(PATIENTS):
            k = 4 * r.seed + i
            resau = r.arm == "resau"
            b2d = 0.5 + (bladder_diff[k] if resau else 0.0)
            r2d = 0.6 + (rectum_diff[k] if resau else 0.0)
            d3 = 0.7 + 0.1 * r.seed if resau else 0.6
            values = {"Bladder": {"dice_2d": b2d, "dice_3d": d3, "hd95_2d_mm": 5.0, "hd95_3d_mm": 8.0},
                      "Rectum": {"dice_2d": r2d, "dice_3d": d3, "hd95_2d_mm": 6.0, "hd95_3d_mm": math.nan}}
            # pooled slices: patient P1 of each run holds two Bladder slices (0.6, 0.8), the others none
            slices = {"Bladder": [_slice(0, 0.6, 4.0), _slice(1, 0.8, 6.0)] if i == 0 else []}
            cases.append(_case(p, values, slices))
        write_scores(cases, r.scores_dir)
    return cfg.out_dir


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


RECTUM_ALL_BETTER = [0.01 * (k + 1) for k in range(8)]


def test_report_tests_match_enumeration_and_the_verdict_follows(tmp_path):
    study = build_study(tmp_path, RECTUM_ALL_BETTER)
    result = run("study-report", "--study", study, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    out = tmp_path / "report"
    tests = {r["structure"]: r for r in _rows(out / "tests.csv")}
    assert set(tests) == {"Bladder", "Rectum"}
    assert int(tests["Bladder"]["pairs"]) == 8  # 4 patients x 2 seeds
    assert float(tests["Bladder"]["p"]) == pytest.approx(enumerated_p(DIFF), rel=1e-5)  # 0.078: not significant
    assert float(tests["Rectum"]["p"]) == pytest.approx(2 / 256, rel=1e-5)  # all 8 pairs in favour
    assert float(tests["Rectum"]["rank_biserial"]) == pytest.approx(1.0)
    assert float(tests["Bladder"]["median_difference"]) == pytest.approx(0.04)
    assert (tests["Bladder"]["significant"], tests["Rectum"]["significant"]) == ("0", "1")
    verdicts = _rows(out / "verdicts.csv")
    assert [(v["claim"], v["verdict"], v["tests"]) for v in verdicts] == [
        ("resau_beats_unet", "not resolved at this sample size", "2")]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "**not resolved at this sample size**" in report
    assert "2 two-sided Wilcoxon signed-rank tests" in report and "no multiple-comparison correction" in report
    assert (out / "box_resau_beats_unet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tables_are_mean_sd_over_seeds_with_the_best_marked(tmp_path):
    study = build_study(tmp_path, RECTUM_ALL_BETTER)
    assert run("study-report", "--study", study, "--out", tmp_path / "report").exit_code == 0
    dice3d = {r["structure"]: r for r in _rows(tmp_path / "report" / "table_dice_3d.csv")}
    # resau: runs 0.7 and 0.8 -> 0.750 ± 0.071 (best); unet: 0.6 both seeds
    assert dice3d["Bladder"]["resau"] == "0.750 ± 0.071 *" and dice3d["Bladder"]["unet"] == "0.600 ± 0.000"
    # 2D pooled over the slices of all test patients: (0.6 + 0.8) / 2 in every run; a tie marks both
    dice2d = {r["structure"]: r for r in _rows(tmp_path / "report" / "table_dice_2d.csv")}
    assert dice2d["Bladder"]["resau"] == "0.700 ± 0.000 *" and dice2d["Bladder"]["unet"] == "0.700 ± 0.000 *"
    assert dice2d["Rectum"]["resau"] == "–"  # no paired Rectum slice: undefined, not 0
    hd3d = {r["structure"]: r for r in _rows(tmp_path / "report" / "table_hd95_3d_mm.csv")}
    assert hd3d["Rectum"]["resau"] == "–" and hd3d["Bladder"]["unet"] == "8.00 ± 0.00 *"
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "| Bladder | **0.750 ± 0.071** | 0.600 ± 0.000 |" in report


@pytest.mark.parametrize("rectum, expected", [
    (RECTUM_ALL_BETTER, "holds"),  # both structures: all 8 pairs in favour, p = 2/256
    ([-x for x in RECTUM_ALL_BETTER], "does not hold"),  # Rectum: all 8 against
])
def test_verdicts_hold_and_do_not_hold(tmp_path, rectum, expected):
    study = build_study(tmp_path, rectum, bladder_diff=[abs(d) + 0.001 * k for k, d in enumerate(DIFF)])
    assert run("study-report", "--study", study, "--out", tmp_path / "report").exit_code == 0
    assert _rows(tmp_path / "report" / "verdicts.csv")[0]["verdict"] == expected


def test_missing_runs_are_reported_and_leave_fewer_pairs(tmp_path):
    study = build_study(tmp_path, RECTUM_ALL_BETTER, skip=("unet-s1",))
    result = run("study-report", "--study", study, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert "1 of 4 runs have no scores yet" in result.output and "unet-s1" in result.output
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Missing runs" in report and "**1 of 4 runs have no scores yet" in report
    assert "runs missing: unet-s1" in report
    tests = {r["structure"]: r for r in _rows(tmp_path / "report" / "tests.csv")}
    assert tests["Rectum"]["pairs"] == "4"  # seed 0 only: 4 pairs, p = 2/16, not significant
    assert float(tests["Rectum"]["p"]) == pytest.approx(2 / 16, rel=1e-5)
    assert _rows(tmp_path / "report" / "verdicts.csv")[0]["missing_runs"] == "unet-s1"


def test_a_study_without_scores_is_exit_2_one_line(tmp_path):
    study = build_study(tmp_path, RECTUM_ALL_BETTER, skip=("resau-s0", "resau-s1", "unet-s0", "unet-s1"))
    result = run("study-report", "--study", study, "--out", tmp_path / "report")
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "none of the study's 4 runs has been scored" in errors[0], result.output
    assert not (tmp_path / "report").exists()


def test_a_folder_that_is_not_a_study_is_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("study-report", "--study", tmp_path / "empty", "--out", tmp_path / "report")
    assert result.exit_code == 2 and "not a study folder" in result.output
