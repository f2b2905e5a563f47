"""Surface-distance measures in mm (HD, HD95, mean surface distance, surface Dice, APL).

One convention, used in 3D and on each 2D slice alike (docs/evaluation.md):

- Boundary of a mask: its voxels with at least one face-neighbour (6-connectivity in 3D,
  4-connectivity in 2D) outside the mask; voxels on the array border count as boundary.
  This is ``monai.metrics.utils.get_mask_edges`` (mask XOR its binary erosion).
- Directed distances: from each boundary voxel centre of one mask to the nearest boundary
  voxel centre of the other, Euclidean, in mm using the voxel spacing (anisotropic spacing
  honoured). This is ``monai.metrics.utils.get_surface_distance`` (a KD-tree).
- The symmetric set pools both directed sets (|∂R| + |∂P| values).
- HD = max of the pooled set; HD95 = its 95th percentile (numpy's default linear
  interpolation between order statistics); mean surface distance (MSD, also called ASSD)
  = its mean; surface Dice at tolerance τ = fraction of pooled distances <= τ
  (Nikolov et al. 2021, the voxel-count form that ``monai.metrics.compute_surface_dice``
  uses without sub-voxels).
- Added path length (APL, Vaassen et al. 2020) on a 2D slice: the length of reference
  contour farther than τ from the predicted contour, i.e. what a clinician has to redraw;
  each boundary pixel counts for the mean in-plane pixel size. With no prediction on the
  slice the whole reference contour counts; with no reference, APL is 0.
- Either mask empty: HD, HD95 and MSD are NaN (undefined; the caller counts such slices
  apart as missed or false-positive), surface Dice is 0.
  Both empty: every measure is NaN.

Why not ``monai.metrics.compute_hausdorff_distance(percentile=95)`` itself: MONAI returns
the larger of the two *directed* 95th percentiles, not the percentile of the pooled set,
and plastimatch returns their *average* (with a lower order statistic); the three differ
by up to a voxel or more on real contours. We keep MONAI's boundary and distance
primitives, whose results the tests check against brute force and plastimatch, and
state one percentile rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from monai.metrics.utils import get_mask_edges, get_surface_distance

from cervseg.metrics import DEFAULT_TOLERANCE_MM


def union_box(reference: np.ndarray, prediction: np.ndarray, margin: int = 1) -> tuple[slice, ...] | None:
    """Bounding box of the union of two masks plus a margin (clipped to the array); None if empty."""
    union = reference | prediction
    if not union.any():
        return None
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        hits = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + margin + 1, union.shape[axis])))
    return tuple(box)


def crop_to_union(reference: np.ndarray, prediction: np.ndarray, margin: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cropped to the bounding box of their union plus a margin.

    Why: distance computations then cost in proportion to the structure, not the CT; the
    one-voxel margin keeps the boundary identical to the uncropped one (array-border voxels
    stay boundary because erosion treats outside the array as background).
    """
    box = union_box(reference, prediction, margin)
    if box is None:
        box = tuple(slice(0, 0) for _ in reference.shape)
    return reference[box], prediction[box]


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed boundary distances (mm) between a reference and a prediction mask."""

    ref_to_pred: np.ndarray  # one value per reference boundary voxel (inf when no prediction)
    pred_to_ref: np.ndarray  # one value per prediction boundary voxel (inf when no reference)
    pixel_length_mm: float  # mean in-plane pixel size, used by the added path length

    @property
    def both_present(self) -> bool:
        return self.ref_to_pred.size > 0 and self.pred_to_ref.size > 0

    @property
    def pooled(self) -> np.ndarray:
        """The symmetric set: both directed sets concatenated."""
        return np.concatenate([self.ref_to_pred, self.pred_to_ref])

    def hausdorff(self) -> float:
        """Maximum of the pooled distances (NaN unless both masks are present)."""
        return float(self.pooled.max()) if self.both_present else math.nan

    def percentile(self, q: float) -> float:
        """q-th percentile (0-100) of the pooled distances (NaN unless both masks are present)."""
        return float(np.percentile(self.pooled, q)) if self.both_present else math.nan

    def hd95(self) -> float:
        """95th percentile of the pooled symmetric distances."""
        return self.percentile(95.0)

    def mean(self) -> float:
        """Mean of the pooled distances (mean symmetric surface distance)."""
        return float(self.pooled.mean()) if self.both_present else math.nan

    def surface_dice(self, tolerance_mm: float = DEFAULT_TOLERANCE_MM) -> float:
        """Fraction of boundary voxels of both masks within the tolerance of the other boundary."""
        pooled = self.pooled
        if pooled.size == 0:
            return math.nan
        return float(np.count_nonzero(pooled <= tolerance_mm)) / pooled.size

    def added_path_length(self, tolerance_mm: float = DEFAULT_TOLERANCE_MM) -> float:
        """Length (mm) of reference boundary farther than the tolerance from the prediction.

        Meaningful on a 2D slice; 0 when the reference is empty on it (nothing to add).
        """
        return float(np.count_nonzero(self.ref_to_pred > tolerance_mm)) * self.pixel_length_mm


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a 2D or 3D mask (face connectivity; see module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    edges, _ = get_mask_edges(mask, mask, crop=False)
    return np.asarray(edges, dtype=bool)


def surface_distances(
    reference: np.ndarray, prediction: np.ndarray, spacing: tuple[float, ...]
) -> SurfaceDistances:
    """Directed boundary distances between two 2D or 3D masks, in mm.

    ``spacing`` is the voxel size along each array axis (for a CT grid, Geometry.spacing
    (z, y, x); for one axial slice, its (y, x) part).
    """
    ref = np.asarray(reference, dtype=bool)
    pred = np.asarray(prediction, dtype=bool)
    if ref.shape != pred.shape:
        raise ValueError(f"reference shape {ref.shape} differs from prediction shape {pred.shape}")
    if len(spacing) != ref.ndim:
        raise ValueError(f"spacing {spacing} does not match a {ref.ndim}D mask")
    spacing = tuple(float(s) for s in spacing)
    pixel_length = float(np.mean(spacing[-2:]))
    ref, pred = crop_to_union(ref, pred)
    empty = np.zeros(0, dtype=np.float32)
    has_ref, has_pred = bool(ref.any()), bool(pred.any())
    if not has_ref and not has_pred:
        return SurfaceDistances(empty, empty, pixel_length)
    edges_pred, edges_ref = get_mask_edges(pred, ref, crop=False)
    edges_pred = np.asarray(edges_pred, dtype=bool)
    edges_ref = np.asarray(edges_ref, dtype=bool)
    if not has_pred:
        return SurfaceDistances(np.full(int(edges_ref.sum()), np.inf, np.float32), empty, pixel_length)
    if not has_ref:
        return SurfaceDistances(empty, np.full(int(edges_pred.sum()), np.inf, np.float32), pixel_length)
    ref_to_pred = np.asarray(get_surface_distance(edges_ref, edges_pred, spacing=spacing), dtype=np.float64)
    pred_to_ref = np.asarray(get_surface_distance(edges_pred, edges_ref, spacing=spacing), dtype=np.float64)
    return SurfaceDistances(ref_to_pred, pred_to_ref, pixel_length)
