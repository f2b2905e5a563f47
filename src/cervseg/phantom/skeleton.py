"""The bones: lumbar vertebrae, sacrum and coccyx, hip bones, femora, each with a cortical shell.

Shapes are built in the local patient frame (mm, +x left, +y posterior, +z superior, origin
between the femoral head centres) from anatomical landmarks of an adult female pelvis
(inter-head distance about 175 mm, iliac crest about 130 mm and ischial tuberosities about
50 mm from the head centres, sacral promontory at L5/S1), scaled per patient and jittered
left and right independently. Each bone is a signed-distance function; the cortex is the
band of the outer ``cortex_mm`` inside it and the marrow the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cervseg.phantom.canvas import Canvas
from cervseg.phantom.shapes import (
    FAR, Box, PointCloud, Profile, ellipsoid, smin, superellipse, tube,
)
from cervseg.phantom.tissues import Part, Tissue

Sdf = Callable[[Box], np.ndarray]


@dataclass
class Bone:
    """One bone: its signed distance, bounding box, cortex thickness and marrow tissue."""

    name: str
    part: Part
    lo: np.ndarray
    hi: np.ndarray
    sdf: Sdf
    cortex_mm: Callable[[np.ndarray], np.ndarray] | float = 1.5
    marrow: Tissue = Tissue.CANCELLOUS
    marrow_fn: Callable[[Box, np.ndarray], np.ndarray] | None = None  # tissue per voxel, optional
    socket: tuple[np.ndarray, float] | None = None  # (centre, radius) carved out and lined with cartilage


@dataclass(frozen=True)
class SkeletonParams:
    scale: float
    width: float  # pelvic width factor (x)
    head_r: float  # femoral head radius
    head_x: float  # |x| of the head centres
    neck_angle: float  # neck-shaft angle (deg)
    anteversion: float  # femoral neck anteversion (deg)
    lordosis: float  # mm of anterior shift of L3 relative to L5
    sacral_depth: float  # mm added to the sacral concavity
    l5_top: float  # z of the L5 upper endplate
    crest: float  # iliac crest height factor
    asym: tuple[float, ...] = field(default_factory=tuple)  # small left/right jitters

    @classmethod
    def draw(cls, rng: np.random.Generator, scale: float) -> "SkeletonParams":
        width = float(rng.uniform(0.95, 1.07))
        return cls(
            scale=scale,
            width=width,
            head_r=float(rng.uniform(21.0, 24.5) * scale),
            head_x=float(rng.uniform(84.0, 92.0) * scale * width),
            neck_angle=float(rng.uniform(124, 136)),
            anteversion=float(rng.uniform(6, 20)),
            lordosis=float(rng.uniform(0, 14)),
            sacral_depth=float(rng.uniform(-6, 8)),
            l5_top=float(rng.uniform(118, 130) * scale),
            crest=float(rng.uniform(0.94, 1.06)),
            asym=tuple(float(v) for v in rng.normal(0, 1.5, size=12)),
        )


def _mirror(p, side: float):
    p = np.array(p, dtype=float)
    p[..., 0] *= side
    return p


class Skeleton:
    """All bones of one patient plus the landmarks other structures are placed against."""

    def __init__(self, p: SkeletonParams):
        self.p = p
        s = p.scale
        self.heads = {+1: np.array([p.head_x + p.asym[0], p.asym[1], p.asym[2] * 0.5]),
                      -1: np.array([-p.head_x + p.asym[3], p.asym[4], p.asym[5] * 0.5])}
        # sacrum: anterior-surface y as a function of z (the concave sacral curve)
        self.sacrum_z = np.array([-32, -18, 0, 30, 50, 70, 90]) * s
        self.sacrum_yant = np.array([40, 54, 60, 56, 40, 22, 6]) * s + np.array([0, 0.5, 1, 1, 0.6, 0.2, 0]) * p.sacral_depth
        self.s1_top = p.l5_top - 30.0 * s - 10.0 * s  # L5 body + L5/S1 disc below the L5 top
        self.bones: list[Bone] = []
        self.wing_clouds: dict[int, PointCloud] = {}
        self.wing_normals: dict[int, np.ndarray] = {}
        self.wing_uv: dict[int, np.ndarray] = {}
        for side in (+1, -1):
            self.wing_clouds[side], self.wing_normals[side], self.wing_uv[side] = self._wing(side)
        self._si = self._si_table()
        self._build_vertebrae()
        self._build_sacrum()
        for side in (+1, -1):
            self._build_hip(side)
            self._build_femur(side)

    # ------------------------------------------------------------------ landmarks
    def sacrum_anterior_y(self, z: np.ndarray) -> np.ndarray:
        return np.interp(z, self.sacrum_z, self.sacrum_yant)

    def symphysis(self) -> np.ndarray:
        """Posterior-superior corner of the pubic symphysis (x=0)."""
        s = self.p.scale
        return np.array([0.0, -56.0 * s, 8.0 * s])

    # ------------------------------------------------------------------ spine
    def _vertebra_levels(self) -> list[tuple[str, float, float]]:
        """(name, z_top, y_centre) of the lumbar bodies from L5 upwards."""
        s, p = self.p.scale, self.p
        out = []
        z_top = p.l5_top
        for i, name in enumerate(["L5", "L4", "L3", "L2", "L1"]):
            h = (28.0 + 1.0 * i) * s
            y = (12.0 - p.lordosis * min(i, 2) / 2.0 - 4.0 * min(i, 1)) * s + (0.0 if i < 3 else 2.0 * (i - 2))
            out.append((name, z_top, y))
            z_top += (11.0 + 0.5 * i) * s + h + (1.0 + 0.5 * (i + 1)) * s  # next body top: disc + body
        return out

    def canal(self) -> Profile:
        """Spinal canal cross-section along z (centre y, half-widths), L1 down to S4."""
        s = self.p.scale
        levels = self._vertebra_levels()
        zs, cys, rxs, rys = [], [], [], []
        for name, z_top, yc in levels:
            zc = z_top - 14 * s
            zs.append(zc)
            cys.append(yc + 17 * s + 11 * s)
            rxs.append(11.5 * s)
            rys.append(8.5 * s)
        # sacral canal: behind the sacral body, narrowing to the hiatus
        for z in (self.s1_top - 15 * s, 45 * s, 20 * s):
            zs.append(z)
            yb = self.sacrum_anterior_y(z) + self._sacral_body_ry(z) * 2 + 6 * s
            cys.append(yb)
            rxs.append(float(np.interp(z, [20 * s, 60 * s, self.s1_top], [5, 9, 12]) * s))
            rys.append(float(np.interp(z, [20 * s, 60 * s, self.s1_top], [3, 5, 7]) * s))
        order = np.argsort(zs)
        zs, cys, rxs, rys = (np.asarray(a)[order] for a in (zs, cys, rxs, rys))
        return Profile(zs, cx=np.zeros_like(zs), cy=cys, rx_neg=rxs, rx_pos=rxs, ry_neg=rys, ry_pos=rys)

    def _sacral_body_ry(self, z):
        s = self.p.scale
        return np.interp(z, [-30 * s, 0, 40 * s, self.s1_top], [4, 6, 9, 15]) * s

    def _build_vertebrae(self) -> None:
        s = self.p.scale
        for i, (name, z_top, yc) in enumerate(self._vertebra_levels()):
            h = (28.0 + 1.0 * i) * s
            zc = z_top - h / 2
            rx = (26.0 - 0.8 * i) * s
            ry = (17.0 - 0.3 * i) * s
            parts: list[PointCloud] = []
            ycan = yc + ry + 11 * s
            for side in (1, -1):
                parts.append(tube([(side * 13 * s, yc + ry - 3, zc + 2), (side * 15 * s, ycan + 2, zc + 2)], 5.5 * s))
                parts.append(tube([(side * 15 * s, ycan + 4, zc + 1), (0, ycan + 15 * s, zc - 3)], 5.0 * s))
                tp_len = (48.0 if name in ("L3", "L2") else 42.0 if name != "L5" else 40.0) * s
                parts.append(tube([(side * 16 * s, ycan + 0, zc + 3), (side * tp_len, ycan + 2, zc + 4)],
                                  [5.5 * s, 4.0 * s] if name != "L5" else [8.0 * s, 7.0 * s]))
                for dz in (9.0, -11.0):
                    parts.append(tube([(side * 15 * s, ycan + 6, zc + dz), (side * 17 * s, ycan + 12, zc + dz)], 6.0 * s))
            for dz in np.arange(-10, 6, 2.5) * s:
                parts.append(tube([(0, ycan + 14 * s, zc + dz - 3), (0, ycan + 38 * s, zc + dz - 8)], 4.0 * s))
            cloud = parts[0]
            for c in parts[1:]:
                cloud = cloud + c

            def sdf(box, zc=zc, yc=yc, rx=rx, ry=ry, h=h, cloud=cloud):
                x, y, z = box.x, box.y, box.z
                d2 = superellipse(x, y, 0.0, yc, rx, rx, ry, ry, 2.0)
                notch = superellipse(x, y, 0.0, yc + ry + 5 * s, 11 * s, 11 * s, 8 * s, 8 * s, 2.0)
                d2 = np.maximum(d2, -notch)
                dz = np.abs(z - zc) - h / 2
                body = np.minimum(np.maximum(d2, dz), 0) + np.sqrt(np.maximum(d2, 0) ** 2 + np.maximum(dz, 0) ** 2)
                pe, _ = cloud.field(box, reach=3.0)
                return np.minimum(body, pe).astype(np.float32)

            lo = np.array([-55 * s, yc - ry - 3, zc - h / 2 - 14 * s])
            hi = np.array([55 * s, ycan + 56 * s, zc + h / 2 + 10 * s])
            self.bones.append(Bone(name, Part.VERTEBRA, lo, hi, sdf, 1.3))
            # the disc below this body
            zd_top, zd_bot = zc - h / 2, zc - h / 2 - (11.0 + 0.5 * i) * s

            def disc(box, yc=yc, rx=rx, ry=ry, zd_top=zd_top, zd_bot=zd_bot):
                x, y, z = box.x, box.y, box.z
                d2 = superellipse(x, y, 0.0, yc, rx + 1, rx + 1, ry + 1, ry + 1, 2.0)
                dz = np.maximum(z - zd_top, zd_bot - z)
                return np.maximum(d2, dz).astype(np.float32)

            self.bones.append(Bone(name + "_disc", Part.VERTEBRA, np.array([-rx - 2, yc - ry - 2, zd_bot - 1]),
                                   np.array([rx + 2, yc + ry + 2, zd_top + 1]), disc, 0.0, Tissue.DISC))

    # ------------------------------------------------------------------ sacrum
    def _build_sacrum(self) -> None:
        s = self.p.scale
        top = self.s1_top
        zk = np.array([-30, -12, 5, 25, 45, 65, top / s - 8, top / s]) * s
        body_rx = np.interp(zk, np.array([-30, 0, 40, top / s]) * s, [5, 9, 15, 24]) * s
        body_ry = self._sacral_body_ry(zk)
        yant = self.sacrum_anterior_y(zk)
        cy = yant + body_ry
        # alae reach the sacro-iliac joints (3 mm joint space medial to the ilium)
        ala = np.array([self._si_x(z) for z in zk])
        low = np.interp(zk, [-30 * s, 0, 40 * s], [6 * s, 24 * s, self._si_x(40 * s)])
        ala = np.where(zk > 40 * s, ala, low)
        prof = Profile(zk, cy=cy, brx=body_rx, bry=body_ry, ala=ala)
        canal = self.canal()

        wings = (self.wing_clouds[1], self.wing_clouds[-1])

        def sdf(box):
            x, y, z = box.x, box.y, box.z
            q = prof.at(z)
            body = superellipse(x, y, 0.0, q["cy"], q["brx"], q["brx"], q["bry"], q["bry"], 2.0)
            wing = superellipse(x, y, 0.0, q["cy"] + 0.45 * q["bry"] + 4 * s, q["ala"] + 14 * s, q["ala"] + 14 * s,
                                0.9 * q["bry"] + 2 * s, 1.2 * q["bry"] + 8 * s, 2.6)
            # the ala fills up to the ilium, 2.5 mm of sacro-iliac joint away from it
            ilium = np.minimum(wings[0].field(box, 4.0)[0], wings[1].field(box, 4.0)[0])
            wing = np.maximum(wing, 2.5 - ilium)
            arch = superellipse(x, y, 0.0, q["cy"] + q["bry"] + 9 * s, 0.5 * q["ala"] + 6 * s, 0.5 * q["ala"] + 6 * s,
                                8 * s, 9 * s, 2.0)
            d = np.minimum(np.minimum(body, wing), arch)
            d = np.where(np.isnan(d), FAR, d)
            c = canal.at(z)
            dc = superellipse(x, y, 0.0, c["cy"], c["rx_neg"], c["rx_pos"], c["ry_neg"], c["ry_pos"], 2.0)
            dc = np.where(np.isnan(dc), FAR, dc)
            d = np.maximum(d, -dc)
            # anterior sacral foramina at S1-S4: holes through the ala beside the body
            zf = np.asarray(z, dtype=np.float32)
            level = np.mod(zf - (top - 14 * s), 22 * s) - 11 * s
            fx = q["brx"] + 6 * s
            foramen = np.sqrt((np.abs(x) - fx) ** 2 + (y - q["cy"]) ** 2 + level ** 2) - 4.5 * s
            foramen = np.where((zf < top - 6 * s) & (zf > 20 * s), foramen, FAR)
            d = np.maximum(d, -foramen)
            d = np.where(zf > top, np.maximum(d, zf - top), d)
            return d.astype(np.float32)

        self.bones.append(Bone("sacrum", Part.SACRUM, np.array([-75 * s, -10 * s, -34 * s]),
                               np.array([75 * s, 110 * s, top + 2]), sdf, 1.4))
        # coccyx tip below the sacrum, a few small segments
        yc = self.sacrum_anterior_y(np.array([-30 * s, -40 * s]))
        cocc = tube([(0, yc[0] + 4 * s, -28 * s), (0, yc[1] + 2 * s, -42 * s)], [4.5 * s, 3.0 * s], 1.0)
        self.bones.append(Bone("coccyx", Part.SACRUM, *cocc.bounds(1.0),
                               lambda box, c=cocc: c.field(box, 4.0)[0], 1.2))

    def _si_table(self) -> tuple[np.ndarray, np.ndarray]:
        """|x| of the medial surface of the posterior ilium per height (the sacro-iliac joint)."""
        zs, xs = [], []
        for side in (+1, -1):
            cloud, uv = self.wing_clouds[side], self.wing_uv[side]
            post = uv[:, 0] < 0.3
            pts, r = cloud.points[post], cloud.radii[post]
            zk = np.round(pts[:, 2] / 2.0) * 2.0
            for z in np.unique(zk):
                sel = zk == z
                zs.append(z)
                xs.append(float(np.min(np.abs(pts[sel, 0]) - r[sel])))
        zs, xs = np.asarray(zs), np.asarray(xs)
        uz = np.unique(zs)
        return uz, np.array([xs[zs == z].min() for z in uz])

    def _si_x(self, z: float) -> float:
        """|x| of the sacral ala's lateral edge at height z: 2.5 mm of joint medial to the ilium."""
        return float(np.interp(z, *self._si)) - 2.5

    # ------------------------------------------------------------------ hip bones
    def _wing(self, side: int) -> tuple[PointCloud, np.ndarray, np.ndarray]:
        """Iliac wing: a curved plate sampled as balls; also the plate's medial normals."""
        s, w, a = self.p.scale, self.p.width, self.p.asym
        j = 0 if side > 0 else 6
        zk = np.array([22, 40, 60, 80, 100, 118, 140]) * s
        px = np.array([70, 64, 56, 52, 50, 52, 56]) * s * w
        py = np.array([22, 36, 48, 56, 62, 66, 66]) * s
        ax = np.array([88, 94, 104, 112, 118, 120, 116]) * s * w + a[j + 3]
        ay = np.array([-22, -36, -50, -58, -52, -40, -26]) * s
        bulge = np.array([4, 8, 14, 18, 20, 20, 20]) * s * w + a[j + 2]
        mid = np.stack([(px + ax) / 2, (py + ay) / 2])
        ortho = np.stack([ay - py, -(ax - px)])  # perpendicular to P->A, pointing lateral (+x)
        ortho /= np.linalg.norm(ortho, axis=0)
        ortho *= np.where(ortho[0] < 0, -1.0, 1.0)
        cx, cy = mid + ortho * bulge
        crest_u = np.array([0.0, 0.2, 0.45, 0.7, 0.9, 1.0])
        crest_z = np.array([100, 118, 132, 126, 104, 84]) * s * self.p.crest
        thick_u = np.array([0.0, 0.15, 0.3, 0.5, 0.75, 1.0])
        thick = np.array([  # rows: z keyframes, columns: u keyframes
            [22, 22, 16, 18, 18, 18],
            [24, 22, 12, 10, 10, 12],
            [28, 24, 11, 6, 7, 10],
            [30, 24, 9, 4.5, 5, 10],
            [28, 22, 9, 4, 5, 10],
            [22, 18, 9, 4.5, 6, 10],
            [16, 14, 9, 5, 6, 10],
        ]) * s
        us = np.linspace(0.0, 1.0, 70)
        zs = np.arange(zk[0], crest_z.max() + 1, 2.0)
        U, Z = np.meshgrid(us, zs)
        P = np.stack([np.interp(Z, zk, px), np.interp(Z, zk, py)])
        C = np.stack([np.interp(Z, zk, cx), np.interp(Z, zk, cy)])
        A = np.stack([np.interp(Z, zk, ax), np.interp(Z, zk, ay)])
        xy = (1 - U) ** 2 * P + 2 * U * (1 - U) * C + U ** 2 * A
        t_u = np.array([np.interp(Z.ravel(), zk, thick[:, k]) for k in range(len(thick_u))])  # (nu_key, N)
        k = np.clip(np.searchsorted(thick_u, U.ravel(), side="right") - 1, 0, len(thick_u) - 2)
        f = (U.ravel() - thick_u[k]) / (thick_u[k + 1] - thick_u[k])
        cols = np.arange(U.size)
        t = ((1 - f) * t_u[k, cols] + f * t_u[k + 1, cols]).reshape(U.shape)
        top = np.interp(U, crest_u, crest_z)
        t = t + 5 * s * np.clip(1 - (top - Z) / (9 * s), 0, 1)  # thickened crest rim
        keep = Z <= top
        pts = np.stack([side * xy[0], xy[1], Z], -1)
        uv = np.stack([U, Z], -1)
        # medial normal of the surface: cross product of the u and z tangents, pointing to x=0
        du = np.gradient(pts, axis=1)
        dz = np.gradient(pts, axis=0)
        n = np.cross(du, dz)
        n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)
        n *= np.where(n[..., 0:1] * side > 0, -1.0, 1.0)
        return PointCloud(pts[keep], t[keep] / 2), n[keep], uv[keep]

    def _build_hip(self, side: int) -> None:
        s, w, a = self.p.scale, self.p.width, self.p.asym
        j = 0 if side > 0 else 6
        H = self.heads[side]
        hr = self.p.head_r
        wing = self.wing_clouds[side]

        def m(p):
            return _mirror(np.asarray(p) * np.array([s * w, s, s]), side)

        tubes = [
            # superior pubic ramus: acetabulum -> symphysis
            tube(m([(70, -20, 12), (50, -44, 10), (26, -60, 6), (10, -64, 2)]), np.array([13, 9, 9, 11]) * s),
            # inferior pubic ramus and ischial ramus
            tube(m([(9, -60, -22), (22, -46, -40), (38, -26, -52), (50, -2, -58), (55, 16, -57)]),
                 np.array([8, 7, 7, 8, 10]) * s),
            # ischial body from the posterior acetabulum to the tuberosity
            tube(m([(80, 24, 2), (70, 30, -20), (58, 30, -42)]), np.array([13, 12, 12]) * s),
            # ischial spine, pointing medially and back
            tube(m([(72, 30, 6), (56, 40, 8), (44, 46, 9)]), np.array([8, 5, 3.5]) * s),
            # posterior column up to the sciatic notch
            tube(m([(80, 24, 2), (76, 30, 24)]), np.array([13, 13]) * s),
            # pelvic brim (arcuate line) from the ilium to the pubis
            tube(m([(62, 40, 44), (60, 10, 30), (66, -14, 16)]), np.array([9, 9, 11]) * s),
        ]
        cloud = wing
        for t in tubes:
            cloud = cloud + t
        ellipsoids = [
            (m((11, -64, -8)), np.array([9, 10, 21]) * s),  # pubic body
            (m((57, 30, -46)), np.array([11, 15, 17]) * s),  # ischial tuberosity
            (m((82, 4, 30)), np.array([13, 22, 14]) * s),  # iliac body above the acetabulum
        ]
        opening = _mirror(np.array([0.64, -0.30, -0.70]), side)
        opening = opening / np.linalg.norm(opening)
        ring_r = hr + 11.0 * s
        gap = 2.5

        def uncarved(box):
            x, y, z = box.x, box.y, box.z
            d, _ = cloud.field(box, reach=3.0)
            for c, r in ellipsoids:
                d = smin(d, ellipsoid(x, y, z, c, r), 6.0)
            # acetabular ring: the half of a thick sphere facing away from the opening
            dx, dy, dz = x - H[0], y - H[1], z - H[2]
            rn = np.sqrt(dx * dx + dy * dy + dz * dz)
            cosang = (dx * opening[0] + dy * opening[1] + dz * opening[2]) / np.maximum(rn, 1e-3)
            ring = np.maximum(rn - ring_r, (cosang - 0.12) * 25.0)
            ring = np.maximum(ring, (H[2] - 20.0 * s) - z)
            d = smin(d, ring, 5.0)
            # symphysis: each pubis stops 2 mm from the midline
            d = np.maximum(d, 2.0 - side * x)
            return d.astype(np.float32)

        lo, hi = cloud.bounds(4.0)
        for c, r in ellipsoids:
            lo = np.minimum(lo, c - r - 1)
            hi = np.maximum(hi, c + r + 1)
        lo = np.minimum(lo, H - ring_r - 1)
        hi = np.maximum(hi, H + ring_r + 1)
        part = Part.HIP_L if side > 0 else Part.HIP_R
        self.bones.append(Bone("hip_" + ("L" if side > 0 else "R"), part, lo, hi, uncarved, 1.6,
                               socket=(H, hr + gap)))

    # ------------------------------------------------------------------ femora
    def neck_axis(self, side: int) -> np.ndarray:
        """Unit vector from the head centre along the femoral neck (lateral, down, slightly back)."""
        elev = np.radians(self.p.neck_angle - 90.0)  # neck elevation above horizontal
        av = np.radians(self.p.anteversion)
        v = np.array([np.cos(elev) * np.cos(av), np.cos(elev) * np.sin(av), -np.sin(elev)])
        return _mirror(v, side)

    def _build_femur(self, side: int) -> None:
        s = self.p.scale
        H = self.heads[side]
        hr = self.p.head_r
        d = self.neck_axis(side)
        neck_len = 48.0 * s
        neck = tube([H, H + d * neck_len * 0.55, H + d * neck_len], np.array([0.62, 0.6, 0.78]) * hr, 1.0)
        gt_c = H + _mirror(np.array([56, 10, -22]) * s, side)
        shaft = tube(
            [gt_c + _mirror(np.array([-8, -2, -6]) * s, side), H + _mirror(np.array([34, 8, -62]) * s, side),
             H + _mirror(np.array([24, 6, -130]) * s, side), H + _mirror(np.array([12, 4, -260]) * s, side)],
            np.array([20, 16, 14, 13.5]) * s, 1.5,
        )
        lt_c = H + _mirror(np.array([20, 16, -55]) * s, side)

        def sdf(box):
            x, y, z = box.x, box.y, box.z
            dn, _ = neck.field(box, reach=4.0)
            ds, _ = shaft.field(box, reach=4.0)
            dd = smin(dn, ds, 8.0)
            dd = smin(dd, ellipsoid(x, y, z, gt_c, np.array([13, 19, 23]) * s), 8.0)
            dd = smin(dd, ellipsoid(x, y, z, lt_c, np.array([9, 9, 11]) * s), 5.0)
            head = np.sqrt((x - H[0]) ** 2 + (y - H[1]) ** 2 + (z - H[2]) ** 2) - hr
            return np.minimum(dd, head).astype(np.float32)

        def cortex(z):
            return np.interp(z, np.array([-220, -90, -55, 40]) * s, [6.5, 5.0, 1.8, 1.4]).astype(np.float32)

        def marrow(box: Box, dd: np.ndarray) -> np.ndarray:
            fatty = (box.z < H[2] - 75 * s) & (dd < -2.0)
            return np.where(fatty, Tissue.MARROW_FATTY, Tissue.CANCELLOUS).astype(np.uint8)

        lo = np.minimum(H - hr, shaft.bounds(2)[0])
        hi = np.maximum(H + hr, shaft.bounds(2)[1])
        lo = np.minimum(lo, gt_c - 25 * s)
        hi = np.maximum(hi, gt_c + 25 * s)
        self.bones.append(Bone("femur_" + ("L" if side > 0 else "R"), Part.FEMUR_L if side > 0 else Part.FEMUR_R,
                               lo - 1, hi + 1, sdf, cortex, Tissue.CANCELLOUS, marrow))


