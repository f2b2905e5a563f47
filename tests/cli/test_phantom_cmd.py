"""`cervseg phantom`: writes the cohort, exit 2 with one line on bad input."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.dicom.patient import read_patient


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_writes_patients_that_read_back(tmp_path: Path):
    out = tmp_path / "phantoms"
    res = run("phantom", "--out", out, "--patients", "1", "--seed", "9", "--preset", "tiny")
    assert res.exit_code == 0, res.output
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert len(folders) == 1 and (out / "cohort.json").is_file()
    patient = read_patient(folders[0])
    assert set(patient.labels) == {"Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "BoneMarrow",
                                   "Bowel_Small", "SpinalCord", "CTV_N", "CTV_UV"}


def test_bad_preset_and_count_exit_2(tmp_path: Path):
    res = run("phantom", "--out", tmp_path / "a", "--patients", "1", "--preset", "huge")
    assert res.exit_code == 2 and "unknown preset" in res.output
    res = run("phantom", "--out", tmp_path / "b", "--patients", "0", "--preset", "tiny")
    assert res.exit_code == 2 and "--patients" in res.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_help_has_an_example():
    res = run("phantom", "--help")
    assert res.exit_code == 0 and "--patients" in res.output and "Example" in res.output
