"""A folder of DICOM files -> the planning CT series as a Volume in Hounsfield units.

Why this is strict: a CT read with the wrong slice order, a silently skipped slice or an
ignored gantry tilt yields contours that look plausible and are millimetres off. So the
reader refuses what it cannot represent exactly (oblique or tilted series, gaps, duplicate
or irregular slice positions, mixed grids) with one line naming the file and the problem,
and never resamples a problem away.

Rules:
- The folder is searched recursively (symlinked sub-folders followed); file names and
  extensions do not matter. A dataset without the 128-byte preamble and "DICM" prefix is
  read when its content is DICOM. Other files are skipped, but one that looks like DICOM
  (a .dcm/.dicom/.ima name, or an empty or zero-filled stub) and cannot be read is named
  in a warning, and a CT series in its folder is refused (a lost end slice leaves no gap).
  A file that *is* DICOM but whose header or pixel data cannot be read is an error.
  cervseg's own staging entries (``*.cervseg-<pid>-*.partial``) are ignored.
- Slices are sorted by ImagePositionPatient projected on the slice normal
  (IOP row x IOP column), never by InstanceNumber or file name.
- Axis convention (see cervseg.volume): ``axes[2]`` = IOP[0:3], ``axes[1]`` = IOP[3:6],
  ``axes[0]`` = their cross product; ``origin`` = IPP of the first sorted slice. HFS, FFS,
  HFP and FFP series therefore all land in correct LPS geometry.
- Voxel values are HU (stored value x RescaleSlope + RescaleIntercept, per slice) in a
  float32 array: exact for every integer HU, and no overflow whatever the stored range.
  Both attributes are Type 1 in the CT Image module; a slice without them is refused.
- Every file of the chosen series must be a CT image (an MR slice carrying the CT's
  SeriesInstanceUID is refused).
- Localizer (scout) images inside a CT series are left out (ImageType contains LOCALIZER).
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import CTImageStorage, EnhancedCTImageStorage, LegacyConvertedEnhancedCTImageStorage, MediaStorageDirectoryStorage

from cervseg.errors import GeometryError, InputError, SeriesSelectionError
from cervseg.outputs import is_staging
from cervseg.progress import progress
from cervseg.volume import Geometry, SeriesInfo, Volume

log = logging.getLogger(__name__)

MULTIFRAME_CT = {uid: uid.name for uid in (EnhancedCTImageStorage, LegacyConvertedEnhancedCTImageStorage)}

PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
STUDY_KEYWORDS = (
    "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    "StudyDescription",
)

# Tolerances. Orientation cosines: a component must be within AXIS_TOL of 0 or +-1.
AXIS_TOL = 1e-3
IOP_CONSISTENCY_TOL = 1e-4
SPACING_CONSISTENCY_TOL = 1e-4  # mm, PixelSpacing between slices
DUPLICATE_TOL = 1e-2  # mm along the normal: two slices closer than this are duplicates
GAP_FACTOR = 1.5  # a step > 1.5 x median spacing means slices are missing
IRREGULAR_FRACTION = 0.1  # a slice off its regular position by > 10 % of the spacing
TILT_ABS_TOL = 0.05  # mm in-plane drift allowed between slices (rounding) ...
TILT_REL_TOL = 1e-3  # ... plus this fraction of the distance along the normal


@dataclass(frozen=True)
class DicomFile:
    """One DICOM file found in a folder and its header (no pixel data)."""

    path: Path
    header: Dataset


@dataclass(frozen=True)
class SeriesSummary:
    """One series found in a folder, as listed to a user who must choose."""

    series_instance_uid: str
    modality: str
    description: str
    n_files: int  # for CT: image slices, localizers excluded
    study_instance_uid: str
    series_number: str
    sop_class_uid: str
    files: tuple[Path, ...] = field(repr=False, default=())

    def describe(self) -> str:
        """e.g. ``1.2.3 (CT, 163 slices, 'New_SimCT')``."""
        unit = "slices" if self.modality == "CT" else "files"
        return f"{self.series_instance_uid} ({self.modality}, {self.n_files} {unit}, '{self.description}')"


@dataclass(frozen=True)
class FolderScan:
    """Every DICOM header in a folder tree, read once and shared by the series/RTSTRUCT finders."""

    folder: Path
    files: tuple[DicomFile, ...]
    n_skipped: int  # non-DICOM files
    unreadable: tuple[tuple[Path, str], ...] = ()  # files that look like DICOM but cannot be read, and why


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
# the first tag of a dataset written without preamble: file meta (0002,xxxx) or (0008,xxxx)
_RAW_DATASET_STARTS = (b"\x02\x00", b"\x08\x00")


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)
    except OSError as exc:
        raise InputError(f"{path}: cannot open file: {_first_line(exc)}") from None


def _looks_like_dicom(path: Path, head: bytes) -> bool:
    """A name or stub a DICOM export would have: worth a warning when it cannot be read."""
    suffix = path.suffix.lower()
    stub = len(head) < 132 and not head.strip(b"\0")
    return suffix in DICOM_SUFFIXES or (suffix == "" and stub)


def _read_header(path: Path, head: bytes) -> tuple[Dataset | None, str]:
    """(header, '') of a DICOM file, else (None, why it is not readable as DICOM)."""
    if len(head) == 132 and head[128:132] == b"DICM":
        try:
            return pydicom.dcmread(path, stop_before_pixels=True), ""
        except Exception as exc:  # pydicom raises many types on a broken header
            raise InputError(f"{path}: DICOM file whose header cannot be read: {_first_line(exc)}") from None
    if head[:2] in _RAW_DATASET_STARTS:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception as exc:
            return None, f"no DICOM preamble and unreadable content: {_first_line(exc)}"
        if header.get("SOPInstanceUID") and header.get("SeriesInstanceUID"):
            log.debug("%s: DICOM dataset without preamble, read", path)
            return header, ""
        return None, "no DICOM preamble and no SOP/Series Instance UID"
    if not head:
        return None, "empty file (0 bytes)"
    if len(head) < 132:
        return None, f"{len(head)} bytes, shorter than a DICOM header"
    return None, "no DICOM header (no DICM prefix)"


def _walk_files(folder: Path) -> list[Path]:
    """Every file below ``folder``, symlinked sub-folders followed once, staging entries left out."""
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop or a folder reached twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not is_staging(d)]
        for name in filenames:
            path = Path(dirpath) / name
            if not is_staging(name) and path.is_file():
                found.append(path)
    return sorted(found)


def scan_folder(folder: Path) -> FolderScan:
    """Read the header of every DICOM file below ``folder`` (recursively, any names).

    Files without the DICM prefix are skipped; a DICOM file whose header cannot be parsed
    is an InputError naming it (it might be a slice of the series we are asked to read).
    """
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    found: list[DicomFile] = []
    unreadable: list[tuple[Path, str]] = []
    skipped = 0
    for path in _walk_files(folder):
        head = _head(path)
        header, why = _read_header(path, head)
        if header is None:
            skipped += 1
            if _looks_like_dicom(path, head):
                log.warning("%s: looks like a DICOM file but cannot be read (%s); left out", path, why)
                unreadable.append((path, why))
            else:
                log.debug("%s: not DICOM (%s), skipped", path, why)
            continue
        if str(header.file_meta.get("MediaStorageSOPClassUID", "")) == MediaStorageDirectoryStorage:
            log.debug("%s: DICOMDIR, skipped", path)
            continue
        missing = [k for k in ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID") if not header.get(k)]
        if missing:  # Type 1 in every composite object: pydicom stops quietly at a truncation
            raise InputError(
                f"{path}: DICOM file whose header cannot be read: no {'/'.join(missing)} "
                "(truncated or damaged file)"
            )
        found.append(DicomFile(path, header))
    if skipped:
        log.debug("%s: skipped %d non-DICOM files", folder, skipped)
    return FolderScan(folder, tuple(found), skipped, tuple(unreadable))


def _is_localizer(header: Dataset) -> bool:
    image_type = header.get("ImageType", [])
    if isinstance(image_type, str):
        image_type = [image_type]
    return any(str(v).upper() == "LOCALIZER" for v in image_type)


def _summaries(scan: FolderScan) -> list[SeriesSummary]:
    groups: dict[str, list[DicomFile]] = defaultdict(list)
    for f in scan.files:
        uid = str(f.header.get("SeriesInstanceUID", ""))
        if uid:
            groups[uid].append(f)
    out = []
    for uid, files in groups.items():
        first = files[0].header
        # the series' kind is what most of its files are; an odd file is refused by _check_all_ct
        kinds = Counter((str(f.header.get("Modality", "")).upper(), str(f.header.get("SOPClassUID", ""))) for f in files)
        modality, sop_class = kinds.most_common(1)[0][0]
        if modality == "CT" and sop_class == CTImageStorage:
            files = [f for f in files if not _is_localizer(f.header)]
            if not files:
                continue
        out.append(
            SeriesSummary(
                series_instance_uid=uid,
                modality=modality,
                description=str(first.get("SeriesDescription", "")),
                n_files=len(files),
                study_instance_uid=str(first.get("StudyInstanceUID", "")),
                series_number=str(first.get("SeriesNumber", "")),
                sop_class_uid=sop_class,
                files=tuple(f.path for f in files),
            )
        )
    return out


def list_series(folder: Path, *, scan: FolderScan | None = None) -> list[SeriesSummary]:
    """Every series in the folder tree (any modality), largest first."""
    scan = scan or scan_folder(folder)
    return sorted(_summaries(scan), key=lambda s: (-s.n_files, s.series_instance_uid))


def _select_ct(scan: FolderScan, series_uid: str | None) -> SeriesSummary:
    folder = scan.folder
    series = list_series(folder, scan=scan)
    if series_uid is not None:
        chosen = [s for s in series if s.series_instance_uid == series_uid]
        if not chosen:
            found = "; ".join(s.describe() for s in series) or "no DICOM series"
            raise SeriesSelectionError(f"{folder}: no series with UID {series_uid}; found: {found}")
        s = chosen[0]
        if s.modality != "CT":
            raise SeriesSelectionError(
                f"{folder}: series {series_uid} is {s.modality or 'of unknown modality'}, not CT"
            )
        if s.sop_class_uid in MULTIFRAME_CT:
            raise SeriesSelectionError(
                f"{folder}: series {series_uid} is {MULTIFRAME_CT[s.sop_class_uid]} (multi-frame), "
                "which is not supported; export the CT as single-frame CT Image Storage"
            )
        return s
    ct = [s for s in series if s.modality == "CT" and s.sop_class_uid == CTImageStorage]
    if len(ct) == 1:
        return ct[0]
    if len(ct) > 1:
        listing = "; ".join(s.describe() for s in ct)
        raise SeriesSelectionError(
            f"{folder}: {len(ct)} CT series, choose one with --series UID: {listing}"
        )
    multiframe = [s for s in series if s.sop_class_uid in MULTIFRAME_CT]
    if multiframe:
        raise SeriesSelectionError(
            f"{folder}: only multi-frame CT ({MULTIFRAME_CT[multiframe[0].sop_class_uid]}) found, "
            "which is not supported; export the CT as single-frame CT Image Storage"
        )
    if not series:
        raise SeriesSelectionError(
            f"{folder}: no DICOM series found ({scan.n_skipped} files, none of them DICOM)"
        )
    found = "; ".join(s.describe() for s in series)
    raise SeriesSelectionError(f"{folder}: no CT image series (non-CT modality only); found: {found}")


def _floats(header: Dataset, keyword: str, n: int, path: Path) -> np.ndarray:
    value = header.get(keyword)
    if value is None or value == "":
        raise GeometryError(f"{path}: missing {keyword}, cannot place the slice in space")
    try:
        items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
        arr = np.asarray([float(v) for v in items])
    except (TypeError, ValueError):
        raise GeometryError(f"{path}: unreadable {keyword} {value!r}") from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise GeometryError(f"{path}: {keyword} must hold {n} numbers, got {value!r}")
    return arr


def _check_axis_aligned(vector: np.ndarray, what: str, path: Path) -> None:
    a = np.abs(vector)
    if not np.all((a < AXIS_TOL) | (np.abs(a - 1.0) < AXIS_TOL)) or np.sum(a > 0.5) != 1:
        raise GeometryError(
            f"{path}: oblique series ({what} of ImageOrientationPatient is "
            f"{tuple(round(float(v), 6) for v in vector)}, not along a patient axis); "
            "only axial series are supported, resample it in a planning system first"
        )


def _consistent(files: Sequence[DicomFile], values: Sequence[np.ndarray], tol: float, what: str, folder: Path) -> None:
    ref = values[0]
    for f, v in zip(files, values):
        if v.shape != ref.shape or not np.allclose(v, ref, atol=tol):
            raise GeometryError(
                f"{folder}: inconsistent {what} within the series: {files[0].path.name} has "
                f"{_fmt(ref)}, {f.path} has {_fmt(v)}"
            )


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{float(x):g}" for x in np.ravel(v)) + ")"


@dataclass(frozen=True)
class _SliceLayout:
    order: np.ndarray  # file indices in array order
    origin: np.ndarray
    axes: np.ndarray  # rows: z, y, x
    spacing: tuple[float, float, float]


def _layout(files: Sequence[DicomFile], folder: Path) -> _SliceLayout:
    """Check the slices describe one regular axial grid and sort them along the normal."""
    iop, pixel_spacing = _check_slice_headers(files, folder)
    row, col, normal = _slice_axes(iop, files[0].path)
    order, along, positions = _sort_along_normal(files, normal)
    _check_positions_on_the_normal(files, order, along, positions, normal, folder)
    spacing_z = _slice_spacing(files, order, along, folder)
    # PixelSpacing = (distance between rows, distance between columns) = (y, x) spacing
    spacing = (spacing_z, float(pixel_spacing[0]), float(pixel_spacing[1]))
    return _SliceLayout(order, positions[0], np.stack([normal, col, row]), spacing)


def _check_slice_headers(files: Sequence[DicomFile], folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Same Rows/Columns, PixelSpacing, orientation and frame of reference on every slice, no
    gantry tilt; returns the (first slice's) ImageOrientationPatient and PixelSpacing."""
    iops = [_floats(f.header, "ImageOrientationPatient", 6, f.path) for f in files]
    spacings = [_floats(f.header, "PixelSpacing", 2, f.path) for f in files]
    shapes = []
    for f in files:
        rows, cols = f.header.get("Rows"), f.header.get("Columns")
        if rows is None or cols is None:
            raise GeometryError(f"{f.path}: missing Rows/Columns")
        shapes.append(np.asarray([int(rows), int(cols)]))
    for f in files:
        tilt = f.header.get("GantryDetectorTilt")
        if tilt not in (None, "") and abs(float(tilt)) > AXIS_TOL:
            raise GeometryError(
                f"{f.path}: gantry tilt of {float(tilt):g} degrees; tilted series are not supported "
                "(reconstruct without tilt or resample it in a planning system first)"
            )
    _consistent(files, shapes, 0, "Rows/Columns", folder)
    _consistent(files, spacings, SPACING_CONSISTENCY_TOL, "PixelSpacing", folder)
    _consistent(files, iops, IOP_CONSISTENCY_TOL, "ImageOrientationPatient", folder)
    for_uids = {str(f.header.get("FrameOfReferenceUID", "")) for f in files}
    if len(for_uids) > 1:
        raise GeometryError(f"{folder}: slices of one series carry different FrameOfReferenceUIDs: {sorted(for_uids)}")
    if np.any(spacings[0] <= 0):
        raise GeometryError(f"{files[0].path}: PixelSpacing must be positive, got {_fmt(spacings[0])}")
    return iops[0], spacings[0]


