"""Shared helpers and session fixtures for the DICOM reading tests.

- tiny synthetic CT series and RTSTRUCTs built directly with pydicom (independent of
  cervseg's own RTSTRUCT writer, so reader and writer are not tested against each other);
- `map_to_grid`: move an array from one grid to another lying on the same voxel centres
  (a signed permutation of axes), derived from the two index->LPS affines, never assumed;
- session fixtures reading the real case once, and plastimatch's masks of its RTSTRUCT.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cervseg.volume import Geometry, SeriesInfo, Volume

# Row and column directions (IOP) a scanner writes for each patient position.
POSITION_AXES = {
    "HFS": ((1, 0, 0), (0, 1, 0)),
    "FFS": ((-1, 0, 0), (0, 1, 0)),
    "HFP": ((-1, 0, 0), (0, -1, 0)),
    "FFP": ((1, 0, 0), (0, -1, 0)),
}
MANUAL_ROIS = {  # ROI name in the real RTSTRUCT -> canonical name (prostate template)
    "Vescica": "Bladder",
    "Retto": "Rectum",
    "FemoreSinistro": "Femur_Head_L",
    "FemoreDestro": "Femur_Head_R",
    "Prostata": "Prostate",
}


# ---------------------------------------------------------------- grids and volumes


def index_map(src_index_to_lps: np.ndarray, dst: Geometry) -> tuple[list[int], list[bool]]:
    """For each dst axis: which src axis feeds it and whether it is reversed.

    Fails unless both grids hold the same voxel centres (signed permutation, same extent).
    """
    m = np.linalg.inv(dst.index_to_lps_matrix) @ np.asarray(src_index_to_lps, dtype=float)
    r, t = m[:3, :3], m[:3, 3]
    assert np.allclose(r, np.rint(r), atol=1e-4), f"grids are not axis permutations of each other:\n{r}"
    r = np.rint(r).astype(int)
    assert all(np.count_nonzero(row) == 1 for row in r), f"not a signed permutation:\n{r}"
    perm = [int(np.flatnonzero(row)[0]) for row in r]
    flips = [bool(r[a, perm[a]] < 0) for a in range(3)]
    src_shape = [None, None, None]
    for a in range(3):
        src_shape[perm[a]] = dst.shape[a]
    for a in range(3):
        n = dst.shape[a]
        expected = n - 1 if flips[a] else 0  # dst index of src index 0 along this axis
        assert abs(t[a] - expected) < 1e-3, f"grids are shifted along axis {a}: offset {t[a]}"
    return perm, flips


def map_to_grid(array: np.ndarray, src_index_to_lps: np.ndarray, dst: Geometry) -> np.ndarray:
    """``array`` (indexed like the src affine) re-indexed onto ``dst``'s (z, y, x) grid."""
    perm, flips = index_map(src_index_to_lps, dst)
    out = np.transpose(array, perm)
    for a, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis=a)
    assert out.shape == dst.shape, f"{out.shape} != {dst.shape}"
    return np.ascontiguousarray(out)


def nifti_to_grid(path: Path, dst: Geometry) -> np.ndarray:
    """A NIfTI image (any orientation: RAS affine over its own i, j, k) on dst's grid."""
    import nibabel as nib

    img = nib.load(str(path))
    lps_from_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    data = np.asarray(img.dataobj)
    return map_to_grid(data, lps_from_ras @ img.affine, dst)


def reorient(volume: Volume, position: str) -> Volume:
    """The same voxels (same LPS centres and HU) stored as a scanner would for ``position``."""
    row, col = (np.asarray(v, dtype=float) for v in POSITION_AXES[position])
    new_axes = np.stack([np.cross(row, col), col, row])
    g = volume.geometry
    # new axis a is +-(an old axis); find it
    dots = new_axes @ g.axes_matrix.T
    perm = [int(np.argmax(np.abs(d))) for d in dots]
    flips = [bool(dots[a, perm[a]] < 0) for a in range(3)]
    array = np.transpose(volume.array, perm)
    corner = [0, 0, 0]
    for a in range(3):
        if flips[a]:
            array = np.flip(array, axis=a)
            corner[perm[a]] = g.shape[perm[a]] - 1
    origin = g.index_to_lps(np.asarray(corner, dtype=float))[0]
    geometry = Geometry(
        array.shape, tuple(g.spacing[p] for p in perm), tuple(origin),
        tuple(map(tuple, new_axes)), g.frame_of_reference_uid,
    )
    sop = volume.series.sop_instance_uids
    if sop and flips[0]:
        sop = tuple(reversed(sop))
    series = dataclasses.replace(volume.series, patient_position=position, sop_instance_uids=sop, source_files=())
    return Volume(np.ascontiguousarray(array), geometry, series)


