"""RTSTRUCT reading: the real RayStation export, skipped ROIs/contours, finding the file."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cervseg.dicom.rtstruct_read import find_rtstruct, read_rtstruct
from cervseg.errors import InputError, SeriesSelectionError
from tests.dicom.support import MANUAL_ROIS, make_rtstruct, phantom_volume, square, write_series


@pytest.fixture()
def tiny(tmp_path: Path):
    folder = tmp_path / "patient"
    return folder, write_series(phantom_volume(), folder / "ct")


@pytest.mark.realdata
def test_real_rtstruct_matches_the_raw_dataset(real_case: Path, real_patient) -> None:
    path = real_patient.rtstruct_path
    rs = read_rtstruct(path)
    raw = pydicom.dcmread(path)
    names = {int(s.ROINumber): s.ROIName for s in raw.StructureSetROISequence}
    assert set(MANUAL_ROIS) <= set(rs.roi_names())
    assert len(rs.rois) + len(rs.empty_rois) == len(names)
    for item in raw.ROIContourSequence:
        name = names[int(item.ReferencedROINumber)]
        if name not in rs.roi_names():
            continue
        roi = rs.roi(name)
        assert roi.colour == tuple(int(v) for v in item.ROIDisplayColor)
        raw_contours = list(item.ContourSequence)
        assert len(roi.contours) == len(raw_contours)
        for ours, theirs in zip(roi.contours, raw_contours):
            pts = np.asarray(theirs.ContourData, float).reshape(-1, 3)
            assert np.allclose(ours.points, pts[: len(ours.points)])
            assert ours.referenced_sop_instance_uid == theirs.ContourImageSequence[0].ReferencedSOPInstanceUID
    types = {int(o.ReferencedROINumber): o.RTROIInterpretedType for o in raw.RTROIObservationsSequence}
    for roi in rs.rois:
        assert roi.interpreted_type == types[roi.number]
    assert rs.roi("External").interpreted_type == "EXTERNAL"
    volume = real_patient.volume
    assert rs.frame_of_reference_uid == volume.geometry.frame_of_reference_uid
    assert rs.referenced_series_uids == (volume.series.series_instance_uid,)
    assert rs.sop_instance_uid == raw.SOPInstanceUID
    # RayStation's own slice assignment agrees with our sort: every contour's referenced CT
    # image is the slice our geometry puts the contour's z on
    slice_of = {uid: k for k, uid in enumerate(volume.series.sop_instance_uids)}
    for name in MANUAL_ROIS:
        for contour in rs.roi(name).contours:
            z = volume.geometry.lps_to_index(contour.points)[:, 0]
            assert np.allclose(z, slice_of[contour.referenced_sop_instance_uid], atol=1e-3)


def test_empty_rois_and_degenerate_contours_are_skipped_with_warnings(tiny, caplog) -> None:
    folder, volume = tiny
    g = volume.geometry
    good = square(g, 2, (1.5, 6.5), (1.5, 5.5))
    closed_twice = np.vstack([good, good[:1]])  # first point repeated at the end
    path = make_rtstruct(
        folder / "rs.dcm", volume,
        {
            "Bladder": [good, closed_twice],
            "EmptyRayStationROI": [],
            "Markers": [(good[:1], "POINT"), (good, "OPEN_PLANAR")],
            "Rectum": [good, good[:2], (good[:1], "POINT")],
        },
    )
    with caplog.at_level(logging.WARNING, logger="cervseg"):
        rs = read_rtstruct(path)
    assert rs.roi_names() == ["Bladder", "Rectum"]
    assert set(rs.empty_rois) == {"EmptyRayStationROI", "Markers"}
    assert len(rs.roi("Bladder").contours) == 2
    assert len(rs.roi("Bladder").contours[1].points) == 4  # repeated closing point dropped
    assert len(rs.roi("Rectum").contours) == 1
    log = caplog.text
    assert "ROI 'EmptyRayStationROI' has no usable contours" in log
    assert "ROI 'Markers'" in log and "POINT" in log and "OPEN_PLANAR" in log
    assert "ROI 'Rectum': skipped 2 contours" in log and "#2 (2 points)" in log and "#3 (POINT)" in log
    assert str(path) in log


def test_broken_contour_data_names_file_and_roi(tiny) -> None:
    folder, volume = tiny
    path = make_rtstruct(folder / "rs.dcm", volume, {"Bladder": [square(volume.geometry, 1, (1, 4), (1, 4))]})
    ds = pydicom.dcmread(path)
    ds.ROIContourSequence[0].ContourSequence[0].ContourData = ds.ROIContourSequence[0].ContourSequence[0].ContourData[:-1]
    ds.save_as(path)
    with pytest.raises(InputError) as err:
        read_rtstruct(path)
    assert str(path) in str(err.value) and "'Bladder'" in str(err.value) and "not a multiple of 3" in str(err.value)


def test_a_ct_file_is_not_an_rtstruct(tiny) -> None:
    _, volume = tiny
    ct = Path(volume.series.source_files[0])
    with pytest.raises(InputError, match="not an RTSTRUCT"):
        read_rtstruct(ct)
    with pytest.raises(InputError, match="not found"):
        read_rtstruct(ct.parent / "absent.dcm")
    junk = ct.parent / "junk.dcm"
    junk.write_text("no")
    with pytest.raises(InputError, match="not a readable DICOM file"):
        read_rtstruct(junk)


def test_find_rtstruct_none_one_several(tiny) -> None:
    folder, volume = tiny
    with pytest.raises(SeriesSelectionError, match="no RTSTRUCT file found"):
        find_rtstruct(folder)
    contour = {"Bladder": [square(volume.geometry, 1, (1, 4), (1, 4))]}
    first = make_rtstruct(folder / "sub" / "one", volume, contour)
    assert find_rtstruct(folder) == first
    other = make_rtstruct(folder / "two.dcm", volume, contour, series_uid="1.2.3.4")
    # two files: the one referencing our CT series is chosen
    assert find_rtstruct(folder, referenced_series_uid=volume.series.series_instance_uid) == first
    with pytest.raises(SeriesSelectionError) as err:
        find_rtstruct(folder)
    message = str(err.value)
    assert "2 RTSTRUCT files, choose one" in message and str(first) in message and str(other) in message
    uid = pydicom.dcmread(other).SOPInstanceUID
    assert find_rtstruct(folder, sop_instance_uid=uid) == other
    with pytest.raises(SeriesSelectionError, match="no RTSTRUCT with SOPInstanceUID 9.9"):
        find_rtstruct(folder, sop_instance_uid="9.9")
    shutil.copy(first, folder / "copy.dcm")  # same SOP instance twice still refers to one choice
    assert find_rtstruct(folder, sop_instance_uid=uid) == other
