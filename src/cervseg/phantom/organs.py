"""Pelvic organs: bladder, uterus with cervix and tumour, vagina, urethra, ovaries.

Positions follow the female pelvis on supine planning CT: the bladder behind the pubic
symphysis with its base near the level of the mid-symphysis, the cervix behind the bladder
base and in front of the rectum, the vagina running down and forward from the cervix to
the perineum, the uterine body usually tilted forward over the bladder dome (anteverted /
anteflexed), sometimes back towards the sacrum (retroverted, about one woman in six).
A fuller bladder lifts the uterus. All organs are painted only into the cavity's fat, so the
pelvic side walls and bones flatten them as they do in patients.
"""

from __future__ import annotations

import numpy as np

from cervseg.phantom.canvas import Canvas
from cervseg.phantom.shapes import FAR, Bumps, ellipsoid, frame_from_axis, superellipse
from cervseg.phantom.skeleton import Skeleton
from cervseg.phantom.tissues import Part, Tissue

PELVIS_FAT = (Part.CAVITY,)


def _bounds_points(lo, hi, step=4.0):
    axes = [np.arange(a, b + step, step) for a, b in zip(lo, hi)]
    g = np.meshgrid(*axes, indexing="ij")
    return [a.ravel() for a in g]


class Uterus:
    """Cervix + uterine body as a chain of ellipsoids along a bent centreline, with a tumour."""

    def __init__(self, sk: Skeleton, rng: np.random.Generator):
        s = sk.p.scale
        self.s = s
        self.post_menopausal = bool(rng.random() < 0.4)
        size = (0.78 if self.post_menopausal else 1.0) * float(rng.uniform(0.9, 1.12)) * s
        self.os = np.array([rng.normal(0, 5), rng.normal(-2, 4) * s, rng.normal(4, 5) * s])  # external os
        self.retro = bool(rng.random() < 0.17)
        if self.retro:
            self.theta_c = float(rng.uniform(-40, -10))
            self.flex = float(rng.normal(-15, 12))
        else:
            self.theta_c = float(rng.normal(22, 12))
            self.flex = float(rng.normal(25, 15))
        self.tilt = float(rng.normal(0, 9))
        self.len_c = float(rng.uniform(25, 32)) * size
        self.len_b = float(rng.uniform(40, 52)) * size
        self.r_c = np.array([rng.uniform(14, 17), rng.uniform(12, 14.5)]) * size
        self.r_b = np.array([rng.uniform(22, 28), rng.uniform(16, 21)]) * size
        self.bumps = Bumps.random(rng, 0.06, 4)
        self.has_tumour = bool(rng.random() < 0.9)
        t_r = rng.uniform(13, 27, size=3) * s
        t_r[2] *= rng.uniform(0.9, 1.4)
        self.tumour_r = t_r
        self.tumour_shift = rng.normal(0, 4, size=3)
        self.tumour_bumps = Bumps.random(rng, 0.15, 5)
        self.endo = float(rng.uniform(2.0, 5.0) * (0.5 if self.post_menopausal else 1.0))
        self.build()

    def build(self) -> None:
        """Recompute the centreline from the angles (called again when the bladder lifts the uterus)."""
        tc = np.radians(self.theta_c)
        tb = np.radians(np.clip(self.theta_c + self.flex, -70, 80))
        tilt = np.radians(self.tilt)

        def direction(theta):
            v = np.array([np.sin(tilt) * np.cos(theta), -np.sin(theta), np.cos(theta) * np.cos(tilt)])
            return v / np.linalg.norm(v)

        uc, ub = direction(tc), direction(tb)
        n_c, n_b = 8, 16
        pts, radii, tang = [], [], []
        for i in range(n_c):
            f = i / (n_c - 1)
            pts.append(self.os + uc * self.len_c * f)
            radii.append(self.r_c * (1.0 + 0.06 * f))
            tang.append(uc)
        ios = pts[-1]
        for i in range(1, n_b + 1):
            f = i / n_b
            blend = min(1.0, f * 3.0)
            u = (1 - blend) * uc + blend * ub
            u /= np.linalg.norm(u)
            pts.append(pts[-1] + u * self.len_b / n_b)
            grow = np.interp(f, [0, 0.25, 0.7, 1.0], [0.62, 0.8, 1.0, 0.9])
            radii.append(self.r_b * grow)
            tang.append(u)
        self.internal_os = ios
        self.centres = np.array(pts)
        self.radii = np.array(radii)
        self.frames = [frame_from_axis(t, up=(1.0, 0.0, 0.0)) for t in tang]
        self.n_cervix = n_c
        self.fundus = self.centres[-1] + tang[-1] * self.radii[-1][1] * 0.8
        self.tumour_c = self.os + uc * self.len_c * 0.45 + self.tumour_shift

    def _chain(self, x, y, z, lo: int, hi: int, shrink=(0.0, 0.0)) -> np.ndarray:
        d = None
        step = self.len_b / 16
        for c, r, f in zip(self.centres[lo:hi], self.radii[lo:hi], self.frames[lo:hi]):
            rr = (max(r[0] - shrink[0], 0.5), max(r[1] - shrink[1], 0.5), max(step * 1.6, min(r) * 0.8))
            e = ellipsoid(x, y, z, c, rr, f, self.bumps)
            d = e if d is None else np.minimum(d, e)
        return d

    def sdf(self, x, y, z) -> np.ndarray:
        d = self._chain(x, y, z, 0, len(self.centres))
        if self.has_tumour:
            d = np.minimum(d, self.tumour(x, y, z))
        return d

    def tumour(self, x, y, z) -> np.ndarray:
        return ellipsoid(x, y, z, self.tumour_c, self.tumour_r, None, self.tumour_bumps)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        r = float(self.radii.max()) + 6
        lo = self.centres.min(axis=0) - r
        hi = self.centres.max(axis=0) + r
        if self.has_tumour:
            lo = np.minimum(lo, self.tumour_c - self.tumour_r * 1.3)
            hi = np.maximum(hi, self.tumour_c + self.tumour_r * 1.3)
        return lo, hi

    def paint(self, canvas: Canvas) -> None:
        box = canvas.grid.box(*self.bounds())
        if box is None:
            return
        x, y, z = box.x, box.y, box.z
        d_c = self._chain(x, y, z, 0, self.n_cervix + 1)
        d_b = self._chain(x, y, z, self.n_cervix, len(self.centres))
        d_endo = self._chain(x, y, z, self.n_cervix + 4, len(self.centres) - 2,
                             shrink=(self.r_b[0] * 0.55, self.r_b[1] - self.endo))
        tissue = np.full(box.shape, Tissue.MYOMETRIUM, np.uint8)
        tissue[d_endo < 0] = Tissue.ENDOMETRIUM
        canvas.paint(box, d_b < 0, tissue, Part.UTERUS, over_parts=PELVIS_FAT + (Part.VAGINA,))
        canvas.paint(box, d_c < 0, Tissue.MYOMETRIUM, Part.CERVIX, over_parts=PELVIS_FAT + (Part.VAGINA, Part.UTERUS))
        if self.has_tumour:
            d_t = self.tumour(x, y, z)
            canvas.paint(box, d_t < 0, Tissue.TUMOUR, Part.CERVIX,
                         over_parts=PELVIS_FAT + (Part.VAGINA, Part.UTERUS, Part.CERVIX))


