"""NIfTI in and out: CT as image.nii.gz (HU, int16), structures as masks/<Name>.nii.gz (uint8).

Arrays are stored (x, y, z) = (column, row, slice) with the RAS affine of
``Geometry.nifti_affine()``, which is what 3D Slicer, ITK-SNAP and nnU-Net expect, so the
masks show where the CT is.

Reading masks back accepts what other tools write for the same voxels: an LPS-flipped
affine, permuted axes, a trailing singleton 4th dimension, label values other than 1. Such
masks are reoriented onto the CT grid with ``nibabel.orientations`` when that is an exact
permutation/flip of the same voxels; anything else (another grid, another spacing, an
oblique affine) is refused with both geometries in the message, never resampled.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt

from cervseg.errors import GeometryError, InputError
from cervseg.outputs import atomic_dir, atomic_file
from cervseg.progress import progress
from cervseg.volume import Geometry, LabelMap, Volume

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
INT16_RANGE = (-32768, 32767)


def _image(array_zyx: np.ndarray, geometry: Geometry, dtype: type) -> nib.Nifti1Image:
    data = np.ascontiguousarray(np.transpose(array_zyx, (2, 1, 0)).astype(dtype, copy=False))
    image = nib.Nifti1Image(data, geometry.nifti_affine())
    image.set_qform(geometry.nifti_affine(), code=1)  # scanner (patient) coordinates
    image.set_sform(geometry.nifti_affine(), code=1)
    image.header.set_xyzt_units("mm")
    return image


def _save(image: nib.Nifti1Image, path: Path) -> Path:
    """Save atomically; the temporary name keeps the .nii.gz suffix nibabel decides by."""
    path = Path(path)
    with atomic_file(path) as tmp:
        named = tmp.with_name(tmp.name + "".join(path.suffixes))
        try:
            nib.save(image, named)
            named.replace(tmp)
        finally:
            named.unlink(missing_ok=True)
    return path


def write_volume(volume: Volume, path: Path) -> Path:
    """CT in HU (rounded, clipped to int16) as a NIfTI file."""
    hu = np.clip(np.rint(volume.array), *INT16_RANGE)
    return _save(_image(hu, volume.geometry, np.int16), path)


def write_mask(mask: np.ndarray, geometry: Geometry, path: Path) -> Path:
    """One boolean (z, y, x) mask as a uint8 0/1 NIfTI file."""
    return _save(_image(np.asarray(mask, dtype=bool), geometry, np.uint8), path)


def write_labels(labels: LabelMap, folder: Path) -> list[Path]:
    """Every structure as ``folder/<Name>.nii.gz``; returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_mask(labels[name], labels.geometry, folder / f"{name}.nii.gz")
        for name in progress(list(labels), "writing masks")
    ]


def structure_name(path: Path) -> str:
    """The structure a mask file stands for: its name without .nii/.nii.gz."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def mask_files(folder: Path) -> list[Path]:
    """NIfTI files directly in ``folder`` (sorted; other files and hidden files ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: masks folder not found")
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(NIFTI_SUFFIXES)
    )
    if not files:
        raise InputError(f"{folder}: no NIfTI masks (*.nii.gz or *.nii) in this folder")
    return files


def _describe_affine(affine: np.ndarray, shape_xyz: tuple[int, ...]) -> str:
    try:
        return Geometry.from_nifti_affine(affine, tuple(shape_xyz)).describe()
    except GeometryError:
        rounded = np.round(np.asarray(affine)[:3], 3).tolist()
        return f"shape(x,y,z)={tuple(shape_xyz)} non-orthogonal affine={rounded}"


def load_3d(path: Path, what: str) -> tuple[nib.Nifti1Image, np.ndarray]:
    """A NIfTI file and its 3D data (trailing singleton axes dropped); one clear error otherwise."""
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # nibabel raises many kinds for a bad file
        raise InputError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise GeometryError(f"{path}: a {what} must be 3D, this one has shape {data.shape}")
    return image, data


def read_volume(path: Path) -> Volume:
    """A CT written by write_volume (image.nii.gz), back as a Volume on its own grid."""
    image, data = load_3d(Path(path), "CT image")
    geometry = Geometry.from_nifti_affine(image.affine, data.shape)
    return Volume(np.ascontiguousarray(np.transpose(data, (2, 1, 0))), geometry)


def read_mask(path: Path, geometry: Geometry) -> np.ndarray:
    """One NIfTI mask as a boolean (z, y, x) array on ``geometry``'s grid (voxels > 0 inside).

    Raises GeometryError, naming the file and both geometries, when the mask's voxels are
    not exactly the CT's voxels in some axis order and direction.
    """
    path = Path(path)
    image, data = load_3d(path, "mask")
    affine = np.asarray(image.affine, dtype=float)
    target = geometry.nifti_affine()
    target_shape = geometry.shape[::-1]
    try:
        transform = ornt.ornt_transform(ornt.io_orientation(affine), ornt.io_orientation(target))
        data = ornt.apply_orientation(data, transform)
        affine = affine @ ornt.inv_ornt_aff(transform, image.shape[:3])
    except ValueError:
        pass  # degenerate affine: the comparison below refuses it
    spacing = np.abs(np.asarray(geometry.spacing[::-1]))
    same = data.shape == target_shape and np.allclose(
        affine[:3, :3], target[:3, :3], atol=1e-3 * spacing.max()
    ) and np.allclose(affine[:3, 3], target[:3, 3], atol=max(1e-2, 1e-3 * spacing.max()))
    if not same:
        raise GeometryError(
            f"{path}: mask grid {_describe_affine(image.affine, image.shape[:3])} "
            f"does not match the CT grid {geometry.describe()}"
        )
    return np.ascontiguousarray(np.transpose(data > 0, (2, 1, 0)))


def read_labels(folder: Path, geometry: Geometry) -> LabelMap:
    """A folder of NIfTI masks (file stem = structure name) as a LabelMap on the CT grid."""
    labels = LabelMap(geometry)
    for path in progress(mask_files(folder), "reading masks"):
        labels[structure_name(path)] = read_mask(path, geometry)
    return labels


def write_case(volume: Volume, labels: LabelMap, out_dir: Path) -> Path:
    """``out_dir/image.nii.gz`` and ``out_dir/masks/<Name>.nii.gz``, all or nothing.

    The folder appears (or replaces an unchanged previous cervseg output) only once complete.
    """
    out_dir = Path(out_dir)
    labels.require_grid(volume.geometry)
    with atomic_dir(out_dir) as tmp:
        write_volume(volume, tmp / "image.nii.gz")
        (tmp / "masks").mkdir()
        write_labels(labels, tmp / "masks")
    return out_dir
