"""HU slices -> network input, and back: intensity, body-centred crop/pad, 2.5D context.

Pure numpy (and scipy for the body outline): training and a clinic's inference node both
use this module, and the node must never import training code or need torch for it.

Order of operations, the same everywhere: crop/pad the HU slice (padding is air,
-1024 HU) -> intensity transform. The crop box is recorded (``CropBox``) so that a
prediction on the cropped grid can be put back on the CT's own grid exactly (``uncrop``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
from scipy import ndimage

from cervseg.config import PreprocessConfig
from cervseg.errors import ConfigError, GeometryError
from cervseg.volume import Geometry

log = logging.getLogger(__name__)

AIR_HU = -1024.0
BODY_OPENING_PIXELS = 2  # removes couch shells and wires up to ~4 px thick from the body outline


@dataclass(frozen=True)
class CropBox:
    """In-plane window [y0, y0+height) x [x0, x0+width) of a (rows, cols) = source_shape image.

    y0/x0 may be negative and the window may run past the image: those pixels are padding.
    """

    y0: int
    x0: int
    height: int
    width: int
    source_shape: tuple[int, int]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CropBox":
        return cls(int(d["y0"]), int(d["x0"]), int(d["height"]), int(d["width"]),
                   tuple(int(s) for s in d["source_shape"]))  # type: ignore[arg-type]


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

def body_bounding_box(hu: np.ndarray, threshold: float) -> tuple[int, int, int, int] | None:
    """(ymin, ymax, xmin, xmax) inclusive of the body outline, or None when no voxel exceeds threshold.

    The body is the largest connected region above ``threshold`` HU in the axial
    projection of the whole volume (a 2D array is one slice), which leaves out the couch
    and small detached objects. The projection is first opened by a few pixels: a couch
    top's thin shell touches the patient's back and would otherwise join the body and
    widen it to the couch (moving the crop centre and the midline that sides the femoral
    heads). Nothing four pixels thick or thinner survives the opening.
    """
    arr = np.asarray(hu)
    mask = arr > threshold
    if mask.ndim == 3:
        mask = mask.any(axis=0)
    if not mask.any():
        return None
    opened = ndimage.binary_opening(mask, iterations=BODY_OPENING_PIXELS)
    if opened.any():
        mask = opened
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def crop_box_for(hu: np.ndarray, cfg: PreprocessConfig) -> CropBox:
    """The crop window of ``cfg.crop_size`` centred on the body's bounding box (whole image when None)."""
    body = body_bounding_box(hu, cfg.body_threshold_hu) if cfg.crop_size is not None else None
    return crop_box_around(body, np.asarray(hu).shape[-2:], cfg)


def crop_box_around(body: tuple[int, int, int, int] | None, shape: Iterable[int], cfg: PreprocessConfig) -> CropBox:
    """``crop_box_for`` given the body box already found (the predictor also reports on it)."""
    shape = tuple(int(s) for s in shape)
    if cfg.crop_size is None:
        return CropBox(0, 0, shape[0], shape[1], shape)  # type: ignore[arg-type]
    size = int(cfg.crop_size)
    if body is None:
        log.warning("no voxel above %.0f HU: centring the crop on the image", cfg.body_threshold_hu)
        cy, cx = shape[0] / 2.0, shape[1] / 2.0
    else:
        ymin, ymax, xmin, xmax = body
        cy, cx = (ymin + ymax + 1) / 2.0, (xmin + xmax + 1) / 2.0
    y0 = int(np.floor(cy - size / 2.0 + 0.5))
    x0 = int(np.floor(cx - size / 2.0 + 0.5))
    return CropBox(y0, x0, size, size, shape)  # type: ignore[arg-type]


def _overlap(start: int, length: int, limit: int) -> tuple[int, int, int, int]:
    """Source [s0, s1) and destination [d0, d1) ranges of a window against [0, limit)."""
    s0, s1 = max(start, 0), min(start + length, limit)
    if s1 <= s0:
        return 0, 0, 0, 0
    return s0, s1, s0 - start, s1 - start


def crop(array: np.ndarray, box: CropBox, fill: float = 0) -> np.ndarray:
    """Cut ``box`` out of the last two axes of ``array``, padding outside the image with ``fill``."""
    arr = np.asarray(array)
    if tuple(arr.shape[-2:]) != tuple(box.source_shape):
        raise GeometryError(f"crop box made for {box.source_shape} applied to an image of {arr.shape[-2:]}")
    out = np.full(arr.shape[:-2] + (box.height, box.width), fill, dtype=arr.dtype)
    ys0, ys1, yd0, yd1 = _overlap(box.y0, box.height, arr.shape[-2])
    xs0, xs1, xd0, xd1 = _overlap(box.x0, box.width, arr.shape[-1])
    out[..., yd0:yd1, xd0:xd1] = arr[..., ys0:ys1, xs0:xs1]
    return out


def uncrop(array: np.ndarray, box: CropBox, fill: float = 0) -> np.ndarray:
    """Put a cropped array back on the source grid; pixels outside the crop get ``fill``."""
    arr = np.asarray(array)
    if tuple(arr.shape[-2:]) != (box.height, box.width):
        raise GeometryError(f"array of {arr.shape[-2:]} does not match the crop {box.height}x{box.width}")
    out = np.full(arr.shape[:-2] + tuple(box.source_shape), fill, dtype=arr.dtype)
    ys0, ys1, yd0, yd1 = _overlap(box.y0, box.height, box.source_shape[0])
    xs0, xs1, xd0, xd1 = _overlap(box.x0, box.width, box.source_shape[1])
    out[..., ys0:ys1, xs0:xs1] = arr[..., yd0:yd1, xd0:xd1]
    return out


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
    """Apply one PreprocessConfig to a CT volume (z, y, x) in HU, and undo its crop."""

    def __init__(self, cfg: PreprocessConfig):
        if cfg.needs_statistics:
            raise ConfigError("preprocess: z-score needs zscore_mean/zscore_std (measured on the training data)")
        self.cfg = cfg

    @property
    def in_channels(self) -> int:
        return self.cfg.in_channels

    def crop_box(self, hu_volume: np.ndarray) -> CropBox:
        return crop_box_for(hu_volume, self.cfg)

    def slice_input(self, hu_volume: np.ndarray, z: int, box: CropBox) -> np.ndarray:
        """Network input for slice z: (2k+1, H, W) float32, neighbours as channels."""
        idx = context_indices(z, hu_volume.shape[0], self.cfg.context_slices)
        hu = np.asarray(hu_volume[idx])  # fancy indexing also reads a memory map
        return normalise(crop(hu, box, fill=AIR_HU), self.cfg)

    def volume_input(self, hu_volume: np.ndarray, box: CropBox | None = None) -> tuple[np.ndarray, CropBox]:
        """All slices at once: (z, 2k+1, H, W) float32 and the crop box used."""
        box = box or self.crop_box(hu_volume)
        cropped = normalise(crop(np.asarray(hu_volume), box, fill=AIR_HU), self.cfg)
        idx = np.stack([context_indices(z, cropped.shape[0], self.cfg.context_slices)
                        for z in range(cropped.shape[0])])
        return cropped[idx], box

    def restore(self, cropped: np.ndarray, box: CropBox, fill: float = 0) -> np.ndarray:
        """A per-slice output (..., H, W) on the crop back on the CT's in-plane grid."""
        return uncrop(cropped, box, fill=fill)
