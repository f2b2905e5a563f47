"""LabelMap -> DICOM RT Structure Set that a planning system imports.

Hand-written with pydicom because no well-kept library gets all of it right (rt-utils
writes rotated contours for non-HFS series and long DS strings). What matters for import:
- the structure set references the source CT: Frame of Reference -> Study -> Series ->
  every CT SOP Instance, and each contour names the one CT slice it lies on;
- contour points are LPS mm on that slice's plane, holes kept as separate contours
  (even-odd rule, see ``contours.py``);
- no DS value exceeds 16 bytes (Eclipse rejects such files);
- the patient and study identity of the CT is kept so the object files into the same study;
- empty structures are not written (skipped with a warning): an ROI without contours is
  what trips several planning-system importers. Ground truth that must say "this patient
  has none" (a phantom man's CTV_UV) asks for ``write_empty``: the ROI is declared, with
  no Contour Sequence (Type 3 in the ROI Contour module).
"""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from pydicom import config as dicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    PYDICOM_IMPLEMENTATION_UID,
    RTStructureSetStorage,
    generate_uid,
)

import cervseg
from cervseg.dicom.contours import SliceContour, mask_to_contours
from cervseg.dicom.ds import format_ds
from cervseg.errors import InputError, StructureError
from cervseg.outputs import atomic_file
from cervseg.progress import progress
from cervseg.structures import Catalogue
from cervseg.volume import LabelMap, SeriesInfo, Volume

log = logging.getLogger(__name__)

#: What planning systems put in RT Referenced Study Sequence > Referenced SOP Class UID: the
#: retired Detached Study Management SOP Class, which pydicom.uid has no constant for.
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"
GENERATION_ALGORITHMS = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")
UNKNOWN_COLOUR = (128, 128, 128)  # grey, for names outside the catalogue
#: Contour points are rounded to this many decimals of a millimetre before formatting.
POINT_DECIMALS = 4
EXPLICIT_VR_MAX_LENGTH = 0xFFFE  # even length that a 16-bit length field holds
#: More contours than this in one ROI is refused. Drawn structures stay far below it, while
#: a speckled network output reaches hundreds of thousands: a file no planner can review,
#: and slow and memory-hungry to write (docs/benchmarks.md has the figures).
MAX_CONTOURS_PER_ROI = 10_000

#: Patient / study attributes copied from the CT (Type 2 ones are written empty if unknown).
PATIENT_KEYWORDS_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
PATIENT_KEYWORDS_OPTIONAL = ("IssuerOfPatientID", "PatientAge", "PatientComments")
STUDY_KEYWORDS_TYPE2 = ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
STUDY_KEYWORDS_OPTIONAL = ("StudyDescription",)


def _format_points(points: np.ndarray) -> list[str]:
    rounded = np.round(np.asarray(points, dtype=float).ravel(), POINT_DECIMALS) + 0.0  # no -0
    return [format_ds(v) for v in rounded]


def _now() -> tuple[str, str]:
    now = _dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")


def _needs_unicode(texts: Iterable[str]) -> bool:
    return any(not t.isascii() for t in texts)


def _check(labels: LabelMap, volume: Volume, label: str, roi_generation_algorithm: str) -> None:
    geometry, series = volume.geometry, volume.series
    labels.require_grid(geometry)
    if roi_generation_algorithm not in GENERATION_ALGORITHMS:
        raise ValueError(f"roi_generation_algorithm must be one of {GENERATION_ALGORITHMS}")
    if not (geometry.frame_of_reference_uid and series.study_instance_uid and series.series_instance_uid):
        raise InputError(
            "the CT volume has no DICOM identity (frame of reference, study and series UIDs): "
            "an RTSTRUCT can only reference a CT series read from or written to DICOM"
        )
    if len(series.sop_instance_uids) != geometry.shape[0]:
        raise InputError(
            f"the CT volume has {geometry.shape[0]} slices but {len(series.sop_instance_uids)} SOP Instance UIDs"
        )
    for name in labels:
        if not name.strip() or len(name) > 64:
            raise StructureError(f"ROI name '{name}' must be 1 to 64 characters (DICOM LO)")
    if len(label) > 16:
        raise ValueError(f"structure set label '{label}' exceeds 16 characters (DICOM SH)")


def _copy_identity(ds: Dataset, series: SeriesInfo) -> None:
    """Patient and General Study modules from the CT, so the object files into its study."""
    for kw in PATIENT_KEYWORDS_TYPE2:
        setattr(ds, kw, series.patient.get(kw, ""))
    for kw in PATIENT_KEYWORDS_OPTIONAL:
        if series.patient.get(kw):
            setattr(ds, kw, series.patient[kw])
    ds.StudyInstanceUID = series.study_instance_uid
    for kw in STUDY_KEYWORDS_TYPE2:
        setattr(ds, kw, series.study.get(kw, ""))
    for kw in STUDY_KEYWORDS_OPTIONAL:
        if series.study.get(kw):
            setattr(ds, kw, series.study[kw])


