"""Per-slice, per-structure QA scores: where an automatic contour is most likely wrong.

Why: an oncologist reviewing 1,000 slices should see the doubtful ones first (paper 001
names the lack of this as a limitation). A score is computed for every slice on which a
structure has an automatic contour, from two kinds of evidence:

Model signals (from the network's own probability map of the structure's channel, within
``NEAR_MM`` of the contour):
- ``soft_disagreement``: 1 - soft Dice between the final mask and the probabilities; high
  when the network was unsure where the boundary lies, or post-processing removed much.
- ``uncertain_width_mm``: summed binary entropy (bits) divided by the contour length: the
  width of the band where the network hesitates (a crisp contour has about one pixel).
- ``stray_mm``: how far from the contour the network still gave the structure >= 25 %.

Anatomy checks (catalogue and geometry, no model needed):
- ``area_jump``: |log| of the slice's area over the mean area of its neighbours.
- ``z_gap``: the slice borders a gap inside the structure's z extent.
- ``wrong_side``: a femoral head whose centroid lies on the other side of the body midline
  by patient x (+x = patient left).
- ``outside_body``: the fraction of the contour outside the body (air).
- ``volume_out_of_range``: the structure's volume is outside the catalogue's plausible range.

- ``extent_end``: 1 / (1 + slices to the nearest end of the structure's z extent): the
  first and last slices of an organ are where contours most often go wrong.
- ``log_area_mm2``: small contours, where a pixel of error costs most Dice.
- ``outside_view``: the contour touches the edge of what the model saw (its crop), of the
  image or the first/last slice: part of the structure may lie beyond and be cut off.

The score is a logistic combination of these values (WEIGHTS), in [0, 1], higher = more
likely wrong; the weights were fitted on phantoms not used to measure it (docs/review.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np
from scipy import ndimage

from cervseg.structures import Catalogue
from cervseg.volume import LabelMap, Volume

NEAR_MM = 15.0
STRAY_PROBABILITY = 0.25
BODY_HU = -500.0

# Logistic weights of the score, fitted on tuning phantoms of a cohort seed that neither the
# built-in model's training nor the held-out measurement uses (benchmarks/qa_auc.py --fit,
# docs/review.md). Features are the SliceQA fields; log_* are natural logs.
# Fitted (benchmarks/qa_auc.py --fit) on phantoms PH9000-001..003; features whose weight came
# out negative (collinear with another) were dropped. wrong_side, outside_body and
# volume_out_of_range never occurred there and carry fixed weights: each alone flags a slice.
BIAS = -1.438
WEIGHTS: dict[str, float] = {
    "uncertain_width_mm": 2.445, "stray_mm": 0.08023, "area_jump": 1.825, "z_gap": 1.105,
    "log_area_mm2": -0.4468, "outside_view": 3.617,
    "wrong_side": 6.0, "outside_body": 10.0, "volume_out_of_range": 1.0,
}


@dataclass(frozen=True)
class SliceQA:
    """The QA score of one structure on one slice, with the raw values behind it."""

    slice_index: int
    slice_z_mm: float
    structure: str
    score: float
    soft_disagreement: float
    uncertain_width_mm: float
    stray_mm: float
    area_jump: float
    z_gap: float
    extent_end: float
    log_area_mm2: float
    wrong_side: float
    outside_body: float
    outside_view: float
    volume_out_of_range: float


QA_COLUMNS = [f.name for f in fields(SliceQA)]
FEATURES = QA_COLUMNS[4:]


def combine(raw: Mapping[str, float]) -> float:
    """The logistic score in [0, 1] (a missing model signal, NaN, counts as 0)."""
    z = BIAS
    for name, weight in WEIGHTS.items():
        value = float(raw.get(name, 0.0))
        z += weight * (value if math.isfinite(value) else 0.0)
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def probability_channel(structure: str, channels: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The channel a structure came from (the heads share ``Femur_Head`` when merged)."""
    if structure in channels:
        return channels[structure]
    if structure.startswith("Femur_Head_") and "Femur_Head" in channels:
        return channels["Femur_Head"]
    return None


def _body_mask(plane: np.ndarray) -> np.ndarray:
    body = plane > BODY_HU
    return ndimage.binary_fill_holes(body)


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return -(q * np.log2(q) + (1 - q) * np.log2(1 - q))


