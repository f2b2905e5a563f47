"""Contour overlays of the worst and the median slice of each structure (paper 000 Fig. 5).

Reference in red, prediction in green, on the CT (soft-tissue window W400/L40), shown in
the radiological convention whatever the scan orientation: patient right on the image
left, anterior up (decided from the geometry's LPS axes, never from array order).

Which slices: per patient, the worst slice (lowest Dice among slices with a reference,
missed slices counting as 0; ties -> the larger reference area) and the median slice
(the paired slice at the lower median of Dice) are cut out while the case is in memory.
Across patients, the report shows the worst of the worst slices and, of the per-patient
median slices, the one whose Dice is closest to the median of all paired slices. Only
these small 2D patches are kept, so memory does not grow with the CT size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from cervseg.metrics.slicewise import FALSE_POSITIVE, MISSED, PAIRED, SliceResult
from cervseg.report.plots import to_png
from cervseg.volume import Geometry, Volume

WINDOW = (-160.0, 240.0)  # W400 / L40
REFERENCE_COLOUR = "#ff2020"
PREDICTION_COLOUR = "#20e020"
MARGIN_MM = 25.0
MIN_FIELD_MM = 80.0


@dataclass(frozen=True)
class OverlayPatch:
    """A display-oriented 2D cut-out of one slice: CT, reference and prediction."""

    patient: str
    structure: str
    which: str  # "worst" or "median"
    slice: SliceResult
    image: np.ndarray | None  # HU, or None when the case has no CT
    reference: np.ndarray
    prediction: np.ndarray
    pixel_mm: tuple[float, float]  # (row, column) spacing
    model: str = ""


def worst_slice(slices: Sequence[SliceResult]) -> SliceResult | None:
    """Lowest Dice among slices with a reference (ties: larger reference); else the largest false positive."""
    with_ref = [s for s in slices if s.status in (PAIRED, MISSED)]
    if with_ref:
        return min(with_ref, key=lambda s: (s.dice, -s.reference_pixels))
    fps = [s for s in slices if s.status == FALSE_POSITIVE]
    return max(fps, key=lambda s: s.prediction_pixels) if fps else None


def median_slice(slices: Sequence[SliceResult]) -> SliceResult | None:
    """The paired slice at the lower median of Dice (an actual slice, not an interpolation)."""
    paired = sorted((s for s in slices if s.status == PAIRED), key=lambda s: (s.dice, s.slice_index))
    return paired[(len(paired) - 1) // 2] if paired else None


def display_flips(geometry: Geometry) -> tuple[bool, bool]:
    """(flip rows, flip columns) that put anterior up and patient right on the image left."""
    axes = geometry.axes_matrix
    flip_rows = axes[1][1] < 0  # rows should run towards posterior (+y)
    flip_cols = axes[2][0] < 0  # columns should run towards patient left (+x)
    return bool(flip_rows), bool(flip_cols)


def extract_patch(
    patient: str,
    structure: str,
    which: str,
    s: SliceResult,
    reference: np.ndarray,
    prediction: np.ndarray,
    geometry: Geometry,
    image: Volume | None,
    model: str = "",
) -> OverlayPatch:
    """Cut the slice around the union of both contours (plus a margin), display-oriented."""
    k = s.slice_index
    ref2, pred2 = reference[k], prediction[k]
    dy, dx = geometry.spacing[1], geometry.spacing[2]
    union = ref2 | pred2
    rows, cols = np.nonzero(union)
    centre = (rows.mean(), cols.mean()) if rows.size else (ref2.shape[0] / 2, ref2.shape[1] / 2)
    half_y = max((np.ptp(rows) * dy if rows.size else 0) / 2 + MARGIN_MM, MIN_FIELD_MM / 2) / dy
    half_x = max((np.ptp(cols) * dx if cols.size else 0) / 2 + MARGIN_MM, MIN_FIELD_MM / 2) / dx
    r0, r1 = max(int(centre[0] - half_y), 0), min(int(math.ceil(centre[0] + half_y)) + 1, ref2.shape[0])
    c0, c1 = max(int(centre[1] - half_x), 0), min(int(math.ceil(centre[1] + half_x)) + 1, ref2.shape[1])
    box = (slice(r0, r1), slice(c0, c1))
    ct = None if image is None else np.asarray(image.array[k][box], dtype=np.float32)
    parts = [ct, ref2[box].copy(), pred2[box].copy()]
    flip_rows, flip_cols = display_flips(geometry)
    for i, part in enumerate(parts):
        if part is None:
            continue
        if flip_rows:
            part = part[::-1]
        if flip_cols:
            part = part[:, ::-1]
        parts[i] = np.ascontiguousarray(part)
    return OverlayPatch(patient, structure, which, s, parts[0], parts[1], parts[2], (dy, dx), model)


def choose(patches: Sequence[OverlayPatch], pooled_paired_dice: Sequence[float]) -> list[OverlayPatch]:
    """Of one structure's candidates: the overall worst and the median closest to the pooled median."""
    chosen = []
    worst = [p for p in patches if p.which == "worst"]
    if worst:
        chosen.append(min(worst, key=lambda p: (p.slice.dice, -p.slice.reference_pixels)))
    medians = [p for p in patches if p.which == "median"]
    if medians and len(pooled_paired_dice):
        target = float(np.median(pooled_paired_dice))
        chosen.append(min(medians, key=lambda p: (abs(p.slice.dice - target), p.patient, p.slice.slice_index)))
    return chosen


def _caption(p: OverlayPatch) -> str:
    s = p.slice
    where = f"{p.patient}, slice {s.slice_index} (z {s.slice_z_mm:.1f} mm)"
    if s.status == MISSED:
        score = "missed: no prediction on this slice"
    elif s.status == FALSE_POSITIVE:
        score = "false positive: no reference on this slice"
    else:
        score = f"DSC {s.dice:.3f}   HD95 {s.hd95_mm:.1f} mm"
    model = f" [{p.model}]" if p.model else ""
    return f"{p.structure}: {p.which} slice{model}\n{where}\n{score}"


def render(patches: Sequence[OverlayPatch], columns: int = 4) -> bytes:
    """A grid of overlays as one PNG."""
    n = max(len(patches), 1)
    columns = min(columns, n)
    rows = int(math.ceil(n / columns))
    fig = Figure(figsize=(3.3 * columns, 3.9 * rows), layout="constrained")
    for i, p in enumerate(patches):
        ax = fig.add_subplot(rows, columns, i + 1)
        background = p.image if p.image is not None else np.zeros(p.reference.shape, np.float32) + WINDOW[0]
        ax.imshow(background, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], aspect=p.pixel_mm[0] / p.pixel_mm[1],
                  interpolation="nearest")
        for mask, colour in ((p.reference, REFERENCE_COLOUR), (p.prediction, PREDICTION_COLOUR)):
            if mask.any():
                ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.2)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.01, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=8, va="center")
        ax.text(0.99, 0.5, "L", transform=ax.transAxes, color="yellow", fontsize=8, va="center", ha="right")
        ax.set_title(_caption(p), fontsize=7.5)
    if patches:
        fig.legend(
            handles=[
                fig.axes[0].plot([], [], color=REFERENCE_COLOUR, label="reference")[0],
                fig.axes[0].plot([], [], color=PREDICTION_COLOUR, label="prediction")[0],
            ],
            loc="outside lower center", ncol=2, fontsize=8, frameon=False,
        )
    return to_png(fig)
