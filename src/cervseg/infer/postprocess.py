"""Clean predicted masks per structure: largest part, small islands, holes, left/right.

Why: a 2D network predicts slice by slice and leaves specks on far slices and pin-holes
inside solid organs; an oncologist would delete them by hand. Each step is set per
structure in the template (``postprocess:``), because what is noise for the bladder is
anatomy for the pelvic bones or the bilateral nodal CTV.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
from scipy import ndimage

from cervseg.errors import GeometryError, StructureError
from cervseg.models.output_modes import FEMUR_LEFT, FEMUR_RIGHT, split_femoral_heads
from cervseg.volume import Geometry, LabelMap

log = logging.getLogger(__name__)

_FULL_3D = ndimage.generate_binary_structure(3, 3)  # 26-connectivity: diagonal slices join


@dataclass(frozen=True)
class PostprocessRule:
    """What to do to one structure's predicted mask."""

    keep_largest: bool = False  # keep only the largest 3D connected component
    min_island_ml: float = 0.0  # drop 3D components smaller than this volume
    # drop 3D components smaller than this share of the largest: a structure of a few large
    # parts (the pelvic bones: two hips and the sacrum) loses what lies elsewhere
    min_fraction_of_largest: float = 0.0
    fill_holes: bool = False  # fill enclosed holes slice by slice
    # drop what lies more than ``not_below_margin_mm`` below (patient z) the lowest voxel of
    # these structures: the pelvic bones end at the ischial tuberosities, where the RTOG
    # femoral heads end too, so bone-like voxels far below them are the femoral shafts
    not_below: tuple[str, ...] = ()
    not_below_margin_mm: float = 0.0

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, object]) -> "PostprocessRule":
        unknown = set(settings) - set(cls.__dataclass_fields__)
        if unknown:
            raise StructureError(f"postprocess of '{name}': unknown setting(s) {sorted(unknown)}")
        values = dict(settings)
        if "not_below" in values:
            below = values["not_below"]
            if isinstance(below, str) or not all(isinstance(b, str) for b in below):  # type: ignore[union-attr]
                raise StructureError(f"postprocess of '{name}': not_below must be a list of structure names")
            values["not_below"] = tuple(below)  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def nonzero_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Index slices of the smallest box holding every True voxel, None for an empty mask.

    Why: an organ fills a few percent of a 512x512 CT; labelling or hole-filling only its
    box gives the same answer several times faster (every voxel outside is background).
    """
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, count = ndimage.label(mask, structure=_FULL_3D)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    return labels, sizes


def _keep_components(mask: np.ndarray, choose: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Keep the 26-connected components whose label ``choose(sizes)`` marks True, in the mask's box."""
    out = np.zeros(mask.shape, dtype=bool)
    box = nonzero_box(mask)
    if box is None:
        return out
    labels, sizes = _components(mask[box])
    keep = choose(sizes)
    keep[0] = False
    out[box] = keep[labels]
    return out


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component (empty stays empty)."""
    return _keep_components(mask, lambda sizes: np.arange(sizes.size) == int(np.argmax(sizes)))


def drop_small_islands(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """Remove 26-connected components with fewer than min_voxels voxels."""
    return _keep_components(mask, lambda sizes: sizes >= min_voxels)


def drop_small_parts(mask: np.ndarray, fraction: float) -> np.ndarray:
    """Remove 26-connected components smaller than ``fraction`` of the largest one."""
    return _keep_components(mask, lambda sizes: sizes >= fraction * sizes.max())


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed holes on each axial slice (the way contours are drawn and stored).

    Filled inside each slice's box: background outside the box touches the image edge, so
    a hole is enclosed in the box exactly when it is enclosed in the whole slice.
    """
    out = np.zeros(mask.shape, dtype=bool)
    for z in range(mask.shape[0]):
        box = nonzero_box(mask[z])
        if box is not None:
            out[z][box] = ndimage.binary_fill_holes(mask[z][box])
    return out


