"""A metal hip prosthesis and the streaks it makes, through a projection model of the scanner.

Why a projection model: metal streaks are not a texture, they are what filtered
back-projection makes of inconsistent line integrals (beam hardening and photon starvation
along the rays that cross the metal). So the artefact of each slice is computed as the
scanner would make it: the metal's line integrals (sparse parallel-beam projection of the
metal pixels), a nonlinear error on them (a hardening term growing with the square of the
metal path, photon-starvation noise growing exponentially with it), and the ramp-filtered
back-projection of that error only, added to the image. Dark bands appear along the rays
through the longest metal paths, bright and dark needles radiate from the metal, as on
real CT (``totalseg-example``'s left hip prosthesis). The work grid is coarser than the
image (at most ``WORK_PIXELS`` across) to keep it cheap; streaks are low-contrast lines a
few millimetres wide, which survive that (about 4 mm on a 512-pixel default image).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cervseg.phantom.canvas import Canvas
from cervseg.phantom.shapes import tube
from cervseg.phantom.skeleton import Skeleton, _mirror
from cervseg.phantom.tissues import Part, Tissue

WORK_PIXELS = 128
N_ANGLES = 120


def paint_prosthesis(canvas: Canvas, skeleton: Skeleton, side: int) -> None:
    """A total hip replacement on ``side`` (+1 patient left): metal head, cup and femoral stem.

    Only the tissue changes (to METAL); the parts stay femur and hip bone, so the femoral-head
    structure still covers the prosthetic head as clinicians contour it.
    """
    s = skeleton.p.scale
    H = skeleton.heads[side]
    hr = skeleton.p.head_r
    d = skeleton.neck_axis(side)
    femur = Part.FEMUR_L if side > 0 else Part.FEMUR_R
    hip = Part.HIP_L if side > 0 else Part.HIP_R
    stem = tube([H + d * 8 * s, H + d * 34 * s, H + _mirror(np.array([30, 7, -70]) * s, side),
                 H + _mirror(np.array([24, 6, -150]) * s, side)], np.array([8.5, 8.0, 6.5, 4.5]) * s, 1.0)
    lo, hi = stem.bounds(2.0)
    lo, hi = np.minimum(lo, H - hr - 6), np.maximum(hi, H + hr + 6)
    box = canvas.grid.box(lo, hi)
    if box is None:
        return
    r = np.sqrt((box.x - H[0]) ** 2 + (box.y - H[1]) ** 2 + (box.z - H[2]) ** 2)
    head = r < 0.9 * hr
    # cup: a hemispherical shell opening laterally-down (towards the neck)
    cos_open = ((box.x - H[0]) * d[0] + (box.y - H[1]) * d[1] + (box.z - H[2]) * d[2]) / np.maximum(r, 1e-3)
    cup = (r > hr + 0.5) & (r < hr + 4.0) & (cos_open < 0.2)
    canvas.paint(box, head | (stem.field(box)[0] < 0), Tissue.METAL, None, over_parts=(femur, hip))
    canvas.paint(box, cup, Tissue.METAL, None, over_parts=(hip, femur))


def parallel_projection(density: np.ndarray, pixel_mm: float, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Line integrals (density x mm) of a sparse 2D map over ``angles`` (radians).

    Returns (sinogram (n_angles, n_bins), bin centres in mm from the image centre); each
    pixel's value is split linearly between its two nearest detector bins.
    """
    ny, nx = density.shape
    n_bins = int(np.ceil(np.hypot(ny, nx))) + 3
    s0 = (n_bins - 1) / 2
    yy, xx = np.nonzero(density)
    w = density[yy, xx] * pixel_mm
    y = yy - (ny - 1) / 2
    x = xx - (nx - 1) / 2
    sino = np.zeros((len(angles), n_bins))
    for i, a in enumerate(angles):
        t = x * np.cos(a) + y * np.sin(a) + s0
        j = np.floor(t).astype(int)
        f = t - j
        sino[i] += np.bincount(j, w * (1 - f), minlength=n_bins)[:n_bins]
        sino[i] += np.bincount(j + 1, w * f, minlength=n_bins)[:n_bins]
    return sino, (np.arange(n_bins) - s0) * pixel_mm


def filtered_back_projection(sino: np.ndarray, angles: np.ndarray, shape: tuple[int, int], pixel_mm: float) -> np.ndarray:
    """Image (value per pixel) from parallel line integrals (value x mm): ramp filter x Hann, back-project."""
    n_angles, n_bins = sino.shape
    n = int(2 ** np.ceil(np.log2(2 * n_bins)))
    freq = np.fft.rfftfreq(n, pixel_mm)  # cycles/mm
    ramp = freq * (0.5 + 0.5 * np.cos(np.pi * freq / freq[-1]))
    q = np.fft.irfft(np.fft.rfft(sino, n, axis=1) * ramp, n, axis=1)[:, :n_bins]
    ny, nx = shape
    y = (np.arange(ny) - (ny - 1) / 2)[:, None] * pixel_mm
    x = (np.arange(nx) - (nx - 1) / 2)[None, :] * pixel_mm
    s_axis = (np.arange(n_bins) - (n_bins - 1) / 2) * pixel_mm
    out = np.zeros(shape)
    for i, a in enumerate(angles):
        s = x * np.cos(a) + y * np.sin(a)
        out += np.interp(s, s_axis, q[i], left=0.0, right=0.0)
    return out * (np.pi / n_angles)


def metal_streaks(metal: np.ndarray, pixel_mm: float, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Streak artefact (HU, float32, same shape) of a stack of metal fractions (z, y, x in [0, 1]).

    Per slice with metal: error sinogram = -k p^2 (hardening) + sigma0 exp(p / lambda) n
    (starvation noise), p the metal path in mm; back-projected.
    """
    out = np.zeros(metal.shape, np.float32)
    nz, ny, nx = metal.shape
    factor = max(1, int(np.ceil(max(ny, nx) / WORK_PIXELS)))
    work_px = pixel_mm * factor
    angles = np.linspace(0, np.pi, N_ANGLES, endpoint=False)
    k_bh = 20.0 * strength  # HU x mm per mm^2 of metal path
    for z in np.flatnonzero(metal.reshape(nz, -1).max(axis=1) > 0.05):
        m = metal[z]
        if factor > 1:
            m = m[: ny // factor * factor, : nx // factor * factor]
            m = m.reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))
        p, _ = parallel_projection(m, work_px, angles)
        noise = rng.standard_normal(p.shape) * np.minimum(np.exp(p / 12.0) - 1.0, 400.0) * 500.0 * strength
        err = -k_bh * p ** 2 + noise * (p > 0)
        img = filtered_back_projection(err, angles, m.shape, work_px)
        if factor > 1:
            img = ndimage.zoom(img, factor, order=1)
            full = np.zeros((ny, nx))
            full[: img.shape[0], : img.shape[1]] = img
            img = full
        out[z] = img
    return out
