"""generate_patient: deterministic, left is +x, every structure present, plausible and realistic."""

from __future__ import annotations

import numpy as np
import pytest

from cervseg.phantom.generator import draw_acquisition, generate_patient
from cervseg.phantom.anatomy import Anatomy
from cervseg.phantom.intensities import STRUCTURE_HU
from cervseg.phantom.presets import get_preset
from cervseg.structures import load_template
from cervseg.volume import Geometry

SEEDS = (11, 12, 13)
UNENHANCED = get_preset("tiny").with_overrides(contrast_p=0.0)


@pytest.fixture(scope="module")
def patients():
    return [generate_patient(s, UNENHANCED) for s in SEEDS]


def centroid_lps(labels, name: str) -> np.ndarray:
    idx = np.argwhere(labels[name]).mean(axis=0)
    return labels.geometry.index_to_lps(idx[None])[0]


def test_same_seed_same_patient_other_seed_other_patient():
    a_vol, a_lab = generate_patient(21, "tiny")
    b_vol, b_lab = generate_patient(21, "tiny")
    c_vol, _ = generate_patient(22, "tiny")
    assert np.array_equal(a_vol.array, b_vol.array)
    assert a_vol.geometry == b_vol.geometry
    assert all(np.array_equal(a_lab[n], b_lab[n]) for n in a_lab)
    assert a_vol.series.series_instance_uid == b_vol.series.series_instance_uid
    assert c_vol.array.shape != a_vol.array.shape or not np.array_equal(c_vol.array, a_vol.array)


def test_the_nine_cervix_structures_all_present(patients):
    names = load_template("cervix").structures
    for vol, labels in patients:
        assert tuple(labels) == names
        for n in names:
            assert labels[n].any(), n
            assert labels.geometry.same_grid(vol.geometry)


def test_left_femoral_head_is_at_positive_patient_x(patients):
    for vol, labels in patients:
        left, right = centroid_lps(labels, "Femur_Head_L"), centroid_lps(labels, "Femur_Head_R")
        mid = centroid_lps(labels, "BoneMarrow")[0]
        assert left[0] > mid + 60 and right[0] < mid - 60
        assert 150 < left[0] - right[0] < 260  # proximal femora: heads, necks and trochanters
        assert abs(left[2] - right[2]) < 15
        # and in the array: HFS, so patient left is the higher column index
        assert np.argwhere(labels["Femur_Head_L"])[:, 2].mean() > np.argwhere(labels["Femur_Head_R"])[:, 2].mean()


def test_organs_in_anatomical_order(patients):
    for vol, labels in patients:
        c = {n: centroid_lps(labels, n) for n in labels}
        # anterior (-y) to posterior: bladder, rectum, spinal canal
        assert c["Bladder"][1] < c["Rectum"][1] < c["SpinalCord"][1]
        assert c["CTV_UV"][1] < c["Rectum"][1]
        # inferior to superior: rectum below the nodal CTV, which is below the bowel's centre
        assert c["Rectum"][2] < c["CTV_N"][2]
        assert c["Femur_Head_L"][2] < c["CTV_N"][2]
        assert c["SpinalCord"][2] > c["Femur_Head_L"][2] + 60
        assert abs(c["Bladder"][0] - c["CTV_UV"][0]) < 40


def test_volumes_are_plausible(patients):
    ranges = {"Bladder": (30, 800), "Rectum": (15, 250), "Femur_Head_L": (60, 300), "Femur_Head_R": (60, 300),
              "BoneMarrow": (500, 2500), "Bowel_Small": (100, 3500), "SpinalCord": (5, 80), "CTV_N": (60, 700),
              "CTV_UV": (30, 700)}
    for vol, labels in patients:
        for n, (lo, hi) in ranges.items():
            assert lo < labels.voxel_volume_ml(n) < hi, (n, labels.voxel_volume_ml(n))


def test_mean_hu_inside_each_structure_within_documented_ranges(patients):
    for vol, labels in patients:
        for n, (lo, hi) in STRUCTURE_HU.items():
            mean = float(vol.array[labels[n]].mean())
            assert lo <= mean <= hi, (n, mean)


def test_soft_tissue_contrast_is_low_and_fat_is_dark(patients):
    vol, labels = patients[0]
    a = vol.array.astype(float)
    bladder, uterus = a[labels["Bladder"]].mean(), a[labels["CTV_UV"]].mean()
    assert 5 < uterus - bladder < 70  # tens of HU, as on real CT
    assert a[(a > -200) & (a < -50)].mean() < -80


def test_structures_start_and_end_on_different_slices(patients):
    for vol, labels in patients:
        ends = [np.flatnonzero(labels[n].any(axis=(1, 2)))[[0, -1]] for n in labels]
        starts = {int(e[0]) for e in ends}
        stops = {int(e[1]) for e in ends}
        assert len(starts) >= 6 and len(stops) >= 6


