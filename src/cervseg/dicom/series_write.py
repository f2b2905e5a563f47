"""A Volume -> a CT series on disk (one CT Image Storage file per slice).

Why: synthetic phantoms and tests need CT series that real readers (ours, plastimatch,
planning systems) accept, in any patient position. The headers are derived from the
Volume's Geometry only (ImageOrientationPatient from axes[2] and axes[1],
ImagePositionPatient of slice k = origin + k * spacing_z * axes[0]), so an FFS, HFP or FFP
volume is written with the headers a scanner would give it.

Pixel values are stored as int16 with RescaleSlope 1 and a RescaleIntercept of -1024 when
the HU range allows it (the usual scanner convention), otherwise the intercept that centres
the range. HU are rounded to integers (CT is integer HU in practice).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import logging
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from cervseg.dicom.ds import format_ds
from cervseg.dicom.series import PATIENT_KEYWORDS, STUDY_KEYWORDS
from cervseg.errors import InputError
from cervseg.outputs import atomic_dir
from cervseg.volume import SeriesInfo, Volume

log = logging.getLogger(__name__)

INT16_MIN, INT16_MAX = -32768, 32767


def _intercept(hu: np.ndarray) -> int:
    lo, hi = int(hu.min()), int(hu.max())
    if lo - (-1024) >= INT16_MIN and hi - (-1024) <= INT16_MAX:
        return -1024
    if hi - lo > INT16_MAX - INT16_MIN:
        raise InputError(f"HU range {lo}..{hi} is wider than 16 bits can store")
    return (lo + hi + 1) // 2


def _uid_or_new(value: str, new_uids: bool) -> str:
    return generate_uid() if new_uids or not value else value


def write_ct_series(
    volume: Volume,
    out_dir: Path,
    *,
    series_description: str = "cervseg CT",
    series_number: int = 1,
    manufacturer: str = "cervseg",
    new_uids: bool = False,
    overwrite: bool = False,
) -> Volume:
    """Write ``volume`` as a CT series into ``out_dir`` (created atomically) and return it
    with its SeriesInfo filled (UIDs, file paths) and the rounded HU actually stored.

    UIDs the volume already carries (study, series, per-slice SOP instance, frame of
    reference) are kept unless ``new_uids``; missing ones are generated. ``out_dir`` must be
    absent or empty unless ``overwrite`` (then it is replaced as a whole on success).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(f"{out_dir}: output folder exists and is not empty (pass overwrite=True to replace it)")
    stored, intercept = _stored_pixels(volume)
    ids = _SeriesIds.of(volume, new_uids)
    header = _series_header(volume, ids, series_description, series_number, manufacturer)
    positions = volume.geometry.slice_positions()
    names = [f"CT_{k + 1:04d}.dcm" for k in range(volume.geometry.shape[0])]
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for k, name in enumerate(names):
            ds = _slice_dataset(header, ids.sop_uids[k], k, positions[k], stored[k], intercept)
            ds.save_as(tmp / name, enforce_file_format=True)
    log.info("%s: wrote CT series %s, %d slices, %s", out_dir, ids.series_uid, len(names), header.PatientPosition)

    new_geometry = dataclasses.replace(volume.geometry, frame_of_reference_uid=ids.frame_uid)
    info = SeriesInfo(
        study_instance_uid=ids.study_uid,
        series_instance_uid=ids.series_uid,
        sop_instance_uids=ids.sop_uids,
        sop_class_uid=CTImageStorage,
        patient=ids.patient,
        study=ids.study,
        patient_position=header.PatientPosition,
        source_files=tuple(str(out_dir / n) for n in names),
    )
    return Volume((stored.astype(np.float32) + np.float32(intercept)), new_geometry, info)


def _stored_pixels(volume: Volume) -> tuple[np.ndarray, int]:
    """HU rounded to integers as int16 stored values, and the RescaleIntercept that maps them back."""
    hu = np.rint(np.asarray(volume.array, dtype=np.float64))
    if not np.all(np.isfinite(hu)):
        raise InputError("volume holds NaN or infinite values, cannot write a CT series")
    intercept = _intercept(hu)
    return (hu - intercept).astype(np.int16), intercept