class Vagina:
    """A flattened tube from the introitus up to the vault that wraps the cervix."""

    def __init__(self, sk: Skeleton, uterus: Uterus, rng: np.random.Generator):
        s = sk.p.scale
        self.introitus = np.array([rng.normal(0, 2), rng.normal(-36, 4) * s, rng.normal(-58, 4) * s])
        top = uterus.os + np.array([0.0, 0.0, 10.0 * s])
        self.top = top
        self.half_w = float(rng.uniform(12, 17)) * s
        self.half_d = float(rng.uniform(4, 6)) * s
        self.marker = bool(rng.random() < 0.2)  # vaginal gas / marker
        self.z = np.array([self.introitus[2], top[2] - 12 * s, top[2]])
        self.cx = np.array([self.introitus[0], top[0], top[0]])
        self.cy = np.array([self.introitus[1], top[1] - 2, top[1]])
        self.rx = np.array([self.half_w * 0.6, self.half_w, self.half_w * 1.25])
        self.ry = np.array([self.half_d, self.half_d * 1.3, self.half_d * 2.6])

    def sdf(self, x, y, z) -> np.ndarray:
        cx = np.interp(z, self.z, self.cx)
        cy = np.interp(z, self.z, self.cy)
        rx = np.interp(z, self.z, self.rx)
        ry = np.interp(z, self.z, self.ry)
        d = superellipse(x, y, cx, cy, rx, rx, ry, ry, 2.4)
        outside = (z < self.z[0]) | (z > self.z[-1])
        return np.where(outside, FAR, d).astype(np.float32)

    def paint(self, canvas: Canvas) -> None:
        lo = np.array([min(self.cx) - 30, min(self.cy) - 20, self.z[0]])
        hi = np.array([max(self.cx) + 30, max(self.cy) + 20, self.z[-1]])
        box = canvas.grid.box(lo, hi)
        if box is None:
            return
        d = self.sdf(box.x, box.y, box.z)
        tissue = np.full(box.shape, Tissue.VAGINA, np.uint8)
        if self.marker:
            cx = np.interp(box.z, self.z, self.cx)
            cy = np.interp(box.z, self.z, self.cy)
            lumen = superellipse(box.x, box.y, cx, cy, self.half_w * 0.55, self.half_w * 0.55, 2.5, 2.5, 2.0) < 0
            tissue[lumen & (box.z < self.z[-1] - 8) & (box.z > self.z[0] + 10)] = Tissue.BOWEL_GAS
        canvas.paint(box, d < 0, tissue, Part.VAGINA, over_parts=PELVIS_FAT + (Part.BODY, Part.PELVIC_MUSCLE))


