"""Geometric primitives of the phantom: approximate signed distances in patient mm.

Every primitive takes coordinate arrays that broadcast against each other - a sub-box of
the grid as ``z[:, None, None], y[None, :, None], x[None, None, :]``, or flat point lists -
and returns an approximate signed distance in mm (negative inside). Why distances rather
than masks: one field gives an organ, its wall (the band ``-t < d < 0``), a margin around it
(``d < m``, the nodal CTV) and an observer's smooth perturbation of its boundary.

Coordinates are the phantom's local patient frame, axis directions as DICOM LPS
(+x patient left, +y posterior, +z superior), origin between the femoral head centres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.interpolate import CubicSpline, PchipInterpolator
from scipy.spatial import cKDTree

FAR = np.float32(1e4)  # "outside, far away" for fields evaluated off their support


@dataclass(frozen=True)
class Box:
    """A sub-box of a grid: index slices and its broadcastable coordinate arrays (mm)."""

    slices: tuple[slice, slice, slice]
    z: np.ndarray  # (nz, 1, 1)
    y: np.ndarray  # (1, ny, 1)
    x: np.ndarray  # (1, 1, nx)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z.shape[0], self.y.shape[1], self.x.shape[2])

    def points(self) -> np.ndarray:
        """(N, 3) float64 (x, y, z) of every voxel of the box, C order."""
        zz, yy, xx = np.broadcast_arrays(self.z, self.y, self.x)
        return np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1).astype(np.float64)


class Grid:
    """Voxel-centre coordinates (local mm) of a (z, y, x) grid with monotonic axes."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray):
        self.xs = np.asarray(xs, dtype=np.float32)
        self.ys = np.asarray(ys, dtype=np.float32)
        self.zs = np.asarray(zs, dtype=np.float32)
        for name, a in (("x", self.xs), ("y", self.ys), ("z", self.zs)):
            if a.size > 1 and not np.all(np.diff(a) > 0):
                raise ValueError(f"grid {name} coordinates must increase")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.zs.size, self.ys.size, self.xs.size)

    @staticmethod
    def _range(axis: np.ndarray, lo: float, hi: float) -> slice:
        i0 = int(np.searchsorted(axis, lo, side="left"))
        i1 = int(np.searchsorted(axis, hi, side="right"))
        return slice(i0, max(i0, i1))

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> Box | None:
        """The voxels whose centres lie in [lo, hi] (x, y, z mm), or None when empty."""
        sx = self._range(self.xs, lo[0], hi[0])
        sy = self._range(self.ys, lo[1], hi[1])
        sz = self._range(self.zs, lo[2], hi[2])
        if sx.start >= sx.stop or sy.start >= sy.stop or sz.start >= sz.stop:
            return None
        return Box(
            (sz, sy, sx),
            self.zs[sz][:, None, None],
            self.ys[sy][None, :, None],
            self.xs[sx][None, None, :],
        )

    def full(self) -> Box:
        return Box(
            (slice(0, self.zs.size), slice(0, self.ys.size), slice(0, self.xs.size)),
            self.zs[:, None, None], self.ys[None, :, None], self.xs[None, None, :],
        )


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union of two distance fields (polynomial smooth minimum, blend width k mm)."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - (h * h * (k * 0.25)).astype(np.float32)


def frame_from_axis(axis: Sequence[float], up: Sequence[float] = (1.0, 0.0, 0.0)) -> np.ndarray:
    """Orthonormal frame whose third row is ``axis`` and first row is as close to ``up`` as possible."""
    w = np.asarray(axis, dtype=float)
    w = w / np.linalg.norm(w)
    u = np.asarray(up, dtype=float) - np.dot(up, w) * w
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(w, [0.0, 1.0, 0.0])
    u = u / np.linalg.norm(u)
    v = np.cross(w, u)
    return np.stack([u, v, w])


