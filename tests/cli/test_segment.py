"""`cervseg segment` command line: exit codes, one-line errors, outputs named by series UID."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.infer.conftest import checkpoint  # noqa: F401  (fixture)
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
    written = sorted((tmp_path / "out").iterdir())
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
