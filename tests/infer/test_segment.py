"""The segment job end to end: RTSTRUCT referencing the input, read back equal, outputs atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from cervseg.dicom.patient import read_patient
from cervseg.dicom.series_write import write_ct_series
from cervseg.dicom import rtstruct_write
from cervseg.errors import GeometryError, InputError, StructureError
from cervseg.infer.segment import segment_series
from cervseg.volume import Geometry, SeriesInfo, Volume
from cervseg.outputs import WRITTEN_RECORD
from tests.dicom.support import assert_rtstruct_valid_and_read_alike, dice


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small HFP series (prone, mirrored array) with body, a bright and a dark object."""
    g = Geometry((8, 40, 48), (3.0, 1.2, 1.1), (20.0, 20.0, -10.0), ((0, 0, 1), (0, -1, 0), (-1, 0, 0)))
    rng = np.random.default_rng(1)
    hu = np.full(g.shape, -1000.0)
    hu[:, 5:35, 4:44] = 30 + rng.normal(0, 30, size=(8, 30, 40))
    hu[:, 12:22, 8:18] = 600
    hu[2:6, 20:30, 26:40] = -50
    folder = tmp_path_factory.mktemp("ct") / "CT"
    write_ct_series(Volume(hu.round().astype(np.int16), g, SeriesInfo(patient_position="HFP")), folder)
    return folder


def test_rtstruct_references_input_and_reads_back(ct_folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    result = segment_series(ct_folder, tmp_path / "out", model=checkpoint, nifti=True, seg=True)
    uid = result.volume.series.series_instance_uid
    assert [p.name for p in result.outputs] == [f"RS_{uid}.dcm", f"SEG_{uid}.dcm", f"nifti_{uid}", f"QA_{uid}.csv"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([WRITTEN_RECORD, *(p.name for p in result.outputs)])

    ds = pydicom.dcmread(result.rtstruct)
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == uid
    referenced = [item.ReferencedSOPInstanceUID for item in series.ContourImageSequence]
    assert sorted(referenced) == sorted(result.volume.series.sop_instance_uids)
    assert "AUTOMATIC" in ds.StructureSetDescription and "unet" in ds.StructureSetDescription

    written = [n for n in result.labels if result.labels[n].any()]
    assert written, "the tiny model should contour something"
    back = read_patient(_with_rtstruct(ct_folder, result.rtstruct, tmp_path), template="cervix")
    for name in written:
        assert dice(back.labels[name], result.labels[name]) >= 0.99, name


def _with_rtstruct(ct_folder: Path, rtstruct: Path, tmp_path: Path) -> Path:
    """A copy of the CT folder plus our RTSTRUCT, as a planning system would receive them."""
    import shutil

    folder = tmp_path / "patient"
    shutil.copytree(ct_folder, folder)
    shutil.copy(rtstruct, folder / rtstruct.name)
    return folder


@pytest.mark.external
def test_rtstruct_from_segment_passes_dciodvfy_and_plastimatch(ct_folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    result = segment_series(ct_folder, tmp_path / "out", model=checkpoint)
    assert_rtstruct_valid_and_read_alike(result.rtstruct, ct_folder, result.labels, tmp_path)


def test_refusals_leave_no_output(ct_folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must not be inside"):
        segment_series(ct_folder, ct_folder / "out", model=checkpoint)
    assert not (ct_folder / "out").exists()

    broken = tmp_path / "gap"
    import shutil

    shutil.copytree(ct_folder, broken)
    files = sorted(broken.glob("*.dcm"), key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    files[3].unlink()
    with pytest.raises(GeometryError, match="missing"):
        segment_series(broken, tmp_path / "out2", model=checkpoint)
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_fragmented_prediction_refused_with_no_output(
    ct_folder: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prediction too fragmented to be anatomy stops the job: no RTSTRUCT, no NIfTI, no staging."""
    monkeypatch.setattr(rtstruct_write, "MAX_CONTOURS_PER_ROI", 1)  # the tiny model's masks exceed it
    with pytest.raises(StructureError, match=r"more than 1 contours by the slice at z = -?\d+\.\d mm.*nothing written"
                       r".*suit this CT"):
        segment_series(ct_folder, tmp_path / "out", model=checkpoint, nifti=True)
    assert not (tmp_path / "out").exists(), "the folder the job made is gone with it"
    mine = tmp_path / "existing"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(StructureError):
        segment_series(ct_folder, mine, model=checkpoint)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"], "a user's folder keeps what it had, and no more"


def test_a_rerun_replaces_its_own_outputs_but_never_a_users_or_an_edited_copy(
    ct_folder: Path, checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = segment_series(ct_folder, out, model=checkpoint)
    again = segment_series(ct_folder, out, model=checkpoint)  # unchanged earlier output: replaced
    assert [p.name for p in again.outputs] == [p.name for p in first.outputs]
    rtstruct = again.rtstruct
    with open(rtstruct, "ab") as fh:  # the user edited the contours file since
        fh.write(b"\0\0")
    edited = rtstruct.read_bytes()
    with pytest.raises(InputError, match=f"{rtstruct.name}: exists and is not cervseg's unchanged earlier output"):
        segment_series(ct_folder, out, model=checkpoint)
    assert rtstruct.read_bytes() == edited
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / rtstruct.name).write_bytes(b"the clinic's own structure set")  # same name, not ours
    with pytest.raises(InputError, match="not written by cervseg"):
        segment_series(ct_folder, theirs, model=checkpoint)
    assert (theirs / rtstruct.name).read_bytes() == b"the clinic's own structure set"
    assert sorted(p.name for p in theirs.iterdir()) == [rtstruct.name], "refused before any output"
