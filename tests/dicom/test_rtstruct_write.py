"""RTSTRUCT writer: references, identity, DS lengths, holes and islands, checked by
independent readers (pydicom on the raw files, plastimatch, dciodvfy) and by our own reader.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cervseg.dicom.rtstruct_write import build_rtstruct, write_rtstruct
from cervseg.dicom.series_write import write_ct_series
from cervseg.errors import GeometryError, InputError, StructureError
from cervseg.nifti import read_labels
from cervseg.volume import Geometry, LabelMap, SeriesInfo, Volume
from tests.conftest import require_tool

AXES = {
    "HFS": ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
    "FFS": ((0, 0, -1), (0, 1, 0), (-1, 0, 0)),
    "HFP": ((0, 0, 1), (0, -1, 0), (-1, 0, 0)),
    "FFP": ((0, 0, -1), (0, -1, 0), (1, 0, 0)),
}
SHAPE = (7, 44, 52)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / float(total)


def shapes(shape=SHAPE) -> dict[str, np.ndarray]:
    """Structures with holes (annulus, box with a cavity holding an island) and several
    islands per slice, plus one structure outside the catalogue and one empty."""
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    r = np.hypot(yy - 22, xx - 14.5)
    ring = (r < 11) & (r > 5) & (zz >= 1) & (zz <= 5)
    box = (abs(yy - 22) <= 9) & (abs(xx - 40) <= 8) & (zz >= 1)
    box &= ~((abs(yy - 22) <= 5) & (abs(xx - 40) <= 4) & (zz >= 2) & (zz <= 4))  # cavity
    box |= (abs(yy - 22) <= 1) & (abs(xx - 40) <= 1) & (zz == 3)  # island in the cavity
    islands = ((yy - 4) ** 2 + (xx - 5) ** 2 < 9) | ((yy - 5) ** 2 + (xx - 44) ** 2 < 6)
    islands |= (yy == 40) & (xx >= 20) & (xx < 23)
    islands &= zz != 0
    return {
        "Bladder": ring,
        "CTV_UV": box,
        "Rectum": islands,
        "External": (yy > 1) & (yy < 43) & (xx > 0) & (xx < 51),
        "Clinic Special ROI": (abs(yy - 30) < 3) & (abs(xx - 26) < 3) & (zz == 6),
        "Bowel_Small": np.zeros(shape, bool),
    }


def make_case(tmp: Path, position: str) -> tuple[Volume, LabelMap, Path]:
    g = Geometry(SHAPE, (2.5, 0.9, 0.8), (-20.3, -16.15, 101.0), AXES[position])
    hu = np.full(SHAPE, -1000.0)
    info = SeriesInfo(
        patient={"PatientName": "Rossi^Maria", "PatientID": "PID-42", "PatientBirthDate": "19600101",
                 "PatientSex": "F"},
        study={"StudyDate": "20240102", "StudyTime": "101500", "StudyID": "ST7",
               "AccessionNumber": "ACC9", "ReferringPhysicianName": "Bianchi^Luca"},
        patient_position=position,
    )
    volume = write_ct_series(Volume(hu, g, info), tmp / "ct")
    labels = LabelMap(volume.geometry, shapes())
    return volume, labels, tmp / "ct"


@pytest.fixture(scope="module", params=["HFS", "FFS", "HFP", "FFP"])
def written(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"rs_{request.param}")
    volume, labels, ct_dir = make_case(tmp, request.param)
    rs = write_rtstruct(labels, volume, tmp / "out" / "RS.dcm", algorithm_name="test shapes")
    return volume, labels, ct_dir, rs


# --- the written object -----------------------------------------------------------------

def _ct_headers(ct_dir: Path) -> dict[str, pydicom.Dataset]:
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(ct_dir.glob("*.dcm"))]
    return {h.SOPInstanceUID: h for h in headers}


def _walk_ds_values(ds: pydicom.Dataset):
    for elem in ds.iterall():
        if elem.VR == "DS" and elem.value is not None:
            values = elem.value if elem.VM > 1 else [elem.value]
            yield from values


def test_references_every_ct_instance_and_each_contour_its_slice(written) -> None:
    volume, _, ct_dir, rs_path = written
    rs = pydicom.dcmread(rs_path)
    ct = _ct_headers(ct_dir)
    (frame,) = rs.ReferencedFrameOfReferenceSequence
    (study,) = frame.RTReferencedStudySequence
    (series,) = study.RTReferencedSeriesSequence
    first = next(iter(ct.values()))
    assert frame.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert study.ReferencedSOPInstanceUID == first.StudyInstanceUID
    assert series.SeriesInstanceUID == first.SeriesInstanceUID
    refs = [i.ReferencedSOPInstanceUID for i in series.ContourImageSequence]
    assert len(refs) == len(set(refs)) == len(ct)
    assert set(refs) == set(ct)
    for roi in rs.StructureSetROISequence:
        assert roi.ReferencedFrameOfReferenceUID == first.FrameOfReferenceUID
    # each contour lies on the plane of the CT image it references (raw headers, no cervseg)
    n_contours = 0
    for roi in rs.ROIContourSequence:
        for c in roi.ContourSequence:
            (img,) = c.ContourImageSequence
            header = ct[img.ReferencedSOPInstanceUID]
            assert img.ReferencedSOPClassUID == header.SOPClassUID
            iop = np.array(header.ImageOrientationPatient, float)
            normal = np.cross(iop[:3], iop[3:])
            pts = np.array(c.ContourData, float).reshape(-1, 3)
            assert len(pts) == c.NumberOfContourPoints >= 3
            assert c.ContourGeometricType == "CLOSED_PLANAR"
            assert np.allclose(pts @ normal, np.dot(np.array(header.ImagePositionPatient, float), normal),
                               atol=1e-3)
            n_contours += 1
    assert n_contours > 0


def test_identity_kept_and_new_uids(written) -> None:
    volume, _, ct_dir, rs_path = written
    rs = pydicom.dcmread(rs_path)
    ct = next(iter(_ct_headers(ct_dir).values()))
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
               "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        assert str(rs.get(kw)) == str(ct.get(kw)), kw
    assert str(rs.PatientName) == "Rossi^Maria"
    assert rs.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3"
    assert rs.file_meta.MediaStorageSOPInstanceUID == rs.SOPInstanceUID
    assert rs.SOPInstanceUID not in _ct_headers(ct_dir)
    assert rs.SeriesInstanceUID != ct.SeriesInstanceUID
    assert rs.Modality == "RTSTRUCT"
    assert rs.Manufacturer == "cervseg" and rs.SoftwareVersions
    assert rs.StructureSetLabel == "cervseg" and rs.StructureSetDate and rs.StructureSetTime


def test_rois_colours_types_and_empty_skipped(written) -> None:
    _, _, _, rs_path = written
    rs = pydicom.dcmread(rs_path)
    names = {r.ROINumber: r.ROIName for r in rs.StructureSetROISequence}
    assert sorted(names.values()) == sorted(["Bladder", "CTV_UV", "Rectum", "External", "Clinic Special ROI"])
    colour = {names[c.ReferencedROINumber]: list(c.ROIDisplayColor) for c in rs.ROIContourSequence}
    kind = {names[o.ReferencedROINumber]: o.RTROIInterpretedType for o in rs.RTROIObservationsSequence}
    assert colour["Bladder"] == [255, 255, 0] and kind["Bladder"] == "ORGAN"
    assert kind["CTV_UV"] == "CTV" and kind["External"] == "EXTERNAL"
    assert colour["Clinic Special ROI"] == [128, 128, 128] and kind["Clinic Special ROI"] == ""
    for roi in rs.StructureSetROISequence:
        assert roi.ROIGenerationAlgorithm == "AUTOMATIC"
        assert roi.ROIGenerationDescription == "test shapes"
    # holes and islands are separate contours on one slice
    per_slice: dict[str, dict[float, int]] = {}
    for c in rs.ROIContourSequence:
        counts = per_slice.setdefault(names[c.ReferencedROINumber], {})
        for item in c.ContourSequence:
            sop = item.ContourImageSequence[0].ReferencedSOPInstanceUID
            counts[sop] = counts.get(sop, 0) + 1
    assert max(per_slice["Bladder"].values()) == 2  # ring: outer + hole
    assert max(per_slice["CTV_UV"].values()) == 3  # box, cavity, island in the cavity
    assert max(per_slice["Rectum"].values()) == 3  # three islands


def test_empty_structure_warned(tmp_path, caplog) -> None:
    volume, labels, _ = make_case(tmp_path, "HFS")
    with caplog.at_level(logging.WARNING, logger="cervseg"):
        write_rtstruct(labels, volume, tmp_path / "RS.dcm")
    assert any("Bowel_Small" in r.getMessage() and "empty" in r.getMessage() for r in caplog.records)


def test_every_ds_value_at_most_16_bytes(written) -> None:
    _, _, _, rs_path = written
    # read the raw strings: pydicom keeps the original text of a DS read from file
    rs = pydicom.dcmread(rs_path)
    values = list(_walk_ds_values(rs))
    assert len(values) > 100
    assert all(len(getattr(v, "original_string", None) or str(v)) <= 16 for v in values)


@pytest.mark.external
def test_plastimatch_reads_the_same_masks(written, tmp_path) -> None:
    """An independent rasteriser (plastimatch, even-odd via --xor-contours), mapped to our
    grid through its own NIfTI affine, gives back every structure."""
    require_tool("plastimatch")
    volume, labels, ct_dir, rs_path = written
    out = tmp_path / "pm"
    subprocess.run(
        ["plastimatch", "convert", "--xor-contours", "--input", str(rs_path), "--referenced-ct",
         str(ct_dir), "--output-prefix", str(out), "--prefix-format", "nii.gz"],
        check=True, capture_output=True,
    )
    theirs = read_labels(out, volume.geometry)
    for name, mask in labels.items():
        if not mask.any():
            continue
        assert dice(theirs[name], mask) >= 0.99, name
        assert np.array_equal(theirs[name], mask), name


def test_our_reader_gives_back_the_masks(written) -> None:
    from cervseg.dicom.rasterize import rasterize_roi
    from cervseg.dicom.rtstruct_read import read_rtstruct

    volume, labels, _, rs_path = written
    rt = read_rtstruct(rs_path)
    for name, mask in labels.items():
        if not mask.any():
            continue
        roi = next(r for r in rt.rois if r.name == name)
        ours = rasterize_roi(roi.contours, volume.geometry)
        assert dice(ours, mask) >= 0.99, name


@pytest.mark.external
def test_dciodvfy_reports_no_error(written) -> None:
    tool = require_tool("dciodvfy")
    _, _, _, rs_path = written
    result = subprocess.run([tool, str(rs_path)], capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    assert lines, "dciodvfy printed nothing"
    assert [ln for ln in lines if "Error" in ln] == []


def test_contour_longer_than_64k_bytes_written_implicit_vr(tmp_path) -> None:
    """Explicit VR cannot hold a DS value over 64 kB (pydicom would silently write UN)."""
    g = Geometry((1, 40, 1600), (3.0, 0.7, 0.7), (-560.123, -14.321, 51.5), AXES["HFS"])
    volume = write_ct_series(Volume(np.zeros(g.shape), g), tmp_path / "ct")
    comb = np.zeros(g.shape, bool)
    comb[0, 5:35, 2:1598] = True
    comb[0, 20:35, 3:1597:2] = False  # 797 teeth: one outline of ~3200 vertices
    labels = LabelMap(volume.geometry, {"Bladder": comb})
    rs_path = write_rtstruct(labels, volume, tmp_path / "RS.dcm")
    rs = pydicom.dcmread(rs_path)
    assert rs.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    (contour,) = rs.ROIContourSequence[0].ContourSequence
    assert contour["ContourData"].VR == "DS"
    assert contour.NumberOfContourPoints > 3000
    from cervseg.dicom.rasterize import rasterize_roi

    pts = np.array(contour.ContourData, float).reshape(-1, 3)
    assert np.array_equal(rasterize_roi([pts], volume.geometry), comb)


# --- refusals ---------------------------------------------------------------------------

def test_grid_mismatch_refused_with_both_geometries(tmp_path) -> None:
    volume, labels, _ = make_case(tmp_path, "HFS")
    g = volume.geometry
    shifted = Geometry(g.shape, g.spacing, (g.origin[0] + 3, *g.origin[1:]), g.axes, g.frame_of_reference_uid)
    moved = LabelMap(shifted, {n: labels[n] for n in labels})
    with pytest.raises(GeometryError) as err:
        write_rtstruct(moved, volume, tmp_path / "RS.dcm")
    assert g.describe() in str(err.value) and shifted.describe() in str(err.value)
    assert not (tmp_path / "RS.dcm").exists()


def test_all_empty_refused_and_nothing_written(tmp_path) -> None:
    volume, _, _ = make_case(tmp_path, "HFS")
    empty = LabelMap(volume.geometry, {"Bladder": np.zeros(volume.geometry.shape, bool)})
    with pytest.raises(StructureError, match="empty"):
        write_rtstruct(empty, volume, tmp_path / "out" / "RS.dcm")
    assert not (tmp_path / "out" / "RS.dcm").exists()
    assert not list((tmp_path / "out").glob("*.partial"))


def test_speckled_mask_refused_by_name(tmp_path) -> None:
    """A network that outputs speckle must get a clear refusal, not a 100,000-contour file."""
    volume, labels, _ = make_case(tmp_path, "HFS")
    checker = np.indices(volume.geometry.shape).sum(axis=0) % 4 == 0  # isolated pixels
    speckled = LabelMap(volume.geometry, {"Bladder": labels["Bladder"], "Rectum": checker})
    with pytest.raises(StructureError, match="'Rectum'.*more than 200 contours"):
        build_rtstruct(speckled, volume, max_contours_per_roi=200)
    ds = build_rtstruct(speckled, volume, max_contours_per_roi=100_000)  # the same mask under a high cap
    assert len(ds.ROIContourSequence[1].ContourSequence) > 200


def test_write_rtstruct_takes_build_rtstruct_options_including_the_contour_cap(tmp_path) -> None:
    volume, labels, _ = make_case(tmp_path, "HFS")
    checker = np.indices(volume.geometry.shape).sum(axis=0) % 4 == 0
    speckled = LabelMap(volume.geometry, {"Bladder": labels["Bladder"], "Rectum": checker})
    with pytest.raises(StructureError, match="'Rectum'.*more than 200 contours"):
        write_rtstruct(speckled, volume, tmp_path / "capped" / "RS.dcm", max_contours_per_roi=200)
    assert not (tmp_path / "capped" / "RS.dcm").exists()
    path = write_rtstruct(speckled, volume, tmp_path / "RS.dcm", max_contours_per_roi=100_000,
                          label="capped", structure_set_name="cap test")
    rs = pydicom.dcmread(path)
    assert len(rs.ROIContourSequence[1].ContourSequence) > 200
    assert (rs.StructureSetLabel, rs.StructureSetName) == ("capped", "cap test")


def test_volume_without_dicom_identity_refused(tmp_path) -> None:
    g = Geometry((2, 8, 8), (2.0, 1.0, 1.0), (0, 0, 0), AXES["HFS"])
    volume = Volume(np.zeros(g.shape), g)
    labels = LabelMap(g, {"Bladder": np.ones(g.shape, bool)})
    with pytest.raises(InputError, match="DICOM identity"):
        write_rtstruct(labels, volume, tmp_path / "RS.dcm")


# --- the real case ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_written(real_case, tmp_path_factory):
    """The manual contours of the real case, rasterised by our reader, written by us."""
    from cervseg.dicom.rasterize import read_structures
    from cervseg.dicom.rtstruct_read import find_rtstruct, read_rtstruct
    from cervseg.dicom.series import read_ct_series

    ct_dir = real_case / "dicom"
    volume = read_ct_series(ct_dir)
    labels, match = read_structures(read_rtstruct(find_rtstruct(ct_dir)), volume, "prostate")
    assert sorted(labels) == sorted(["Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "Prostate"])
    rs = write_rtstruct(labels, volume, tmp_path_factory.mktemp("real") / "RS.dcm")
    return volume, labels, ct_dir, rs


@pytest.mark.realdata
def test_real_case_round_trip_through_our_reader(real_written) -> None:
    from cervseg.dicom.rasterize import rasterize_roi
    from cervseg.dicom.rtstruct_read import read_rtstruct

    volume, labels, _, rs_path = real_written
    rt = read_rtstruct(rs_path)
    assert sorted(rt.roi_names()) == sorted(labels)
    for name, mask in labels.items():
        assert dice(rasterize_roi(rt.roi(name).contours, volume.geometry), mask) >= 0.99, name


@pytest.mark.realdata
@pytest.mark.external
def test_real_case_plastimatch_agrees(real_written, tmp_path) -> None:
    require_tool("plastimatch")
    volume, labels, ct_dir, rs_path = real_written
    out = tmp_path / "pm"
    subprocess.run(
        ["plastimatch", "convert", "--xor-contours", "--input", str(rs_path), "--referenced-ct",
         str(ct_dir), "--output-prefix", str(out), "--prefix-format", "nii.gz"],
        check=True, capture_output=True,
    )
    theirs = read_labels(out, volume.geometry)
    for name, mask in labels.items():
        assert dice(theirs[name], mask) >= 0.99, name


@pytest.mark.realdata
@pytest.mark.external
def test_real_case_dciodvfy_and_references(real_written) -> None:
    tool = require_tool("dciodvfy")
    volume, _, ct_dir, rs_path = real_written
    result = subprocess.run([tool, str(rs_path)], capture_output=True, text=True)
    assert [ln for ln in (result.stdout + result.stderr).splitlines() if "Error" in ln] == []
    rs = pydicom.dcmread(rs_path)
    refs = [
        i.ReferencedSOPInstanceUID
        for i in rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
        .RTReferencedSeriesSequence[0].ContourImageSequence
    ]
    ct_uids = {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
        for p in ct_dir.glob("CT*.dcm")
    }
    assert len(refs) == len(ct_uids) == 163 and set(refs) == ct_uids
    assert all(len(str(getattr(v, "original_string", v))) <= 16 for v in _walk_ds_values(rs))


# --- write_empty: ground truth that says "none here" ------------------------------------

@pytest.fixture(scope="module")
def written_with_empty(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rs_empty")
    volume, labels, ct_dir = make_case(tmp, "HFS")
    return volume, labels, write_rtstruct(labels, volume, tmp / "out" / "RS.dcm", write_empty=True)


def test_write_empty_declares_the_empty_roi_without_a_contour_sequence(written_with_empty) -> None:
    from cervseg.dicom.rtstruct_read import read_rtstruct

    volume, labels, rs_path = written_with_empty
    rs = pydicom.dcmread(rs_path)
    number = {r.ROIName: r.ROINumber for r in rs.StructureSetROISequence}
    assert sorted(number) == sorted(labels)  # every structure declared, the empty one too
    contour_item = next(c for c in rs.ROIContourSequence if c.ReferencedROINumber == number["Bowel_Small"])
    assert "ContourSequence" not in contour_item and list(contour_item.ROIDisplayColor)
    assert any(o.ReferencedROINumber == number["Bowel_Small"] for o in rs.RTROIObservationsSequence)
    back = read_rtstruct(rs_path)
    assert back.empty_rois == ["Bowel_Small"]
    assert sorted(back.roi_names()) == sorted(n for n in labels if labels[n].any())


def test_without_write_empty_the_empty_roi_is_left_out(written) -> None:
    _, _, _, rs_path = written
    names = [r.ROIName for r in pydicom.dcmread(rs_path).StructureSetROISequence]
    assert "Bowel_Small" not in names


def test_write_empty_still_refuses_a_structure_set_with_no_contour(tmp_path) -> None:
    volume, _, _ = make_case(tmp_path, "HFS")
    empty = LabelMap(volume.geometry, {"Bladder": np.zeros(volume.geometry.shape, bool)})
    with pytest.raises(StructureError, match="empty"):
        write_rtstruct(empty, volume, tmp_path / "out" / "RS.dcm", write_empty=True)
    assert not (tmp_path / "out" / "RS.dcm").exists()


@pytest.mark.external
def test_dciodvfy_accepts_a_declared_empty_roi(written_with_empty) -> None:
    tool = require_tool("dciodvfy")
    _, _, rs_path = written_with_empty
    result = subprocess.run([tool, str(rs_path)], capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    assert lines, "dciodvfy printed nothing"
    assert [ln for ln in lines if "Error" in ln] == []
