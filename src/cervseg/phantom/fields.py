"""Smooth random fields: tissue texture, intermuscular fat planes, observer wobble, noise.

Why one helper: several stages need Gaussian random fields of a given correlation length
on a sub-box of the grid. Drawing them on a coarse lattice and interpolating keeps the cost
proportional to the number of coarse points, not of voxels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage


def smooth_field(
    rng: np.random.Generator,
    shape: Sequence[int],
    spacing_mm: Sequence[float],
    corr_mm: float | Sequence[float],
) -> np.ndarray:
    """Unit-variance Gaussian field (float32, ``shape``) with correlation length ``corr_mm``.

    Drawn on a lattice of about corr/2 spacing, smoothed, then linearly interpolated.
    """
    shape = tuple(int(s) for s in shape)
    corr = np.broadcast_to(np.asarray(corr_mm, dtype=float), (3,))
    spacing = np.asarray(spacing_mm, dtype=float)
    step = np.maximum(corr / 2.0, spacing)  # coarse lattice spacing per axis (mm)
    coarse = tuple(int(np.ceil(n * sp / st)) + 3 for n, sp, st in zip(shape, spacing, step))
    g = rng.standard_normal(coarse).astype(np.float32)
    sigma = np.where(step > spacing, 1.0, corr / (2.0 * spacing))  # in coarse voxels
    g = ndimage.gaussian_filter(g, sigma=sigma, mode="wrap")
    g /= max(float(g.std()), 1e-6)
    # interpolate: voxel i of the box sits at coarse coordinate 1 + i * spacing / step
    coords = [1.0 + np.arange(n) * sp / st for n, sp, st in zip(shape, spacing, step)]
    return trilinear(g, coords)


def trilinear(g: np.ndarray, coords: Sequence[np.ndarray]) -> np.ndarray:
    """Separable linear interpolation of a 3D array at the outer product of 1D coordinates."""
    out = g
    for axis, c in enumerate(coords):
        i0 = np.floor(c).astype(int)
        i0 = np.clip(i0, 0, out.shape[axis] - 2)
        w = (c - i0).astype(np.float32)
        a = np.take(out, i0, axis=axis)
        b = np.take(out, i0 + 1, axis=axis)
        shape = [1, 1, 1]
        shape[axis] = len(c)
        w = w.reshape(shape)
        out = a + (b - a) * w
    return out.astype(np.float32, copy=False)
