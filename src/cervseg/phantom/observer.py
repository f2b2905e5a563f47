"""Human-like contours: smooth, drawn slice by slice, with an observer's own boundary wobble.

A clinician contours on axial slices with a smooth brush or polygon, rounds off small
concavities, groups touching bowel loops, and places the boundary a millimetre or two
differently from a colleague (inter-observer SD of 1-3 mm for organs, more for CTVs).
Here: per-slice signed distance to the exact anatomy, smoothed in-plane, plus a smooth
random displacement field (and a per-structure bias), thresholded at zero. No model can
reproduce the wobble from the image, so no model can reach Dice 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cervseg.phantom.fields import smooth_field


@dataclass(frozen=True)
class Style:
    """How one structure is drawn: displacement SD (mm), its correlation, smoothing, closing."""

    sd_mm: float = 1.0
    corr_mm: float = 25.0
    smooth_mm: float = 1.0
    closing_mm: float = 0.0
    min_area_mm2: float = 15.0  # slices with less than this are not drawn


STYLES: dict[str, Style] = {
    "Bladder": Style(1.0, 25.0, 1.0),
    "Rectum": Style(1.5, 20.0, 1.5),
    "Femur_Head_L": Style(0.8, 25.0, 1.0),
    "Femur_Head_R": Style(0.8, 25.0, 1.0),
    "BoneMarrow": Style(0.8, 20.0, 1.0, min_area_mm2=25.0),
    "Bowel_Small": Style(1.5, 20.0, 1.5, closing_mm=4.0, min_area_mm2=40.0),
    "SpinalCord": Style(0.7, 25.0, 0.8),
    "CTV_N": Style(2.2, 30.0, 2.5, closing_mm=3.0, min_area_mm2=30.0),
    "CTV_UV": Style(2.0, 25.0, 2.0, min_area_mm2=30.0),
}


def _disk(radius_px_y: float, radius_px_x: float) -> np.ndarray:
    ry, rx = max(int(np.ceil(radius_px_y)), 1), max(int(np.ceil(radius_px_x)), 1)
    yy, xx = np.mgrid[-ry:ry + 1, -rx:rx + 1]
    return ((yy / max(radius_px_y, 1e-6)) ** 2 + (xx / max(radius_px_x, 1e-6)) ** 2) <= 1.0


def draw_contour(mask: np.ndarray, spacing: tuple[float, float, float], style: Style, scale: float,
                 rng: np.random.Generator) -> np.ndarray:
    """The observer's version of ``mask`` (z, y, x bool) on the same grid.

    ``scale`` multiplies the displacement SD (the preset's observer level; 0 gives the
    smoothed anatomy without wobble).
    """
    out = np.zeros_like(mask, dtype=bool)
    if not mask.any():
        return out
    sz, sy, sx = spacing
    margin_mm = 3 * style.sd_mm * scale + style.smooth_mm * 2 + style.closing_mm + 4
    zz = np.flatnonzero(mask.any(axis=(1, 2)))
    yy = np.flatnonzero(mask.any(axis=(0, 2)))
    xx = np.flatnonzero(mask.any(axis=(0, 1)))
    my, mx = int(np.ceil(margin_mm / sy)), int(np.ceil(margin_mm / sx))
    sl = (slice(zz[0], zz[-1] + 1),
          slice(max(yy[0] - my, 0), min(yy[-1] + my + 1, mask.shape[1])),
          slice(max(xx[0] - mx, 0), min(xx[-1] + mx + 1, mask.shape[2])))
    m = mask[sl]
    if style.closing_mm > 0:
        disk = _disk(style.closing_mm / sy, style.closing_mm / sx)[None]
        m = ndimage.binary_closing(np.pad(m, ((0, 0), (len(disk[0]), len(disk[0])), (len(disk[0]), len(disk[0])))),
                                   structure=disk)
        k = len(disk[0])
        m = m[:, k:-k, k:-k]
    # per-slice signed distance (mm) to the boundary half-way between voxel centres:
    # positive outside, negative inside, about +-half a pixel next to the boundary (so a
    # wobble smaller than a pixel still moves it)
    big = 1e5
    half = 0.5 * min(sy, sx)
    outside = ndimage.distance_transform_edt(~m, sampling=(big, sy, sx))
    inside = ndimage.distance_transform_edt(m, sampling=(big, sy, sx))
    sdf = np.where(m, half - inside, outside - half).astype(np.float32)
    sdf = np.clip(sdf, -50, 50)
    if style.smooth_mm > 0:
        sdf = ndimage.gaussian_filter(sdf, sigma=(0, style.smooth_mm / sy, style.smooth_mm / sx))
    sd = style.sd_mm * scale
    if sd > 0:
        wobble = smooth_field(rng, sdf.shape, spacing, (style.corr_mm * 0.6, style.corr_mm, style.corr_mm))
        per_slice = rng.normal(0, 0.25, size=(sdf.shape[0], 1, 1)).astype(np.float32)
        bias = np.float32(rng.normal(0, 0.4))
        sdf = sdf + np.float32(sd) * (wobble + per_slice + bias)
    drawn = sdf < 0
    # an observer does not draw slivers
    area = drawn.sum(axis=(1, 2)) * sy * sx
    drawn[area < style.min_area_mm2] = False
    out[sl] = drawn
    return out