def phantom_volume(shape=(6, 10, 8), spacing=(2.5, 1.5, 1.25), origin=(-7.0, -9.5, 40.0)) -> Volume:
    """A small HFS volume whose HU encode the voxel's LPS position (so any flip shows)."""
    g = Geometry.axial(shape, spacing, origin)
    z, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    hu = (-900 + 100 * z + 10 * y + x).astype(np.float32)
    info = SeriesInfo(
        patient={"PatientName": "Test^Phantom", "PatientID": "PH001", "PatientBirthDate": "19700101", "PatientSex": "F"},
        study={"StudyDescription": "cervseg test", "StudyID": "1", "AccessionNumber": "A1"},
    )
    return Volume(hu, g, info)


def write_series(volume: Volume, folder: Path, **kwargs) -> Volume:
    from cervseg.dicom.series_write import write_ct_series

    return write_ct_series(volume, folder, **kwargs)


def slice_files(folder: Path) -> list[Path]:
    """The CT files of a folder sorted by InstanceNumber (for editing them in tests)."""
    files = [p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith(".")]
    headers = [(int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber), p) for p in files]
    return [p for _, p in sorted(headers)]


def edit(path: Path, **attrs) -> None:
    """Rewrite a DICOM file with some attributes changed (value None deletes it)."""
    ds = pydicom.dcmread(path)
    for keyword, value in attrs.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


# ---------------------------------------------------------------- RTSTRUCT


