"""Volume (CT in HU) and LabelMap (named boolean masks), both carrying one Geometry.

Geometry travels only inside these objects: nobody passes bare spacings or origins around.
Arrays are indexed (z, y, x) = (slice, row, column). Patient coordinates are DICOM LPS in mm.

Axis conventions (the place where auto-contouring tools most often go wrong):
- ``axes[2]`` is the LPS unit vector along a row (increasing column index), DICOM
  ImageOrientationPatient[0:3];
- ``axes[1]`` is the LPS unit vector down a column (increasing row index), IOP[3:6];
- ``axes[0]`` is the slice normal ``axes[2] x axes[1]``; slices are stored in increasing
  position along it, whatever their InstanceNumber or file name.
- ``origin`` is the LPS centre of voxel [0, 0, 0] (the first slice's ImagePositionPatient).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Mapping

import numpy as np
from pydicom.uid import CTImageStorage

from cervseg.errors import GeometryError


@dataclass(frozen=True)
class Geometry:
    """Where a (z, y, x) voxel grid lies in patient LPS space."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]  # mm along array axes (z, y, x)
    origin: tuple[float, float, float]  # LPS mm of the centre of voxel [0, 0, 0]
    axes: tuple[tuple[float, float, float], ...]  # LPS unit vectors of array axes z, y, x
    frame_of_reference_uid: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(s) for s in self.origin))
        object.__setattr__(self, "axes", tuple(tuple(float(c) for c in a) for a in self.axes))
        if len(self.shape) != 3 or len(self.spacing) != 3 or len(self.origin) != 3:
            raise GeometryError("geometry needs 3 dimensions for shape, spacing and origin")
        if any(s <= 0 for s in self.spacing):
            raise GeometryError(f"voxel spacing must be positive, got {self.spacing}")
        axes = np.asarray(self.axes)
        if axes.shape != (3, 3) or not np.allclose(axes @ axes.T, np.eye(3), atol=1e-4):
            raise GeometryError(f"geometry axes must be orthonormal, got {self.axes}")

    @classmethod
    def axial(
        cls,
        shape: tuple[int, int, int],
        spacing: tuple[float, float, float],
        origin: tuple[float, float, float],
        frame_of_reference_uid: str = "",
    ) -> "Geometry":
        """An HFS-like grid: rows along +x (left), columns along +y, slices along +z."""
        return cls(shape, spacing, origin, ((0, 0, 1), (0, 1, 0), (1, 0, 0)), frame_of_reference_uid)

    @property
    def axes_matrix(self) -> np.ndarray:
        """3x3 array; row i is the LPS unit vector of array axis i."""
        return np.asarray(self.axes, dtype=float)

    @property
    def index_to_lps_matrix(self) -> np.ndarray:
        """4x4 affine mapping homogeneous (z, y, x) indices to LPS mm (x, y, z)."""
        affine = np.eye(4)
        affine[:3, :3] = (self.axes_matrix * np.asarray(self.spacing)[:, None]).T
        affine[:3, 3] = self.origin
        return affine

    def index_to_lps(self, indices: np.ndarray) -> np.ndarray:
        """(N, 3) float (z, y, x) indices -> (N, 3) LPS mm."""
        idx = np.atleast_2d(np.asarray(indices, dtype=float))
        return idx @ self.index_to_lps_matrix[:3, :3].T + np.asarray(self.origin)

    def lps_to_index(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) LPS mm -> (N, 3) float (z, y, x) indices."""
        pts = np.atleast_2d(np.asarray(points, dtype=float)) - np.asarray(self.origin)
        return pts @ np.linalg.inv(self.index_to_lps_matrix[:3, :3]).T

    def slice_positions(self) -> np.ndarray:
        """LPS position (ImagePositionPatient) of each slice's first voxel, shape (nz, 3)."""
        k = np.arange(self.shape[0], dtype=float)
        return np.asarray(self.origin) + k[:, None] * self.spacing[0] * self.axes_matrix[0]

    def slice_normal_coordinates(self) -> np.ndarray:
        """Each slice's position projected on the slice normal (mm), increasing."""
        return self.slice_positions() @ self.axes_matrix[0]

    def nifti_affine(self) -> np.ndarray:
        """RAS affine for an array stored as (x, y, z) = (column, row, slice), as NIfTI tools expect."""
        lps = self.index_to_lps_matrix
        # reorder index columns from (z, y, x) to (x, y, z) and flip L->R, P->A
        ijk = lps[:, [2, 1, 0, 3]]
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk

    @classmethod
    def from_nifti_affine(
        cls, affine: np.ndarray, shape_xyz: tuple[int, int, int], frame_of_reference_uid: str = ""
    ) -> "Geometry":
        """Inverse of nifti_affine for an (x, y, z)-stored array."""
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine, dtype=float)
        cols = lps[:3, [2, 1, 0]]  # columns now for index axes z, y, x
        spacing = np.linalg.norm(cols, axis=0)
        axes = (cols / spacing).T
        return cls(
            (shape_xyz[2], shape_xyz[1], shape_xyz[0]),
            tuple(spacing),
            tuple(lps[:3, 3]),
            tuple(map(tuple, axes)),
            frame_of_reference_uid,
        )

    def same_grid(self, other: "Geometry", tol_mm: float = 1e-3) -> bool:
        """True when both describe the same voxels in space (frame of reference not compared)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=tol_mm)
            and np.allclose(self.origin, other.origin, atol=max(tol_mm, 1e-2))
            and np.allclose(self.axes_matrix, other.axes_matrix, atol=1e-4)
        )

    def canonical_flips(self) -> tuple[bool, bool, bool]:
        """Which array axes (z, y, x) to reverse so the grid reads like HFS.

        Why: a 2D network learns anatomy as it looks on HFS images (patient left at high
        columns, posterior at high rows, superior at high slices). An FFS or prone series
        holds the same patient mirrored in the array; flipping it to this canonical layout
        before inference (and back after) keeps left and right where they belong.
        Only axis-aligned grids are supported (oblique series are refused on reading).
        """
        axes = self.axes_matrix
        expected = np.eye(3)[[2, 1, 0]]  # axis z ~ +S, y ~ +P, x ~ +L
        dots = np.einsum("ij,ij->i", axes, expected)
        if np.any(np.abs(np.abs(dots) - 1.0) > 1e-3):
            raise GeometryError(f"grid is not axis-aligned, cannot bring it to HFS layout: axes {self.axes}")
        return tuple(bool(d < 0) for d in dots)  # type: ignore[return-value]

    def flipped(self, flips: tuple[bool, bool, bool]) -> "Geometry":
        """The geometry of the same voxels after reversing the flagged array axes."""
        axes = self.axes_matrix.copy()
        last = np.array([n - 1 if f else 0 for n, f in zip(self.shape, flips)], dtype=float)
        origin = self.index_to_lps(last)[0]
        for i, f in enumerate(flips):
            if f:
                axes[i] = -axes[i]
        return Geometry(self.shape, self.spacing, tuple(origin), tuple(map(tuple, axes)), self.frame_of_reference_uid)

    def describe(self) -> str:
        """One-line human description, used in error messages."""
        return (
            f"shape(z,y,x)={self.shape} spacing(z,y,x)={tuple(round(s, 4) for s in self.spacing)} "
            f"origin(LPS)={tuple(round(o, 3) for o in self.origin)}"
        )


@dataclass
class SeriesInfo:
    """DICOM identity of the series a Volume came from (empty for phantoms before writing)."""

    study_instance_uid: str = ""
    series_instance_uid: str = ""
    sop_instance_uids: tuple[str, ...] = ()  # one per slice, in array order
    sop_class_uid: str = CTImageStorage
    patient: dict[str, str] = field(default_factory=dict)  # PatientName, PatientID, ...
    study: dict[str, str] = field(default_factory=dict)  # StudyDate, StudyID, ...
    patient_position: str = "HFS"
    source_files: tuple[str, ...] = ()


@dataclass
class Volume:
    """A CT volume in Hounsfield units with its geometry and DICOM identity."""

    array: np.ndarray  # (z, y, x) HU
    geometry: Geometry
    series: SeriesInfo = field(default_factory=SeriesInfo)

    def __post_init__(self) -> None:
        if tuple(self.array.shape) != self.geometry.shape:
            raise GeometryError(
                f"array shape {self.array.shape} does not match geometry {self.geometry.shape}"
            )


def flip_array(array: np.ndarray, flips: tuple[bool, bool, bool]) -> np.ndarray:
    """Reverse the flagged (z, y, x) axes of an array (a view; leading extra axes allowed)."""
    index = tuple(slice(None, None, -1) if f else slice(None) for f in flips)
    return array[(Ellipsis, *index)]


class LabelMap(Mapping[str, np.ndarray]):
    """Named boolean masks that share one Geometry by construction."""

    def __init__(self, geometry: Geometry, masks: Mapping[str, np.ndarray] | None = None):
        self.geometry = geometry
        self._masks: dict[str, np.ndarray] = {}
        for name, mask in (masks or {}).items():
            self[name] = mask

    def __setitem__(self, name: str, mask: np.ndarray) -> None:
        mask = np.asarray(mask)
        if tuple(mask.shape) != self.geometry.shape:
            raise GeometryError(
                f"mask '{name}' has shape {mask.shape}, the grid has {self.geometry.shape}"
            )
        self._masks[name] = mask.astype(bool, copy=False)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._masks[name]

    def __delitem__(self, name: str) -> None:
        del self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def require_grid(self, geometry: Geometry) -> None:
        """Raise GeometryError, naming both grids, unless the masks lie on ``geometry``'s voxels.

        Why one place: every writer (RTSTRUCT, DICOM-SEG, NIfTI, the cache) must refuse masks
        from another grid with the same clear message, never resample them silently.
        """
        if not self.geometry.same_grid(geometry):
            raise GeometryError(
                f"masks grid {self.geometry.describe()} does not match the CT grid {geometry.describe()}"
            )

    def subset(self, names: Iterable[str]) -> "LabelMap":
        """A LabelMap with only the named masks (shared arrays, same geometry)."""
        return LabelMap(self.geometry, {n: self._masks[n] for n in names})

    def voxel_volume_ml(self, name: str) -> float:
        """Volume of one structure in millilitres."""
        voxel_mm3 = float(np.prod(self.geometry.spacing))
        return float(self._masks[name].sum()) * voxel_mm3 / 1000.0


def canonical_volume(volume: Volume) -> Volume:
    """The same CT in the HFS layout (see Geometry.canonical_flips); unchanged if already so.

    Why: training data from FFS or prone patients must look to a 2D network like the HFS
    images it is applied to, or it learns mirrored anatomy.
    """
    flips = volume.geometry.canonical_flips()
    if not any(flips):
        return volume
    series = volume.series
    if flips[0]:
        series = replace(series, sop_instance_uids=tuple(reversed(series.sop_instance_uids)),
                         source_files=tuple(reversed(series.source_files)))
    return Volume(np.ascontiguousarray(flip_array(volume.array, flips)), volume.geometry.flipped(flips), series)


def canonical_labels(labels: LabelMap) -> LabelMap:
    """The same masks in the HFS layout (matching canonical_volume)."""
    flips = labels.geometry.canonical_flips()
    if not any(flips):
        return labels
    return LabelMap(labels.geometry.flipped(flips),
                    {n: np.ascontiguousarray(flip_array(m, flips)) for n, m in labels.items()})

