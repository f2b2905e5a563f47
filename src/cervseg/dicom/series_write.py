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

import dataclasses
import datetime as _dt
import logging
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid
from pydicom.valuerep import format_number_as_ds

from cervseg.dicom.series import CT_IMAGE_STORAGE, PATIENT_KEYWORDS, STUDY_KEYWORDS
from cervseg.errors import InputError
from cervseg.outputs import atomic_dir
from cervseg.volume import SeriesInfo, Volume

log = logging.getLogger(__name__)

INT16_MIN, INT16_MAX = -32768, 32767


def _ds(value: float) -> str:
    """A DS string of at most 16 bytes (planning systems reject longer ones)."""
    return format_number_as_ds(float(value) + 0.0)  # + 0.0 turns -0.0 into 0.0


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
    geometry = volume.geometry
    nz = geometry.shape[0]
    series = volume.series
    hu = np.rint(np.asarray(volume.array, dtype=np.float64))
    if not np.all(np.isfinite(hu)):
        raise InputError("volume holds NaN or infinite values, cannot write a CT series")
    intercept = _intercept(hu)
    stored = (hu - intercept).astype(np.int16)

    study_uid = _uid_or_new(series.study_instance_uid, new_uids)
    series_uid = _uid_or_new(series.series_instance_uid, new_uids)
    for_uid = _uid_or_new(geometry.frame_of_reference_uid, new_uids)
    if len(series.sop_instance_uids) == nz and not new_uids:
        sop_uids = tuple(series.sop_instance_uids)
    else:
        sop_uids = tuple(generate_uid() for _ in range(nz))

    now = _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    patient = {k: series.patient.get(k, "") for k in PATIENT_KEYWORDS}
    study = {k: series.study.get(k, "") for k in STUDY_KEYWORDS}
    study["StudyDate"] = study["StudyDate"] or date
    study["StudyTime"] = study["StudyTime"] or time
    position = series.patient_position or "HFS"

    axes = geometry.axes_matrix
    iop = [_ds(v) for v in (*axes[2], *axes[1])]
    pixel_spacing = [_ds(geometry.spacing[1]), _ds(geometry.spacing[2])]
    positions = geometry.slice_positions()
    window = (40, 400)

    names = [f"CT_{k + 1:04d}.dcm" for k in range(nz)]
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for k in range(nz):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = sop_uids[k]
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            meta.ImplementationVersionName = "CERVSEG"
            ds = Dataset()
            ds.file_meta = meta
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.SOPClassUID = CT_IMAGE_STORAGE
            ds.SOPInstanceUID = sop_uids[k]
            ds.StudyDate = study["StudyDate"]
            ds.SeriesDate = date
            ds.ContentDate = date
            ds.StudyTime = study["StudyTime"]
            ds.SeriesTime = time
            ds.ContentTime = time
            ds.AccessionNumber = study["AccessionNumber"]
            ds.Modality = "CT"
            ds.Manufacturer = manufacturer
            ds.ReferringPhysicianName = study["ReferringPhysicianName"]
            ds.StudyDescription = study["StudyDescription"]
            ds.SeriesDescription = series_description
            ds.PatientName = patient["PatientName"]
            ds.PatientID = patient["PatientID"]
            ds.PatientBirthDate = patient["PatientBirthDate"]
            ds.PatientSex = patient["PatientSex"]
            ds.SliceThickness = _ds(geometry.spacing[0])
            ds.KVP = ""
            ds.PatientPosition = position
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.StudyID = study["StudyID"]
            ds.SeriesNumber = int(series_number)
            ds.AcquisitionNumber = 1
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [_ds(v) for v in positions[k]]
            ds.ImageOrientationPatient = iop
            ds.FrameOfReferenceUID = for_uid
            ds.PositionReferenceIndicator = ""
            ds.Laterality = ""  # dciodvfy requires it present (Type 2C); empty = unpaired part
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = geometry.shape[1]
            ds.Columns = geometry.shape[2]
            ds.PixelSpacing = pixel_spacing
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1
            ds.WindowCenter = window[0]
            ds.WindowWidth = window[1]
            ds.RescaleIntercept = intercept
            ds.RescaleSlope = 1
            ds.RescaleType = "HU"
            ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
            ds["PixelData"].VR = "OW"
            ds.save_as(tmp / names[k], enforce_file_format=True)
    log.info("%s: wrote CT series %s, %d slices, %s", out_dir, series_uid, nz, position)

    new_geometry = dataclasses.replace(geometry, frame_of_reference_uid=for_uid)
    info = SeriesInfo(
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        sop_instance_uids=sop_uids,
        sop_class_uid=CT_IMAGE_STORAGE,
        patient=patient,
        study=study,
        patient_position=position,
        source_files=tuple(str(out_dir / n) for n in names),
    )
    return Volume((stored.astype(np.float32) + np.float32(intercept)), new_geometry, info)