@dataclass(frozen=True)
class Bumps:
    """A smooth multiplicative modulation of a radius over directions (organ irregularity).

    f(u) = 1 + sum_j a_j cos(pi * k_j . u + phi_j) for unit vectors u; low |k| keeps it smooth.
    """

    k: np.ndarray  # (J, 3)
    a: np.ndarray  # (J,)
    phi: np.ndarray  # (J,)

    @classmethod
    def random(cls, rng: np.random.Generator, amplitude: float, terms: int = 4, max_k: float = 1.6) -> "Bumps":
        k = rng.normal(size=(terms, 3))
        k *= (rng.uniform(0.6, max_k, size=terms) / np.linalg.norm(k, axis=1))[:, None]
        a = rng.normal(0.0, amplitude / np.sqrt(terms), size=terms)
        return cls(k, a, rng.uniform(0, 2 * np.pi, size=terms))

    def __call__(self, ux: np.ndarray, uy: np.ndarray, uz: np.ndarray) -> np.ndarray:
        out = np.ones(np.broadcast_shapes(np.shape(ux), np.shape(uy), np.shape(uz)), dtype=np.float32)
        for (kx, ky, kz), a, phi in zip(self.k, self.a, self.phi):
            out += np.float32(a) * np.cos(np.pi * (kx * ux + ky * uy + kz * uz) + phi).astype(np.float32)
        return out


def ellipsoid(
    x: np.ndarray, y: np.ndarray, z: np.ndarray,
    center: Sequence[float], radii: Sequence[float],
    frame: np.ndarray | None = None,
    bumps: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Radial signed distance to an ellipsoid (optionally rotated and bumpy).

    The distance is measured along the ray from the centre, exact on a sphere and close
    enough on the moderately elongated shapes used here.
    """
    dx = (x - np.float32(center[0])).astype(np.float32)
    dy = (y - np.float32(center[1])).astype(np.float32)
    dz = (z - np.float32(center[2])).astype(np.float32)
    if frame is not None:
        f = np.asarray(frame, dtype=np.float32)
        q = [f[i, 0] * dx + f[i, 1] * dy + f[i, 2] * dz for i in range(3)]
    else:
        q = list(np.broadcast_arrays(dx, dy, dz))
    r2 = q[0] * q[0] + q[1] * q[1] + q[2] * q[2]
    rn = np.sqrt(r2)
    safe = np.maximum(rn, np.float32(1e-3))
    u = [qi / safe for qi in q]
    inv = np.sqrt(sum((ui / np.float32(ri)) ** 2 for ui, ri in zip(u, radii)))
    # boundary radius along the ray (at the centre itself, where there is no ray: the smallest radius)
    rdir = np.where(inv > 1e-6, 1.0 / np.maximum(inv, np.float32(1e-6)), np.float32(min(radii)))
    if bumps is not None:
        rdir = rdir * bumps(u[0], u[1], u[2])
    return (rn - rdir).astype(np.float32)


def superellipse(
    x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray,
    rx_neg: np.ndarray, rx_pos: np.ndarray, ry_neg: np.ndarray, ry_pos: np.ndarray,
    n: float | np.ndarray = 2.0,
) -> np.ndarray:
    """Radial 2D signed distance to a superellipse with different half-axes on each side.

    ``rx_neg``/``rx_pos`` are the half-widths towards -x/+x, likewise for y; arrays broadcast
    (typically one value per slice), so a per-slice shape varies smoothly along z.
    """
    u = (x - cx).astype(np.float32)
    v = (y - cy).astype(np.float32)
    rx = np.where(u < 0, rx_neg, rx_pos).astype(np.float32)
    ry = np.where(v < 0, ry_neg, ry_pos).astype(np.float32)
    rx = np.maximum(rx, np.float32(1e-3))
    ry = np.maximum(ry, np.float32(1e-3))
    rn = np.sqrt(u * u + v * v)
    if np.isscalar(n) and float(n) == 2.0:
        f = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
    else:
        nn = np.asarray(n, dtype=np.float32)
        f = (np.abs(u / rx) ** nn + np.abs(v / ry) ** nn) ** (1.0 / nn)
    small = f < 1e-4
    d = np.where(small, -np.minimum(rx, ry), rn * (1.0 - 1.0 / np.maximum(f, np.float32(1e-4))))
    return d.astype(np.float32)


class Profile:
    """Shape parameters keyframed along z and interpolated smoothly (PCHIP) between.

    Outside the keyframed z-range every parameter is NaN, which callers treat as "absent".
    """

    def __init__(self, z: Sequence[float], **params: Sequence[float]):
        self.z = np.asarray(z, dtype=float)
        order = np.argsort(self.z)
        self.z = self.z[order]
        self._f = {k: PchipInterpolator(self.z, np.asarray(v, dtype=float)[order], extrapolate=False)
                   for k, v in params.items()}

    @property
    def z_range(self) -> tuple[float, float]:
        return float(self.z[0]), float(self.z[-1])

    def at(self, z: np.ndarray) -> dict[str, np.ndarray]:
        zf = np.asarray(z, dtype=float)
        return {k: f(zf).astype(np.float32) for k, f in self._f.items()}


def spline_path(keypoints: Sequence[Sequence[float]], step: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` mm along a smooth curve through keypoints, and for each point its
    position in keypoint units (0 at the first keypoint, len-1 at the last) for interpolating
    per-keypoint values such as radii."""
    k = np.asarray(keypoints, dtype=float)
    if len(k) < 2:
        raise ValueError("a path needs at least two keypoints")
    seg = np.linalg.norm(np.diff(k, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-6])
    k = k[keep]
    t = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(k, axis=0), axis=1))])
    knots = np.arange(len(k), dtype=float)
    if len(k) == 2:
        n = max(2, int(np.ceil(t[-1] / step)) + 1)
        s = np.linspace(0, 1, n)
        return k[0] + s[:, None] * (k[1] - k[0]), s
    spline = CubicSpline(t, k, bc_type="natural")
    n = max(2, int(np.ceil(t[-1] / step)) + 1)
    ts = np.linspace(0, t[-1], n)
    pts = spline(ts)
    # re-parametrise by arc length so that points are evenly spaced
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    n2 = max(2, int(np.ceil(arc[-1] / step)) + 1)
    target = np.linspace(0, arc[-1], n2)
    ts2 = np.interp(target, arc, ts)
    return spline(ts2), np.interp(ts2, t, knots)


