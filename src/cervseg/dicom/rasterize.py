"""Planar RTSTRUCT contours -> boolean masks on the CT grid (even-odd rule).

Why even-odd: planning systems store an organ with a hole (the rectal wall around its
lumen, a ring of bone marrow) as an outer and an inner polygon on the same slice, and
several parts of one organ as several polygons. XOR-ing the filled polygons of a slice
keeps holes as holes and parts as parts, whatever order or orientation they are stored in;
this is also what plastimatch does, and our masks are tested against it.

A pixel belongs to a polygon when its centre lies inside (skimage.draw.polygon, a
crossing-number test on the pixel centres). On the real case it reproduces plastimatch's
masks voxel for voxel for all 15 organ ROIs, as matplotlib's Path.contains_points does;
skimage is used because the contouring commands must not import matplotlib (docs/benchmarks.md
compares their speed).

Contours are matched to slices by their position along the slice normal; a contour more
than SLICE_TOLERANCE x slice spacing away from every slice is reported and skipped, never
snapped onto the nearest slice.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterable, Mapping, Sequence, Union

import numpy as np
from skimage.draw import polygon as polygon_pixels

from cervseg.dicom.rtstruct_read import Contour, RTStruct
from cervseg.errors import GeometryError, StructureError
from cervseg.structures import Catalogue, NameMatch, Template, load_template, match_names
from cervseg.volume import Geometry, LabelMap, Volume

log = logging.getLogger(__name__)

SLICE_TOLERANCE = 0.25  # fraction of the slice spacing
PLANARITY_TOLERANCE = 0.25  # spread of a contour's points along the normal, fraction of spacing

ContourLike = Union[Contour, np.ndarray]


def _points(contour: ContourLike) -> np.ndarray:
    pts = contour.points if isinstance(contour, Contour) else contour
    return np.asarray(pts, dtype=float).reshape(-1, 3)


def _xor_polygon(plane: np.ndarray, rc: np.ndarray) -> None:
    """XOR into ``plane`` the pixels whose centre lies inside the (row, col) polygon."""
    rows, cols = polygon_pixels(rc[:, 0], rc[:, 1], shape=plane.shape)
    plane[rows, cols] ^= True


def rasterize_roi(
    contours: Sequence[ContourLike], geometry: Geometry, *, name: str = "ROI"
) -> np.ndarray:
    """Boolean mask (z, y, x) of the contours (Contour objects or (N, 3) LPS arrays).

    Polygons on one slice are combined with XOR (even-odd rule). Contours off every slice
    (by more than a quarter of the slice spacing), outside the volume or not planar are
    skipped with one warning per ROI naming how many and where.
    """
    nz = geometry.shape[0]
    mask = np.zeros(geometry.shape, dtype=bool)
    off_slice: list[str] = []
    outside: list[str] = []
    not_planar: list[str] = []
    for i, contour in enumerate(contours):
        pts = _points(contour)
        if len(pts) < 3:
            continue
        idx = geometry.lps_to_index(pts)  # (N, 3) float (z, y, x)
        z = idx[:, 0]
        if np.ptp(z) > PLANARITY_TOLERANCE:
            not_planar.append(f"#{i + 1} (spans {np.ptp(z) * geometry.spacing[0]:.2f} mm)")
            continue
        zc = float(np.mean(z))
        k = int(np.rint(zc))
        normal_mm = float(pts.mean(axis=0) @ geometry.axes_matrix[0])
        if not 0 <= k < nz:  # before the off-slice test: a contour far away is not "1 mm off slice 739"
            first, last = (float(geometry.index_to_lps(np.asarray([[j, 0.0, 0.0]]))[0] @ geometry.axes_matrix[0])
                           for j in (0, nz - 1))
            outside.append(f"#{i + 1} at {normal_mm:.2f} mm (the CT spans {min(first, last):.2f} to {max(first, last):.2f} mm)")
            continue
        if abs(zc - k) > SLICE_TOLERANCE:
            off_slice.append(f"#{i + 1} at {normal_mm:.2f} mm ({abs(zc - k) * geometry.spacing[0]:.2f} mm off slice {k})")
            continue
        _xor_polygon(mask[k], idx[:, 1:])
    for what, items in (
        ("not on a slice of the CT", off_slice),
        ("outside the CT volume", outside),
        ("not planar", not_planar),
    ):
        if items:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            log.warning("ROI '%s': %d contours %s, skipped: %s", name, len(items), what, shown)
    return mask


def check_references(rtstruct: RTStruct, volume: Volume) -> None:
    """Refuse an RTSTRUCT drawn in another frame of reference; warn on a different series."""
    ct_frame = volume.geometry.frame_of_reference_uid
    rs_frame = rtstruct.frame_of_reference_uid
    if ct_frame and rs_frame and ct_frame != rs_frame:
        raise GeometryError(
            f"{rtstruct.path}: RTSTRUCT frame of reference {rs_frame} differs from the CT's "
            f"{ct_frame}; its contours do not belong to this CT"
        )
    if not (ct_frame and rs_frame):
        log.warning("%s: frame of reference missing in the CT or RTSTRUCT; cannot check that they match", rtstruct.path)
    ct_series = volume.series.series_instance_uid
    if rtstruct.referenced_series_uids and ct_series and ct_series not in rtstruct.referenced_series_uids:
        log.warning(
            "%s: RTSTRUCT references series %s, not the CT series %s (same frame of reference, contours used)",
            rtstruct.path, ", ".join(rtstruct.referenced_series_uids), ct_series,
        )


def _check_image_references(rtstruct: RTStruct, name: str, contours: Sequence[Contour], volume: Volume) -> None:
    """Warn when a contour's referenced CT image is not the slice its z puts it on.

    Contours are placed by z (the references are optional and sometimes stale); a mismatch
    means the RTSTRUCT was drawn on a differently sliced series and deserves a look.
    """
    index = {uid: k for k, uid in enumerate(volume.series.sop_instance_uids)}
    wrong: list[str] = []
    for i, c in enumerate(contours):
        k_ref = index.get(c.referenced_sop_instance_uid or "")
        if k_ref is None:
            continue
        k_z = int(np.rint(volume.geometry.lps_to_index(c.points)[:, 0].mean()))
        if k_ref != k_z:
            wrong.append(f"#{c.number if c.number is not None else i + 1} (references slice {k_ref}, lies on {k_z})")
    if wrong:
        shown = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        log.warning(
            "%s: ROI '%s': %d contours reference another CT image than the slice they lie on "
            "(placed by position): %s", rtstruct.path, name, len(wrong), shown,
        )


def choose_rois(rtstruct: RTStruct, wanted: Iterable[str], choices: Mapping[str, int] | None = None) -> RTStruct:
    """The RTSTRUCT with every ROI name that is in ``wanted`` held by one ROI only.

    Why: RayStation exports may hold two ROIs of one name (a manual and a model-based
    contour); taking the first in file order silently scores the wrong one. ``choices`` maps
    such a name to the ROINumber to use (``--roi NAME=NUMBER``); without a choice it is refused.
    """
    choices = dict(choices or {})
    numbers: dict[str, list[int]] = {}
    for roi in rtstruct.rois:
        numbers.setdefault(roi.name, []).append(roi.number)
    for name, number in choices.items():
        if number not in numbers.get(name, []):
            found = ", ".join(str(n) for n in numbers.get(name, [])) or "none"
            raise StructureError(f"{rtstruct.path}: --roi {name}={number}: no ROI '{name}' with number {number} "
                                 f"(ROI numbers named '{name}': {found})")
    wanted = set(wanted)
    drop: set[int] = set()
    for name, found in numbers.items():
        if len(found) < 2 or name not in wanted:
            continue
        if name not in choices:
            raise StructureError(
                f"{rtstruct.path}: {len(found)} ROIs are named '{name}' (ROI numbers {', '.join(map(str, found))}); "
                f"choose one with --roi {name}=NUMBER"
            )
        drop.update(n for n in found if n != choices[name])
        log.info("%s: ROI '%s': using ROI number %d of %s", rtstruct.path, name, choices[name], ", ".join(map(str, found)))
    return dataclasses.replace(rtstruct, rois=[r for r in rtstruct.rois if r.number not in drop]) if drop else rtstruct


def check_roi_frame(rtstruct: RTStruct, roi_name: str, volume: Volume) -> None:
    """Refuse an ROI whose own ReferencedFrameOfReferenceUID is not the CT's."""
    roi = rtstruct.roi(roi_name)
    ct_frame = volume.geometry.frame_of_reference_uid
    if ct_frame and roi.frame_of_reference_uid and roi.frame_of_reference_uid != ct_frame:
        raise GeometryError(
            f"{rtstruct.path}: ROI '{roi_name}' (number {roi.number}) is drawn in frame of reference "
            f"{roi.frame_of_reference_uid}, not the CT's {ct_frame}; its contours do not belong to this CT"
        )


