"""Overlap and volume measures between a reference mask and a predicted mask.

Why hand-written: Dice is a two-line count; calling ``monai.metrics.compute_dice`` on
thousands of 2D slices would cost a tensor conversion each time for the same number.
The tests check these against ``monai.metrics.compute_dice`` and ``plastimatch dice``.

Conventions (documented in docs/evaluation.md):
- Dice = 2|R∩P| / (|R| + |P|); Jaccard = |R∩P| / |R∪P|.
- Both masks empty -> NaN (the structure is absent from both: nothing to score).
  One mask empty -> 0 (a complete miss or a pure false positive).
- Volume difference (%) = 100 (|P| - |R|) / |R|, NaN when the reference is empty.
"""

from __future__ import annotations

import math

import numpy as np


def _counts(reference: np.ndarray, prediction: np.ndarray) -> tuple[int, int, int]:
    ref = np.asarray(reference, dtype=bool)
    pred = np.asarray(prediction, dtype=bool)
    if ref.shape != pred.shape:
        raise ValueError(f"reference shape {ref.shape} differs from prediction shape {pred.shape}")
    return int(np.count_nonzero(ref)), int(np.count_nonzero(pred)), int(np.count_nonzero(ref & pred))


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Dice similarity coefficient; NaN when both masks are empty."""
    n_ref, n_pred, n_both = _counts(reference, prediction)
    if n_ref + n_pred == 0:
        return math.nan
    return 2.0 * n_both / (n_ref + n_pred)


def jaccard(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Jaccard index (intersection over union); NaN when both masks are empty."""
    n_ref, n_pred, n_both = _counts(reference, prediction)
    union = n_ref + n_pred - n_both
    if union == 0:
        return math.nan
    return n_both / union


def volume_ml(mask: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Volume of a mask in millilitres given the voxel spacing in mm."""
    return float(np.count_nonzero(mask)) * float(np.prod(spacing)) / 1000.0


def volume_difference_percent(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Signed relative volume difference 100 (|P| - |R|) / |R|; NaN for an empty reference."""
    n_ref, n_pred, _ = _counts(reference, prediction)
    if n_ref == 0:
        return math.nan
    return 100.0 * (n_pred - n_ref) / n_ref
