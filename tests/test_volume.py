"""Geometry, Volume and LabelMap: index <-> LPS mapping and the NIfTI RAS affine."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from cervseg.errors import GeometryError
from cervseg.volume import (
    Geometry, LabelMap, SeriesInfo, Volume, canonical_labels, canonical_volume, flip_array,
)

HFS_AXES = ((0, 0, 1), (0, 1, 0), (1, 0, 0))
FFS_AXES = ((0, 0, -1), (0, 1, 0), (-1, 0, 0))  # IOP (-1,0,0, 0,1,0): normal = -z



def _normal(row: tuple, col: tuple) -> tuple:
    return tuple(np.cross(row, col))


def test_hfs_index_to_lps_known_points() -> None:
    g = Geometry((4, 3, 2), (5.0, 1.5, 1.2), (-100.0, -50.0, 20.0), HFS_AXES)
    # voxel (z=2, y=1, x=1): x += 1*1.2, y += 1*1.5, z += 2*5
    assert np.allclose(g.index_to_lps([[2, 1, 1]]), [[-98.8, -48.5, 30.0]])
    assert np.allclose(g.lps_to_index([[-98.8, -48.5, 30.0]]), [[2, 1, 1]])
    assert np.allclose(g.slice_normal_coordinates(), [20, 25, 30, 35])


@pytest.mark.parametrize(
    "row,col,codes",
    [
        ((1, 0, 0), (0, 1, 0), ("L", "P", "S")),  # HFS
        ((-1, 0, 0), (0, 1, 0), ("R", "P", "I")),  # FFS
        ((-1, 0, 0), (0, -1, 0), ("R", "A", "S")),  # HFP
        ((1, 0, 0), (0, -1, 0), ("L", "A", "I")),  # FFP
    ],
)
def test_nifti_affine_orientation_matches_nibabel(row: tuple, col: tuple, codes: tuple) -> None:
    """nibabel (an independent reading of the affine) must see the patient directions we mean."""
    axes = (_normal(row, col), col, row)
    g = Geometry((3, 4, 5), (3.0, 0.9, 0.8), (10.0, 20.0, 30.0), axes)
    assert nib.aff2axcodes(g.nifti_affine()) == codes


@pytest.mark.parametrize("axes", [HFS_AXES, FFS_AXES])
def test_nifti_affine_round_trip(axes: tuple) -> None:
    g = Geometry((7, 6, 5), (2.5, 0.7, 0.9), (1.0, -2.0, 3.0), axes, "1.2.3")
    back = Geometry.from_nifti_affine(g.nifti_affine(), (5, 6, 7), "1.2.3")
    assert back.same_grid(g)
    assert back.frame_of_reference_uid == "1.2.3"


def test_nifti_affine_maps_voxel_to_ras_of_same_point() -> None:
    g = Geometry((7, 6, 5), (2.5, 0.7, 0.9), (1.0, -2.0, 3.0), FFS_AXES)
    zyx = np.array([3, 2, 4])
    lps = g.index_to_lps(zyx)[0]
    ras = g.nifti_affine() @ np.array([zyx[2], zyx[1], zyx[0], 1.0])
    assert np.allclose(ras[:3], [-lps[0], -lps[1], lps[2]])


def test_non_orthonormal_axes_refused() -> None:
    with pytest.raises(GeometryError, match="orthonormal"):
        Geometry((1, 2, 2), (1, 1, 1), (0, 0, 0), ((0, 0, 1), (0, 1, 0), (0.9, 0.1, 0)))


def test_non_positive_spacing_refused() -> None:
    with pytest.raises(GeometryError, match="spacing"):
        Geometry.axial((1, 2, 2), (0, 1, 1), (0, 0, 0))


def test_volume_shape_must_match_geometry() -> None:
    g = Geometry.axial((2, 3, 4), (1, 1, 1), (0, 0, 0))
    with pytest.raises(GeometryError, match="does not match"):
        Volume(np.zeros((2, 4, 3)), g)


def test_labelmap_enforces_shared_geometry_and_volume_ml() -> None:
    g = Geometry.axial((2, 10, 10), (5.0, 2.0, 2.0), (0, 0, 0))
    labels = LabelMap(g)
    mask = np.zeros(g.shape, bool)
    mask[0, :5, :5] = True  # 25 voxels of 20 mm^3
    labels["Bladder"] = mask
    assert labels.voxel_volume_ml("Bladder") == pytest.approx(0.5)
    with pytest.raises(GeometryError, match="Rectum"):
        labels["Rectum"] = np.zeros((2, 10, 9), bool)
    assert list(labels.subset(["Bladder"])) == ["Bladder"]


@pytest.mark.parametrize(
    "axes,flips",
    [
        (HFS_AXES, (False, False, False)),
        (FFS_AXES, (True, False, True)),
        (((0, 0, 1), (0, -1, 0), (-1, 0, 0)), (False, True, True)),  # HFP
        (((0, 0, -1), (0, -1, 0), (1, 0, 0)), (True, True, False)),  # FFP
    ],
)
def test_canonical_flips_keep_every_voxel_at_its_patient_position(axes: tuple, flips: tuple) -> None:
    g = Geometry((3, 4, 5), (3.0, 0.9, 0.8), (10.0, 20.0, 30.0), axes)
    assert g.canonical_flips() == flips
    canonical = g.flipped(flips)
    assert canonical.canonical_flips() == (False, False, False)
    array = np.arange(np.prod(g.shape)).reshape(g.shape)
    flipped = flip_array(array, flips)
    # the voxel holding value v must sit at the same LPS point in both grids
    for v in (0, 7, 59):
        original = np.argwhere(array == v)[0]
        moved = np.argwhere(flipped == v)[0]
        assert np.allclose(g.index_to_lps(original), canonical.index_to_lps(moved))
    assert np.array_equal(flip_array(flipped, flips), array)


def test_canonical_volume_and_labels_keep_patient_positions() -> None:
    g = Geometry((3, 4, 5), (3.0, 0.9, 0.8), (10.0, 20.0, 30.0), FFS_AXES)
    array = np.arange(np.prod(g.shape), dtype=np.float32).reshape(g.shape)
    mask = array > 40
    series = SeriesInfo(sop_instance_uids=("a", "b", "c"), source_files=("1", "2", "3"))
    volume = canonical_volume(Volume(array, g, series))
    labels = canonical_labels(LabelMap(g, {"Bladder": mask}))
    assert volume.geometry.canonical_flips() == (False, False, False)
    assert labels.geometry.same_grid(volume.geometry)
    assert volume.series.sop_instance_uids == ("c", "b", "a")  # slice order reversed along z
    for value in (0.0, 17.0, 59.0):
        before = g.index_to_lps(np.argwhere(array == value))
        after = volume.geometry.index_to_lps(np.argwhere(volume.array == value))
        assert np.allclose(before, after)
    assert labels["Bladder"].sum() == mask.sum()
    assert np.array_equal(labels["Bladder"], volume.array > 40)
    hfs = Volume(array, Geometry.axial(g.shape, g.spacing, g.origin))
    assert canonical_volume(hfs) is hfs


def test_labelmap_require_grid_names_both_grids() -> None:
    g = Geometry.axial((2, 3, 4), (1, 1, 1), (0, 0, 0))
    other = Geometry.axial((2, 3, 4), (1, 1, 1), (5, 0, 0))
    labels = LabelMap(g)
    labels.require_grid(g)
    with pytest.raises(GeometryError) as err:
        labels.require_grid(other)
    assert "does not match the CT grid" in str(err.value)
    assert g.describe() in str(err.value) and other.describe() in str(err.value)
