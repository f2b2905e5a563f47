"""`cervseg dataset`: DICOM exports -> cache; clinic names mapped; refused patients listed, not written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.data.cache import Cache
from cervseg.metrics.overlap import dice
from tests.tiny_data import STRUCTURES, tiny_patient, write_tiny_dicom

SUBSET = ",".join(STRUCTURES)


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("exports") / "dicom"
    write_tiny_dicom(root / "P00", 0)
    write_tiny_dicom(root / "P01", 1, names={"Bladder": "Vescica", "Femur_Head_L": "FemoreSinistro"})
    write_tiny_dicom(root / "P02", 2, names={"Rectum": "Retto_clinic"})  # a name only a names file knows
    write_tiny_dicom(root / "P03", 3, drop=("SpinalCord",))
    (root / "P04").mkdir()  # an export that went wrong: no DICOM at all
    (root / "P04" / "notes.txt").write_text("scanner crashed")
    return root


def test_cache_from_exports_with_reasons_for_skipped(exports, tmp_path):
    out = tmp_path / "cache"
    result = run("dataset", "--dicom", exports, "--out", out, "--structures", SUBSET,
                 "--val-fraction", "0.34", "--test-fraction", "0")
    assert result.exit_code == 0, result.output
    cache = Cache(out)
    assert cache.patients == ["P00", "P01"]
    reasons = {s["patient"]: s["reason"] for s in cache.manifest["skipped"]}
    assert reasons["P02"].startswith("missing structures: Rectum")
    assert "Retto_clinic" in reasons["P02"] and "--names" in reasons["P02"]
    assert reasons["P03"].startswith("missing structures: SpinalCord")
    assert "P04" in reasons and reasons["P04"]
    assert sorted(p.name for p in (out / "patients").iterdir()) == ["P00", "P01"]
    assert cache.manifest["patients"]["P01"]["roi_names"]["Bladder"] == "Vescica"
    for i, pid in enumerate(cache.patients):
        vol, labels = tiny_patient(i)
        np.testing.assert_array_equal(cache.image(pid), vol.array)  # HU survive DICOM exactly
        back = cache.labelmap(pid)
        for s in STRUCTURES:  # contours -> raster is not exact, but close on 2.5 mm pixels
            assert dice(labels[s], back[s]) > 0.85, (pid, s)


def test_partial_labels_keep_patients_lacking_a_structure_and_record_it(exports, tmp_path):
    out = tmp_path / "cache"
    result = run("dataset", "--dicom", exports, "--out", out, "--structures", SUBSET,
                 "--val-fraction", "0", "--test-fraction", "0", "--partial-labels")
    assert result.exit_code == 0, result.output
    cache = Cache(out)
    assert cache.patients == ["P00", "P01", "P02", "P03"]  # P04 has no DICOM: still skipped
    assert cache.labelled("P02") == [s for s in STRUCTURES if s != "Rectum"]
    assert cache.labelled("P03") == [s for s in STRUCTURES if s != "SpinalCord"]
    assert cache.labelled("P00") == list(STRUCTURES)
    assert "Rectum" not in cache.entry("P02")["roi_names"] and cache.manifest["partial_labels"] is True
    _, truth = tiny_patient(3)
    assert dice(truth["Bladder"], cache.labelmap("P03")["Bladder"]) > 0.85
    assert not cache.labelmap("P03")["SpinalCord"].any()


def test_names_file_rescues_a_patient_and_splits_follow_the_seed(exports, tmp_path):
    names = tmp_path / "names.yaml"
    names.write_text("Rectum: [Retto_clinic]\n")
    args = ["dataset", "--dicom", exports, "--names", names, "--structures", SUBSET,
            "--val-fraction", "0.34", "--test-fraction", "0.34", "--seed", "3"]
    assert run(*args, "--out", tmp_path / "a").exit_code == 0
    assert run(*args, "--out", tmp_path / "b").exit_code == 0
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert sorted(a["patients"]) == ["P00", "P01", "P02"]
    assert a["splits"] == b["splits"]
    assert sorted(a["splits"]["train"] + a["splits"]["val"] + a["splits"]["test"]) == ["P00", "P01", "P02"]
    assert len(a["splits"]["val"]) == 1 and len(a["splits"]["test"]) == 1


@pytest.mark.parametrize("case", ["no-input", "inside", "structure", "all-refused"])
def test_bad_input_is_exit_2_with_one_line_and_no_output(exports, tmp_path, case):
    out = tmp_path / "cache"
    args = {
        "no-input": ["--dicom", tmp_path / "missing", "--out", out],
        "inside": ["--dicom", exports, "--out", exports / "cache"],
        "structure": ["--dicom", exports, "--out", out, "--structures", "Bladder,Kidney_L"],
        "all-refused": ["--dicom", exports, "--out", out, "--template", "prostate"],
    }[case]
    result = run("dataset", *args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, result.output
    assert not out.exists() and not (exports / "cache").exists()


@pytest.fixture(scope="module")
def declared_empty(tmp_path_factory) -> Path:
    """P00 declares SpinalCord without a contour (written with write_empty); P01 has no such ROI."""
    from cervseg.dicom.rtstruct_write import write_rtstruct
    from cervseg.dicom.series_write import write_ct_series
    from cervseg.volume import LabelMap

    root = tmp_path_factory.mktemp("declared") / "dicom"
    vol, labels = tiny_patient(0)
    written = write_ct_series(vol, root / "P00" / "CT")
    none = LabelMap(written.geometry, {**dict(labels.items()), "SpinalCord": np.zeros(vol.geometry.shape, bool)})
    write_rtstruct(none, written, root / "P00" / "RS.dcm", write_empty=True)
    write_tiny_dicom(root / "P01", 1, drop=("SpinalCord",))
    return root


def test_an_roi_named_without_contours_is_missing_unless_it_means_none(declared_empty, tmp_path):
    args = ["dataset", "--dicom", declared_empty, "--structures", SUBSET, "--val-fraction", "0", "--test-fraction", "0"]
    result = run(*args, "--out", tmp_path / "strict")  # a placeholder nobody drew must not teach "absent"
    assert result.exit_code == 2 and "--empty-roi-means-none" in result.output, result.output
    assert not (tmp_path / "strict").exists()
    result = run(*args, "--out", tmp_path / "cache", "--empty-roi-means-none")
    assert result.exit_code == 0, result.output
    cache = Cache(tmp_path / "cache")
    assert cache.patients == ["P00"] and cache.manifest["empty_roi_means_none"] is True
    reasons = {s["patient"]: s["reason"] for s in cache.manifest["skipped"]}
    assert reasons["P01"].startswith("missing structures: SpinalCord")  # no ROI at all: still missing
    assert cache.labelled("P00") == list(STRUCTURES) and cache.entry("P00")["absent"] == ["SpinalCord"]
    assert not cache.labelmap("P00")["SpinalCord"].any()
    _, truth = tiny_patient(0)
    assert dice(truth["Bladder"], cache.labelmap("P00")["Bladder"]) > 0.85


def test_male_phantoms_enter_the_cache_with_ctv_uv_trained_as_empty(tmp_path):
    """`cervseg phantom --male-fraction 1` -> `cervseg dataset --empty-roi-means-none`: a man has no CTV_UV."""
    assert run("phantom", "--out", tmp_path / "ph", "--patients", 1, "--seed", 4, "--preset", "tiny",
               "--male-fraction", 1).exit_code == 0
    result = run("dataset", "--dicom", tmp_path / "ph", "--out", tmp_path / "cache", "--empty-roi-means-none",
                 "--val-fraction", "0", "--test-fraction", "0")
    assert result.exit_code == 0, result.output
    cache = Cache(tmp_path / "cache")
    (pid,) = cache.patients
    entry = cache.entry(pid)
    assert entry["absent"] == ["CTV_UV"] and entry["voxels"]["CTV_UV"] == 0
    assert cache.labelled(pid) == cache.structures
    assert all(entry["voxels"][s] > 0 for s in cache.structures if s != "CTV_UV")


def test_phantom_cohort_to_cache_end_to_end(tmp_path):
    """`cervseg phantom --preset tiny` -> `cervseg dataset`: HU exact, the nine cervix masks close."""
    from cervseg.phantom.cohort import patient_seeds
    from cervseg.phantom.generator import generate_patient

    assert run("phantom", "--out", tmp_path / "ph", "--patients", 3, "--seed", 4, "--preset", "tiny").exit_code == 0
    result = run("dataset", "--dicom", tmp_path / "ph", "--out", tmp_path / "cache", "--seed", 1)
    assert result.exit_code == 0, result.output
    cache = Cache(tmp_path / "cache")
    assert len(cache.patients) == 3 and cache.manifest["skipped"] == []
    assert cache.structures == ["Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "BoneMarrow",
                                "Bowel_Small", "SpinalCord", "CTV_N", "CTV_UV"]
    assert sum(len(cache.split(s)) for s in ("train", "val", "test")) == 3
    for pid, seed in zip(cache.patients, patient_seeds(4, 3)):
        vol, labels = generate_patient(seed, "tiny")
        np.testing.assert_array_equal(cache.image(pid), vol.array)
        assert cache.geometry(pid).same_grid(vol.geometry)
        back = cache.labelmap(pid)
        for s in cache.structures:  # RTSTRUCT polygons re-rasterised at 5.6 mm pixels
            assert dice(labels[s], back[s]) > 0.8, (pid, s, dice(labels[s], back[s]))


def test_ffs_patient_is_cached_in_hfs_layout(tmp_path):
    """The same patient exported HFS and FFS gives the same cached image and masks."""
    from cervseg.dicom.rtstruct_write import write_rtstruct
    from cervseg.dicom.series_write import write_ct_series
    from cervseg.volume import LabelMap, Volume, flip_array

    vol, labels = tiny_patient(5)
    flips = (True, False, True)  # FFS stores the same patient mirrored in z and x
    ffs_vol = Volume(np.ascontiguousarray(flip_array(vol.array, flips)), vol.geometry.flipped(flips), vol.series)
    ffs_labels = LabelMap(ffs_vol.geometry, {k: np.ascontiguousarray(flip_array(m, flips)) for k, m in labels.items()})
    root = tmp_path / "dicom"
    for name, (v, lab) in {"HFS": (vol, labels), "FFS": (ffs_vol, ffs_labels)}.items():
        written = write_ct_series(v, root / name / "CT")
        write_rtstruct(LabelMap(written.geometry, dict(lab.items())), written, root / name / "RS.dcm")
    result = run("dataset", "--dicom", root, "--out", tmp_path / "cache", "--structures", SUBSET,
                 "--val-fraction", "0", "--test-fraction", "0")
    assert result.exit_code == 0, result.output
    cache = Cache(tmp_path / "cache")
    assert cache.geometry("FFS").canonical_flips() == (False, False, False)
    assert cache.geometry("FFS").same_grid(cache.geometry("HFS"))
    assert np.array_equal(cache.image("FFS"), cache.image("HFS"))
    assert np.array_equal(cache.masks("FFS"), cache.masks("HFS"))
