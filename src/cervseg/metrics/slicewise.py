"""Per-slice metrics on axial 2D slices, as the papers report them (and an oncologist grades).

Slice convention (docs/evaluation.md):
- A slice belongs to a structure when the reference or the prediction has a voxel on it;
  slices where both are empty are not slices of that structure.
- ``paired``: both present; all measures defined.
- ``missed``: reference only (the model left out a slice): Dice 0, surface Dice 0,
  distances undefined (NaN), APL = the whole reference contour.
- ``false_positive``: prediction only: Dice 0, surface Dice 0, distances NaN, APL 0.
Slice-averaged measures (evaluate.py) average the paired slices; missed and
false-positive slices are counted in their own metrics, never silently dropped.

Slices are array slices along axis 0 (the slice normal, increasing position); the slice
position is the projection of its first voxel on that normal (= patient z for axial CT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cervseg.metrics.overlap import dice
from cervseg.metrics.surface import DEFAULT_TOLERANCE_MM, surface_distances, union_box
from cervseg.volume import Geometry

PAIRED = "paired"
MISSED = "missed"
FALSE_POSITIVE = "false_positive"


@dataclass(frozen=True)
class SliceResult:
    """Measures of one structure on one axial slice."""

    slice_index: int  # array index along the slice normal (0 = lowest position)
    slice_z_mm: float  # position of the slice along its normal, mm
    status: str  # PAIRED, MISSED or FALSE_POSITIVE
    dice: float
    hd95_mm: float
    hd_mm: float
    msd_mm: float
    surface_dice: float
    apl_mm: float
    reference_pixels: int
    prediction_pixels: int


def slice_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    geometry: Geometry,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    box: tuple[slice, ...] | None = None,
) -> list[SliceResult]:
    """One SliceResult per slice where the reference or the prediction is present.

    ``box`` lets a caller that already cropped both masks to their union (union_box with a
    margin of at least 1) pass the crops and where they lie on the grid.
    """
    ref = np.asarray(reference, dtype=bool)
    pred = np.asarray(prediction, dtype=bool)
    if box is None:
        if ref.shape != geometry.shape or pred.shape != geometry.shape:
            raise ValueError(f"masks {ref.shape}/{pred.shape} do not match the grid {geometry.shape}")
        box = union_box(ref, pred, margin=1)
        if box is None:
            return []
        ref, pred = ref[box], pred[box]
    in_plane = (geometry.spacing[1], geometry.spacing[2])
    positions = geometry.slice_normal_coordinates()
    ref_c, pred_c = ref, pred
    z0 = box[0].start
    ref_counts = ref_c.sum(axis=(1, 2))
    pred_counts = pred_c.sum(axis=(1, 2))
    results = []
    for dz in np.flatnonzero((ref_counts > 0) | (pred_counts > 0)):
        r, p = ref_c[dz], pred_c[dz]
        n_ref, n_pred = int(ref_counts[dz]), int(pred_counts[dz])
        distances = surface_distances(r, p, in_plane)
        status = PAIRED if n_ref and n_pred else MISSED if n_ref else FALSE_POSITIVE
        results.append(
            SliceResult(
                slice_index=int(z0 + dz),
                slice_z_mm=float(positions[z0 + dz]),
                status=status,
                dice=dice(r, p),
                hd95_mm=distances.hd95(),
                hd_mm=distances.hausdorff(),
                msd_mm=distances.mean(),
                surface_dice=distances.surface_dice(tolerance_mm),
                apl_mm=distances.added_path_length(tolerance_mm),
                reference_pixels=n_ref,
                prediction_pixels=n_pred,
            )
        )
    return results


def mean_over_paired(results: list[SliceResult], field: str) -> float:
    """Mean of one measure over the paired slices (NaN when there are none)."""
    values = [getattr(r, field) for r in results if r.status == PAIRED]
    return float(np.mean(values)) if values else math.nan