def apply_rule(mask: np.ndarray, rule: PostprocessRule, geometry: Geometry) -> np.ndarray:
    """Apply one structure's rule; the order (islands, small parts, largest, holes) is fixed."""
    out = np.asarray(mask, dtype=bool)
    if rule.min_island_ml > 0:
        voxel_ml = float(np.prod(geometry.spacing)) / 1000.0
        out = drop_small_islands(out, max(1, int(np.ceil(rule.min_island_ml / voxel_ml))))
    if rule.min_fraction_of_largest > 0:
        out = drop_small_parts(out, rule.min_fraction_of_largest)
    if rule.keep_largest:
        out = keep_largest_component(out)
    if rule.fill_holes:
        out = fill_holes_per_slice(out)
    return out


def superior_axis(geometry: Geometry) -> int:
    """The array axis that runs along patient z (head-foot); only axis-aligned grids have one."""
    along_z = np.abs(geometry.axes_matrix[:, 2])
    axis = int(np.argmax(along_z))
    if along_z[axis] < 0.999:
        raise GeometryError(f"grid is not axis-aligned, no array axis runs head-foot: axes {geometry.axes}")
    return axis


def drop_below(mask: np.ndarray, floor: np.ndarray, margin_mm: float, geometry: Geometry) -> np.ndarray:
    """``mask`` without its voxels more than ``margin_mm`` below the lowest voxel of ``floor``.

    "Below" is patient z (LPS +z is superior whatever the array layout, as for the sides);
    an empty ``floor`` drops nothing: a scan that holds no femoral head gives no limit.
    """
    out = np.asarray(mask, dtype=bool).copy()
    if not floor.any() or not out.any():
        return out
    axis = superior_axis(geometry)
    z = geometry.origin[2] + np.arange(geometry.shape[axis]) * geometry.spacing[axis] * geometry.axes_matrix[axis, 2]
    others = tuple(a for a in range(3) if a != axis)
    lowest = float(z[floor.any(axis=others)].min())
    keep = z >= lowest - margin_mm - 1e-6
    shape = [1, 1, 1]
    shape[axis] = -1
    return out & keep.reshape(shape)


def assign_femoral_heads_by_side(labels: LabelMap, midline_x: float | None = None) -> None:
    """Re-assign femoral-head components to L/R by the patient x of their centroid (in place).

    Why: a network can swap sides on an unusual orientation (FFS, prone); LPS +x is the
    patient's left whatever the array layout, so the side is decided in patient space by
    the same rule that splits a merged femoral-head channel (models.output_modes).
    """
    left, right = FEMUR_LEFT, FEMUR_RIGHT
    if left not in labels or right not in labels:
        return
    union = labels[left] | labels[right]
    if not union.any():
        return
    split = split_femoral_heads(union, labels.geometry, midline_x)
    moved = int(np.count_nonzero(split[left] & labels[right]) + np.count_nonzero(split[right] & labels[left]))
    if moved:
        log.warning("femoral heads: %d voxels re-assigned to the side given by patient x", moved)
    labels[left] = split[left]
    labels[right] = split[right]


def postprocess(
    labels: LabelMap, rules: Mapping[str, Mapping[str, object]], midline_x: float | None = None
) -> LabelMap:
    """A new LabelMap with each structure's rule applied (structures without a rule unchanged).

    ``midline_x``: the patient's midline that separates the femoral heads (``Prediction.midline_x``:
    the predictor's one body detection).
    The sides are assigned first: a network that puts both heads in both channels would
    otherwise lose one head to "keep the largest part" in each channel. ``not_below`` limits
    come last and use the other structures' masks after their own rules.
    """
    sided = LabelMap(labels.geometry, dict(labels.items()))
    assign_femoral_heads_by_side(sided, midline_x)
    out = LabelMap(labels.geometry)
    parsed = {name: PostprocessRule.from_settings(name, rules[name]) for name in sided if rules.get(name)}
    for name, mask in sided.items():
        out[name] = apply_rule(mask, parsed.get(name, PostprocessRule()), labels.geometry)
    limited = {}
    for name, rule in parsed.items():
        floors = [out[b] for b in rule.not_below if b in out]
        if floors:
            limited[name] = drop_below(out[name], np.logical_or.reduce(floors), rule.not_below_margin_mm, labels.geometry)
    for name, mask in limited.items():
        out[name] = mask
    return out