@dataclasses.dataclass(frozen=True)
class _SeriesIds:
    """The UIDs, patient and study attributes the written series carries (kept or generated)."""

    study_uid: str
    series_uid: str
    frame_uid: str
    sop_uids: tuple[str, ...]
    patient: dict[str, str]
    study: dict[str, str]
    date: str
    time: str

    @classmethod
    def of(cls, volume: Volume, new_uids: bool) -> "_SeriesIds":
        series, nz = volume.series, volume.geometry.shape[0]
        if len(series.sop_instance_uids) == nz and not new_uids:
            sop_uids = tuple(series.sop_instance_uids)
        else:
            sop_uids = tuple(generate_uid() for _ in range(nz))
        now = _dt.datetime.now()
        date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        study = {k: series.study.get(k, "") for k in STUDY_KEYWORDS}
        study["StudyDate"] = study["StudyDate"] or date
        study["StudyTime"] = study["StudyTime"] or time
        return cls(
            study_uid=_uid_or_new(series.study_instance_uid, new_uids),
            series_uid=_uid_or_new(series.series_instance_uid, new_uids),
            frame_uid=_uid_or_new(volume.geometry.frame_of_reference_uid, new_uids),
            sop_uids=sop_uids, patient={k: series.patient.get(k, "") for k in PATIENT_KEYWORDS},
            study=study, date=date, time=time,
        )


def _series_header(
    volume: Volume, ids: _SeriesIds, series_description: str, series_number: int, manufacturer: str
) -> Dataset:
    """The attributes every slice of the series shares (patient, study, series, equipment,
    frame of reference, image plane orientation and pixel format)."""
    geometry, patient = volume.geometry, ids.patient
    axes = geometry.axes_matrix
    window = (40, 400)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = ids.study["StudyDate"]
    ds.SeriesDate = ids.date
    ds.ContentDate = ids.date
    ds.StudyTime = ids.study["StudyTime"]
    ds.SeriesTime = ids.time
    ds.ContentTime = ids.time
    ds.AccessionNumber = ids.study["AccessionNumber"]
    ds.Modality = "CT"
    ds.Manufacturer = manufacturer
    ds.ReferringPhysicianName = ids.study["ReferringPhysicianName"]
    ds.StudyDescription = ids.study["StudyDescription"]
    ds.SeriesDescription = series_description
    ds.PatientName = patient["PatientName"]
    ds.PatientID = patient["PatientID"]
    ds.PatientBirthDate = patient["PatientBirthDate"]
    ds.PatientSex = patient["PatientSex"]
    ds.SliceThickness = format_ds(geometry.spacing[0])
    ds.KVP = ""
    ds.PatientPosition = volume.series.patient_position or "HFS"
    ds.StudyInstanceUID = ids.study_uid
    ds.SeriesInstanceUID = ids.series_uid
    ds.StudyID = ids.study["StudyID"]
    ds.SeriesNumber = int(series_number)
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [format_ds(v) for v in (*axes[2], *axes[1])]
    ds.FrameOfReferenceUID = ids.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.Laterality = ""  # dciodvfy requires it present (Type 2C); empty = unpaired part
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = geometry.shape[1]
    ds.Columns = geometry.shape[2]
    ds.PixelSpacing = [format_ds(geometry.spacing[1]), format_ds(geometry.spacing[2])]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.WindowCenter = window[0]
    ds.WindowWidth = window[1]
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    return ds


def _slice_dataset(
    header: Dataset, sop_uid: str, k: int, position: np.ndarray, stored: np.ndarray, intercept: int
) -> Dataset:
    """Slice ``k``: the shared header plus its file meta, SOP instance, position and pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CERVSEG"
    ds = copy.deepcopy(header)
    ds.file_meta = meta
    ds.SOPInstanceUID = sop_uid
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [format_ds(v) for v in position]
    ds.RescaleIntercept = intercept
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    ds["PixelData"].VR = "OW"
    return ds
