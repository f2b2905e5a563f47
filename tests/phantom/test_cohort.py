"""write_cohort: DICOM that dciodvfy accepts and that reads back to the generator's own masks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cervseg.dicom.patient import read_patient
from cervseg.errors import InputError
from cervseg.phantom.cohort import patient_folder_name, patient_seeds, write_cohort
from cervseg.phantom.generator import generate_patient
from tests.conftest import require_tool


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, 2, seed=3, preset="tiny")
    return out


def test_patient_seeds_are_a_stable_prefix_and_differ_between_cohorts():
    assert patient_seeds(3, 5)[:2] == patient_seeds(3, 2)
    assert set(patient_seeds(3, 5)).isdisjoint(patient_seeds(4, 5))
    assert patient_seeds(3, 0) == []


def test_one_folder_per_patient_and_a_manifest(cohort: Path):
    folders = sorted(p.name for p in cohort.iterdir() if p.is_dir())
    assert folders == [patient_folder_name(3, 0), patient_folder_name(3, 1)]
    assert not list(cohort.glob(".*partial*"))
    manifest = json.loads((cohort / "cohort.json").read_text())
    assert manifest["preset"] == "tiny" and len(manifest["patients"]) == 2
    for folder in folders:
        assert len(list((cohort / folder / "CT").glob("*.dcm"))) > 20
        assert len(list((cohort / folder).glob("RS_*.dcm"))) == 1
    for facts in manifest["patients"]:  # tiny has no realism features: no metal, arms raised
        assert facts["metal_hip"] is None and facts["arms"] == "raised"
        assert isinstance(facts["iv_contrast"], bool)


def test_read_back_matches_the_generator(cohort: Path):
    for i, seed in enumerate(patient_seeds(3, 2)):
        vol, labels = generate_patient(seed, "tiny")
        patient = read_patient(cohort / patient_folder_name(3, i), "cervix")
        assert not patient.match.missing
        assert patient.volume.geometry.same_grid(vol.geometry)
        assert np.abs(patient.volume.array - vol.array).max() <= 0.5
        for name in labels:
            a, b = labels[name], patient.labels[name]
            dice = 2 * (a & b).sum() / (a.sum() + b.sum())
            assert dice >= 0.99, (name, dice)
        # left femoral head at positive patient x after the DICOM round trip too
        g = patient.volume.geometry
        xl = g.index_to_lps(np.argwhere(patient.labels["Femur_Head_L"]).mean(0)[None])[0, 0]
        xr = g.index_to_lps(np.argwhere(patient.labels["Femur_Head_R"]).mean(0)[None])[0, 0]
        assert xl > xr + 100


@pytest.mark.external
def test_dciodvfy_finds_no_errors(cohort: Path):
    exe = require_tool("dciodvfy")
    folder = cohort / patient_folder_name(3, 0)
    files = [sorted((folder / "CT").glob("*.dcm"))[0], next(folder.glob("RS_*.dcm"))]
    for f in files:
        res = subprocess.run([exe, str(f)], capture_output=True, text=True)
        errors = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (f.name, errors)


def test_rejects_an_empty_cohort(tmp_path: Path):
    with pytest.raises(InputError):
        write_cohort(tmp_path / "x", 0, 1, "tiny")
    assert not (tmp_path / "x").exists()
