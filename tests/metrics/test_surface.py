"""Surface distances: hand-computed shapes, brute force (cdist), MONAI and plastimatch."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance, compute_surface_dice

from cervseg.metrics.overlap import dice
from cervseg.metrics.surface import boundary, surface_distances
from cervseg.volume import Geometry
from tests.metrics import bruteforce
from tests.metrics import plastimatch as pmx


def t(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask[None, None].astype(np.float32))


def test_single_pixels_hand_computed():
    a = np.zeros((9, 12), bool)
    b = a.copy()
    a[5, 5] = True
    b[5, 8] = True  # 3 columns apart, 0.7 mm columns
    d = surface_distances(a, b, (2.0, 0.7))
    for value in (d.hausdorff(), d.hd95(), d.mean()):
        assert value == pytest.approx(2.1, abs=1e-6)
    assert d.surface_dice(2.0) == 0.0
    assert d.surface_dice(2.1 + 1e-6) == 1.0
    assert d.added_path_length(2.0) == pytest.approx(1.35)  # one pixel of mean size (2 + 0.7) / 2


def test_offset_cubes_hausdorff_hand_computed():
    # 8^3 cubes shifted by 3 voxels along x (2.5 mm columns): HD = 7.5 mm
    a = np.zeros((12, 12, 16), bool)
    b = a.copy()
    a[2:10, 2:10, 2:10] = True
    b[2:10, 2:10, 5:13] = True
    d = surface_distances(a, b, (3.0, 1.0, 2.5))
    assert d.hausdorff() == pytest.approx(7.5)
    # a's far x face (x = 2) has nothing of b's boundary closer than b's near x face (x = 5)
    assert d.ref_to_pred.max() == pytest.approx(7.5)
    assert d.pred_to_ref.max() == pytest.approx(7.5)


def test_parallel_lines_hand_computed():
    a = np.zeros((12, 10), bool)
    b = a.copy()
    a[2, 1:9] = True
    b[6, 1:9] = True  # 4 rows of 0.5 mm apart: every boundary pixel is 2.0 mm from the other line
    d = surface_distances(a, b, (0.5, 1.2))
    assert d.hausdorff() == pytest.approx(2.0) and d.hd95() == pytest.approx(2.0) and d.mean() == pytest.approx(2.0)
    assert d.surface_dice(2.0) == 1.0 and d.surface_dice(1.9) == 0.0
    assert d.added_path_length(1.9) == pytest.approx(8 * 0.85)


def sphere(shape, spacing, centre_mm, radius_mm) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre_mm))
    return r2 <= radius_mm**2


def test_concentric_spheres_distance_is_radius_difference():
    spacing = (2.0, 0.8, 0.8)
    shape = (24, 60, 60)
    centre = (23.0, 24.0, 24.0)
    inner = sphere(shape, spacing, centre, 10.0)
    outer = sphere(shape, spacing, centre, 16.0)
    d = surface_distances(inner, outer, spacing)
    # all boundary-to-boundary distances are ~6 mm, up to the voxel discretisation
    assert d.mean() == pytest.approx(6.0, abs=0.8)
    assert d.hd95() == pytest.approx(6.0, abs=max(spacing))
    assert d.surface_dice(2.0) == 0.0
    assert d.surface_dice(10.0) == 1.0


@pytest.mark.parametrize(
    "shape,spacing,seed",
    [((30, 34), (0.9, 1.3), 1), ((30, 34), (1.0, 1.0), 2), ((10, 16, 18), (3.0, 0.8, 1.1), 3), ((10, 16, 18), (2.5, 1.2, 0.7), 4)],
)
def test_matches_bruteforce(shape, spacing, seed):
    a = bruteforce.blob(shape, seed)
    b = bruteforce.blob(shape, seed + 50)
    assert a.any() and b.any() and a[0].any()  # touches the array border
    d = surface_distances(a, b, spacing)
    ref = bruteforce.directed(a, b, spacing)
    pred = bruteforce.directed(b, a, spacing)
    both = np.concatenate([ref, pred])
    np.testing.assert_allclose(np.sort(d.ref_to_pred), np.sort(ref), atol=1e-4)
    np.testing.assert_allclose(np.sort(d.pred_to_ref), np.sort(pred), atol=1e-4)
    assert d.hausdorff() == pytest.approx(both.max(), abs=1e-4)
    assert d.hd95() == pytest.approx(np.percentile(both, 95), abs=1e-4)
    assert d.mean() == pytest.approx(both.mean(), abs=1e-4)
    for tol in (0.0, 1.0, 2.0, 5.0):
        assert d.surface_dice(tol) == pytest.approx((both <= tol + 1e-9).mean(), abs=1e-9)
    pixel = float(np.mean(spacing[-2:]))
    assert d.added_path_length(2.0) == pytest.approx((ref > 2.0 + 1e-9).sum() * pixel)


def test_boundary_matches_bruteforce():
    m = bruteforce.blob((9, 11, 13), 7)
    expected = np.zeros_like(m)
    for idx in bruteforce.boundary_points(m).astype(int):
        expected[tuple(idx)] = True
    np.testing.assert_array_equal(boundary(m), expected)


def test_crop_does_not_change_results():
    a = bruteforce.blob((10, 16, 18), 11)
    b = bruteforce.blob((10, 16, 18), 12)
    big_a = np.zeros((30, 40, 50), bool)
    big_b = big_a.copy()
    big_a[5:15, 10:26, 20:38] = a
    big_b[5:15, 10:26, 20:38] = b
    small = surface_distances(a, b, (2.0, 1.0, 1.0))
    # inside a larger array the borders of the small one are no longer boundary: compare with brute force
    big = surface_distances(big_a, big_b, (2.0, 1.0, 1.0))
    both = bruteforce.pooled(big_a[4:16, 9:27, 19:39], big_b[4:16, 9:27, 19:39], (2.0, 1.0, 1.0))
    assert big.hd95() == pytest.approx(np.percentile(both, 95), abs=1e-4)
    assert small.hd95() == pytest.approx(np.percentile(bruteforce.pooled(a, b, (2.0, 1.0, 1.0)), 95), abs=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_agrees_with_monai_reference_functions(seed):
    spacing = (2.5, 0.9, 1.2)
    a = bruteforce.blob((12, 20, 22), seed)
    b = bruteforce.blob((12, 20, 22), seed + 30)
    d = surface_distances(a, b, spacing)
    # MONAI's directed HD95 (pred -> gt) is our directed percentile, each way
    monai_ref_dir = compute_hausdorff_distance(t(a), t(b), include_background=True, percentile=95, directed=True, spacing=spacing).item()
    monai_pred_dir = compute_hausdorff_distance(t(b), t(a), include_background=True, percentile=95, directed=True, spacing=spacing).item()
    assert np.percentile(d.ref_to_pred, 95) == pytest.approx(monai_ref_dir, abs=1e-3)
    assert np.percentile(d.pred_to_ref, 95) == pytest.approx(monai_pred_dir, abs=1e-3)
    monai_hd = compute_hausdorff_distance(t(b), t(a), include_background=True, spacing=spacing).item()
    assert d.hausdorff() == pytest.approx(monai_hd, abs=1e-4)
    monai_asd = compute_average_surface_distance(t(b), t(a), include_background=True, symmetric=True, spacing=spacing).item()
    assert d.mean() == pytest.approx(monai_asd, abs=1e-4)
    monai_nsd = compute_surface_dice(t(b), t(a), [2.0], include_background=True, spacing=spacing).item()
    assert d.surface_dice(2.0) == pytest.approx(monai_nsd, abs=1e-6)


def test_pooled_hd95_differs_from_monai_max_of_directed():
    """Documents the convention: pooled percentile, not MONAI's max of directed percentiles."""
    a = np.zeros((70, 70), bool)
    a[5:45, 5:45] = True
    b = a.copy()
    b[20, 45:65] = True  # a one-pixel spike of 20 pixels: about 11 % of b's boundary
    d = surface_distances(a, b, (1.0, 1.0))
    monai = compute_hausdorff_distance(t(b), t(a), include_background=True, percentile=95, spacing=(1.0, 1.0)).item()
    both = bruteforce.pooled(a, b, (1.0, 1.0))
    assert d.hd95() == pytest.approx(np.percentile(both, 95), abs=1e-6)
    assert np.percentile(d.pred_to_ref, 95) == pytest.approx(monai, abs=1e-3)
    assert monai > d.hd95() + 3.0  # the larger directed percentile is far from the pooled one