def _slice_axes(iop: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row, column and normal vectors of an axis-aligned axial orientation (else refused)."""
    row, col = iop[:3], iop[3:]
    _check_axis_aligned(row, "the row direction", path)
    _check_axis_aligned(col, "the column direction", path)
    if np.argmax(np.abs(row)) == np.argmax(np.abs(col)):
        raise GeometryError(f"{path}: ImageOrientationPatient row and column are parallel {_fmt(iop)}")
    row = row / np.linalg.norm(row)
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)
    if abs(normal[2]) < 1.0 - AXIS_TOL:
        plane = "sagittal" if abs(normal[0]) > 0.5 else "coronal"
        raise GeometryError(
            f"{path}: non-axial ({plane}) series, ImageOrientationPatient {_fmt(iop)}; "
            "only axial series are supported"
        )
    return row, col, normal


def _sort_along_normal(files: Sequence[DicomFile], normal: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """File order by ImagePositionPatient projected on the normal; the sorted projections and positions."""
    positions = np.asarray([_floats(f.header, "ImagePositionPatient", 3, f.path) for f in files])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    return order, along[order], positions[order]


def _check_positions_on_the_normal(
    files: Sequence[DicomFile], order: np.ndarray, along: np.ndarray, positions: np.ndarray,
    normal: np.ndarray, folder: Path,
) -> None:
    """No two slices at one position, and no in-plane drift between slices (tilt or shear)."""
    steps = np.diff(along)
    for i in np.flatnonzero(steps < DUPLICATE_TOL):
        a, b = files[order[i]].path, files[order[i + 1]].path
        raise GeometryError(
            f"{folder}: duplicate slice position {along[i]:.3f} mm along the normal: {a} and {b}"
        )
    # in-plane drift of IPP between slices = gantry tilt (or a sheared series)
    offsets = positions - positions[0]
    inplane = offsets - np.outer(offsets @ normal, normal)
    drift = np.linalg.norm(inplane, axis=1)
    allowed = TILT_ABS_TOL + TILT_REL_TOL * np.abs(offsets @ normal)
    bad = np.flatnonzero(drift > allowed)
    if bad.size:
        i = int(bad[0])
        angle = np.degrees(np.arctan2(drift[i], abs(offsets[i] @ normal)))
        raise GeometryError(
            f"{files[order[i]].path}: slice positions are not along the slice normal (in-plane shift "
            f"{drift[i]:.2f} mm over {abs(offsets[i] @ normal):.2f} mm, about {angle:.2f} degrees): "
            "gantry tilt or sheared series, not supported"
        )


def _slice_spacing(files: Sequence[DicomFile], order: np.ndarray, along: np.ndarray, folder: Path) -> float:
    """The regular spacing of the sorted slices (refusing gaps and irregular steps), or the
    SliceThickness of a single slice."""
    n = len(files)
    if n < 2:
        header = files[0].header
        value = header.get("SpacingBetweenSlices") or header.get("SliceThickness")
        if value in (None, "") or float(value) <= 0:
            raise GeometryError(f"{files[0].path}: a single-slice series without SliceThickness")
        return float(value)
    steps = np.diff(along)
    median = float(np.median(steps))
    for i in np.flatnonzero(steps > GAP_FACTOR * median):
        a, b = files[order[i]].path, files[order[i + 1]].path
        raise GeometryError(
            f"{folder}: missing slices: gap of {steps[i]:.3f} mm between {a.name} "
            f"({along[i]:.3f} mm) and {b.name} ({along[i + 1]:.3f} mm), median spacing {median:.3f} mm"
        )
    spacing_z = float((along[-1] - along[0]) / (n - 1))
    expected = along[0] + spacing_z * np.arange(n)
    deviation = np.abs(along - expected)
    worst = int(np.argmax(deviation))
    if deviation[worst] > IRREGULAR_FRACTION * spacing_z:
        raise GeometryError(
            f"{files[order[worst]].path}: irregular slice spacing: slice at {along[worst]:.3f} mm "
            f"along the normal, a regular grid of {spacing_z:.3f} mm puts it at {expected[worst]:.3f} mm"
        )
    return spacing_z


def _rescale(ds: Dataset, path: Path) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept (Type 1 in the CT Image module): without them the
    stored values are not HU, and guessing 1 / 0 puts every voxel 1024 HU off."""
    values = []
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = ds.get(keyword)
        if value is None or str(value).strip() == "":
            raise InputError(
                f"{path}: CT slice without {keyword} (Type 1 in the CT Image module), its pixel values "
                "cannot be converted to HU; re-export the series with the rescale attributes"
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{path}: unreadable {keyword} {value!r}") from None
        if not np.isfinite(number):
            raise InputError(f"{path}: {keyword} must be a finite number, got {value!r}")
        values.append(number)
    if values[0] == 0:
        raise InputError(f"{path}: RescaleSlope is 0, every voxel would have the same HU")
    return values[0], values[1]


def _pixels_hu(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, Dataset]:
    try:
        ds = pydicom.dcmread(path, force=True)  # force: a dataset without preamble was accepted by the scan
    except Exception as exc:
        raise InputError(f"{path}: cannot read DICOM file: {_first_line(exc)}") from None
    if "PixelData" not in ds:
        raise InputError(f"{path}: CT slice without pixel data (truncated file?)")
    syntax = ds.file_meta.get("TransferSyntaxUID", "")
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames != 1:
            raise ValueError(f"{frames} frames in a CT Image Storage file")
        pixels = ds.pixel_array
    except Exception as exc:
        name = getattr(syntax, "name", str(syntax))
        raise InputError(
            f"{path}: cannot read pixel data (transfer syntax {name}; truncated or undecodable): "
            f"{_first_line(exc)}"
        ) from None
    if pixels.shape != shape:
        raise InputError(f"{path}: pixel data has shape {pixels.shape}, header says {shape}")
    slope, intercept = _rescale(ds, path)
    hu = pixels.astype(np.float32)
    if slope != 1.0:
        hu *= np.float32(slope)
    if intercept != 0.0:
        hu += np.float32(intercept)
    return hu, ds


def _describe_unreadable(items: Sequence[tuple[Path, str]]) -> str:
    shown = "; ".join(f"{p} ({why})" for p, why in items[:3])
    return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _check_all_ct(files: Sequence[DicomFile], series_uid: str) -> None:
    """Every file of the chosen series is a CT image (a series UID shared with an MR slice is a mixed series)."""
    for f in files:
        modality = str(f.header.get("Modality", "")).upper()
        sop_class = str(f.header.get("SOPClassUID", ""))
        if modality != "CT" or sop_class != CTImageStorage:
            raise GeometryError(
                f"{f.path}: Modality {modality or '?'} (SOP class {sop_class}) inside CT series {series_uid}: "
                "a mixed series; remove the file or re-export the CT series alone"
            )


def _text(header: Dataset, keyword: str) -> str:
    value = header.get(keyword)
    return "" if value is None else str(value)


def read_ct_series(
    folder: Path, series_uid: str | None = None, *, scan: FolderScan | None = None
) -> Volume:
    """Read the CT series in a folder tree into a Volume (float32 HU, LPS geometry).

    ``series_uid`` chooses among several CT series (required when there is more than one).
    ``scan`` lets a caller that already scanned the folder (read_patient) avoid a re-scan.
    """
    folder = Path(folder)
    scan = scan or scan_folder(folder)
    summary = _select_ct(scan, series_uid)
    by_path = {f.path: f for f in scan.files}
    files = [by_path[p] for p in summary.files]
    _check_all_ct(files, summary.series_instance_uid)
    folders = {f.path.parent for f in files}
    suspects = [(p, why) for p, why in scan.unreadable if p.parent in folders]
    try:
        layout = _layout(files, folder)
    except GeometryError as exc:
        if suspects:
            raise GeometryError(f"{exc}; unreadable file(s) in the series folder, perhaps the missing slices: "
                                f"{_describe_unreadable(suspects)}") from None
        raise
    if suspects:
        raise InputError(
            f"{suspects[0][0]}: looks like a DICOM file of the CT series' folder but cannot be read "
            f"({suspects[0][1]}){f' (and {len(suspects) - 1} more)' if len(suspects) > 1 else ''}; "
            "a lost first or last slice leaves no gap, so the series cannot be known complete: "
            "re-export the series or remove the file"
        )
    rows, cols = int(files[0].header.Rows), int(files[0].header.Columns)
    array = np.empty((len(files), rows, cols), dtype=np.float32)
    ordered = [files[i] for i in layout.order]
    for k, f in enumerate(progress(ordered, "reading CT", total=len(ordered))):
        array[k], _ = _pixels_hu(f.path, (rows, cols))

    first = ordered[0].header
    for_uid = _text(first, "FrameOfReferenceUID")
    if not for_uid:
        log.warning("%s: CT series without FrameOfReferenceUID; RTSTRUCT references cannot be checked", folder)
    geometry = Geometry(
        shape=array.shape,
        spacing=layout.spacing,
        origin=tuple(layout.origin),
        axes=tuple(map(tuple, layout.axes)),
        frame_of_reference_uid=for_uid,
    )
    info = SeriesInfo(
        study_instance_uid=_text(first, "StudyInstanceUID"),
        series_instance_uid=summary.series_instance_uid,
        sop_instance_uids=tuple(_text(f.header, "SOPInstanceUID") for f in ordered),
        sop_class_uid=_text(first, "SOPClassUID"),
        patient={k: _text(first, k) for k in PATIENT_KEYWORDS},
        study={k: _text(first, k) for k in STUDY_KEYWORDS},
        patient_position=_text(first, "PatientPosition"),
        source_files=tuple(str(f.path) for f in ordered),
    )
    log.info(
        "%s: CT series %s, %d slices, %s, %s",
        folder, summary.series_instance_uid, len(ordered), info.patient_position or "position ?",
        geometry.describe(),
    )
    return Volume(array, geometry, info)