def _model_signals(mask: np.ndarray, prob: np.ndarray, pixel_mm: float, near_px: int) -> tuple[float, float, float, bool]:
    """(soft disagreement, uncertain band width mm, stray distance mm, touches the unseen) on one slice.

    ``prob``: uint8 1 + 254 p, 0 where the model did not look (Predictor.predict).
    """
    rows, cols = np.nonzero(mask)
    r0, r1 = max(0, rows.min() - near_px), min(mask.shape[0], rows.max() + near_px + 1)
    c0, c1 = max(0, cols.min() - near_px), min(mask.shape[1], cols.max() + near_px + 1)
    m = mask[r0:r1, c0:c1]
    raw = prob[r0:r1, c0:c1]
    p = np.where(raw > 0, (raw.astype(np.float32) - 1.0) / 254.0, 0.0)
    outside_mm = ndimage.distance_transform_edt(~m) * pixel_mm
    near = outside_mm <= near_px * pixel_mm
    p = np.where(near, p, 0.0)
    soft = 1.0 - 2.0 * float((p * m).sum()) / max(1e-6, float(m.sum() + p.sum()))
    edge = m & ~ndimage.binary_erosion(m)
    width_mm = float(_entropy_bits(p[near]).sum()) / max(1, int(edge.sum())) * pixel_mm
    stray = (p >= STRAY_PROBABILITY) & ~m
    stray_mm = float(outside_mm[stray].max()) if stray.any() else 0.0
    touches_unseen = bool((raw[outside_mm <= 1.5 * pixel_mm] == 0).any())
    return soft, width_mm, stray_mm, touches_unseen


def _gap_neighbours(present: np.ndarray) -> np.ndarray:
    """Slices with the structure that border a run of empty slices inside its z extent."""
    flag = np.zeros(present.shape, dtype=bool)
    idx = np.flatnonzero(present)
    if len(idx) < 2:
        return flag
    for a, b in zip(idx[:-1], idx[1:]):
        if b - a > 1:
            flag[a] = flag[b] = True
    return flag


def slice_qa(
    volume: Volume,
    labels: LabelMap,
    probabilities: Mapping[str, np.ndarray] | None,
    catalogue: Catalogue,
    midline_x: float | None = None,
) -> list[SliceQA]:
    """A SliceQA for every (slice, structure) with an automatic contour, in slice order.

    ``probabilities``: the model's channel probabilities as uint8 on the CT grid
    (Predictor.predict(probabilities=...)); without them the model signals are NaN and
    only the anatomy checks count.
    """
    geometry = volume.geometry
    pixel_mm = float(np.sqrt(geometry.spacing[1] * geometry.spacing[2]))
    near_px = max(1, int(round(NEAR_MM / pixel_mm)))
    positions = geometry.slice_normal_coordinates()
    voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
    bodies: dict[int, np.ndarray] = {}
    rows: list[SliceQA] = []
    for name in labels:
        mask = labels[name]
        areas = mask.sum(axis=(1, 2))
        present = areas > 0
        if not present.any():
            continue
        prob = probability_channel(name, probabilities) if probabilities else None
        gaps = _gap_neighbours(present)
        first, last = int(np.flatnonzero(present)[0]), int(np.flatnonzero(present)[-1])
        touches_ends = bool(present[0] or present[-1])
        plausible = catalogue.structures[name].plausible_ml if name in catalogue.structures else None
        volume_ml = float(areas.sum()) * voxel_ml
        out_of_range = float(
            plausible is not None and not touches_ends and not plausible[0] <= volume_ml <= plausible[1]
        )
        for z in np.flatnonzero(present):
            m = mask[z]
            neighbours = [areas[k] for k in (z - 1, z + 1) if 0 <= k < len(areas)]
            mean_nb = float(np.mean(neighbours)) if neighbours else 0.0
            jump = abs(math.log(max(areas[z], 1) / max(mean_nb, 1.0))) if neighbours else 0.0
            wrong = 0.0
            if midline_x is not None and name in ("Femur_Head_L", "Femur_Head_R"):
                rr, cc = np.nonzero(m)
                x = float(geometry.index_to_lps(np.array([[z, rr.mean(), cc.mean()]]))[0, 0])
                wrong = float((x < midline_x) if name == "Femur_Head_L" else (x > midline_x))
            if z not in bodies:
                bodies[z] = _body_mask(volume.array[z])
            outside = float((m & ~bodies[z]).sum()) / float(areas[z])
            at_edge = bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()
                           or z in (0, len(areas) - 1))
            view_edge = float(at_edge)
            if prob is not None:
                soft, width, stray, touches_unseen = _model_signals(m, prob[z], pixel_mm, near_px)
                if touches_unseen:
                    view_edge = 1.0  # the contour runs along the edge of what the model saw
            else:
                soft = width = stray = math.nan
            end_distance = min(z - first, last - z)
            raw = {"soft_disagreement": soft, "uncertain_width_mm": width, "stray_mm": stray,
                   "area_jump": jump, "z_gap": float(gaps[z]), "extent_end": 1.0 / (1.0 + end_distance),
                   "log_area_mm2": math.log(float(areas[z]) * pixel_mm ** 2), "wrong_side": wrong,
                   "outside_body": outside, "outside_view": view_edge, "volume_out_of_range": out_of_range}
            rows.append(SliceQA(int(z), round(float(positions[z]), 2), name, round(combine(raw), 4),
                                **{k: round(float(v), 4) for k, v in raw.items()}))
    rows.sort(key=lambda r: (r.slice_index, r.structure))
    return rows
