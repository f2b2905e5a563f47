"""`cervseg demo` (what `make demo` runs): the real case when present, a synthetic one otherwise."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

import cervseg.cli.commands  # noqa: F401  (registers the subcommands)
from cervseg.cli.demo_cmd import ENV_SHARED_DATA
from cervseg.cli.main import app

PROSTATE = ["Bladder", "Femur_Head_L", "Femur_Head_R", "Prostate", "Rectum"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def logged_volumes(output: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"INFO: (\w+)\s+([\d.]+) ml", output)}


def ras_centroid_x(path) -> float:
    img = nib.load(path)
    ijk = np.argwhere(np.asanyarray(img.dataobj) > 0).mean(axis=0)
    return float((img.affine @ np.append(ijk, 1.0))[0])


def test_synthetic_demo_when_real_case_absent(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_SHARED_DATA, str(tmp_path / "no-data-here"))
    out = tmp_path / "demo"
    result = run("demo", "--out", out)
    assert result.exit_code == 0, result.output
    assert "synthetic" in result.output
    assert sorted(p.name[: -len(".nii.gz")] for p in (out / "nifti" / "masks").iterdir()) == PROSTATE
    assert (out / "nifti" / "image.nii.gz").exists() and (out / "dicom" / "RS_demo.dcm").exists()
    volumes = logged_volumes(result.output)
    assert sorted(volumes) == PROSTATE
    # the synthetic bladder is a sphere of radius 24 mm: 57.9 ml, voxelised on a 3x4x4 mm grid
    assert volumes["Bladder"] == pytest.approx(4 / 3 * np.pi * 24**3 / 1000, rel=0.1)
    masks = out / "nifti" / "masks"
    assert ras_centroid_x(masks / "Femur_Head_L.nii.gz") < 0 < ras_centroid_x(masks / "Femur_Head_R.nii.gz")
    # a second run replaces the previous demo output
    again = run("demo", "--out", out)
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_demo_refuses_a_foreign_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_SHARED_DATA, str(tmp_path / "no-data-here"))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = run("demo", "--out", out)
    assert result.exit_code == 2
    assert (out / "notes.txt").read_text() == "keep me"


def test_help_has_an_example() -> None:
    result = run("demo", "--help")
    assert result.exit_code == 0 and "cervseg demo --out" in result.output


@pytest.mark.realdata
def test_demo_on_the_real_case(real_case, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_SHARED_DATA, str(real_case.parent))
    out = tmp_path / "demo"
    result = run("demo", "--out", out)
    assert result.exit_code == 0, result.output
    assert "real case" in result.output and "synthetic" not in result.output
    volumes = logged_volumes(result.output)
    assert sorted(volumes) == PROSTATE
    assert all(10 < v < 300 for v in volumes.values()), volumes
    assert not (out / "dicom").exists()
    assert len(list((out / "nifti" / "masks").iterdir())) == 5


@pytest.mark.realdata
def test_real_case_found_next_to_the_repository(real_case, monkeypatch) -> None:
    """Without the environment variable, <repo>/../shared/data is where the demo looks."""
    from cervseg.cli.demo_cmd import real_case_folder

    monkeypatch.delenv(ENV_SHARED_DATA, raising=False)
    assert real_case_folder() == (real_case / "dicom").resolve()