def make_rtstruct(
    path: Path,
    volume: Volume,
    rois: Mapping[str, Sequence[object]],
    *,
    frame_of_reference_uid: str | None = None,
    series_uid: str | None = None,
    types: Mapping[str, str] | None = None,
    image_refs: Mapping[tuple[str, int], str] | None = None,
) -> Path:
    """A minimal RTSTRUCT: ROI name -> contours, each an (N, 3) LPS array or (array, type).

    An ROI with an empty contour list is written without ContourSequence (RayStation style).
    Each contour references the CT image of the slice it lies on, unless ``image_refs``
    maps (ROI name, contour number from 1) to another SOP instance UID.
    """
    info = volume.series
    for_uid = frame_of_reference_uid if frame_of_reference_uid is not None else volume.geometry.frame_of_reference_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.PatientName = info.patient.get("PatientName", "")
    ds.PatientID = info.patient.get("PatientID", "")
    ds.StudyInstanceUID = info.study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = for_uid
    ds.StructureSetLabel = "test"
    series_item = Dataset()
    series_item.SeriesInstanceUID = series_uid if series_uid is not None else info.series_instance_uid
    series_item.ContourImageSequence = DicomSequence(
        [_image_ref(uid) for uid in info.sop_instance_uids]
    )
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study_item.ReferencedSOPInstanceUID = ds.StudyInstanceUID
    study_item.RTReferencedSeriesSequence = DicomSequence([series_item])
    frame = Dataset()
    frame.FrameOfReferenceUID = for_uid
    frame.RTReferencedStudySequence = DicomSequence([study_item])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])
    ss, rc, obs = [], [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        s = Dataset()
        s.ROINumber = number
        s.ReferencedFrameOfReferenceUID = for_uid
        s.ROIName = name
        s.ROIGenerationAlgorithm = "MANUAL"
        ss.append(s)
        c = Dataset()
        c.ReferencedROINumber = number
        c.ROIDisplayColor = [number * 10 % 256, 128, 255]
        if contours:
            items = []
            for k, contour in enumerate(contours, start=1):
                points, gtype = contour if isinstance(contour, tuple) else (contour, "CLOSED_PLANAR")
                points = np.asarray(points, dtype=float).reshape(-1, 3)
                item = Dataset()
                item.ContourNumber = k
                uid = (image_refs or {}).get((name, k))
                if uid is None and info.sop_instance_uids:
                    z = volume.geometry.lps_to_index(points)[:, 0].mean()
                    uid = info.sop_instance_uids[int(np.clip(np.rint(z), 0, len(info.sop_instance_uids) - 1))]
                if uid:
                    item.ContourImageSequence = DicomSequence([_image_ref(uid)])
                item.ContourGeometricType = gtype
                item.NumberOfContourPoints = len(points)
                item.ContourData = [f"{v:.6g}" for v in points.ravel()]
                items.append(item)
            c.ContourSequence = DicomSequence(items)
        rc.append(c)
        o = Dataset()
        o.ObservationNumber = number
        o.ReferencedROINumber = number
        o.RTROIInterpretedType = (types or {}).get(name, "ORGAN")
        o.ROIInterpreter = ""
        obs.append(o)
    ds.StructureSetROISequence = DicomSequence(ss)
    ds.ROIContourSequence = DicomSequence(rc)
    ds.RTROIObservationsSequence = DicomSequence(obs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _image_ref(uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = uid
    return item


def square(geometry: Geometry, k: int, rows: tuple[float, float], cols: tuple[float, float]) -> np.ndarray:
    """(4, 3) LPS corners of an index-space rectangle on slice k (rows/cols in voxel index)."""
    (r0, r1), (c0, c1) = rows, cols
    idx = np.asarray([[k, r0, c0], [k, r0, c1], [k, r1, c1], [k, r1, c0]], dtype=float)
    return geometry.index_to_lps(idx)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


# ---------------------------------------------------------------- independent readers


def assert_rtstruct_valid_and_read_alike(rtstruct: Path, ct_folder: Path, labels, work: Path) -> None:
    """dciodvfy finds no Error in ``rtstruct``, and plastimatch rasterises every non-empty
    structure of ``labels`` (a LabelMap on the CT's grid) back with Dice >= 0.99."""
    from tests.conftest import require_tool

    dciodvfy = require_tool("dciodvfy")
    plastimatch = require_tool("plastimatch")
    report = subprocess.run([dciodvfy, str(rtstruct)], capture_output=True, text=True)
    assert [ln for ln in (report.stdout + report.stderr).splitlines() if "Error" in ln] == []
    prefix = work / "plastimatch"
    subprocess.run(
        [plastimatch, "convert", "--xor-contours", "--input", str(rtstruct), "--referenced-ct",
         str(ct_folder), "--output-prefix", str(prefix), "--prefix-format", "nii.gz"],
        check=True, capture_output=True,
    )
    written = [name for name, mask in labels.items() if mask.any()]
    assert written, "nothing to compare: every structure is empty"
    for name in written:
        theirs = nifti_to_grid(prefix / f"{name}.nii.gz", labels.geometry).astype(bool)
        assert dice(theirs, labels[name]) >= 0.99, name


# ---------------------------------------------------------------- real-case session fixtures


@pytest.fixture(scope="session")
def real_patient(real_case: Path):
    """The real case read once per session with the prostate template."""
    from cervseg.dicom.patient import read_patient

    return read_patient(real_case / "dicom", "prostate")


@pytest.fixture(scope="session")
def plastimatch_masks(real_case: Path, real_patient, tmp_path_factory) -> dict[str, np.ndarray]:
    """plastimatch's rasterisation of the manual ROIs, mapped onto our (z, y, x) grid.

    plastimatch gets an RTSTRUCT reduced to the five manual ROIs (the External outline alone
    would take most of its run time); the reduction only drops sequence items.
    """
    from tests.conftest import require_tool

    exe = require_tool("plastimatch")
    out = tmp_path_factory.mktemp("plastimatch")
    rs = pydicom.dcmread(real_patient.rtstruct_path)
    keep = {int(s.ROINumber) for s in rs.StructureSetROISequence if s.ROIName in MANUAL_ROIS}
    rs.StructureSetROISequence = DicomSequence([s for s in rs.StructureSetROISequence if int(s.ROINumber) in keep])
    rs.ROIContourSequence = DicomSequence([c for c in rs.ROIContourSequence if int(c.ReferencedROINumber) in keep])
    rs.RTROIObservationsSequence = DicomSequence(
        [o for o in rs.RTROIObservationsSequence if int(o.ReferencedROINumber) in keep]
    )
    reduced = out / "RS_manual.dcm"
    rs.save_as(reduced)
    prefix = out / "masks"
    subprocess.run(
        [exe, "convert", "--input", str(reduced), "--referenced-ct", str(real_case / "dicom"),
         "--output-prefix", str(prefix), "--prefix-format", "nii.gz"],
        check=True, capture_output=True,
    )
    geometry = real_patient.volume.geometry
    return {name: nifti_to_grid(prefix / f"{name}.nii.gz", geometry) > 0 for name in MANUAL_ROIS}
