"""The canvas the anatomy is painted on: a tissue label and a part label per voxel.

Why painting: anatomy is assembled in a fixed order (body, cavity, muscles, vessels,
organs, bowel, bones), each later structure overwriting earlier ones only where it is
allowed to (bowel loops fill the visceral fat but never push into the bladder), which is
far simpler and faster than resolving overlaps between signed-distance fields.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from cervseg.phantom.shapes import Box, Grid
from cervseg.phantom.tissues import Part, Tissue


class Canvas:
    """Tissue and part labels (uint8, z-y-x) on a Grid in local patient mm."""

    def __init__(self, grid: Grid):
        self.grid = grid
        self.tissue = np.zeros(grid.shape, np.uint8)
        self.part = np.zeros(grid.shape, np.uint8)

    def paint(
        self,
        box: Box | None,
        mask: np.ndarray,
        tissue: Tissue | int | np.ndarray,
        part: Part | int | None,
        over_parts: Iterable[int] | None = None,
        over_tissues: Iterable[int] | None = None,
    ) -> np.ndarray:
        """Write ``tissue`` (scalar or box-shaped array) and ``part`` where ``mask`` is true.

        ``over_parts``/``over_tissues`` restrict the writing to voxels currently holding one of
        those labels. Returns the mask actually painted (box-shaped).
        """
        if box is None:
            return np.zeros((0, 0, 0), bool)
        t = self.tissue[box.slices]
        p = self.part[box.slices]
        m = np.asarray(mask, dtype=bool)
        if over_parts is not None:
            m = m & np.isin(p, np.fromiter(over_parts, dtype=np.uint8))
        if over_tissues is not None:
            m = m & np.isin(t, np.fromiter(over_tissues, dtype=np.uint8))
        if np.ndim(tissue) == 0:
            t[m] = int(tissue)
        else:
            t[m] = np.asarray(tissue)[m]
        if part is not None:
            p[m] = int(part)
        return m