def paint_bones(canvas: Canvas, skeleton: Skeleton) -> None:
    """Paint each bone: cortex in the outer band, marrow inside; joints as cartilage."""
    for bone in skeleton.bones:
        box = canvas.grid.box(bone.lo, bone.hi)
        if box is None:
            continue
        d = bone.sdf(box)
        if bone.socket is not None:  # joint space: cartilage between the head and its socket
            c, r = bone.socket
            ball = np.sqrt((box.x - c[0]) ** 2 + (box.y - c[1]) ** 2 + (box.z - c[2]) ** 2) - r
            canvas.paint(box, (d < 0) & (ball < 0), Tissue.CARTILAGE, None)
            d = np.maximum(d, -ball)
        inside = d < 0
        if not inside.any():
            continue
        t_c = bone.cortex_mm(box.z) if callable(bone.cortex_mm) else np.float32(bone.cortex_mm)
        marrow = bone.marrow_fn(box, d) if bone.marrow_fn is not None else np.uint8(bone.marrow)
        tissue = np.where(d > -t_c, Tissue.CORTICAL, marrow).astype(np.uint8) if np.any(t_c) else \
            np.broadcast_to(np.uint8(bone.marrow), d.shape)
        canvas.paint(box, inside, tissue, bone.part)


def paint_canal(canvas: Canvas, skeleton: Skeleton, z_low: float) -> None:
    """Spinal canal contents: thecal sac (CSF) with epidural fat, down to ``z_low``."""
    prof = skeleton.canal()
    z0, z1 = prof.z_range
    box = canvas.grid.box((-30, -40, max(z0, z_low - 40)), (30, 120, z1 + 40))
    if box is None:
        return
    q = prof.at(np.clip(box.z, z0, z1))
    dc = superellipse(box.x, box.y, 0.0, q["cy"], q["rx_neg"], q["rx_pos"], q["ry_neg"], q["ry_pos"], 2.0)
    inside = (dc < 0) & (box.z >= z0) & (box.z <= z1)
    # thecal sac: the canal less 2-3 mm of epidural fat (more behind), ending near S2
    sac_end = z_low
    sac = (superellipse(box.x, box.y, 0.0, q["cy"] - 1.5, q["rx_neg"] - 2.5, q["rx_pos"] - 2.5,
                        q["ry_neg"] - 1.5, q["ry_pos"] - 3.0, 2.0) < 0) & (box.z > sac_end)
    tissue = np.where(sac, Tissue.CSF, Tissue.FAT_VISCERAL).astype(np.uint8)
    canvas.paint(box, inside, tissue, Part.CANAL)
