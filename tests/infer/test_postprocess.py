"""Post-processing: known answers on small shapes, and left/right decided in patient space."""

from __future__ import annotations

import numpy as np
import pytest

from cervseg.data.grid import body_bounding_box
from cervseg.errors import StructureError
from scipy import ndimage

from cervseg.infer.postprocess import (
    PostprocessRule, apply_rule, assign_femoral_heads_by_side, drop_small_islands,
    fill_holes_per_slice, keep_largest_component, postprocess,
)
from cervseg.structures import load_template
from cervseg.volume import Geometry, LabelMap

GRID = Geometry.axial((6, 20, 20), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))  # 2 mm^3 voxels


def _blob(z0: int, z1: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(GRID.shape, bool)
    m[z0:z1, y0:y1, x0:x1] = True
    return m


def test_keep_largest_removes_other_parts() -> None:
    mask = _blob(0, 4, 2, 10, 2, 10) | _blob(5, 6, 15, 17, 15, 17)
    out = apply_rule(mask, PostprocessRule(keep_largest=True), GRID)
    assert out.sum() == 4 * 8 * 8
    assert not out[5].any()


def test_min_island_volume_in_ml() -> None:
    big = _blob(0, 4, 2, 12, 2, 12)  # 400 voxels = 0.8 ml
    small = _blob(5, 6, 15, 18, 15, 18)  # 9 voxels = 0.018 ml
    out = apply_rule(big | small, PostprocessRule(min_island_ml=0.02), GRID)
    assert np.array_equal(out, big)
    out = apply_rule(big | small, PostprocessRule(min_island_ml=0.01), GRID)
    assert np.array_equal(out, big | small)


def test_small_parts_relative_to_the_largest_go_and_large_ones_stay() -> None:
    hip_r, hip_l = _blob(0, 4, 2, 12, 1, 6), _blob(0, 4, 2, 12, 14, 19)  # 200 voxels each
    sacrum = _blob(0, 3, 15, 19, 8, 12)  # 48 voxels: 24 % of the largest
    island = _blob(5, 6, 0, 4, 8, 12)  # 16 voxels: 8 %
    out = apply_rule(hip_r | hip_l | sacrum | island, PostprocessRule(min_fraction_of_largest=0.1), GRID)
    assert np.array_equal(out, hip_r | hip_l | sacrum)
    out = apply_rule(hip_r | hip_l | sacrum | island, PostprocessRule(min_fraction_of_largest=0.3), GRID)
    assert np.array_equal(out, hip_r | hip_l)
    assert not apply_rule(np.zeros(GRID.shape, bool), PostprocessRule(min_fraction_of_largest=0.1), GRID).any()


def test_fill_holes_per_slice_keeps_open_notches() -> None:
    ring = _blob(1, 2, 2, 12, 2, 12) & ~_blob(1, 2, 5, 9, 5, 9)
    notch = _blob(3, 4, 2, 12, 2, 12) & ~_blob(3, 4, 5, 9, 0, 9)  # open to the left edge
    out = fill_holes_per_slice(ring | notch)
    assert out[1].sum() == 100
    assert np.array_equal(out[3], notch[3])


def test_boxed_steps_match_whole_volume_scipy() -> None:
    """The steps work inside each mask's bounding box for speed; the answer must be the
    one scipy gives on the whole volume, including for masks touching the volume's edge."""
    rng = np.random.default_rng(7)
    full = ndimage.generate_binary_structure(3, 3)
    for trial in range(6):
        noise = ndimage.gaussian_filter(rng.random((9, 40, 48)), 1.5)
        mask = noise > np.quantile(noise, 0.8 if trial % 2 else 0.6)
        if trial == 5:
            mask[:, :3, :] = False  # a box away from the edges too
        labels, count = ndimage.label(mask, structure=full)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        assert np.array_equal(keep_largest_component(mask), labels == np.argmax(sizes))
        assert np.array_equal(drop_small_islands(mask, 30), np.isin(labels, np.flatnonzero(sizes >= 30)))
        filled = np.stack([ndimage.binary_fill_holes(m) for m in mask])
        assert np.array_equal(fill_holes_per_slice(mask), filled)
    # masks well inside the volume (box offset on every axis): a ring with a hole, a C open
    # towards the box's edge (its notch must stay open), an island, and speckle
    for trial in range(4):
        mask = np.zeros((12, 50, 60), bool)
        sub = ndimage.gaussian_filter(rng.random((6, 20, 25)), 1.2)
        mask[3:9, 12:32, 20:45] = sub > np.quantile(sub, 0.7)
        mask[4, 14:24, 22:32] = True
        mask[4, 17:21, 25:29] = False  # hole
        mask[6, 14:24, 20:30] = True
        mask[6, 17:21, 20:27] = False  # C open at the box's low-x edge
        mask[7, 40:43, 50:53] = trial % 2 == 0  # island far from the rest
        labels, count = ndimage.label(mask, structure=full)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        assert np.array_equal(keep_largest_component(mask), labels == np.argmax(sizes))
        assert np.array_equal(drop_small_islands(mask, 12), np.isin(labels, np.flatnonzero(sizes >= 12)))
        assert np.array_equal(fill_holes_per_slice(mask), np.stack([ndimage.binary_fill_holes(m) for m in mask]))
    empty = np.zeros((3, 5, 5), bool)
    assert not keep_largest_component(empty).any() and not fill_holes_per_slice(empty).any()


def _heads(geometry: Geometry, left_cols: slice, right_cols: slice) -> LabelMap:
    labels = LabelMap(geometry)
    l_mask = np.zeros(geometry.shape, bool)
    r_mask = np.zeros(geometry.shape, bool)
    l_mask[1:4, 8:12, left_cols] = True
    r_mask[1:4, 8:12, right_cols] = True
    labels["Femur_Head_L"], labels["Femur_Head_R"] = l_mask, r_mask
    return labels


def test_swapped_heads_are_corrected_by_patient_x() -> None:
    # HFS: columns increase toward patient left; the "L" mask sits at low columns -> swapped.
    labels = _heads(GRID, slice(2, 6), slice(14, 18))
    original_right = labels["Femur_Head_R"].copy()
    assign_femoral_heads_by_side(labels)
    assert np.array_equal(labels["Femur_Head_L"], original_right)
    x_left = GRID.index_to_lps(np.argwhere(labels["Femur_Head_L"]).mean(0))[0, 0]
    x_right = GRID.index_to_lps(np.argwhere(labels["Femur_Head_R"]).mean(0))[0, 0]
    assert x_left > x_right


def test_ffs_grid_columns_run_to_patient_right() -> None:
    """On an FFS grid, high columns are patient right: the same array layout is correct."""
    ffs = Geometry(GRID.shape, GRID.spacing, (0.0, 0.0, 0.0), ((0, 0, -1), (0, 1, 0), (-1, 0, 0)))
    labels = _heads(ffs, slice(2, 6), slice(14, 18))
    before = {k: v.copy() for k, v in labels.items()}
    assign_femoral_heads_by_side(labels)
    assert all(np.array_equal(labels[k], before[k]) for k in before)


def test_postprocess_uses_template_rules_and_rejects_unknown_settings() -> None:
    labels = LabelMap(GRID, {"Bladder": _blob(0, 3, 2, 10, 2, 10) | _blob(5, 6, 15, 17, 15, 17)})
    out = postprocess(labels, load_template("cervix").postprocess)
    assert not out["Bladder"][5].any()
    with pytest.raises(StructureError, match="keep_biggest"):
        postprocess(labels, {"Bladder": {"keep_biggest": True}})


def test_fused_heads_are_split_at_the_body_midline() -> None:
    """Heads joined by a bridge of false positives, all called 'R', are split voxel by voxel."""
    wide = Geometry.axial((4, 20, 60), (3.0, 4.0, 4.0), (0.0, 0.0, 0.0))  # x from 0 to 236 mm
    hu = np.full(wide.shape, -1000.0)
    hu[:, 2:18, 10:50] = 40.0  # body centred on column 29.5 -> x = 118 mm
    fused = np.zeros(wide.shape, bool)
    fused[1:3, 8:12, 12:22] = True  # right head (low columns = patient right on HFS)
    fused[1:3, 8:12, 38:48] = True  # left head
    fused[1:3, 10, 22:38] = True  # bridge
    labels = LabelMap(wide, {"Femur_Head_L": np.zeros(wide.shape, bool), "Femur_Head_R": fused})
    midline = body_bounding_box(hu, -500).midline_x(wide)
    assert midline == pytest.approx(118.0)
    assign_femoral_heads_by_side(labels, midline)
    assert labels["Femur_Head_L"][:, :, 38:48].sum() == fused[:, :, 38:48].sum()
    assert not labels["Femur_Head_L"][:, :, :30].any()
    assert np.array_equal(labels["Femur_Head_L"] | labels["Femur_Head_R"], fused)


def test_both_heads_in_both_channels_keep_both_heads() -> None:
    """Sides are assigned before 'keep the largest part', which would otherwise drop a head."""
    wide = Geometry.axial((4, 20, 60), (3.0, 4.0, 4.0), (0.0, 0.0, 0.0))
    hu = np.full(wide.shape, -1000.0)
    hu[:, 2:18, 10:50] = 40.0
    right = np.zeros(wide.shape, bool)
    right[1:3, 8:12, 12:22] = True
    left = np.zeros(wide.shape, bool)
    left[1:3, 8:12, 38:47] = True  # a little smaller than the right head
    labels = LabelMap(wide, {"Femur_Head_L": left | right, "Femur_Head_R": left | right})
    out = postprocess(labels, load_template("cervix").postprocess, midline_x=body_bounding_box(hu, -500).midline_x(wide))
    assert np.array_equal(out["Femur_Head_L"], left)
    assert np.array_equal(out["Femur_Head_R"], right)


def _shaft_case(geometry: Geometry) -> LabelMap:
    """A left femoral head on slices 4-6 of 10, bone from slice 0 (a shaft) up to slice 9."""
    heads = np.zeros(geometry.shape, bool)
    heads[4:7, 8:12, 14:18] = True  # high columns: patient left on HFS
    bone = np.zeros(geometry.shape, bool)
    bone[:, 2:6, 8:12] = True
    return LabelMap(geometry, {"Femur_Head_L": heads.copy(), "Femur_Head_R": np.zeros(geometry.shape, bool),
                               "BoneMarrow": bone})


def test_bone_far_below_the_femoral_heads_goes_by_patient_z() -> None:
    """HFS slices 2 mm apart: heads start at slice 4 (z = 8 mm); a 3 mm margin keeps z >= 5 mm,
    so slices 3..9 stay. The same patient stored feet-first (slices reversed, z running down)
    keeps the same voxels in patient space."""
    grid = Geometry.axial((10, 20, 20), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    rules = {"BoneMarrow": {"not_below": ["Femur_Head_L", "Femur_Head_R"], "not_below_margin_mm": 3.0}}
    out = postprocess(_shaft_case(grid), rules)
    assert [z for z in range(10) if out["BoneMarrow"][z].any()] == list(range(3, 10))
    reversed_grid = Geometry(grid.shape, grid.spacing, (0.0, 0.0, 18.0), ((0, 0, -1), (0, 1, 0), (1, 0, 0)))
    flipped = LabelMap(reversed_grid, {k: v[::-1].copy() for k, v in _shaft_case(grid).items()})
    out_ffs = postprocess(flipped, rules)
    assert np.array_equal(out_ffs["BoneMarrow"][::-1], out["BoneMarrow"])
    wider = postprocess(_shaft_case(grid), {"BoneMarrow": {**rules["BoneMarrow"], "not_below_margin_mm": 8.0}})
    assert np.array_equal(wider["BoneMarrow"], _shaft_case(grid)["BoneMarrow"])  # z >= 0: all kept


def test_no_femoral_head_gives_no_limit_and_names_are_checked() -> None:
    case = _shaft_case(GRID)
    case["Femur_Head_L"] = np.zeros(GRID.shape, bool)
    out = postprocess(case, {"BoneMarrow": {"not_below": ["Femur_Head_L", "Femur_Head_R"]}})
    assert np.array_equal(out["BoneMarrow"], case["BoneMarrow"])  # a scan above the heads keeps its bone
    with pytest.raises(StructureError, match="not_below"):
        postprocess(case, {"BoneMarrow": {"not_below": "Femur_Head_L"}})


def test_the_limit_uses_the_heads_after_their_own_rules() -> None:
    """A speck of 'femoral head' on the lowest slice is removed by keep_largest first, so it
    does not lower the limit and let the shaft through."""
    grid = Geometry.axial((10, 20, 20), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    case = _shaft_case(grid)
    case["Femur_Head_L"][0, 15, 15] = True
    rules = {"Femur_Head_L": {"keep_largest": True},
             "BoneMarrow": {"not_below": ["Femur_Head_L", "Femur_Head_R"], "not_below_margin_mm": 3.0}}
    assert not postprocess(case, rules)["BoneMarrow"][:3].any()


def test_cervix_template_limits_bone_below_the_heads_and_rejects_bad_names(tmp_path) -> None:
    rule = load_template("cervix").postprocess["BoneMarrow"]
    assert rule["not_below"] == ["Femur_Head_L", "Femur_Head_R"] and rule["not_below_margin_mm"] == 15.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("structures: [Bladder, BoneMarrow]\npostprocess:\n  BoneMarrow: {not_below: [Femur_Head_L]}\n")
    with pytest.raises(StructureError, match="not_below of 'BoneMarrow'"):
        load_template(str(bad))
