"""Multilabel probabilities -> masks (and QA probabilities) on the CT grid, each channel
resampled only where it is not nearly 0.

Why: a millimetre plan resamples the network's output back to the CT's own pixels (four
times the network's pixels on a 1 mm CT under a 2 mm plan), and most of each channel is
nearly 0 (a bladder covers a few per cent of a slice). Linear interpolation is a convex
combination of neighbouring network pixels, so a CT pixel whose neighbours all lie below a
level lies below it too: outside the box of network pixels at or above the level (dilated
by one pixel, the interpolation's reach) the mask is empty and the kept probability is
0 — what resampling everything gives. Resampling the box alone gives the same output for
a fraction of the work.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from cervseg.data.grid import SliceGrid

QA_LEVEL = 0.5 / 254  # below it the uint8 QA map's 1 + round(254 p) is 1, i.e. p = 0


def probability_bytes(p: np.ndarray) -> np.ndarray:
    """Probabilities -> uint8 1 + round(254 p) (0 is kept for pixels the model never saw)."""
    scaled = np.clip(p, 0.0, 1.0)
    scaled *= 254
    scaled += 1
    return scaled.round(out=scaled).astype(np.uint8)


def active_box(p: np.ndarray, level: float) -> tuple[slice, slice] | None:
    """Network rows and columns where any slice of ``p`` (n, H, W) reaches ``level``,
    widened by one pixel on each side; None where none does."""
    active = (p >= level).any(axis=0)
    rows = np.flatnonzero(active.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(active.any(axis=0))
    height, width = active.shape
    return (slice(max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, height)),
            slice(max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, width)))


def sub_grid(grid: SliceGrid, rows: slice, cols: slice) -> SliceGrid:
    """The part of ``grid`` made of its network rows ``rows`` and columns ``cols``."""
    (y0, x0), (sy, sx) = grid.origin, grid.step
    return SliceGrid(grid.source_shape, (y0 + sy * rows.start, x0 + sx * cols.start), grid.step,
                     (rows.stop - rows.start, cols.stop - cols.start))


def decide_channels(
    probs: np.ndarray, grid: SliceGrid, threshold: float, keep: bool
) -> Iterator[tuple[int, tuple[slice, slice], np.ndarray, np.ndarray | None]]:
    """For each channel of ``probs`` (n, C, H, W) with anything above the levels: its CT
    window (rows, cols), the mask there (probability > threshold after resampling) and,
    with ``keep``, the uint8 probabilities there. Elsewhere in ``grid.covered_window()``
    the mask is empty and the kept probability is 1 (p = 0)."""
    level = min(threshold, QA_LEVEL) if keep else threshold
    for c in range(probs.shape[1]):
        p = probs[:, c]
        box = active_box(p, level)
        if box is None:
            continue
        part = sub_grid(grid, *box)
        window = part.covered_window()
        values = part.window_of(p[:, box[0], box[1]])
        yield c, window, values > threshold, probability_bytes(values) if keep else None
