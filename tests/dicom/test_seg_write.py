"""DICOM-SEG writer: voxel-exact round trip read by highdicom, dciodvfy clean, codes from the catalogue."""

from __future__ import annotations

import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from cervseg.dicom.seg_write import write_seg
from cervseg.dicom.series import read_ct_series
from cervseg.dicom.series_write import write_ct_series
from cervseg.errors import GeometryError, InputError
from cervseg.volume import Geometry, LabelMap, SeriesInfo, Volume
from tests.conftest import require_tool


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> Volume:
    """A small FFS series (mirrored array) so that frame order and orientation are exercised."""
    g = Geometry((6, 20, 24), (2.5, 1.5, 1.5), (30.0, -15.0, 40.0), ((0, 0, -1), (0, 1, 0), (-1, 0, 0)))
    hu = np.full(g.shape, -1000, np.int16)
    hu[:, 2:18, 2:22] = 40
    folder = tmp_path_factory.mktemp("ct") / "ct"
    write_ct_series(Volume(hu, g, SeriesInfo(patient_position="FFS")), folder)
    return read_ct_series(folder)


def _labels(geometry: Geometry) -> LabelMap:
    labels = LabelMap(geometry)
    bladder = np.zeros(geometry.shape, bool)
    bladder[1:4, 5:12, 6:15] = True
    head_l = np.zeros(geometry.shape, bool)
    head_l[2:6, 8:12, 2:6] = True
    labels["Bladder"], labels["Femur_Head_L"] = bladder, head_l
    labels["Rectum"] = np.zeros(geometry.shape, bool)  # empty: left out of the SEG
    return labels


def test_seg_round_trip_is_voxel_exact(ct: Volume, tmp_path: Path) -> None:
    labels = _labels(ct.geometry)
    out = write_seg(labels, ct, tmp_path / "seg.dcm")
    seg = hd.seg.segread(out)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Bladder", "Femur_Head_L"]
    for number, name in ((1, "Bladder"), (2, "Femur_Head_L")):
        frames = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=list(ct.series.sop_instance_uids), segment_numbers=[number],
            assert_missing_frames_are_empty=True,
        )[..., 0]
        assert np.array_equal(frames.astype(bool), labels[name]), name
    item = seg.SegmentSequence[1]
    assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "2812003"
    assert item.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Left"
    assert seg.StudyInstanceUID == ct.series.study_instance_uid
    assert seg.FrameOfReferenceUID == ct.geometry.frame_of_reference_uid


@pytest.mark.external
def test_seg_passes_dciodvfy(ct: Volume, tmp_path: Path) -> None:
    dciodvfy = require_tool("dciodvfy")
    out = write_seg(_labels(ct.geometry), ct, tmp_path / "seg.dcm")
    report = subprocess.run([dciodvfy, str(out)], capture_output=True, text=True)
    errors = [line for line in (report.stdout + report.stderr).splitlines() if "Error" in line]
    assert errors == []


def test_seg_refuses_other_grid_and_nothing_to_write(ct: Volume, tmp_path: Path) -> None:
    other = Geometry.axial(ct.geometry.shape, (2.5, 1.5, 1.5), (0.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match="does not match the CT grid"):
        write_seg(_labels(other), ct, tmp_path / "a.dcm")
    with pytest.raises(InputError, match="no non-empty structure"):
        write_seg(LabelMap(ct.geometry, {"Bladder": np.zeros(ct.geometry.shape, bool)}), ct, tmp_path / "b.dcm")
    assert not list(tmp_path.iterdir())


@pytest.mark.external
def test_seg_of_the_de_identified_real_case_is_written_and_valid(real_patient, tmp_path: Path) -> None:
    """The real export lacks AccessionNumber (Type 2): highdicom raised AttributeError on it."""
    dciodvfy = require_tool("dciodvfy")
    volume, labels = real_patient.volume, real_patient.labels
    out = write_seg(labels, volume, tmp_path / "seg.dcm")
    report = subprocess.run([dciodvfy, str(out)], capture_output=True, text=True)
    assert [line for line in (report.stdout + report.stderr).splitlines() if "Error" in line] == []
    seg = hd.seg.segread(out)
    assert seg.AccessionNumber == "" and seg.PatientID == volume.series.patient["PatientID"]
    bladder = [s.SegmentNumber for s in seg.SegmentSequence if s.SegmentLabel == "Bladder"][0]
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(volume.series.sop_instance_uids), segment_numbers=[bladder],
        assert_missing_frames_are_empty=True,
    )[..., 0]
    assert np.array_equal(frames.astype(bool), labels["Bladder"])