class PointCloud:
    """A union of balls (centres + radii): tubes along paths, thick plates along surfaces.

    The signed distance at a point is min_i |p - c_i| - r_i over the balls, which is exact for
    a union of balls and a close approximation of a tube or plate when the centres are
    sampled densely (spacing well below the radius). The index of the minimising ball comes
    with it, so callers can look up per-centre data (bowel contents, which vessel).
    Evaluation visits each ball's own small bounding box, so the cost follows the size of the
    structure, not of the grid.
    """

    def __init__(self, points: np.ndarray, radii: np.ndarray | float):
        self.points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        self.radii = np.broadcast_to(np.asarray(radii, dtype=np.float32), (len(self.points),)).copy()

    def __len__(self) -> int:
        return len(self.points)

    def __add__(self, other: "PointCloud") -> "PointCloud":
        return PointCloud(np.concatenate([self.points, other.points]), np.concatenate([self.radii, other.radii]))

    def bounds(self, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        r = float(self.radii.max()) if len(self) else 0.0
        return self.points.min(axis=0) - r - margin, self.points.max(axis=0) + r + margin

    def query(self, pts: np.ndarray, reach: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance at arbitrary points (float32, FAR beyond radius+reach) and nearest index."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
        if not len(self) or not len(pts):
            return np.full(len(pts), FAR, np.float32), np.full(len(pts), -1, np.int64)
        tree = cKDTree(self.points)
        bound = float(self.radii.max()) + reach + 1e-3
        k = min(8, len(self))
        dist, idx = tree.query(pts, k=k, distance_upper_bound=bound, workers=1)
        dist, idx = dist.reshape(len(pts), k), idx.reshape(len(pts), k)
        found = idx < len(self)
        sd = np.where(found, dist - self.radii[np.minimum(idx, len(self) - 1)], np.inf)
        best = np.argmin(sd, axis=1)
        d = sd[np.arange(len(pts)), best]
        out_idx = np.where(np.isfinite(d), idx[np.arange(len(pts)), best], -1)
        d = np.where(np.isfinite(d) & (d <= reach), d, FAR).astype(np.float32)
        return d, out_idx

    def _thinned(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centres, radii and original indices, one per cell of half the box's finest spacing.

        On coarse grids (the tiny preset) many centres fall within one voxel; keeping the
        largest ball per cell changes distances by less than half a voxel and saves time.
        """
        steps = [float(np.min(np.diff(a.ravel()))) for a in (box.x, box.y, box.z) if a.size > 1]
        cell = 0.5 * min(steps) if steps else 0.0
        spacing = np.median(np.linalg.norm(np.diff(self.points, axis=0), axis=1)) if len(self) > 1 else 0.0
        if cell <= spacing or len(self) < 64:
            return self.points, self.radii, np.arange(len(self))
        keys = np.floor(self.points / cell).astype(np.int64)
        order = np.lexsort((-self.radii, keys[:, 2], keys[:, 1], keys[:, 0]))
        k = keys[order]
        first = np.ones(len(k), bool)
        first[1:] = np.any(k[1:] != k[:-1], axis=1)
        keep = order[first]
        return self.points[keep], self.radii[keep], keep

    def field(self, box: Box, reach: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance on a grid box (FAR where farther than ``reach``) and nearest index."""
        d = np.full(box.shape, FAR, np.float32)
        idx = np.full(box.shape, -1, np.int32)
        if not len(self):
            return d, idx
        xs, ys, zs = box.x.ravel(), box.y.ravel(), box.z.ravel()
        p, radii, order = self._thinned(box)
        ext = radii.astype(np.float64) + reach
        x0, x1 = np.searchsorted(xs, p[:, 0] - ext), np.searchsorted(xs, p[:, 0] + ext, side="right")
        y0, y1 = np.searchsorted(ys, p[:, 1] - ext), np.searchsorted(ys, p[:, 1] + ext, side="right")
        z0, z1 = np.searchsorted(zs, p[:, 2] - ext), np.searchsorted(zs, p[:, 2] + ext, side="right")
        pf = p.astype(np.float32)
        for i in np.flatnonzero((x0 < x1) & (y0 < y1) & (z0 < z1)):
            cx, cy, cz = pf[i]
            a0, a1, b0, b1, c0, c1 = x0[i], x1[i], y0[i], y1[i], z0[i], z1[i]
            dxy = (xs[a0:a1] - cx)[None, :] ** 2 + (ys[b0:b1] - cy)[:, None] ** 2
            dd = np.sqrt(dxy[None] + ((zs[c0:c1] - cz) ** 2)[:, None, None]) - radii[i]
            sub = d[c0:c1, b0:b1, a0:a1]
            better = dd < sub
            sub[better] = dd[better]
            idx[c0:c1, b0:b1, a0:a1][better] = order[i]
        return d, idx


def tube(keypoints: Sequence[Sequence[float]], radii: Sequence[float] | float, step: float = 1.5) -> PointCloud:
    """A tube along a smooth path through keypoints; radius interpolated between keypoints."""
    pts, u = spline_path(keypoints, step)
    r = np.asarray(radii, dtype=float)
    if r.ndim == 0:
        rr = np.full(len(pts), float(r))
    else:
        if len(r) != len(keypoints):
            raise ValueError("give one radius per keypoint (or a single radius)")
        rr = np.interp(u, np.arange(len(r), dtype=float), r)
    return PointCloud(pts, rr)
