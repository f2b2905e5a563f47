"""Slice Dice / HD95 / added path length of a case's automatic contours against its reference.

Why at review time: review-stats sets each grade beside how far the contour was from the
reference on that slice (do "Major revision" slices have low Dice?), and the database is all
review-stats reads, so the server stores these rows when it first loads a case.
"""

from __future__ import annotations

import math

from cervseg.dicom.rasterize import rasterize_roi
from cervseg.dicom.rtstruct_read import read_rtstruct
from cervseg.metrics.slicewise import slice_metrics
from cervseg.review.cases import CaseFiles
from cervseg.review.store import SliceMetric
from cervseg.structures import Catalogue
from cervseg.volume import Volume


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def case_slice_metrics(files: CaseFiles, volume: Volume, catalogue: Catalogue) -> list[SliceMetric]:
    """One row per (slice, structure) where the automatic or the reference contour is present."""
    if files.reference_rtstruct is None:
        return []
    auto = {catalogue.canonical(r.name): r for r in read_rtstruct(files.auto_rtstruct).rois}
    reference = {catalogue.canonical(r.name): r for r in read_rtstruct(files.reference_rtstruct).rois}
    rows: list[SliceMetric] = []
    for name in sorted(n for n in auto if n is not None and n in reference):
        pred = rasterize_roi(auto[name].contours, volume.geometry, name=name)
        ref = rasterize_roi(reference[name].contours, volume.geometry, name=name)
        for r in slice_metrics(ref, pred, volume.geometry):
            rows.append(SliceMetric(files.case_id, r.slice_index, name, r.status,
                                    _finite(r.dice), _finite(r.hd95_mm), _finite(r.apl_mm)))
    return rows