def read_structures(
    rtstruct: RTStruct,
    volume: Volume,
    template: Template | str = "cervix",
    catalogue: Catalogue | None = None,
    roi_numbers: Mapping[str, int] | None = None,
) -> tuple[LabelMap, NameMatch]:
    """The template's structures found in the RTSTRUCT, rasterised on the CT grid.

    Masks are keyed by canonical name (e.g. 'Bladder' for an ROI named 'Vescica').
    ``roi_numbers`` chooses among ROIs sharing a name (see choose_rois).
    """
    catalogue = catalogue or Catalogue.builtin()
    if not isinstance(template, Template):
        template = load_template(template, catalogue)
    check_references(rtstruct, volume)
    wanted = {n for n in rtstruct.roi_names() if catalogue.canonical(n) in template.structures}
    rtstruct = choose_rois(rtstruct, wanted, roi_numbers)
    match = match_names(rtstruct.roi_names(), template, catalogue)
    for line in match.report().splitlines():
        log.info("%s: %s", rtstruct.path.name, line)
    labels = LabelMap(volume.geometry)
    for canonical, roi_name in match.matched.items():
        check_roi_frame(rtstruct, roi_name, volume)
        roi = rtstruct.roi(roi_name)
        _check_image_references(rtstruct, roi.name, roi.contours, volume)
        mask = rasterize_roi(roi.contours, volume.geometry, name=roi_name)
        if not mask.any():
            log.warning("%s: ROI '%s' (%s) has no voxel on this CT", rtstruct.path, roi_name, canonical)
        labels[canonical] = mask
    if not labels and template.structures:
        log.warning(
            "%s: none of the template '%s' structures found (ROIs: %s)",
            rtstruct.path, template.name, ", ".join(rtstruct.roi_names()) or "none",
        )
    return labels, match

