"""`cervseg segment` command line: exit codes, one-line errors, outputs named by series UID."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infer.conftest import checkpoint  # noqa: F401  (fixture)
from tests.infer.test_batch import export_root  # noqa: F401  (fixture)
from tests.infer.test_segment import ct_folder  # noqa: F401  (fixture)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cervseg", *args], capture_output=True, text=True)


def test_help_has_an_example() -> None:
    result = _run("segment", "--help")
    assert result.returncode == 0 and "cervseg segment --dicom" in result.stdout


def test_segment_writes_rtstruct_named_by_series(ct_folder: Path, checkpoint: Path, tmp_path: Path) -> None:  # noqa: F811
    result = _run("segment", "--dicom", str(ct_folder), "--out", str(tmp_path / "out"), "--model", str(checkpoint),
                  "--threads", "1")
    assert result.returncode == 0, result.stderr
    written = sorted(p for p in (tmp_path / "out").iterdir() if p.name != ".cervseg-written.json")
    assert [p.name[:3] for p in written] == ["QA_", "RS_"] and written[1].suffix == ".dcm"
    assert written[0].name == "QA_" + written[1].name[3:-4] + ".csv"


@pytest.mark.parametrize("case", ["missing_folder", "inside_input", "missing_model"])
def test_bad_input_is_one_line_and_exit_2(case: str, ct_folder: Path, checkpoint: Path, tmp_path: Path) -> None:  # noqa: F811
    dicom, out, model = ct_folder, tmp_path / "out", checkpoint
    if case == "missing_folder":
        dicom = tmp_path / "nope"
    elif case == "inside_input":
        out = ct_folder / "out"
    else:
        model = tmp_path / "no_model"
    result = _run("segment", "--dicom", str(dicom), "--out", str(out), "--model", str(model))
    assert result.returncode == 2
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1
    assert {"missing_folder": "nope", "inside_input": "inside", "missing_model": "no_model"}[case] in errors[0]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_all_series_contours_each_reports_a_failure_and_exits_2(export_root: Path, checkpoint: Path,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    result = _run("segment", "--dicom", str(export_root), "--out", str(tmp_path / "out"), "--model", str(checkpoint),
                  "--threads", "1", "--all-series")
    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["result", "slices", "seconds", "series"]
    assert sorted(ln.split()[0] for ln in lines[1:4]) == ["FAILED", "ok", "ok"]
    (failed,) = [ln for ln in lines if ln.startswith("FAILED")]
    assert "missing slices" in failed
    assert lines[-1] == "2 of 3 series contoured, 1 failed"
    assert len(list((tmp_path / "out").rglob("RS_*.dcm"))) == 2

    good = tmp_path / "good"
    for patient in sorted(export_root.iterdir())[:2]:
        shutil.copytree(patient, good / patient.name)
    ok = _run("segment", "--dicom", str(good), "--out", str(tmp_path / "out2"), "--model", str(checkpoint),
              "--threads", "1", "--all-series")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == "2 of 2 series contoured, 0 failed"


def test_all_series_and_series_exclude_each_other(ct_folder: Path, tmp_path: Path) -> None:  # noqa: F811
    result = _run("segment", "--dicom", str(ct_folder), "--out", str(tmp_path / "out"), "--all-series",
                  "--series", "1.2.3")
    assert result.returncode == 2 and "exclude each other" in result.stderr