def test_empty_conventions():
    empty = np.zeros((8, 8), bool)
    one = empty.copy()
    one[2:5, 2:5] = True
    missed = surface_distances(one, empty, (1.0, 1.0))
    assert math.isnan(missed.hd95()) and math.isnan(missed.hausdorff()) and math.isnan(missed.mean())
    assert missed.surface_dice(2.0) == 0.0
    assert missed.added_path_length(2.0) == pytest.approx(8.0)  # 8 boundary pixels of a 3x3 square
    false_positive = surface_distances(empty, one, (1.0, 1.0))
    assert math.isnan(false_positive.hd95()) and false_positive.surface_dice(2.0) == 0.0
    assert false_positive.added_path_length(2.0) == 0.0
    none = surface_distances(empty, empty, (1.0, 1.0))
    assert math.isnan(none.hd95()) and math.isnan(none.surface_dice(2.0))


# ---------------------------------------------------------------- plastimatch (independent tool)

def write_mask(mask: np.ndarray, geometry: Geometry, path: Path) -> None:
    nib.save(nib.Nifti1Image(np.transpose(mask, (2, 1, 0)).astype(np.uint8), geometry.nifti_affine()), str(path))


def check_against_plastimatch(ref: np.ndarray, pred: np.ndarray, geometry: Geometry, pm: dict[str, float]) -> None:
    """Dice to 1e-3, HD95 within one voxel; the boundary distances themselves nearly identical.

    plastimatch measures with ITK's signed Maurer distance map, which on the real case puts a
    few extreme voxels up to 0.16 mm farther than the exact nearest-boundary distance (hence
    the tolerances on HD and on its own percentile rule); the bulk agrees to 0.01 mm (mean).
    """
    d = surface_distances(ref, pred, geometry.spacing)
    voxel = max(geometry.spacing)
    assert dice(ref, pred) == pytest.approx(pm[pmx.DICE], abs=1e-3)
    assert abs(d.hd95() - pm[pmx.HD95]) <= voxel
    assert abs(d.hausdorff() - pm[pmx.HD]) <= 0.25
    # plastimatch's HD95 rule (mean of the two directed floor(0.95 n - 1)-th smallest
    # distances) applied to our distances reproduces its number: same boundaries, same metric
    pm_rule = 0.5 * (pmx.percent_rule(d.ref_to_pred) + pmx.percent_rule(d.pred_to_ref))
    assert pm_rule == pytest.approx(pm[pmx.HD95], abs=0.1)
    assert 0.5 * (d.ref_to_pred.mean() + d.pred_to_ref.mean()) == pytest.approx(
        pm[pmx.MEAN], abs=0.01
    )


