"""read_patient: one call for a patient folder, invariant to file layout and patient position."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.valuerep import format_number_as_ds

from cervseg.dicom.patient import read_patient
from cervseg.dicom.series_write import write_ct_series
from cervseg.errors import SeriesSelectionError
from tests.dicom.support import (
    MANUAL_ROIS, dice, make_rtstruct, map_to_grid, phantom_volume, reorient, square, write_series,
)


def _assert_same_in_patient_space(patient, reference) -> None:
    """Masks and HU of ``patient`` equal ``reference``'s once mapped onto its grid."""
    src = patient.volume.geometry.index_to_lps_matrix
    dst = reference.volume.geometry
    assert np.array_equal(map_to_grid(patient.volume.array, src, dst), reference.volume.array)
    assert set(patient.labels) == set(reference.labels)
    for name in reference.labels:
        mapped = map_to_grid(patient.labels[name], src, dst)
        assert dice(mapped, reference.labels[name]) >= 0.99, name
        assert np.array_equal(mapped, reference.labels[name]), f"{name}: not voxel-identical"


# ---------------------------------------------------------------- the real case


@pytest.mark.realdata
def test_real_case_every_manual_roi_is_read(real_patient) -> None:
    assert real_patient.match.matched == {canonical: roi for roi, canonical in MANUAL_ROIS.items()}
    assert not real_patient.match.missing
    for name in MANUAL_ROIS.values():
        assert real_patient.labels.voxel_volume_ml(name) > 5.0, name
    assert real_patient.rtstruct_path.name.startswith("RS")
    assert real_patient.labels.geometry is real_patient.volume.geometry


@pytest.mark.realdata
def test_real_case_renamed_and_shuffled_into_subfolders(real_case: Path, real_patient, tmp_path: Path) -> None:
    rng = random.Random(11)
    messy = tmp_path / "export"
    for path in sorted((real_case / "dicom").iterdir()):
        target = messy / rng.choice(["", "x", "x/y", "z"]) / f"IMG{rng.getrandbits(40):010x}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (messy / "x" / "README.txt").write_text("exported by a planning system")
    (messy / "DICOMDIR.bak").write_bytes(b"\0" * 2048)
    patient = read_patient(messy, "prostate")
    assert np.array_equal(patient.volume.array, real_patient.volume.array)
    assert patient.volume.geometry.same_grid(real_patient.volume.geometry)
    for name, mask in real_patient.labels.items():
        assert np.array_equal(patient.labels[name], mask), name


@pytest.mark.realdata
def test_real_case_headers_rewritten_as_hfp(real_case: Path, real_patient, tmp_path: Path) -> None:
    """Each slice re-stored prone (rows along -x, columns along -y) by editing the headers
    and flipping the pixels with pydicom only; the RTSTRUCT (LPS points) is unchanged."""
    out = tmp_path / "hfp"
    out.mkdir()
    files = sorted((real_case / "dicom").glob("CT*.dcm"))
    names = random.Random(5).sample(range(len(files)), len(files))
    for path, number in zip(files, names):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array[::-1, ::-1]
        ipp = np.asarray(ds.ImagePositionPatient, float)
        row_dir, col_dir = np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        corner = ipp + (ds.Columns - 1) * dc * row_dir + (ds.Rows - 1) * dr * col_dir  # old last pixel
        ds.ImagePositionPatient = [format_number_as_ds(float(v)) for v in corner]
        ds.ImageOrientationPatient = [format_number_as_ds(float(v) + 0.0) for v in (*-row_dir, *-col_dir)]
        ds.PatientPosition = "HFP"
        ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        ds.save_as(out / f"slice_{number:03d}.dcm")
    shutil.copy(real_patient.rtstruct_path, out / "structures.dcm")
    patient = read_patient(out, "prostate")
    assert patient.volume.series.patient_position == "HFP"
    assert np.allclose(patient.volume.geometry.axes_matrix[2], (-1, 0, 0))
    _assert_same_in_patient_space(patient, real_patient)


@pytest.mark.realdata
def test_real_case_written_as_ffs(real_patient, tmp_path: Path) -> None:
    """The real volume stored feet first (slices run head to feet, rows along -x) by our
    writer, same UIDs and frame of reference, read back with the original RTSTRUCT."""
    ffs = reorient(real_patient.volume, "FFS")
    write_ct_series(ffs, tmp_path / "ffs" / "ct")
    shutil.copy(real_patient.rtstruct_path, tmp_path / "ffs" / "rs.dcm")
    patient = read_patient(tmp_path / "ffs", "prostate")
    assert patient.volume.series.patient_position == "FFS"
    assert np.allclose(patient.volume.geometry.axes_matrix[0], (0, 0, -1))
    _assert_same_in_patient_space(patient, real_patient)


# ---------------------------------------------------------------- synthetic patients


def _synthetic(folder: Path, position: str):
    hfs = phantom_volume()
    g = hfs.geometry
    contours = {
        "Vescica": [square(g, 1, (0.5, 7.5), (1.5, 6.5)), square(g, 1, (2.5, 4.5), (2.5, 3.5))],
        "Retto": [square(g, 3, (5.5, 8.5), (0.5, 2.5)), square(g, 4, (5.5, 8.5), (0.5, 2.5))],
        "Markers": [],
    }
    written = write_series(reorient(hfs, position), folder / "ct")
    make_rtstruct(folder / "rs" / "RS.dcm", written, contours)
    return written


@pytest.mark.parametrize("position", ["FFS", "HFP", "FFP"])
def test_synthetic_patient_same_masks_in_every_position(tmp_path: Path, position: str) -> None:
    _synthetic(tmp_path / "HFS", "HFS")
    _synthetic(tmp_path / position, position)
    reference = read_patient(tmp_path / "HFS", "cervix")
    patient = read_patient(tmp_path / position, "cervix")
    assert set(reference.labels) == {"Bladder", "Rectum"}
    assert reference.labels["Bladder"].sum() == 7 * 5 - 2 * 1
    _assert_same_in_patient_space(patient, reference)


def test_choice_of_series_picks_its_rtstruct(tmp_path: Path) -> None:
    a = _synthetic(tmp_path / "p" / "a", "HFS")
    b = _synthetic(tmp_path / "p" / "b", "FFS")
    with pytest.raises(SeriesSelectionError, match="2 CT series"):
        read_patient(tmp_path / "p")
    patient = read_patient(tmp_path / "p", series_uid=b.series.series_instance_uid)
    assert patient.rtstruct_path == tmp_path / "p" / "b" / "rs" / "RS.dcm"
    assert patient.volume.series.series_instance_uid != a.series.series_instance_uid


def test_without_rtstruct(tmp_path: Path) -> None:
    write_series(phantom_volume(), tmp_path / "ct")
    with pytest.raises(SeriesSelectionError) as err:
        read_patient(tmp_path)
    assert "no RTSTRUCT file found" in str(err.value) and str(tmp_path) in str(err.value)
    patient = read_patient(tmp_path, "prostate", require_rtstruct=False)
    assert len(patient.labels) == 0 and patient.rtstruct_path is None
    assert patient.match.missing == ["Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "Prostate"]