class Bladder:
    """An ellipsoid of the drawn volume, tapered to the neck, bumpy, with a wall and optional contrast layer."""

    def __init__(self, sk: Skeleton, body, y_support: float, rng: np.random.Generator,
                 z_base_min: float | None = None):
        """``y_support``: where the posterior wall rests (the cervix, or a man's seminal vesicles);
        ``z_base_min``: the lowest base (a man's bladder sits on the prostate)."""
        s = sk.p.scale
        self.volume_ml = float(np.clip(rng.lognormal(np.log(160), 0.5), 40, 600))
        f = float(np.clip((self.volume_ml - 50) / 400, 0, 1))
        ratios = np.array([1.45 - 0.2 * f, 0.85, 0.62 + 0.45 * f])
        k = (3 * self.volume_ml * 1000 / (4 * np.pi * np.prod(ratios))) ** (1 / 3)
        radii = ratios * k
        z_base = rng.normal(-20, 5) * s
        if z_base_min is not None:
            z_base = max(z_base, z_base_min)
        # the posterior wall rests on the cervix / upper vagina; the anterior wall reaches at most
        # the abdominal wall, so a full bladder grows up and sideways (volume kept)
        y_back = y_support - float(rng.uniform(0.5, 3.0))
        z_c = z_base + radii[2] * 0.72
        q = body.cavity.at(np.array([z_c + 15.0]))
        y_wall = float(q["cy"][0] - q["ry_neg"][0]) + 4.0
        ry = min(radii[1], (y_back - y_wall) / 2.0)
        radii[2] *= radii[1] / ry
        radii[1] = ry
        self.radii = radii
        self.centre = np.array([rng.normal(0, 4), y_back - ry, z_base + radii[2] * 0.72])
        self.bumps = Bumps.random(rng, 0.07, 5)
        self.wall = float(3.6 - 1.6 * f)
        self.contrast_level = float(rng.uniform(0.15, 0.9))  # fraction of the depth filled by contrast
        self.neck = np.array([self.centre[0], self.centre[1] + 0.4 * self.radii[1], z_base + 3.0])

    def _modulate(self, ux, uy, uz):
        base = self.bumps(ux, uy, uz)
        taper = 1.0 - 0.28 * np.clip(-uz, 0, 1) ** 2  # the base narrows towards the neck (bottom at 0.72 rz)
        return base * taper

    def sdf(self, x, y, z) -> np.ndarray:
        return ellipsoid(x, y, z, self.centre, self.radii, None, self._modulate)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        r = self.radii * 1.3 + 3
        return self.centre - r, self.centre + r

    def paint(self, canvas: Canvas, contrast: bool) -> None:
        box = canvas.grid.box(*self.bounds())
        if box is None:
            return
        d = self.sdf(box.x, box.y, box.z)
        tissue = np.where(d > -self.wall, Tissue.BLADDER_WALL, Tissue.URINE).astype(np.uint8)
        if contrast:
            level = self.centre[1] + self.radii[1] * (1 - 2 * self.contrast_level)
            tissue[(tissue == Tissue.URINE) & (box.y > level)] = Tissue.URINE_CONTRAST
        canvas.paint(box, d < 0, tissue, Part.BLADDER, over_parts=PELVIS_FAT)


