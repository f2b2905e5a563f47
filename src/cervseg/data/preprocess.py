"""HU slices -> network input, and back: the plan's grid (data.grid), intensity, 2.5D context.

Pure numpy (and scipy for the body outline): training and a clinic's inference node both
use this module, and the node must never import training code or need torch for it.

Order of operations, the same everywhere: place the plan's grid on the CT around the body
(``grid.grid_for``) -> resample or crop/pad the HU slice onto it (padding is air,
-1024 HU) -> intensity transform. The grid is kept (``SliceGrid``) so that a prediction on
it can be put back on the CT's own grid (``SliceGrid.to_source``).
"""

from __future__ import annotations

import logging
from typing import Iterable

import numpy as np

from cervseg.config import PreprocessConfig
from cervseg.data.grid import (  # noqa: F401  (re-exported: the crop is part of the preprocessing)
    BodyBox, CropBox, SliceGrid, body_bounding_box, crop, crop_box_around, grid_for, uncrop,
)
from cervseg.errors import ConfigError, GeometryError
from cervseg.volume import Geometry

log = logging.getLogger(__name__)

AIR_HU = -1024.0


# ---------------------------------------------------------------- intensity

def clamp_zscore(hu: np.ndarray, clamp: tuple[float, float], mean: float, std: float) -> np.ndarray:
    """Clamp HU to ``clamp`` then standardise (paper 000: [-1024, 2048], zero mean)."""
    out = np.clip(np.asarray(hu, dtype=np.float32), clamp[0], clamp[1])
    out -= np.float32(mean)
    out /= np.float32(std)
    return out


def window(hu: np.ndarray, width: float, level: float) -> np.ndarray:
    """Map the window [level - width/2, level + width/2] linearly to [0, 1] (paper 001: W300/L50)."""
    lo = level - width / 2.0
    out = (np.asarray(hu, dtype=np.float32) - np.float32(lo)) / np.float32(width)
    return np.clip(out, 0.0, 1.0, out=out)


