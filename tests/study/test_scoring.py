"""Scoring a run on an extra test set: the real case's manual contours (Italian ROI names) beside the phantoms."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from cervseg.cli.main import app
from tests.study.support import phantom_study_cache, study_config


@pytest.mark.realdata
@pytest.mark.slow
def test_quick_study_scores_the_real_case_as_an_extra_test_set(tmp_path, real_case):
    phantom_study_cache(tmp_path / "cache")
    arms = [{"name": "unet", "profile": "p001", "model": {"name": "unet", "base_width": 4}, "loss": {"name": "dice_ce"}}]
    config = study_config(tmp_path, seeds=[0], arms=arms, claims=[],
                          extra_tests=[{"name": "real", "cases": str(real_case)}])
    result = CliRunner().invoke(app, ["study", "--config", str(config), "--quick"])
    assert result.exit_code == 0, result.output
    scores = tmp_path / "study" / "quick" / "runs" / "unet-s0" / "scores_real" / "metrics.csv"
    with open(scores, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # Vescica and Retto (manual) are the model's Bladder and Rectum; the _DL/_MBS ROIs are not references
    assert {r["structure"] for r in rows if r["metric"] == "dice_3d"} == {"Bladder", "Rectum"}
    assert {r["patient"] for r in rows} == {"dicom"}
    report = CliRunner().invoke(app, ["study-report", "--study", str(tmp_path / "study" / "quick"),
                                      "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    text = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Extra test set real" in text and "runs scored: 1 of 1" in text


def test_a_missing_extra_test_folder_is_exit_2_before_training(tmp_path):
    phantom_study_cache(tmp_path / "cache")
    config = study_config(tmp_path, extra_tests=[{"name": "real", "cases": "nowhere"}])
    result = CliRunner().invoke(app, ["study", "--config", str(config), "--quick"])
    assert result.exit_code == 2 and "nowhere: extra test set real folder not found" in result.output, result.output
    assert not (tmp_path / "study" / "quick" / "runs").exists()


def test_an_optional_extra_test_set_that_is_absent_is_left_out_with_a_warning(tmp_path):
    from cervseg.study.config import load_study_config

    config = study_config(tmp_path, extra_tests=[{"name": "real", "cases": "nowhere", "optional": True},
                                                 {"name": "here", "cases": "."}])
    cfg = load_study_config(config)
    assert [e.name for e in cfg.active_extra_tests()] == ["here"]
    assert cfg.extra_tests[0].cases == (tmp_path / "nowhere").resolve()
