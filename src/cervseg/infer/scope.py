"""Is a CT within what the model saw, and does the scan reach each structure?

Why: a contour the model invents is worse than none. ``segment`` warns in one line when a
CT lies outside the training CTs recorded in the checkpoint (``data.seen``), and writes no
ROI for a structure the scan does not reach — nothing found (the RTSTRUCT writer leaves an
empty structure out, with a warning), or only a small remnant at the scan's first or last slice (less than REACH_FRACTION of the smallest one seen in
training; e.g. a few "femoral head" voxels on the last slice of a scan that stops above
the hips) — saying so in a warning instead.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np

from cervseg.data.seen import outside_seen, scan_facts
from cervseg.infer.predictor import Prediction
from cervseg.volume import LabelMap, Volume

log = logging.getLogger(__name__)

REACH_FRACTION = 0.25  # a structure cut by the scan's end keeps its ROI if at least this share is there


def seen_by(metadata: Any) -> dict[str, Any]:
    """The checkpoint's record of its training CTs ({} for checkpoints made before it was kept)."""
    return dict((metadata.training_summary or {}).get("seen") or {})


def warn_if_outside_seen(volume: Volume, prediction: Prediction, seen: Mapping[str, Any],
                         threshold_hu: float, model: str) -> list[str]:
    """One warning line naming every fact of this CT outside what the model saw; returns the notes."""
    if not seen:
        log.info("model %s does not record the CTs it was trained on: pixel size, slice spacing, field of "
                 "view, HU range and metal are not checked", model)
        return []
    notes = outside_seen(scan_facts(volume.array, volume.geometry, prediction.body, threshold_hu), seen)
    if notes:
        log.warning("this CT lies outside what model %s saw in training: %s; review every contour",
                    model, "; ".join(notes))
    return notes


def _end_touched(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any())


def drop_unreached(labels: LabelMap, seen: Mapping[str, Any]) -> LabelMap:
    """``labels`` with the structures the scan does not reach emptied, each named in a warning.

    An empty mask is what the RTSTRUCT writer leaves out (with its own warning); a structure
    the model found nothing of is therefore left as it is.
    """
    smallest = {name: span[0] for name, span in (seen.get("structure_ml") or {}).items() if span}
    voxel_ml = float(np.prod(labels.geometry.spacing)) / 1000.0
    out = LabelMap(labels.geometry)
    for name, mask in labels.items():
        ml = float(np.count_nonzero(mask)) * voxel_ml
        if ml > 0 and name in smallest and _end_touched(mask) and ml < REACH_FRACTION * smallest[name]:
            log.warning("%s: only %.1f ml, at the end of the scan (the model saw at least %.0f ml): "
                        "taken as a structure the scan does not reach; no ROI written", name, ml, smallest[name])
            mask = np.zeros_like(mask)
        out[name] = mask
    return out