def _image_ref(series: SeriesInfo, sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = series.sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def _referenced_frame(series: SeriesInfo, frame_uid: str) -> Dataset:
    """Frame of Reference -> Study -> Series -> every CT image of the series."""
    ref_series = Dataset()
    ref_series.SeriesInstanceUID = series.series_instance_uid
    ref_series.ContourImageSequence = DicomSequence(
        [_image_ref(series, uid) for uid in series.sop_instance_uids]
    )
    ref_study = Dataset()
    ref_study.ReferencedSOPClassUID = DETACHED_STUDY_MANAGEMENT
    ref_study.ReferencedSOPInstanceUID = series.study_instance_uid
    ref_study.RTReferencedSeriesSequence = DicomSequence([ref_series])
    ref_frame = Dataset()
    ref_frame.FrameOfReferenceUID = frame_uid
    ref_frame.RTReferencedStudySequence = DicomSequence([ref_study])
    return ref_frame


def _contour_items(contours: list[SliceContour], series: SeriesInfo) -> tuple[DicomSequence, int]:
    """Contour Sequence items, each referencing the CT image it lies on, and the byte
    length of the longest ContourData value."""
    items = DicomSequence()
    longest = 0
    for i, contour in enumerate(contours, start=1):
        item = Dataset()
        item.ContourImageSequence = DicomSequence(
            [_image_ref(series, series.sop_instance_uids[contour.slice_index])]
        )
        item.ContourGeometricType = "CLOSED_PLANAR"
        item.NumberOfContourPoints = len(contour.points_lps)
        item.ContourNumber = i
        values = _format_points(contour.points_lps)
        longest = max(longest, sum(map(len, values)) + len(values) - 1)
        # format_ds made every value valid DS already: pydicom's per-value check (a regex on
        # each of ~100 000 numbers per structure set) is skipped, as its docs suggest for known-valid values
        item.add(DataElement("ContourData", "DS", values, validation_mode=dicom_config.IGNORE))
        items.append(item)
    return items, longest


def build_rtstruct(
    labels: LabelMap,
    volume: Volume,
    *,
    catalogue: Catalogue | None = None,
    label: str = "cervseg",
    description: str = "Contours generated by cervseg",
    series_description: str = "cervseg contours",
    structure_set_name: str | None = None,
    roi_generation_algorithm: str = "AUTOMATIC",
    algorithm_name: str | None = None,
    max_contours_per_roi: int | None = None,
    write_empty: bool = False,
) -> Dataset:
    """The RT Structure Set dataset (with file meta) for ``labels`` on ``volume``'s CT series.

    ROI names are the LabelMap's keys; colour and RT ROI Interpreted Type come from the
    catalogue (grey and an empty type, meaning "unknown", for names it does not know).
    A ROI of more than ``max_contours_per_roi`` (default MAX_CONTOURS_PER_ROI) contours is
    refused with a StructureError naming it. An empty structure is left out unless
    ``write_empty``, which declares it as an ROI without contours (ground truth of "none").
    """
    _check(labels, volume, label, roi_generation_algorithm)
    texts = [*labels, description, series_description, structure_set_name or "", algorithm_name or ""]
    ds = _structure_set_header(volume, texts, label, description, series_description, structure_set_name)
    rois = _roi_sequences(labels, volume, catalogue or Catalogue.builtin(), roi_generation_algorithm,
                          algorithm_name, max_contours_per_roi or MAX_CONTOURS_PER_ROI, write_empty)
    ds.StructureSetROISequence = rois.structure_set_rois
    ds.ROIContourSequence = rois.roi_contours
    ds.RTROIObservationsSequence = rois.observations
    # Approval: automatic contours are never approved until a clinician reviews them.
    ds.ApprovalStatus = "UNAPPROVED"
    ds.file_meta = _file_meta(ds, rois.longest_value)
    return ds


def _structure_set_header(
    volume: Volume, texts: list[str], label: str, description: str, series_description: str,
    structure_set_name: str | None,
) -> Dataset:
    """SOP Common, Patient and Study (from the CT), RT Series, Equipment, Frame of Reference
    and the Structure Set module up to its ROI sequences."""
    geometry, series = volume.geometry, volume.series
    date, time = _now()
    ds = Dataset()
    texts = texts + [str(v) for v in (*series.patient.values(), *series.study.values())]
    if _needs_unicode(texts):
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID = RTStructureSetStorage
    ds.SOPInstanceUID = generate_uid()
    _copy_identity(ds, series)

    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SeriesDescription = series_description[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = "cervseg"
    ds.ManufacturerModelName = "cervseg"
    ds.SoftwareVersions = cervseg.__version__
    ds.FrameOfReferenceUID = geometry.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""

    ds.StructureSetLabel = label
    if structure_set_name:
        ds.StructureSetName = structure_set_name[:64]
    ds.StructureSetDescription = description
    ds.InstanceNumber = 1
    ds.StructureSetDate, ds.StructureSetTime = date, time
    ds.ReferencedFrameOfReferenceSequence = DicomSequence(
        [_referenced_frame(series, geometry.frame_of_reference_uid)]
    )
    return ds


@dataclass
class _RoiSequences:
    """The three per-ROI sequences of a structure set, and the longest ContourData in bytes."""

    structure_set_rois: DicomSequence = field(default_factory=DicomSequence)
    roi_contours: DicomSequence = field(default_factory=DicomSequence)
    observations: DicomSequence = field(default_factory=DicomSequence)
    longest_value: int = 0


def _roi_sequences(
    labels: LabelMap, volume: Volume, catalogue: Catalogue, roi_generation_algorithm: str,
    algorithm_name: str | None, max_contours: int, write_empty: bool = False,
) -> _RoiSequences:
    """One item per structure in each sequence (the empty ones only with ``write_empty``);
    StructureError if all are empty."""
    out = _RoiSequences()
    contoured = 0
    for name in progress(list(labels), "writing contours"):
        try:
            contours = mask_to_contours(labels[name], volume.geometry, max_contours=max_contours)
        except StructureError as exc:
            raise StructureError(f"structure '{name}': {exc}: a fragmented mask, not anatomy; nothing written") from None
        if not contours and not write_empty:
            log.warning("structure '%s' is empty: not written to the RTSTRUCT", name)
            continue
        contoured += bool(contours)
        canonical = catalogue.canonical(name)
        structure = catalogue.structures[canonical] if canonical else None
        if structure is None:
            log.warning("structure '%s' is not in the catalogue: written as named, grey, no ROI type", name)
        number = len(out.structure_set_rois) + 1
        out.structure_set_rois.append(_structure_set_roi(number, name, volume.geometry.frame_of_reference_uid,
                                                         roi_generation_algorithm, algorithm_name))
        roi_contour = Dataset()
        roi_contour.ROIDisplayColor = list(structure.colour if structure else UNKNOWN_COLOUR)
        roi_contour.ReferencedROINumber = number
        if contours:  # an empty ROI has no Contour Sequence at all (an empty one is not allowed)
            roi_contour.ContourSequence, longest = _contour_items(contours, volume.series)
            out.longest_value = max(out.longest_value, longest)
        out.roi_contours.append(roi_contour)
        out.observations.append(_observation(number, name, structure.roi_type if structure else ""))
    if not contoured:
        raise StructureError("every structure is empty: there is nothing to write to an RTSTRUCT")
    return out


def _structure_set_roi(number: int, name: str, frame_uid: str, algorithm: str, algorithm_name: str | None) -> Dataset:
    roi = Dataset()
    roi.ROINumber = number
    roi.ReferencedFrameOfReferenceUID = frame_uid
    roi.ROIName = name
    roi.ROIGenerationAlgorithm = algorithm
    if algorithm_name:
        roi.ROIGenerationDescription = algorithm_name[:64]
    return roi


def _observation(number: int, name: str, roi_type: str) -> Dataset:
    obs = Dataset()
    obs.ObservationNumber = number
    obs.ReferencedROINumber = number
    obs.ROIObservationLabel = name[:16]
    obs.RTROIInterpretedType = roi_type
    obs.ROIInterpreter = ""
    return obs


def _file_meta(ds: Dataset, longest_value: int) -> FileMetaDataset:
    """File meta, Explicit VR unless a contour is too long for its 16-bit length field.

    Explicit VR stores a DS value's length in 16 bits: a contour of more than ~4000
    points does not fit (pydicom would silently turn it into UN). Implicit VR, the
    default syntax every DICOM system reads, has 32-bit lengths.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if longest_value > EXPLICIT_VR_MAX_LENGTH:
        log.info("a contour needs %d bytes: writing Implicit VR Little Endian", longest_value)
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"CERVSEG_{ds.SoftwareVersions}"[:16]
    return meta


def write_rtstruct(labels: LabelMap, volume: Volume, out_file: Path, **options: Any) -> Path:
    """Write ``labels`` as an RTSTRUCT referencing ``volume``'s CT series; returns the path.

    ``options`` are :func:`build_rtstruct`'s keyword options (catalogue, label, ...,
    max_contours_per_roi), passed through unchanged. The file appears only when complete
    (atomic rename). Empty structures are skipped with a warning (declared without contours
    with ``write_empty``); if every structure is empty a StructureError is raised and
    nothing is written.
    """
    ds = build_rtstruct(labels, volume, **options)
    out_file = Path(out_file)
    with atomic_file(out_file) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    # DEBUG: callers that stage files (segment, demo) log the final path themselves
    log.debug("wrote %s (%d ROIs)", out_file, len(ds.StructureSetROISequence))
    return out_file
