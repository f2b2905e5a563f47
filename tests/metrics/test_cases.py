"""Finding, pairing and reading case folders (DICOM and NIfTI, suffix-aware names)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cervseg.dicom.rtstruct_write import write_rtstruct
from cervseg.dicom.series_write import write_ct_series
from cervseg.errors import GeometryError, InputError, StructureError
from cervseg.metrics.cases import CaseReader, evaluation_template, find_cases, pair_cases, strip_suffix
from cervseg.metrics.overlap import dice
from cervseg.nifti import write_case
from cervseg.structures import Catalogue
from cervseg.volume import Geometry, LabelMap, Volume
from tests.tiny_data import tiny_patient


@pytest.fixture
def reader() -> CaseReader:
    catalogue = Catalogue.builtin()
    return CaseReader(catalogue, evaluation_template(catalogue))


def dicom_case(folder, seed=0, rois=None, shift=2):
    """A tiny CT + one RTSTRUCT holding manual (Italian) ROIs and automatic *_DL ROIs."""
    volume, labels = tiny_patient(seed, shape=(12, 48, 48))
    written = write_ct_series(volume, folder / "CT")
    shifted = {k: np.roll(v, shift, axis=2) for k, v in labels.items()}
    rois = rois or {
        "Vescica": labels["Bladder"], "Retto": labels["Rectum"],
        "Bladder_DL": shifted["Bladder"], "Anorectum_DL": shifted["Rectum"],
    }
    write_rtstruct(LabelMap(written.geometry, rois), written, folder / "RS" / "RS.dcm")
    return written, labels, shifted


def test_strip_suffix():
    names = ["Vescica", "Bladder_DL", "Rectum_dl", "_DL", "Femur_MBS"]
    assert strip_suffix(names, "_DL") == {"Bladder": "Bladder_DL", "Rectum": "Rectum_dl"}
    assert strip_suffix(names, "") == {n: n for n in names}


def test_single_case_layouts(tmp_path):
    dicom_case(tmp_path / "p1")  # CT/ and RS/ subfolders: one patient, nested layout
    is_root, cases = find_cases(tmp_path / "p1", "reference")
    assert not is_root and [c.patient for c in cases] == ["p1"] and cases[0].kind == "dicom"
    volume, labels = tiny_patient(1, shape=(6, 16, 16))
    write_case(volume, labels, tmp_path / "n1")
    is_root, cases = find_cases(tmp_path / "n1", "prediction")
    assert not is_root and cases[0].kind == "nifti"


def test_root_of_patients_and_pairing(tmp_path, caplog):
    for name in ("a", "b"):
        dicom_case(tmp_path / "ref" / name, seed=0)
    volume, _ = tiny_patient(0, shape=(12, 48, 48))
    for name in ("b", "c"):
        (tmp_path / "pred" / name).mkdir(parents=True)
        write_rtstruct(LabelMap(volume.geometry, {"Bladder": np.ones(volume.geometry.shape, bool)}),
                       write_ct_series(volume, tmp_path / "ct_only" / name), tmp_path / "pred" / name / "RS.dcm")
    is_root, cases = find_cases(tmp_path / "ref", "reference")
    assert is_root and [c.patient for c in cases] == ["a", "b"]
    is_root, cases = find_cases(tmp_path / "pred", "prediction")  # RTSTRUCT-only patient folders
    assert is_root and [c.patient for c in cases] == ["b", "c"]
    with caplog.at_level(logging.WARNING):
        pairs = pair_cases(tmp_path / "ref", tmp_path / "pred")
    assert [(r.patient, p.patient) for r, p in pairs] == [("b", "b")]
    assert "a" in caplog.text and "c" in caplog.text
    with pytest.raises(InputError, match="single patient"):
        pair_cases(tmp_path / "ref", tmp_path / "ref" / "a")


def test_single_pair_is_named_after_reference_or_option(tmp_path):
    dicom_case(tmp_path / "dicom")
    pairs = pair_cases(tmp_path / "dicom", tmp_path / "dicom")
    assert pairs[0][0].patient == pairs[0][1].patient == "dicom"
    pairs = pair_cases(tmp_path / "dicom", tmp_path / "dicom", single_name="pelvic-ref-002")
    assert pairs[0][0].patient == pairs[0][1].patient == "pelvic-ref-002"


def test_bad_folders(tmp_path):
    with pytest.raises(InputError, match="not found"):
        find_cases(tmp_path / "missing", "reference")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InputError, match="no case"):
        find_cases(tmp_path / "empty", "reference")
    dicom_case(tmp_path / "r" / "a")
    dicom_case(tmp_path / "p" / "z")
    with pytest.raises(InputError, match="no patient subfolder name in common"):
        pair_cases(tmp_path / "r", tmp_path / "p")


def test_one_rtstruct_as_reference_and_prediction(tmp_path, reader):
    _, labels, shifted = dicom_case(tmp_path / "p1")
    ref_case, pred_case = pair_cases(tmp_path / "p1", tmp_path / "p1")[0]
    ref = reader.reference(ref_case)
    assert set(ref.labels) == {"Bladder", "Rectum"}  # Bladder_DL is not a bladder synonym
    pred = reader.prediction(pred_case, ref, "_DL")
    assert set(pred.labels) == {"Bladder", "Rectum"}
    for name in ("Bladder", "Rectum"):  # contours round trip through the RTSTRUCT
        assert dice(ref.labels[name], labels[name]) > 0.97
        assert dice(pred.labels[name], shifted[name]) > 0.97
    assert dice(ref.labels["Bladder"], pred.labels["Bladder"]) < 0.97
    with pytest.raises(StructureError, match="_MBS"):
        reader.prediction(pred_case, ref, "_MBS")


def test_rtstruct_of_another_frame_of_reference_is_refused(tmp_path, reader):
    dicom_case(tmp_path / "ref")
    other, labels = tiny_patient(5, shape=(12, 48, 48))  # another patient: another frame of reference
    written = write_ct_series(other, tmp_path / "other_ct")
    (tmp_path / "pred").mkdir()
    write_rtstruct(LabelMap(written.geometry, {"Bladder": labels["Bladder"]}), written, tmp_path / "pred" / "RS.dcm")
    ref_case, pred_case = pair_cases(tmp_path / "ref", tmp_path / "pred")[0]
    ref = reader.reference(ref_case)
    with pytest.raises(GeometryError, match="frame of reference"):
        reader.prediction(pred_case, ref)


def test_nifti_cases_with_suffix_and_grid_check(tmp_path, reader):
    volume, labels = tiny_patient(2, shape=(8, 24, 24))
    write_case(volume, labels, tmp_path / "ref")
    pred_labels = LabelMap(labels.geometry, {f"{k}_model": np.roll(v, 1, axis=1) for k, v in labels.items()})
    write_case(volume, pred_labels, tmp_path / "pred")
    ref_case, pred_case = pair_cases(tmp_path / "ref", tmp_path / "pred")[0]
    ref = reader.reference(ref_case)
    assert ref.image is not None and ref.image.geometry.same_grid(labels.geometry)
    assert set(ref.labels) == set(labels)
    pred = reader.prediction(pred_case, ref, "_model")
    assert set(pred.labels) == set(labels)
    np.testing.assert_array_equal(pred.labels["Bladder"], np.roll(labels["Bladder"], 1, axis=1))
    other = Geometry.axial(labels.geometry.shape, (3.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    write_case(Volume(volume.array, other), LabelMap(other, {"Bladder": labels["Bladder"]}), tmp_path / "pred2")
    with pytest.raises(GeometryError, match="does not match"):
        reader.prediction(pair_cases(tmp_path / "ref", tmp_path / "pred2")[0][1], ref)


def test_nifti_reference_without_image(tmp_path, reader):
    from cervseg.nifti import write_labels

    volume, labels = tiny_patient(3, shape=(6, 20, 20))
    (tmp_path / "ref" / "masks").mkdir(parents=True)
    write_labels(labels, tmp_path / "ref" / "masks")
    write_case(volume, labels, tmp_path / "pred")
    ref_case, pred_case = pair_cases(tmp_path / "ref", tmp_path / "pred")[0]
    ref = reader.reference(ref_case)
    assert ref.image is None and ref.labels.geometry.same_grid(labels.geometry)
    pred = reader.prediction(pred_case, ref)
    np.testing.assert_array_equal(pred.labels["Rectum"], labels["Rectum"])
