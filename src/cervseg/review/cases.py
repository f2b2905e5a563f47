"""The review root: one folder per patient, as `segment` writes them, made ready for the page.

A case folder holds a CT series, the automatic RTSTRUCT (`RS_<SeriesInstanceUID>.dcm`,
label "cervseg AUTO"), optionally a reference RTSTRUCT (any other structure set of the same
CT) and the QA file `QA_<SeriesInstanceUID>.csv`. Why the page gets polygons, not masks:
contours as vectors in pixel coordinates are a few kB per slice and stay sharp when zoomed.

Display layout: every slice is shown with the patient's right on the screen's left and
anterior up (the radiological convention), whatever the patient position; slice indices
are the CT's own (increasing position along the slice normal, i.e. inferior to superior).
Case ids are folder names under the root; a request can name only a case that discovery
found (see `safe_case_id`), so no request path can leave the root.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.uid import RTStructureSetStorage

from cervseg.dicom.rtstruct_read import RTStruct, read_rtstruct
from cervseg.dicom.series import FolderScan, read_ct_series, scan_folder
from cervseg.errors import CervsegError, InputError
from cervseg.structures import Catalogue
from cervseg.volume import Volume

log = logging.getLogger(__name__)

AUTO_LABEL = "cervseg AUTO"  # StructureSetLabel of what `segment` writes


def safe_case_id(case_id: str) -> str:
    """A case id from a request, refused unless it is one plain folder name (no `..`, no `/`)."""
    text = str(case_id)
    if (not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text
            or text.startswith(".") or ":" in text):
        raise InputError("case id must be a folder name directly under the review root")
    return text


@dataclass
class CaseFiles:
    """Where one case's files are (found once at start-up, headers only)."""

    case_id: str
    folder: Path
    series_uid: str
    auto_rtstruct: Path
    reference_rtstruct: Path | None
    qa_file: Path | None
    gradeable: int  # (slice, structure) pairs carrying an automatic contour


def _is_rtstruct(header) -> bool:
    return str(header.get("Modality", "")) == "RTSTRUCT" or str(header.get("SOPClassUID", "")) == RTStructureSetStorage


def _referenced_series(header) -> set[str]:
    return {
        str(ser.get("SeriesInstanceUID", ""))
        for ref in header.get("ReferencedFrameOfReferenceSequence", [])
        for study in ref.get("RTReferencedStudySequence", [])
        for ser in study.get("RTReferencedSeriesSequence", [])
    }


def _count_contour_slices(path: Path) -> int:
    """Distinct (ROI, z) pairs of an RTSTRUCT: how many slice grades a full review has."""
    rs = read_rtstruct(path)
    return len({(roi.name, round(float(c.points[0, 2]), 1)) for roi in rs.rois for c in roi.contours})


def _case_files(case_id: str, folder: Path, scan: FolderScan) -> CaseFiles:
    cts = [f for f in scan.files if str(f.header.get("Modality", "")) == "CT"]
    series = sorted({str(f.header.get("SeriesInstanceUID", "")) for f in cts})
    if len(series) != 1:
        raise InputError(f"holds {len(series)} CT series (a review case needs exactly one)")
    uid = series[0]
    structure_sets = [f for f in scan.files if _is_rtstruct(f.header) and uid in _referenced_series(f.header)]
    auto = [f for f in structure_sets if str(f.header.get("StructureSetLabel", "")) == AUTO_LABEL]
    if not auto:
        raise InputError("has no automatic RTSTRUCT (run `cervseg segment` into it)")
    if len(auto) > 1:
        raise InputError(f"has {len(auto)} automatic RTSTRUCTs of the same CT; keep one")
    others = [f for f in structure_sets if f not in auto]
    qa = folder / f"QA_{uid}.csv"
    return CaseFiles(
        case_id=case_id, folder=folder, series_uid=uid, auto_rtstruct=auto[0].path,
        reference_rtstruct=others[0].path if others else None, qa_file=qa if qa.is_file() else None,
        gradeable=_count_contour_slices(auto[0].path),
    )


