"""NIfTI out and back: RAS affine, (x, y, z) storage, masks from other tools reoriented or refused."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from cervseg.errors import GeometryError, InputError
from cervseg.nifti import read_labels, read_mask, write_labels, write_mask, write_volume
from cervseg.volume import Geometry, LabelMap, Volume

HFS_AXES = ((0, 0, 1), (0, 1, 0), (1, 0, 0))
FFS_AXES = ((0, 0, -1), (0, 1, 0), (-1, 0, 0))
HFP_AXES = ((0, 0, 1), (0, -1, 0), (-1, 0, 0))


def geometry(axes=HFS_AXES) -> Geometry:
    return Geometry((6, 9, 11), (2.5, 0.9, 0.8), (-40.2, 12.5, 301.0), axes, "1.2.3")


def asymmetric_mask(g: Geometry) -> np.ndarray:
    """A mask with no symmetry, so any flip or transpose shows."""
    rng = np.random.default_rng(3)
    m = rng.random(g.shape) > 0.6
    m[0, 0, :4] = True
    m[-1, -1, -1] = False
    return m


def test_volume_written_as_int16_hu_with_ras_affine(tmp_path) -> None:
    g = geometry()
    hu = np.random.default_rng(0).normal(0, 600, g.shape)
    hu[0, 0, 0] = -50000.0  # outside int16: clipped, not wrapped
    path = write_volume(Volume(hu, g), tmp_path / "image.nii.gz")
    img = nib.load(path)
    assert img.get_data_dtype() == np.int16
    assert np.allclose(img.affine, g.nifti_affine(), atol=1e-4)
    assert img.header["qform_code"] == 1 and img.header["sform_code"] == 1
    data = np.asanyarray(img.dataobj)
    assert data.shape == (11, 9, 6)
    z, y, x = 4, 7, 2
    assert data[x, y, z] == np.clip(np.rint(hu[z, y, x]), -32768, 32767)
    assert data[0, 0, 0] == -32768
    # the voxel's RAS position is the LPS position with x and y negated
    lps = g.index_to_lps([[z, y, x]])[0]
    ras = img.affine @ [x, y, z, 1]
    assert np.allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-3)
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("axes", [HFS_AXES, FFS_AXES, HFP_AXES], ids=["HFS", "FFS", "HFP"])
def test_masks_round_trip(tmp_path, axes) -> None:
    g = geometry(axes)
    labels = LabelMap(g, {"Bladder": asymmetric_mask(g), "My Odd ROI": ~asymmetric_mask(g)})
    paths = write_labels(labels, tmp_path / "masks")
    assert sorted(p.name for p in paths) == ["Bladder.nii.gz", "My Odd ROI.nii.gz"]
    assert nib.load(paths[0]).get_data_dtype() == np.uint8
    back = read_labels(tmp_path / "masks", g)
    assert set(back) == {"Bladder", "My Odd ROI"}
    for name in labels:
        assert np.array_equal(back[name], labels[name])


def _save(data: np.ndarray, affine: np.ndarray, path) -> None:
    nib.save(nib.Nifti1Image(data, affine), str(path))


def test_lps_flipped_mask_is_reoriented(tmp_path) -> None:
    """A tool storing rows/columns in the other direction (affine adjusted): same voxels."""
    g = geometry()
    m = asymmetric_mask(g)
    data = np.transpose(m, (2, 1, 0)).astype(np.uint8)[::-1, ::-1, :]
    a = g.nifti_affine().copy()
    nx, ny = data.shape[0], data.shape[1]
    # new index i' = n-1-i: the column flips sign and the origin moves to the old last voxel
    a[:3, 3] = a[:3, 3] + a[:3, 0] * (nx - 1) + a[:3, 1] * (ny - 1)
    a[:3, 0] *= -1
    a[:3, 1] *= -1
    _save(data, a, tmp_path / "m.nii.gz")
    assert np.array_equal(read_mask(tmp_path / "m.nii.gz", g), m)


def test_zyx_stored_mask_is_reoriented(tmp_path) -> None:
    """A tool writing the numpy (z, y, x) array with a matching permuted affine."""
    g = geometry(FFS_AXES)
    m = asymmetric_mask(g)
    a = g.nifti_affine()[:, [2, 1, 0, 3]]
    _save(m.astype(np.int16), a, tmp_path / "m.nii")
    assert np.array_equal(read_mask(tmp_path / "m.nii", g), m)


def test_label_values_above_zero_are_inside_and_4d_singleton_accepted(tmp_path) -> None:
    g = geometry()
    m = asymmetric_mask(g)
    data = np.transpose(m, (2, 1, 0)).astype(np.float32) * 3.0
    _save(data[..., None], g.nifti_affine(), tmp_path / "m.nii.gz")
    assert np.array_equal(read_mask(tmp_path / "m.nii.gz", g), m)


@pytest.mark.parametrize("change", ["shift", "spacing", "shape", "oblique"])
def test_wrong_grid_refused_with_both_geometries(tmp_path, change) -> None:
    g = geometry()
    other = g
    data = np.zeros(g.shape[::-1], np.uint8)
    affine = g.nifti_affine().copy()
    if change == "shift":
        affine[0, 3] += 5.0
    elif change == "spacing":
        affine[2, 2] = 3.0
    elif change == "shape":
        data = np.zeros((11, 9, 7), np.uint8)
    else:
        c, s = np.cos(0.2), np.sin(0.2)
        affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ affine[:3, :3]
    _save(data, affine, tmp_path / "Bladder.nii.gz")
    with pytest.raises(GeometryError) as err:
        read_labels(tmp_path, other)
    msg = str(err.value)
    assert "\n" not in msg
    assert "Bladder.nii.gz" in msg
    assert g.describe() in msg
    assert "mask grid" in msg and msg.count("shape(") == 2


def test_folder_without_masks_refused(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("not a mask")
    with pytest.raises(InputError, match="no NIfTI masks"):
        read_labels(tmp_path, geometry())
    with pytest.raises(InputError, match="not found"):
        read_labels(tmp_path / "absent", geometry())


def test_unreadable_nifti_refused(tmp_path) -> None:
    (tmp_path / "Bladder.nii.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputError, match="Bladder.nii.gz"):
        read_labels(tmp_path, geometry())


def test_write_mask_is_atomic_on_failure(tmp_path, monkeypatch) -> None:
    g = geometry()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(OSError):
        write_mask(asymmetric_mask(g), g, tmp_path / "Bladder.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_read_volume_round_trips_write_volume(tmp_path) -> None:
    """image.nii.gz written for one orientation reads back to the same voxels in patient space."""
    import numpy as np

    from cervseg.nifti import read_volume, write_volume
    from cervseg.volume import Geometry, Volume

    g = Geometry((3, 4, 5), (2.5, 0.8, 0.9), (10.0, -20.0, 30.0), ((0, 0, -1), (0, 1, 0), (-1, 0, 0)))
    hu = np.arange(60, dtype=np.int16).reshape(g.shape) - 30
    back = read_volume(write_volume(Volume(hu, g), tmp_path / "image.nii.gz"))
    assert back.geometry.same_grid(g)
    assert np.array_equal(back.array, hu)