@pytest.mark.external
def test_agrees_with_plastimatch_on_blobs(tmp_path):
    geometry = Geometry.axial((14, 30, 34), (2.5, 0.9, 1.1), (-10.0, 20.0, 30.0))
    ref = np.zeros(geometry.shape, bool)
    pred = ref.copy()
    ref[2:12, 3:27, 3:31] = bruteforce.blob((10, 24, 28), 5, threshold=0.5)
    pred[2:12, 3:27, 3:31] = bruteforce.blob((10, 24, 28), 6, threshold=0.5)
    write_mask(ref, geometry, tmp_path / "ref.nii.gz")
    write_mask(pred, geometry, tmp_path / "pred.nii.gz")
    pm = pmx.plastimatch_dice(tmp_path / "ref.nii.gz", tmp_path / "pred.nii.gz")
    check_against_plastimatch(ref, pred, geometry, pm)


def load_mask(path: Path) -> tuple[np.ndarray, Geometry]:
    img = nib.load(str(path))
    data = np.asarray(img.dataobj) > 0
    return np.transpose(data, (2, 1, 0)), Geometry.from_nifti_affine(img.affine, data.shape)


@pytest.mark.external
@pytest.mark.realdata
@pytest.mark.parametrize(
    "manual,automatic",
    [("Vescica", "Bladder_DL"), ("Retto", "Anorectum_DL"), ("FemoreSinistro", "Femur_Head_L_DL"),
     ("FemoreDestro", "Femur_Head_R_DL"), ("Prostata", "Prostate_DL"), ("Vescica", "Bladder_MBS"),
     ("Retto", "Rectum_MBS"), ("Prostata", "Prostate_MBS")],
)
def test_agrees_with_plastimatch_on_real_case(real_case_plastimatch_masks, manual, automatic):
    ref, geometry = load_mask(real_case_plastimatch_masks / f"{manual}.nii.gz")
    pred, _ = load_mask(real_case_plastimatch_masks / f"{automatic}.nii.gz")
    assert geometry.spacing == pytest.approx((3.0, 1.0, 1.0))
    pm = pmx.plastimatch_dice(real_case_plastimatch_masks / f"{manual}.nii.gz", real_case_plastimatch_masks / f"{automatic}.nii.gz")
    check_against_plastimatch(ref, pred, geometry, pm)