def discover_cases(root: Path) -> dict[str, CaseFiles]:
    """Every reviewable case folder directly under ``root``; others are skipped with a warning.

    Logs name cases by their number only: folder names may be patient IDs.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: review root folder not found")
    cases: dict[str, CaseFiles] = {}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for number, folder in enumerate(folders, start=1):
        try:
            cases[folder.name] = _case_files(folder.name, folder, scan_folder(folder))
        except CervsegError as exc:
            log.warning("case %d of %d under the review root skipped: %s", number, len(folders),
                        str(exc).replace(str(folder), "<case folder>"))
    log.info("%d reviewable cases of %d folders", len(cases), len(folders))
    return cases


Polygon = list[float]  # x0, y0, x1, y1, ... in display pixel coordinates (pixel centres at +0.5)


@dataclass
class LoadedCase:
    """A case in memory: the CT, its contours by slice, QA scores, structure colours."""

    files: CaseFiles
    volume: Volume
    display_flips: tuple[bool, bool]  # (rows, columns) flipped for the radiological layout
    auto: dict[int, dict[str, list[Polygon]]]
    reference: dict[int, dict[str, list[Polygon]]]
    colours: dict[str, tuple[int, int, int]]
    qa: dict[int, dict[str, float]] = field(default_factory=dict)
    _slice_bytes: dict[int, bytes] = field(default_factory=dict, repr=False)

    @property
    def n_slices(self) -> int:
        return int(self.volume.geometry.shape[0])

    def slice_bytes(self, z: int) -> bytes:
        """Slice z in HU as little-endian int16 in display layout (cached)."""
        cached = self._slice_bytes.get(z)
        if cached is None:
            plane = self.volume.array[z]
            if self.display_flips[0]:
                plane = plane[::-1]
            if self.display_flips[1]:
                plane = plane[:, ::-1]
            cached = np.clip(np.rint(plane), -32768, 32767).astype("<i2").tobytes()
            self._slice_bytes[z] = cached
        return cached

    def worst_first(self) -> list[int]:
        """Slices with an automatic contour, highest QA score first (then by slice)."""
        slices = sorted(self.auto)
        return sorted(slices, key=lambda z: (-max(self.qa.get(z, {}).values(), default=0.0), z))


def _polygons_by_slice(rs: RTStruct, volume: Volume, catalogue: Catalogue, flips: tuple[bool, bool],
                       only: set[str] | None = None) -> dict[int, dict[str, list[Polygon]]]:
    """ROI contours in display pixel coordinates, keyed by slice index and canonical name."""
    geometry = volume.geometry
    rows, cols = geometry.shape[1], geometry.shape[2]
    out: dict[int, dict[str, list[Polygon]]] = {}
    for roi in rs.rois:
        name = catalogue.canonical(roi.name)
        if name is None or (only is not None and name not in only):
            continue
        for contour in roi.contours:
            idx = geometry.lps_to_index(contour.points)
            z = int(round(float(np.mean(idx[:, 0]))))
            if not 0 <= z < geometry.shape[0]:
                continue
            r, c = idx[:, 1], idx[:, 2]
            if flips[0]:
                r = rows - 1 - r
            if flips[1]:
                c = cols - 1 - c
            xy = np.empty(2 * len(idx))
            xy[0::2], xy[1::2] = c + 0.5, r + 0.5
            out.setdefault(z, {}).setdefault(name, []).append([round(float(v), 2) for v in xy])
    return out


def read_qa(path: Path | None) -> dict[int, dict[str, float]]:
    """slice -> structure -> QA score (0 = nothing suspicious, 1 = surely wrong) from QA_<uid>.csv."""
    if path is None:
        return {}
    scores: dict[int, dict[str, float]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                value = float(row["score"])
                if math.isfinite(value):
                    scores.setdefault(int(row["slice_index"]), {})[row["structure"]] = value
    except (OSError, KeyError, ValueError) as exc:
        log.warning("a case's QA file is unreadable (%s); slices keep their order", type(exc).__name__)
        return {}
    return scores


def load_case(files: CaseFiles, catalogue: Catalogue) -> LoadedCase:
    """Read a case's CT and structure sets (seconds for a 500-slice CT; the server caches it)."""
    volume = read_ct_series(files.folder, files.series_uid)
    # canonical_flips() brings any patient position to the HFS layout: right on the left, anterior up
    flips3 = volume.geometry.canonical_flips()
    flips = (bool(flips3[1]), bool(flips3[2]))
    auto = _polygons_by_slice(read_rtstruct(files.auto_rtstruct), volume, catalogue, flips)
    names = {name for per_slice in auto.values() for name in per_slice}
    reference = (
        _polygons_by_slice(read_rtstruct(files.reference_rtstruct), volume, catalogue, flips, only=names)
        if files.reference_rtstruct else {}
    )
    colours = {}
    for name in sorted(names | {n for s in reference.values() for n in s}):
        colours[name] = catalogue.structures[name].colour
    return LoadedCase(files, volume, flips, auto, reference, colours, read_qa(files.qa_file))
