"""Mask slices -> closed planar polygons in patient LPS mm, holes and islands kept.

Why every boundary is its own contour: planning systems (and plastimatch) rebuild a slice
from its CLOSED_PLANAR contours with the even-odd rule, so an annulus is written as two
contours (outer ring and hole) and a box with a cavity keeps its cavity. Filling holes or
joining islands is the classic RTSTRUCT <-> mask conversion bug this module avoids.

Boundaries are traced with marching squares (``skimage.measure.find_contours``) at level
0.5 on a zero-padded slice, so every vertex lies half-way between an inside and an outside
pixel centre and no pixel centre is closer than 0.35 pixel to a boundary. A Douglas-Peucker
reduction with a tolerance well below that (0.2 pixel) drops the staircase vertices along
straight runs but cannot move a boundary across a pixel centre, so rasterising the polygons
with any centre-sampling even-odd rasteriser gives back the mask exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from skimage import measure

from cervseg.volume import Geometry

log = logging.getLogger(__name__)

#: Douglas-Peucker tolerance in pixels; must stay below 0.35 (see module docstring).
DEFAULT_TOLERANCE_PX = 0.2


@dataclass(frozen=True)
class SliceContour:
    """One closed planar contour on one CT slice."""

    slice_index: int  # index along the volume's first (slice) axis
    points_lps: np.ndarray  # (N, 3) LPS mm, N >= 3, not repeating the first point at the end


def slice_polygons(mask2d: np.ndarray, tolerance_px: float = DEFAULT_TOLERANCE_PX) -> list[np.ndarray]:
    """Boundaries of a 2D mask as (N, 2) (row, column) index polygons, outer ones and holes alike.

    Returns an empty list for an empty slice. Polygons with fewer than 3 distinct points
    after reduction are dropped (they enclose no pixel centre).
    """
    mask2d = np.asarray(mask2d)
    if mask2d.ndim != 2:
        raise ValueError(f"expected a 2D mask slice, got shape {mask2d.shape}")
    if not mask2d.any():
        return []
    padded = np.pad(mask2d.astype(np.uint8), 1)
    polygons = []
    for contour in measure.find_contours(padded, 0.5):
        contour = contour - 1.0  # undo the padding
        if tolerance_px > 0:
            contour = measure.approximate_polygon(contour, tolerance_px)
        if len(contour) > 1 and np.allclose(contour[0], contour[-1]):
            contour = contour[:-1]  # CLOSED_PLANAR closes implicitly
        if len(contour) < 3:
            log.debug("dropped a degenerate contour of %d points", len(contour))
            continue
        polygons.append(contour)
    return polygons


def mask_to_contours(
    mask: np.ndarray, geometry: Geometry, tolerance_px: float = DEFAULT_TOLERANCE_PX
) -> list[SliceContour]:
    """All contours of a 3D (z, y, x) mask, in slice order, with points in LPS mm.

    Every point of a contour lies on its slice's plane (the slice index is exact), so the
    contour sits on the z of the CT image it will reference.
    """
    mask = np.asarray(mask)
    if tuple(mask.shape) != geometry.shape:
        raise ValueError(f"mask shape {mask.shape} does not match the grid {geometry.shape}")
    contours: list[SliceContour] = []
    occupied = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    for k in occupied:
        for poly in slice_polygons(mask[k], tolerance_px):
            idx = np.column_stack([np.full(len(poly), float(k)), poly])
            contours.append(SliceContour(int(k), geometry.index_to_lps(idx)))
    return contours
