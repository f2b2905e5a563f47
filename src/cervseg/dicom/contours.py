"""Mask slices -> closed planar polygons in patient LPS mm, holes and islands kept.

Why every boundary is its own contour: planning systems rebuild a slice from its
CLOSED_PLANAR contours with the even-odd rule (plastimatch does with --xor-contours), so an
annulus is written as two contours (outer ring and hole) and a box with a cavity keeps its
cavity. Filling holes or joining islands is the classic RTSTRUCT <-> mask conversion bug
this module avoids.

Boundaries are traced with marching squares (``skimage.measure.find_contours``) at level
0.5 on a zero-padded slice, so every vertex lies half-way between an inside and an outside
pixel centre and no pixel centre is closer than 0.35 pixel to a boundary. Vertices that lie
on the straight line through their neighbours (runs along rows, columns and 45-degree
diagonals: about two thirds of all vertices) are then dropped exactly, so polygons are
small and rasterising them with any centre-sampling even-odd rasteriser gives back the
mask exactly.

Why Douglas-Peucker is not on by default: at a tolerance safely below 0.35 pixel (0.2) it
removed no more vertices than the exact pass on the real case and was slow on its body
outline (docs/benchmarks.md). It stays available as ``tolerance_px`` (keep it <= 0.3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from skimage import measure

from cervseg.errors import StructureError
from cervseg.volume import Geometry

log = logging.getLogger(__name__)

#: Extra Douglas-Peucker tolerance in pixels (0 = exact); must stay below 0.35, see above.
DEFAULT_TOLERANCE_PX = 0.0


@dataclass(frozen=True)
class SliceContour:
    """One closed planar contour on one CT slice."""

    slice_index: int  # index along the volume's first (slice) axis
    points_lps: np.ndarray  # (N, 3) LPS mm, N >= 3, not repeating the first point at the end


def _drop_collinear(ring: np.ndarray) -> np.ndarray:
    """Remove the vertices of a closed ring (first point not repeated) that lie on the line
    through their two neighbours; the polygon itself is unchanged."""
    if len(ring) < 3:
        return ring
    d_in = ring - np.roll(ring, 1, axis=0)
    d_out = np.roll(ring, -1, axis=0) - ring
    cross = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0]
    return ring[np.abs(cross) > 1e-9]


def slice_polygons(mask2d: np.ndarray, tolerance_px: float = DEFAULT_TOLERANCE_PX) -> list[np.ndarray]:
    """Boundaries of a 2D mask as (N, 2) (row, column) index polygons, outer ones and holes alike.

    Returns an empty list for an empty slice. Polygons with fewer than 3 points after
    reduction are dropped (they enclose no pixel centre).
    """
    mask2d = np.asarray(mask2d)
    if mask2d.ndim != 2:
        raise ValueError(f"expected a 2D mask slice, got shape {mask2d.shape}")
    if not mask2d.any():
        return []
    padded = np.pad(mask2d.astype(np.uint8), 1)
    polygons = []
    for contour in measure.find_contours(padded, 0.5):
        ring = contour - 1.0  # undo the padding
        if len(ring) > 1 and np.allclose(ring[0], ring[-1]):
            ring = ring[:-1]  # CLOSED_PLANAR closes implicitly
        ring = _drop_collinear(ring)
        if tolerance_px > 0 and len(ring) >= 3:
            ring = measure.approximate_polygon(np.vstack([ring, ring[:1]]), tolerance_px)[:-1]
        if len(ring) < 3:
            log.debug("dropped a degenerate contour of %d points", len(ring))
            continue
        polygons.append(ring)
    return polygons


def mask_to_contours(
    mask: np.ndarray,
    geometry: Geometry,
    tolerance_px: float = DEFAULT_TOLERANCE_PX,
    max_contours: int | None = None,
) -> list[SliceContour]:
    """All contours of a 3D (z, y, x) mask, in slice order, with points in LPS mm.

    Every point of a contour lies on its slice's plane (the slice index is exact), so the
    contour sits on the z of the CT image it will reference. ``max_contours``: raise a
    StructureError as soon as the mask gives more (a speckled slice alone gives thousands,
    at about a second each, so stopping early matters).
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
        if max_contours is not None and len(contours) > max_contours:
            z_mm = float(geometry.index_to_lps(np.asarray([[float(k), 0.0, 0.0]]))[0, 2])
            raise StructureError(
                f"the mask breaks into more than {max_contours} contours by the slice at z = {z_mm:.1f} mm "
                f"({k + 1} of {mask.shape[0]} along the slice normal)"
            )
    return contours
