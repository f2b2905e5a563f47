"""`cervseg study --quick` then `cervseg study-report`, end to end on tiny phantoms; bad configs exit 2."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.data.cache import Cache
from tests.study.support import phantom_study_cache, study_config


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    phantom_study_cache(root / "cache")
    return root


def test_quick_study_then_report_end_to_end(project):
    config = study_config(project)
    result = run("study", "--config", config, "--quick")
    assert result.exit_code == 0, result.output
    quick = project / "study" / "quick"
    runs = sorted(p.name for p in (quick / "runs").iterdir())
    assert runs == ["resau-s0", "resau-s1", "unet-s0", "unet-s1"]
    for name in runs:
        folder = quick / "runs" / name
        with open(folder / "train" / "log.csv", newline="") as fh:
            assert [r["epoch"] for r in csv.DictReader(fh)] == ["1"]  # one tiny step per run
        with open(folder / "scores" / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        # every run scored on the same two test patients of the cache, both structures
        assert sorted({r["patient"] for r in rows}) == sorted(Cache(project / "cache").split("test"))
        assert {r["structure"] for r in rows} == {"Bladder", "Rectum"}
        assert {"dice_3d", "hd95_3d_mm", "dice_2d", "hd95_2d_mm"} <= {r["metric"] for r in rows}
        assert (folder / "scores" / "slices.csv").is_file()
    assert not (project / "study" / "runs").exists()  # a quick run is never part of the real study
    patients = {frozenset(r["patient"] for r in csv.DictReader(open(quick / "runs" / n / "scores" / "metrics.csv")))
                for n in runs}
    assert len(patients) == 1 and len(next(iter(patients))) == 2

    report = run("study-report", "--study", quick, "--out", project / "report")
    assert report.exit_code == 0, report.output
    out = project / "report"
    assert {"report.md", "tables.csv", "tests.csv", "verdicts.csv", "box_resau_beats_unet.png",
            "table_dice_2d.csv", "table_hd95_3d_mm.csv"} <= {p.name for p in out.iterdir()}
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "Runs scored: 4 of 4" in text and "resau_beats_unet" in text
    with open(out / "verdicts.csv", newline="") as fh:
        assert [v["verdict"] for v in csv.DictReader(fh)][0] in ("holds", "does not hold", "not resolved at this sample size")

    again = run("study", "--config", config, "--quick")  # all done: nothing redone
    assert again.exit_code == 0 and "0 run(s) done now, 4 earlier" in again.output


def test_dry_run_lists_the_runs_and_estimates_the_time_without_training(project):
    config = study_config(project, "dry.yaml", out_dir="dry")
    result = run("study", "--config", config, "--dry-run")
    assert result.exit_code == 0, result.output
    for rid in ("resau-s0", "resau-s1", "unet-s0", "unet-s1"):
        assert rid in result.output
    assert "estimated time for the 4 runs to do" in result.output and "probe resau" in result.output
    assert not (project / "dry").exists()


@pytest.mark.parametrize("over, field", [
    ({"arms": [{"name": "a", "model": {"name": "vnet"}}], "claims": []}, "arm a: model: unknown model 'vnet'"),
    ({"arms": [{"name": "a", "model": {"name": "unet"}, "loss": {"name": "focal"}}], "claims": []},
     "arm a: loss: unknown loss 'focal'"),
    ({"base": {"epochs": "many"}}, "epochs"),
    ({"seeds": []}, "seeds"),
])
def test_bad_study_config_is_exit_2_one_line(project, over, field):
    config = study_config(project, "bad.yaml", out_dir="bad", **over)
    result = run("study", "--config", config)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and field in errors[0] and "bad.yaml" in errors[0], result.output
    assert not (project / "bad").exists()


def test_a_cache_without_test_patients_is_exit_2(project, tmp_path):
    from tests.tiny_data import build_phantom_cache

    build_phantom_cache(tmp_path / "cache", n=3, val_fraction=0.34)
    config = study_config(tmp_path)
    result = run("study", "--config", config, "--quick")
    assert result.exit_code == 2 and "no test patients" in result.output
