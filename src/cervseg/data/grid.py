"""Where the network's grid lies on a CT slice, and resampling between the two.

One body detection per CT (``body_bounding_box``) places the network's grid
(``SliceGrid``, from the plan ``grid_for``); training, inference, the crop warning and the
femoral-head midline all use that one body box. Pure numpy (and scipy for the body outline):
a clinic's contouring node uses this module, and must never import training code.

The millimetre plan resamples each slice to the plan's pixel size: network pixel (i, j)
has its centre at CT index (y0 + i * step_y, x0 + j * step_x), where step is the plan
spacing over the CT spacing. Images and probabilities are interpolated linearly (separably,
rows then columns); a point more than half a pixel outside the source grid takes the fill
value. When the CT's pixels already are the plan's (step 1 and an integral origin, always
so for the pixel plan) the grid is a plain crop/pad and no value is interpolated at all.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Iterable, NamedTuple

import numpy as np
from scipy import ndimage

from cervseg.config import PreprocessConfig
from cervseg.errors import GeometryError
from cervseg.volume import Geometry

log = logging.getLogger(__name__)

BODY_OPENING_PIXELS = 2  # removes couch shells and wires up to ~4 px thick from the body outline
_SAME_STEP = 1e-6  # relative: a CT whose pixels are the plan's is cropped, not interpolated


class BodyBox(NamedTuple):
    """Inclusive (ymin, ymax, xmin, xmax) array indices of the body outline on one in-plane grid."""

    ymin: int
    ymax: int
    xmin: int
    xmax: int

    @property
    def centre(self) -> tuple[float, float]:
        """(row, column) index of the box centre."""
        return (self.ymin + self.ymax) / 2.0, (self.xmin + self.xmax) / 2.0

    def midline_x(self, geometry: Geometry) -> float:
        """Patient x (LPS mm) of the box centre on ``geometry``'s grid: the midline that sides the femoral heads."""
        cy, cx = self.centre
        point = [(geometry.shape[0] - 1) / 2.0, cy, cx]
        return float(geometry.index_to_lps(np.asarray([point]))[0, 0])


def body_bounding_box(hu: np.ndarray, threshold: float) -> BodyBox | None:
    """The body outline's box, or None when no voxel exceeds ``threshold`` HU.

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
    return BodyBox(int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))


# ---------------------------------------------------------------- integral crop / pad

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


def crop_box_around(body: BodyBox | tuple[int, int, int, int] | None, shape: Iterable[int],
                    cfg: PreprocessConfig) -> CropBox:
    """The pixel plan's crop of ``cfg.crop_size`` centred on the body box (whole image when None)."""
    shape = tuple(int(s) for s in shape)
    if cfg.crop_size is None:
        return CropBox(0, 0, shape[0], shape[1], shape)  # type: ignore[arg-type]
    size = int(cfg.crop_size)
    cy, cx = _centre(body, shape, cfg)
    y0 = int(np.floor(cy - (size - 1) / 2.0 + 0.5))
    x0 = int(np.floor(cx - (size - 1) / 2.0 + 0.5))
    return CropBox(y0, x0, size, size, shape)  # type: ignore[arg-type]


