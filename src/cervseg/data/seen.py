"""What CTs a model saw in training, and where a new CT lies outside that.

Why: a network trained on one kind of scan fails quietly on another (a 0.6 mm paediatric
reconstruction, 1 mm slices, a 350 mm field of view cutting the hips, a hip prosthesis).
Training records the range of each fact over its patients in the checkpoint
(``training_summary.seen``); ``segment`` measures the same facts on the CT it is given and
warns in one line when one lies outside. The same function measures both sides.

``seen`` (all keys optional; a check runs only for the facts recorded)::

    patients          number of training patients described
    pixel_mm          [min, max] in-plane pixel size
    slice_mm          [min, max] slice spacing
    field_of_view_mm  [min, max] reconstructed width (columns x pixel size)
    body_width_mm     [min, max] lateral extent of the body outline
    hu                [min of the 0.5th percentile, max of the 99.5th] of body voxels
    metal_hu          the HU above which a voxel counts as metal
    metal_patients    training patients with at least METAL_MIN_VOXELS metal voxels
    structure_ml      {structure: [min, max]} volume of each structure
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from cervseg.data.grid import BodyBox, body_bounding_box
from cervseg.volume import Geometry

if TYPE_CHECKING:
    from cervseg.data.cache import Cache

METAL_HU = 2500.0  # above cortical bone (< ~2000 HU); titanium and steel reach the scale's top
METAL_MIN_VOXELS = 50  # fewer is noise or a calcification, not an implant
SIZE_MARGIN = 0.10  # pixel, slice, field of view and body width: 10 % beyond the range is tolerated
HU_MARGIN = 200.0
HU_EVERY = 4  # HU percentiles on every 4th slice: the same figure, a quarter of the work


def scan_facts(hu: np.ndarray, geometry: Geometry, body: BodyBox | None, threshold_hu: float) -> dict[str, float]:
    """The facts of one CT (z, y, x) that ``seen`` ranges are made of."""
    arr = np.asarray(hu)
    slice_mm, row_mm, col_mm = (float(s) for s in geometry.spacing)
    facts: dict[str, float] = {
        "pixel_mm": max(row_mm, col_mm),
        "slice_mm": slice_mm,
        "field_of_view_mm": geometry.shape[2] * col_mm,
        "metal_voxels": float(np.count_nonzero(arr >= METAL_HU)),
    }
    if body is not None:
        facts["body_width_mm"] = (body.xmax - body.xmin + 1) * col_mm
    sample = np.asarray(arr[::HU_EVERY], dtype=np.float32)
    inside = sample[sample > threshold_hu]
    if inside.size:
        lo, hi = np.percentile(inside, [0.5, 99.5])
        facts["hu_low"], facts["hu_high"] = float(lo), float(hi)
    return facts


def _span(values: Iterable[float]) -> list[float] | None:
    v = [float(x) for x in values]
    return [round(min(v), 4), round(max(v), 4)] if v else None


def summarise(facts: Sequence[Mapping[str, float]], structure_ml: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    """The ``seen`` record of a training set: per-patient facts -> ranges."""
    seen: dict[str, Any] = {"patients": len(facts)}
    for key in ("pixel_mm", "slice_mm", "field_of_view_mm", "body_width_mm"):
        span = _span(f[key] for f in facts if key in f)
        if span:
            seen[key] = span
    lows = [f["hu_low"] for f in facts if "hu_low" in f]
    highs = [f["hu_high"] for f in facts if "hu_high" in f]
    if lows:
        seen["hu"] = [round(min(lows), 1), round(max(highs), 1)]
    seen["metal_hu"] = METAL_HU
    seen["metal_patients"] = sum(1 for f in facts if f.get("metal_voxels", 0) >= METAL_MIN_VOXELS)
    seen["structure_ml"] = {name: _span(v) for name, v in structure_ml.items() if len(v)}
    return seen


def _outside(value: float, span: Sequence[float], margin: float) -> bool:
    return value < span[0] * (1 - margin) or value > span[1] * (1 + margin)


def outside_seen(facts: Mapping[str, float], seen: Mapping[str, Any]) -> list[str]:
    """Plain-language notes on each fact of a CT outside what the model saw (empty: inside)."""
    notes = []
    labels = {"pixel_mm": "pixel size", "slice_mm": "slice spacing", "field_of_view_mm": "field of view",
              "body_width_mm": "body width"}
    for key, label in labels.items():
        span = seen.get(key)
        if span and key in facts and _outside(facts[key], span, SIZE_MARGIN):
            notes.append(f"{label} {facts[key]:.3g} mm (model saw {span[0]:.3g}-{span[1]:.3g} mm)")
    hu = seen.get("hu")
    if hu and "hu_low" in facts and (facts["hu_low"] < hu[0] - HU_MARGIN or facts["hu_high"] > hu[1] + HU_MARGIN):
        notes.append(f"HU range {facts['hu_low']:.0f} to {facts['hu_high']:.0f} (model saw {hu[0]:.0f} to {hu[1]:.0f})")
    if (seen.get("metal_patients") == 0 and facts.get("metal_voxels", 0) >= METAL_MIN_VOXELS):
        notes.append(f"metal ({facts['metal_voxels']:.0f} voxels >= {seen.get('metal_hu', METAL_HU):.0f} HU; "
                     "the model saw none)")
    return notes


def describe_cache(patients: Sequence[tuple["Cache", str]], structures: Sequence[str],
                   threshold_hu: float) -> dict[str, Any]:
    """The ``seen`` record of some cached (cache, patient) pairs (the training split), for the
    checkpoint; a structure's volumes only from the patients it was contoured on and has.

    Why "and has": an absent structure (a man's CTV_UV, trained as an empty mask) says nothing
    of its size, and a 0 ml minimum would switch off ``segment``'s check for a structure the
    scan does not reach (``drop_unreached`` compares with the smallest volume seen).
    """
    facts = []
    volumes: dict[str, list[float]] = {s: [] for s in structures}
    for cache, pid in patients:
        geometry = cache.geometry(pid)
        image = cache.image(pid)
        facts.append(scan_facts(image, geometry, body_bounding_box(image, threshold_hu), threshold_hu))
        voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
        for s in structures:
            voxels = cache.entry(pid)["voxels"][s] if s in cache.labelled(pid) else 0
            if voxels:
                volumes[s].append(voxels * voxel_ml)
    return summarise(facts, volumes)