def normalise(hu: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """The configured intensity transform, float32 out."""
    if cfg.intensity == "window":
        return window(hu, cfg.window_width, cfg.window_level)
    if cfg.zscore_mean is None or cfg.zscore_std is None:
        raise ConfigError("preprocess: z-score statistics are not set (zscore_mean/zscore_std)")
    return clamp_zscore(hu, cfg.clamp_hu, cfg.zscore_mean, cfg.zscore_std)


def zscore_statistics(volumes: Iterable[np.ndarray], clamp: tuple[float, float], every: int = 1) -> tuple[float, float]:
    """Mean and standard deviation of clamped HU over every ``every``-th slice of the volumes.

    Accumulated in float64 sums so that many large volumes do not need to sit in memory.
    """
    n = 0
    s = 0.0
    s2 = 0.0
    for vol in volumes:
        v = np.clip(np.asarray(vol[::every], dtype=np.float64), clamp[0], clamp[1])
        n += v.size
        s += float(v.sum())
        s2 += float(np.square(v).sum())
    if n == 0:
        raise ConfigError("preprocess: no voxels to compute z-score statistics from")
    mean = s / n
    std = float(np.sqrt(max(s2 / n - mean * mean, 0.0)))
    return mean, max(std, 1e-6)


# ---------------------------------------------------------------- crop / pad

def crop_box_for(hu: np.ndarray, cfg: PreprocessConfig) -> CropBox:
    """The pixel plan's crop window centred on the body's bounding box (whole image when no crop_size)."""
    body = body_bounding_box(hu, cfg.body_threshold_hu) if cfg.crop_size is not None else None
    return crop_box_around(body, np.asarray(hu).shape[-2:], cfg)


def crop_geometry(geometry: Geometry, box: CropBox) -> Geometry:
    """The geometry of the cropped grid: same axes and spacing, origin moved to voxel (0, y0, x0)."""
    if tuple(geometry.shape[1:]) != tuple(box.source_shape):
        raise GeometryError(f"crop box made for {box.source_shape} applied to {geometry.describe()}")
    origin = geometry.index_to_lps(np.array([[0.0, box.y0, box.x0]]))[0]
    return Geometry(
        (geometry.shape[0], box.height, box.width), geometry.spacing, tuple(origin),
        geometry.axes, geometry.frame_of_reference_uid,
    )


def fraction_outside(masks: np.ndarray, box: CropBox) -> np.ndarray:
    """Per leading index of (S, ..., y, x) masks: share of the mask's voxels the crop cuts away."""
    m = np.asarray(masks, dtype=bool)
    total = m.reshape(m.shape[0], -1).sum(axis=1)
    kept = crop(m, box, fill=False).reshape(m.shape[0], -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1.0 - kept / np.maximum(total, 1), 0.0)


# ---------------------------------------------------------------- 2.5D

def context_indices(z: int, nz: int, k: int) -> np.ndarray:
    """Slice indices z-k .. z+k, edge-replicated at the ends of the volume."""
    return np.clip(np.arange(z - k, z + k + 1), 0, nz - 1)


# ---------------------------------------------------------------- the whole chain

class Preprocessor:
    """Apply one plan (PreprocessConfig) to a CT volume (z, y, x) in HU, and undo its grid."""

    def __init__(self, cfg: PreprocessConfig):
        if cfg.needs_statistics:
            raise ConfigError("preprocess: z-score needs zscore_mean/zscore_std (measured on the training data)")
        self.cfg = cfg

    @property
    def in_channels(self) -> int:
        return self.cfg.in_channels

    def body(self, hu_volume: np.ndarray) -> BodyBox | None:
        """The one body detection of a CT (canonical layout), with the plan's threshold."""
        return body_bounding_box(hu_volume, self.cfg.body_threshold_hu)

    def grid(self, shape: Iterable[int], pixel_mm: tuple[float, ...], body: BodyBox | None) -> SliceGrid:
        """The plan's grid on a CT of in-plane ``shape`` and (row, col) ``pixel_mm``, placed by its ``body``."""
        return grid_for(self.cfg, body, shape, pixel_mm)

    def crop_box(self, hu_volume: np.ndarray) -> CropBox:
        """The pixel plan's crop box (the grid of a pixel plan is a crop)."""
        return crop_box_for(hu_volume, self.cfg)

    def slice_input(self, hu_volume: np.ndarray, z: int, grid: SliceGrid | CropBox) -> np.ndarray:
        """Network input for slice z: (2k+1, H, W) float32, neighbours (by slice index) as channels."""
        idx = context_indices(z, hu_volume.shape[0], self.cfg.context_slices)
        hu = np.asarray(hu_volume[idx])  # fancy indexing also reads a memory map
        if isinstance(grid, CropBox):
            grid = SliceGrid.from_box(grid)
        return normalise(grid.to_network(hu, fill=AIR_HU), self.cfg)

    def batch_input(self, hu_volume: np.ndarray, zs: range, grid: SliceGrid) -> np.ndarray:
        """``slice_input`` of the slices ``zs`` as one (n, 2k+1, H, W) array, each CT slice
        resampled once (not once per neighbour it is context for)."""
        k, nz = self.cfg.context_slices, hu_volume.shape[0]
        low, high = max(zs.start - k, 0), min(zs.stop + k, nz)
        resampled = normalise(grid.to_network(np.asarray(hu_volume[low:high]), fill=AIR_HU), self.cfg)
        idx = np.stack([context_indices(z, nz, k) for z in zs]) - low
        return resampled[idx]

    def volume_input(self, hu_volume: np.ndarray, box: CropBox | None = None) -> tuple[np.ndarray, CropBox]:
        """Pixel plan, all slices at once: (z, 2k+1, H, W) float32 and the crop box used."""
        box = box or self.crop_box(hu_volume)
        cropped = normalise(crop(np.asarray(hu_volume), box, fill=AIR_HU), self.cfg)
        idx = np.stack([context_indices(z, cropped.shape[0], self.cfg.context_slices)
                        for z in range(cropped.shape[0])])
        return cropped[idx], box

    def restore(self, cropped: np.ndarray, box: CropBox, fill: float = 0) -> np.ndarray:
        """A per-slice output (..., H, W) on the crop back on the CT's in-plane grid."""
        return uncrop(cropped, box, fill=fill)
