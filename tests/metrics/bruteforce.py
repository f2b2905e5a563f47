"""Brute-force reference implementations for the metric tests (small shapes only).

Independent of MONAI and scipy.ndimage: boundary voxels by an explicit neighbour loop,
distances by scipy.spatial.distance.cdist over all boundary-point pairs.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial.distance import cdist


def boundary_points(mask: np.ndarray) -> np.ndarray:
    """(N, ndim) indices of mask voxels with a face neighbour outside the mask or the array."""
    points = []
    for idx in zip(*np.nonzero(mask)):
        for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
            nb = list(idx)
            nb[axis] += step
            if not (0 <= nb[axis] < mask.shape[axis]) or not mask[tuple(nb)]:
                points.append(idx)
                break
    return np.asarray(points, dtype=float).reshape(-1, mask.ndim)


def directed(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    """Distance (mm) from every boundary voxel of a to the nearest boundary voxel of b."""
    pa = boundary_points(a) * np.asarray(spacing, float)
    pb = boundary_points(b) * np.asarray(spacing, float)
    return cdist(pa, pb).min(axis=1)


def pooled(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    return np.concatenate([directed(a, b, spacing), directed(b, a, spacing)])


def dice(a: np.ndarray, b: np.ndarray) -> float:
    inter = sum(1 for v in zip(a.ravel(), b.ravel()) if v[0] and v[1])
    return 2.0 * inter / (int(a.sum()) + int(b.sum()))


def blob(shape, seed: int, threshold: float = 0.55, smooth: float = 2.0) -> np.ndarray:
    """A random smooth blob (boolean mask) for property tests."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.random(shape), smooth)
    field = (field - field.min()) / (np.ptp(field) + 1e-12)
    return field > threshold