def _centre(body: BodyBox | tuple[int, int, int, int] | None, shape: tuple[int, ...],
            cfg: PreprocessConfig) -> tuple[float, float]:
    if body is None:
        log.warning("no voxel above %.0f HU: centring the crop on the image", cfg.body_threshold_hu)
        return (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    return BodyBox(*body).centre


# ---------------------------------------------------------------- the network's grid

def _linear_along(array: np.ndarray, axis: int, coords: np.ndarray, fill: float) -> np.ndarray:
    """Sample ``array`` at increasing fractional indices ``coords`` along ``axis``.

    Linear between neighbours, the edge value up to half a pixel beyond the edge, ``fill``
    further out. The covered coordinates are one run (they increase), so only that run is
    computed, in place, in float32.
    """
    n = array.shape[axis]
    shape = list(array.shape)
    shape[axis] = coords.size
    out = np.full(shape, fill, dtype=np.float32)
    inside = np.flatnonzero((coords >= -0.5) & (coords <= n - 0.5))
    if inside.size == 0:
        return out
    run = slice(int(inside[0]), int(inside[-1]) + 1)
    c = np.clip(coords[run], 0.0, n - 1.0)
    i0 = np.minimum(np.floor(c).astype(np.intp), max(n - 2, 0))
    weights = [1] * array.ndim
    weights[axis] = -1
    f = (c - i0).astype(np.float32).reshape(weights)
    lo = np.take(array, i0, axis=axis).astype(np.float32, copy=False)
    hi = np.take(array, np.minimum(i0 + 1, n - 1), axis=axis).astype(np.float32, copy=False)
    hi -= lo
    hi *= f
    hi += lo
    where = [slice(None)] * array.ndim
    where[axis] = run
    out[tuple(where)] = hi
    return out


@dataclass(frozen=True)
class SliceGrid:
    """The network's (height, width) grid on a CT's (rows, cols) in-plane grid.

    ``origin``: CT (row, column) index of network pixel (0, 0)'s centre; ``step``: CT pixels
    per network pixel along rows and columns.
    """

    source_shape: tuple[int, int]
    origin: tuple[float, float]
    step: tuple[float, float]
    shape: tuple[int, int]

    @classmethod
    def from_box(cls, box: CropBox) -> "SliceGrid":
        return cls(tuple(box.source_shape), (float(box.y0), float(box.x0)), (1.0, 1.0),  # type: ignore[arg-type]
                   (box.height, box.width))

    @property
    def integral(self) -> bool:
        """A plain crop/pad: one CT pixel per network pixel at whole-pixel offsets."""
        return self.step == (1.0, 1.0) and all(float(o).is_integer() for o in self.origin)

    @property
    def crop_box(self) -> CropBox:
        if not self.integral:
            raise GeometryError("this grid resamples the CT; it is not a crop box")
        return CropBox(int(self.origin[0]), int(self.origin[1]), self.shape[0], self.shape[1],
                       self.source_shape)

    def _coords(self, axis: int) -> np.ndarray:
        return self.origin[axis] + self.step[axis] * np.arange(self.shape[axis], dtype=np.float64)

    def _check(self, array: np.ndarray, shape: tuple[int, int], what: str) -> None:
        if tuple(array.shape[-2:]) != tuple(shape):
            raise GeometryError(f"{what} of {tuple(array.shape[-2:])} does not fit the grid's {tuple(shape)}")

    def to_network(self, array: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(..., rows, cols) on the CT -> (..., height, width) on the network grid (float32 when resampled)."""
        arr = np.asarray(array)
        self._check(arr, self.source_shape, "an image")
        if self.integral:
            return crop(arr, self.crop_box, fill=fill)
        out = _linear_along(arr, arr.ndim - 2, self._coords(0), fill)
        return _linear_along(out, arr.ndim - 1, self._coords(1), fill)

    def to_source(self, array: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(..., height, width) on the network grid -> (..., rows, cols) on the CT (float32 when resampled)."""
        arr = np.asarray(array)
        self._check(arr, self.shape, "a network output")
        if self.integral:
            return uncrop(arr, self.crop_box, fill=fill)
        return self._resampled_to_source(arr, slice(0, self.source_shape[0]), slice(0, self.source_shape[1]), fill)

    def _resampled_to_source(self, arr: np.ndarray, rows: slice, cols: slice, fill: float) -> np.ndarray:
        """A network output linearly resampled onto the CT rows ``rows`` and columns ``cols`` only."""
        ys = (np.arange(rows.start, rows.stop, dtype=np.float64) - self.origin[0]) / self.step[0]
        xs = (np.arange(cols.start, cols.stop, dtype=np.float64) - self.origin[1]) / self.step[1]
        out = _linear_along(arr, arr.ndim - 2, ys, fill)
        return _linear_along(out, arr.ndim - 1, xs, fill)

    def extent(self) -> tuple[float, float, float, float]:
        """(top, bottom, left, right) edges the grid covers, in CT index units (pixel edges at +-0.5)."""
        (y0, x0), (sy, sx), (h, w) = self.origin, self.step, self.shape
        return y0 - sy / 2, y0 + (h - 1) * sy + sy / 2, x0 - sx / 2, x0 + (w - 1) * sx + sx / 2

    def outside_mm(self, body: BodyBox, pixel_mm: tuple[float, ...]) -> dict[str, float]:
        """How far the body box reaches past the grid on each side, in mm (canonical HFS layout).

        Low columns are the patient's right and low rows anterior in that layout.
        """
        top, bottom, left, right = self.extent()
        row_mm, col_mm = float(pixel_mm[0]), float(pixel_mm[1])
        return {
            "right": (left - (body.xmin - 0.5)) * col_mm,
            "left": ((body.xmax + 0.5) - right) * col_mm,
            "anterior": (top - (body.ymin - 0.5)) * row_mm,
            "posterior": ((body.ymax + 0.5) - bottom) * row_mm,
        }

    def covered_window(self) -> tuple[slice, slice]:
        """The CT rows and columns whose pixel centres the grid covers (empty slices if none).

        ``covered()`` is this rectangle; ``window_of`` gives a network output on it.
        """
        top, bottom, left, right = self.extent()

        def span(low: float, high: float, n: int) -> slice:
            start = min(max(0, math.ceil(low)), n)
            return slice(start, max(start, min(n, math.floor(high) + 1)))

        return span(top, bottom, self.source_shape[0]), span(left, right, self.source_shape[1])

    def covered(self) -> np.ndarray:
        """(rows, cols) bool: the CT pixels whose centre the grid covers."""
        out = np.zeros(self.source_shape, dtype=bool)
        out[self.covered_window()] = True
        return out

    def window_of(self, array: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """``to_source(array)`` on ``covered_window()`` only: what the network's output says there.

        Why: outside that window ``to_source`` only fills; a caller that keeps the output in
        zero-initialised CT-sized arrays need not allocate and fill the whole CT grid per batch.
        A crop gives a view of ``array`` (no copy); a resampling grid resamples onto the window.
        """
        arr = np.asarray(array)
        self._check(arr, self.shape, "a network output")
        rows, cols = self.covered_window()
        if not self.integral:  # resampled onto the window alone, not onto the whole CT and then cut
            return self._resampled_to_source(arr, rows, cols, fill)
        y0, x0 = int(self.origin[0]), int(self.origin[1])
        return arr[..., rows.start - y0:rows.stop - y0, cols.start - x0:cols.stop - x0]


def grid_for(cfg: PreprocessConfig, body: BodyBox | None, shape: Iterable[int],
             pixel_mm: tuple[float, ...]) -> SliceGrid:
    """The plan's network grid on a CT in-plane grid of ``shape`` with (row, col) ``pixel_mm``.

    Pixel plan: the CT's pixels, cropped to ``crop_size`` around the body. Millimetre plan:
    ``spacing_mm`` pixels over a ``crop_mm`` square centred on the body (``crop_mm`` null:
    the CT's whole field of view, centred on the image).
    """
    shape = tuple(int(s) for s in list(shape)[-2:])
    if not cfg.millimetre_plan:
        return SliceGrid.from_box(crop_box_around(body, shape, cfg))
    spacing = float(cfg.spacing_mm)  # type: ignore[arg-type]
    steps = [spacing / float(p) for p in pixel_mm[-2:]]
    steps = [1.0 if abs(s - 1.0) < _SAME_STEP else s for s in steps]
    if cfg.crop_mm is None:
        size = tuple(max(1, int(round(n * float(p) / spacing))) for n, p in zip(shape, pixel_mm[-2:]))
        centre = ((shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0)
    else:
        size = (cfg.crop_pixels, cfg.crop_pixels)  # type: ignore[assignment]
        centre = _centre(body, shape, cfg)
    origin = []
    for c, n, s in zip(centre, size, steps):
        o = c - (n - 1) / 2.0 * s
        origin.append(float(math.floor(o + 0.5)) if s == 1.0 else o)
    return SliceGrid(shape, (origin[0], origin[1]), (steps[0], steps[1]), (int(size[0]), int(size[1])))  # type: ignore[arg-type]