def test_solid_structures_are_consistent_from_slice_to_slice(patients):
    for vol, labels in patients:
        for n in ("Bladder", "Femur_Head_L", "Femur_Head_R", "SpinalCord", "CTV_UV", "Rectum"):
            k = np.flatnonzero(labels[n].any(axis=(1, 2)))
            assert np.all(np.diff(k) == 1), n  # no slice missing in the middle


def test_contrast_option_brightens_vessels_and_bladder():
    plain = get_preset("tiny").with_overrides(contrast_p=0.0, noise_hu=(0.0, 0.0))
    enhanced = get_preset("tiny").with_overrides(contrast_p=1.0, noise_hu=(0.0, 0.0))
    a_vol, a_lab = generate_patient(31, plain)
    b_vol, b_lab = generate_patient(31, enhanced)
    assert b_vol.array[b_lab["CTV_N"]].mean() > a_vol.array[a_lab["CTV_N"]].mean() + 5
    assert b_vol.array[b_lab["CTV_UV"]].mean() > a_vol.array[a_lab["CTV_UV"]].mean() + 20


def test_noise_level_is_configurable():
    quiet = get_preset("tiny").with_overrides(noise_hu=(0.0, 0.0), contrast_p=0.0)
    loud = get_preset("tiny").with_overrides(noise_hu=(40.0, 40.0), contrast_p=0.0)
    a, la = generate_patient(41, quiet)
    b, lb = generate_patient(41, loud)
    assert np.array_equal(la["Bladder"], lb["Bladder"])
    diff = (b.array.astype(float) - a.array)[la["Bladder"]]
    assert 25 < diff.std() < 55


def test_default_preset_acquisition_like_the_papers():
    p = get_preset("default")
    slices, pixels, thick = [], [], []
    for s in range(12):
        an = Anatomy(np.random.SeedSequence(s), p.contrast_p)
        acq = draw_acquisition(np.random.default_rng(s), p, an)
        slices.append(acq.n_slices)
        pixels.append(acq.fov_mm / p.matrix)
        thick.append(acq.slice_mm)
    assert set(thick) <= {3.0, 5.0} and 5.0 in thick
    assert 70 <= min(slices) and max(slices) <= 120
    assert 1.0 < min(pixels) and max(pixels) < 1.25


@pytest.mark.slow
def test_default_patient_geometry_is_hfs_axial_512():
    vol, labels = generate_patient(5, "default")
    g = vol.geometry
    assert g.shape[1:] == (512, 512)
    assert g == Geometry.axial(g.shape, g.spacing, g.origin, g.frame_of_reference_uid)
    assert 70 <= g.shape[0] <= 120
    assert all(labels[n].any() for n in labels)


# ---------------------------------------------------------------- realism features (default preset)

#: the default preset's realism features on a coarser, shorter grid, so the tests stay quick
REALISTIC = get_preset("default").with_overrides(matrix=224, slice_mm=(5.0,), slice_p=(1.0,), max_slices=40,
                                                 contrast_p=0.0)


def lps_x_of(case, mask) -> np.ndarray:
    idx = np.argwhere(mask).astype(float)
    return case.volume.geometry.index_to_lps(idx)[:, 0]


@pytest.mark.parametrize("seed", [3, 8])
def test_metal_prosthesis_only_when_flagged_and_on_its_side_in_patient_x(seed):
    from cervseg.phantom.generator import generate_case
    from cervseg.phantom.tissues import Tissue

    case = generate_case(seed, REALISTIC.with_overrides(metal_p=1.0))
    side = case.realism.metal_side
    assert side in (1, -1)
    metal = case.tissue == Tissue.METAL
    assert metal.sum() > 100
    head = case.labels["Femur_Head_L" if side > 0 else "Femur_Head_R"]
    mid = float(lps_x_of(case, case.labels["BoneMarrow"]).mean())
    assert np.all(np.sign(lps_x_of(case, metal) - mid) == side)  # all the metal on the flagged side
    assert (metal & head).sum() > 0.3 * metal[head.any(axis=(1, 2))].sum()  # the prosthetic head is in the head ROI
    hu = case.volume.array.astype(float)
    assert hu[metal].mean() > 2000
    # without the flag: no metal, no HU above dense cortical bone
    plain = generate_case(seed, REALISTIC.with_overrides(metal_p=0.0))
    assert plain.realism.metal_side == 0 and not (plain.tissue == Tissue.METAL).any()
    assert plain.volume.array.max() < 2500
    # the streaks (the image difference away from the metal) sit on the metal's slices and side
    from scipy import ndimage

    d = np.abs(hu - plain.volume.array)
    near = ndimage.binary_dilation(metal, np.ones((1, 3, 3), bool), iterations=4)
    with_metal = metal.any(axis=(1, 2))
    away = ~with_metal
    ends = np.flatnonzero(with_metal)[[0, -1]] + [-1, 1]
    away[np.clip(ends, 0, len(away) - 1)] = False  # the slice profile mixes in one neighbour
    assert d[away].max() == 0
    k = int(np.argmax(metal.sum(axis=(1, 2))))
    ring = ndimage.binary_dilation(metal[k], iterations=10) & ~near[k]
    assert d[k][ring].mean() > 10
    assert d[k][ring].mean() > 1.5 * d[k][ring[:, ::-1] & ~near[k][:, ::-1]].mean()
    # the anatomy and the contours are the same patient's
    assert all(np.array_equal(plain.labels[n], case.labels[n]) for n in case.labels)


