"""An RTSTRUCT file -> ROIs with their planar contours in patient LPS mm.

Why the leniency where it is safe and strictness where it is not: clinical exports carry
ROIs without contours (RayStation exports every ROI of the plan, drawn or not), POINT and
OPEN_PLANAR markers, and two-point "contours" that have crashed other readers. Those are
skipped with a warning naming them, because they carry no area. A file that is not an
RTSTRUCT, or ContourData that is not a list of 3-D points, is an error naming the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import RTStructureSetStorage

from cervseg.dicom.series import FolderScan, scan_folder
from cervseg.errors import InputError, SeriesSelectionError

log = logging.getLogger(__name__)

AREA_TYPES = ("CLOSED_PLANAR",)  # the only geometric type that encloses an area


@dataclass
class Contour:
    """One planar polygon of an ROI."""

    points: np.ndarray  # (N, 3) LPS mm
    geometric_type: str = "CLOSED_PLANAR"
    referenced_sop_instance_uid: str | None = None
    number: int | None = None  # ContourNumber when present


@dataclass
class ROI:
    """One structure of the structure set with its usable contours."""

    number: int
    name: str
    colour: tuple[int, int, int] | None
    interpreted_type: str
    contours: list[Contour]
    frame_of_reference_uid: str = ""


@dataclass
class RTStruct:
    """What cervseg needs from an RT Structure Set."""

    path: Path
    sop_instance_uid: str
    label: str
    frame_of_reference_uid: str  # the referenced frame of reference (of the CT)
    referenced_series_uids: tuple[str, ...]
    referenced_study_uids: tuple[str, ...]
    rois: list[ROI]
    empty_rois: list[str] = field(default_factory=list)  # named ROIs without usable contours

    def roi_names(self) -> list[str]:
        return [r.name for r in self.rois]

    def roi(self, name: str) -> ROI:
        """The ROI with exactly this name."""
        for r in self.rois:
            if r.name == name:
                return r
        raise KeyError(name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load(path: Path) -> Dataset:
    if not path.is_file():
        raise InputError(f"{path}: RTSTRUCT file not found")
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable DICOM file: {_first_line(exc)}") from None
    modality = str(ds.get("Modality", ""))
    sop_class = str(ds.get("SOPClassUID", ""))
    if modality != "RTSTRUCT" and sop_class != RTStructureSetStorage:
        raise InputError(f"{path}: not an RTSTRUCT (Modality '{modality}', SOP class {sop_class})")
    return ds


def _references(ds: Dataset) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """Referenced frame of reference, series and study UIDs (in file order, no repeats)."""
    frames: list[str] = []
    series: list[str] = []
    studies: list[str] = []
    for ref in ds.get("ReferencedFrameOfReferenceSequence", []):
        uid = str(ref.get("FrameOfReferenceUID", ""))
        if uid and uid not in frames:
            frames.append(uid)
        for study in ref.get("RTReferencedStudySequence", []):
            s = str(study.get("ReferencedSOPInstanceUID", ""))
            if s and s not in studies:
                studies.append(s)
            for ser in study.get("RTReferencedSeriesSequence", []):
                u = str(ser.get("SeriesInstanceUID", ""))
                if u and u not in series:
                    series.append(u)
    if not frames:
        roi_frames = {str(r.get("ReferencedFrameOfReferenceUID", "")) for r in ds.get("StructureSetROISequence", [])}
        frames = sorted(u for u in roi_frames if u)
    if len(frames) > 1:
        log.warning("RTSTRUCT references %d frames of reference (%s); using the first", len(frames), ", ".join(frames))
    return (frames[0] if frames else ""), tuple(series), tuple(studies)


def _colour(value: object) -> tuple[int, int, int] | None:
    try:
        c = tuple(int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return c if len(c) == 3 else None  # type: ignore[return-value]


def _contour_values(item: Dataset) -> np.ndarray:
    """ContourData as floats, parsed from the raw bytes when pydicom has not converted it yet.

    Why: converting each value to a pydicom DSfloat is much slower (docs/benchmarks.md), and
    clinical External outlines carry hundreds of thousands of values.
    """
    if "ContourData" not in item:
        return np.zeros(0)
    raw = item.get_item("ContourData").value
    if isinstance(raw, (bytes, bytearray)):
        text = bytes(raw).rstrip(b"\0 ")
        return np.array(text.split(b"\\"), dtype=float) if text else np.zeros(0)
    if raw is None:
        return np.zeros(0)
    values = [raw] if isinstance(raw, (str, int, float)) else list(raw)
    return np.asarray([float(v) for v in values], dtype=float)


def _contours(path: Path, name: str, item: Dataset) -> tuple[list[Contour], list[str]]:
    """Usable contours of one ROI and a description of each one skipped."""
    usable: list[Contour] = []
    skipped: list[str] = []
    for i, c in enumerate(item.get("ContourSequence", [])):
        number = c.get("ContourNumber")
        label = f"#{number if number not in (None, '') else i + 1}"
        gtype = str(c.get("ContourGeometricType", "")).upper()
        try:
            values = _contour_values(c)
        except (TypeError, ValueError):
            raise InputError(f"{path}: ROI '{name}' contour {label} has non-numeric ContourData") from None
        if values.size % 3:
            raise InputError(
                f"{path}: ROI '{name}' contour {label} has {values.size} ContourData values, not a multiple of 3"
            )
        points = values.reshape(-1, 3)
        if not np.all(np.isfinite(points)):
            raise InputError(f"{path}: ROI '{name}' contour {label} has non-finite ContourData")
        if gtype not in AREA_TYPES:
            skipped.append(f"{label} ({gtype or 'no type'})")
            continue
        if len(points) >= 2 and np.allclose(points[0], points[-1]):
            points = points[:-1]  # some exporters repeat the first point; closing is implicit
        if len(points) < 3:
            skipped.append(f"{label} ({len(points)} points)")
            continue
        ref_uid = None
        images = c.get("ContourImageSequence", [])
        if images:
            ref_uid = str(images[0].get("ReferencedSOPInstanceUID", "")) or None
        usable.append(Contour(points, gtype, ref_uid, int(number) if number not in (None, "") else None))
    return usable, skipped


def read_rtstruct(path: Path) -> RTStruct:
    """Read an RTSTRUCT; empty ROIs and degenerate contours are skipped with a warning."""
    path = Path(path)
    ds = _load(path)
    frame_uid, series_uids, study_uids = _references(ds)
    meta: dict[int, Dataset] = {}
    for item in ds.get("StructureSetROISequence", []):
        try:
            meta[int(item.ROINumber)] = item
        except (AttributeError, TypeError, ValueError):
            raise InputError(f"{path}: StructureSetROISequence item without a valid ROINumber") from None
    types: dict[int, str] = {}
    for obs in ds.get("RTROIObservationsSequence", []):
        try:
            types[int(obs.ReferencedROINumber)] = str(obs.get("RTROIInterpretedType", "") or "")
        except (AttributeError, TypeError, ValueError):
            continue
    contour_items: dict[int, Dataset] = {}
    for item in ds.get("ROIContourSequence", []):
        try:
            number = int(item.ReferencedROINumber)
        except (AttributeError, TypeError, ValueError):
            raise InputError(f"{path}: ROIContourSequence item without a valid ReferencedROINumber") from None
        if number not in meta:
            log.warning("%s: contours for ROI number %d, which the structure set does not declare; skipped", path, number)
            continue
        contour_items[number] = item

    rois: list[ROI] = []
    empty: list[str] = []
    for number, item in meta.items():
        name = str(item.get("ROIName", "") or f"ROI_{number}")
        contour_item = contour_items.get(number)
        contours, skipped = _contours(path, name, contour_item) if contour_item is not None else ([], [])
        if skipped:
            shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
            log.warning("%s: ROI '%s': skipped %d contours without area: %s", path, name, len(skipped), shown)
        if not contours:
            log.warning("%s: ROI '%s' has no usable contours (empty ROI), skipped", path, name)
            empty.append(name)
            continue
        rois.append(
            ROI(
                number=number,
                name=name,
                colour=_colour(contour_item.get("ROIDisplayColor")) if contour_item is not None else None,
                interpreted_type=types.get(number, ""),
                contours=contours,
                frame_of_reference_uid=str(item.get("ReferencedFrameOfReferenceUID", "") or frame_uid),
            )
        )
    return RTStruct(
        path=path,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        label=str(ds.get("StructureSetLabel", "")),
        frame_of_reference_uid=frame_uid,
        referenced_series_uids=series_uids,
        referenced_study_uids=study_uids,
        rois=rois,
        empty_rois=empty,
    )


def _referenced_series(header: Dataset) -> set[str]:
    return {
        str(ser.get("SeriesInstanceUID", ""))
        for ref in header.get("ReferencedFrameOfReferenceSequence", [])
        for study in ref.get("RTReferencedStudySequence", [])
        for ser in study.get("RTReferencedSeriesSequence", [])
    }


def find_rtstruct(
    folder: Path,
    *,
    referenced_series_uid: str | None = None,
    sop_instance_uid: str | None = None,
    scan: FolderScan | None = None,
) -> Path:
    """The one RTSTRUCT file in a folder tree.

    With several, ``sop_instance_uid`` chooses one; otherwise those referencing
    ``referenced_series_uid`` are preferred, and if that still leaves several the call is
    refused with a list to choose from.
    """
    folder = Path(folder)
    scan = scan or scan_folder(folder)
    found = [
        f for f in scan.files
        if str(f.header.get("Modality", "")) == "RTSTRUCT"
        or str(f.header.get("SOPClassUID", "")) == RTStructureSetStorage
    ]
    if not found:
        raise SeriesSelectionError(f"{folder}: no RTSTRUCT file found")
    if sop_instance_uid is not None:
        wanted = Path(sop_instance_uid)
        chosen = [f for f in found if str(f.header.get("SOPInstanceUID", "")) == sop_instance_uid
                  or f.path.name == wanted.name and (len(wanted.parts) == 1 or f.path.resolve() == wanted.resolve())]
        if not chosen:
            listing = "; ".join(f"{f.path.name} ({f.header.get('SOPInstanceUID', '')})" for f in found)
            raise SeriesSelectionError(f"{folder}: no RTSTRUCT with SOPInstanceUID {sop_instance_uid} (nor of that file name); found: {listing}")
        return chosen[0].path
    if len(found) > 1 and referenced_series_uid:
        matching = [f for f in found if referenced_series_uid in _referenced_series(f.header)]
        if matching:
            found = matching
    if len(found) > 1:
        listing = "; ".join(
            f"{f.path} (label '{f.header.get('StructureSetLabel', '')}', "
            f"{len(f.header.get('StructureSetROISequence', []))} ROIs, SOPInstanceUID {f.header.get('SOPInstanceUID', '')})"
            for f in found
        )
        raise SeriesSelectionError(
            f"{folder}: {len(found)} RTSTRUCT files, choose one (convert: --rtstruct SOPInstanceUID or file name; "
            f"otherwise keep one RTSTRUCT in the folder): {listing}"
        )
    return found[0].path