def place_uterus(uterus: Uterus, bladder: Bladder) -> None:
    """A full bladder lifts the anteverted uterus: raise it until they overlap by < 8 % of the uterus."""
    lo, hi = uterus.bounds()
    x, y, z = _bounds_points(lo, hi, 3.0)
    for _ in range(12):
        inside_u = uterus._chain(x, y, z, uterus.n_cervix, len(uterus.centres)) < 0
        overlap = inside_u & (bladder.sdf(x, y, z) < 1.0)
        if inside_u.sum() == 0 or overlap.sum() < 0.08 * inside_u.sum():
            return
        # the bladder pushes the uterus back and up
        uterus.flex -= 8.0
        uterus.theta_c = max(uterus.theta_c - 3.0, -30.0)
        uterus.build()
        lo, hi = uterus.bounds()
        x, y, z = _bounds_points(lo, hi, 3.0)


class Ovaries:
    """Two ovoids in the ovarian fossae on the pelvic side walls; follicles before menopause."""

    def __init__(self, sk: Skeleton, uterus: Uterus, rng: np.random.Generator):
        s = sk.p.scale
        self.items = []
        small = uterus.post_menopausal
        for side in (1, -1):
            c = np.array([side * rng.uniform(42, 56) * s, rng.uniform(5, 28) * s, uterus.fundus[2] + rng.normal(-5, 8)])
            r = (rng.uniform(8, 11, 3) if small else rng.uniform(12, 18, 3)) * s
            r[1] *= 0.75
            foll = []
            if not small:
                for _ in range(int(rng.integers(1, 5))):
                    fr = float(rng.uniform(2.5, 8.0))
                    off = rng.normal(size=3)
                    off = off / np.linalg.norm(off) * (r.min() - fr) * rng.uniform(0, 0.8)
                    foll.append((c + off, fr))
            self.items.append((c, r, foll))

    def paint(self, canvas: Canvas) -> None:
        for c, r, foll in self.items:
            box = canvas.grid.box(c - r - 1, c + r + 1)
            if box is None:
                continue
            d = ellipsoid(box.x, box.y, box.z, c, r)
            tissue = np.full(box.shape, Tissue.OVARY, np.uint8)
            for fc, fr in foll:
                dd = np.sqrt((box.x - fc[0]) ** 2 + (box.y - fc[1]) ** 2 + (box.z - fc[2]) ** 2) - fr
                tissue[dd < 0] = Tissue.FOLLICLE
            canvas.paint(box, d < 0, tissue, Part.OVARY, over_parts=PELVIS_FAT)


def paint_urethra(canvas: Canvas, bladder: Bladder, vagina: Vagina) -> None:
    """The urethra: from the bladder neck down in front of the vagina to below the symphysis."""
    end = vagina.introitus + np.array([0.0, -12.0, 2.0])
    paint_urethra_path(canvas, [bladder.neck, (bladder.neck + end) / 2 + np.array([0, -3, 0]), end], 4.0)


def paint_urethra_path(canvas: Canvas, keys: list, radius: float) -> None:
    """A urethra of ``radius`` mm along the keypoints (a woman's, or a man's below the prostate)."""
    from cervseg.phantom.shapes import tube

    u = tube(keys, radius, 1.0)
    box = canvas.grid.box(*u.bounds(1.0))
    if box is None:
        return
    d, _ = u.field(box)
    canvas.paint(box, d < 0, Tissue.VAGINA, Part.URETHRA, over_parts=PELVIS_FAT + (Part.BODY, Part.PELVIC_MUSCLE))