def test_couch_lies_below_the_body_posteriorly():
    from cervseg.phantom.generator import generate_case
    from cervseg.phantom.tissues import Part

    case = generate_case(4, REALISTIC)
    couch = case.part == Part.COUCH
    body = (case.part != Part.COUCH) & (case.part != Part.NONE)
    assert couch.any()
    for k in range(0, couch.shape[0], 5):
        cols = np.flatnonzero(couch[k].any(axis=0) & body[k].any(axis=0))
        assert cols.size > 20
        couch_top = np.argmax(couch[k][:, cols], axis=0)
        body_bottom = body.shape[1] - 1 - np.argmax(body[k][::-1, cols], axis=0)
        assert np.all(couch_top > body_bottom)  # HFS: rows increase posteriorly (+y)
    assert case.volume.geometry.axes[1] == (0.0, 1.0, 0.0)


def test_realistic_patient_is_deterministic_and_has_a_reconstruction_circle():
    from cervseg.phantom.generator import generate_case

    p = REALISTIC.with_overrides(metal_p=1.0)
    a, b = generate_case(6, p), generate_case(6, p)
    assert np.array_equal(a.volume.array, b.volume.array)
    assert a.realism == b.realism
    hu = a.volume.array
    corner = hu[:, :3, :3]
    if a.realism.circle_mm < REALISTIC.matrix * a.volume.geometry.spacing[1] * np.sqrt(2):
        assert np.all(corner == -1024)
    centre_air = hu[:, 2:10, hu.shape[2] // 2]
    assert np.all(centre_air > -1024)  # inside the circle the air is noisy around -1000


def test_realistic_patient_statistics_within_the_documented_ranges():
    """The ranges documented in docs/phantom.md (around pelvic-ref-002's measured values)."""
    from cervseg.phantom.generator import generate_case
    from cervseg.phantom.realism import PHANTOM_RANGES, case_statistics

    stats = case_statistics(generate_case(7, REALISTIC.with_overrides(metal_p=0.0)))
    for name, (lo, hi) in PHANTOM_RANGES.items():
        assert lo <= stats[name] <= hi, (name, stats[name])


def test_noise_is_quieter_in_the_air_than_in_the_patient():
    from cervseg.phantom.generator import generate_case
    from cervseg.phantom.realism import air_in_front, body_mask
    from cervseg.phantom.tissues import Tissue

    clean = generate_case(9, REALISTIC.with_overrides(noise_hu=(0.0, 0.0)))
    noisy = generate_case(9, REALISTIC.with_overrides(noise_hu=(14.0, 14.0)))
    d = noisy.volume.array.astype(float) - clean.volume.array
    air = air_in_front(clean.volume.array, body_mask(clean.volume.array), clean.volume.geometry.spacing[1], 30.0)
    fat = noisy.tissue == Tissue.FAT
    assert d[fat].std() > 2 * d[air].std()


def test_arms_beside_the_body_lie_outside_the_trunk_on_both_sides_and_change_no_contour():
    from cervseg.phantom.generator import generate_case
    from cervseg.phantom.tissues import Part

    p = REALISTIC.with_overrides(metal_p=0.0, fov_mm=(620.0, 620.0))
    raised = generate_case(2, p.with_overrides(arms_p=0.0))
    beside = generate_case(2, p.with_overrides(arms_p=1.0))
    assert not raised.realism.arms.beside and beside.realism.arms.beside
    assert not (raised.part == Part.BODY)[~_torso(raised)].any()  # no arms: the body is one piece
    arm = (beside.part == Part.BODY) & ~_torso(beside)
    x = lps_x_of(beside, arm)
    mid = float(lps_x_of(beside, beside.labels["BoneMarrow"]).mean())
    assert (x > mid + 150).sum() > 200 and (x < mid - 150).sum() > 200  # a forearm on each side
    assert np.all(np.abs(x - mid) > 150)
    assert all(np.array_equal(raised.labels[n], beside.labels[n]) for n in beside.labels)


def _torso(case) -> np.ndarray:
    """The largest connected piece of the patient in each slice (the trunk, without arms)."""
    from scipy import ndimage

    from cervseg.phantom.tissues import Part

    body = (case.part != Part.NONE) & (case.part != Part.COUCH)
    out = np.zeros(body.shape, bool)
    for k in range(body.shape[0]):
        lab, n = ndimage.label(body[k])
        if n:
            out[k] = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    return out
