"""Bowel: anal canal, rectum, sigmoid and colon along one path, and the small-bowel loops.

The rectum follows the sacral curve from the anorectal junction to the rectosigmoid
junction, where the sigmoid loops forward and to the left to become the descending colon;
the caecum and ascending colon lie on the right. Colon contents are faeces (mottled, with
gas bubbles) and gas rising to the anterior (non-dependent) wall of the supine patient.
Small-bowel loops are packed into the free space of the cavity by Poisson-disk sampling,
chained into tubes of fluid, some gas and (optionally) oral contrast, with a thin wall.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from cervseg.phantom.body import Body
from cervseg.phantom.canvas import Canvas
from cervseg.phantom.fields import smooth_field
from cervseg.phantom.shapes import PointCloud, spline_path
from cervseg.phantom.skeleton import Skeleton
from cervseg.phantom.tissues import Part, Tissue


@dataclass
class GutTube:
    """A tube with per-point radius, wall thickness, gas fraction, content and part label."""

    cloud: PointCloud
    wall: np.ndarray  # mm per point
    gas: np.ndarray  # 0..1 fraction of the lumen depth filled with gas, per point
    content: np.ndarray  # Tissue per point for the non-gas lumen
    part: np.ndarray  # Part per point
    solid: np.ndarray  # bool per point: no lumen (anal canal)


def _tube_values(keys: np.ndarray, values: np.ndarray, u: np.ndarray, step: bool = False) -> np.ndarray:
    if step:
        idx = np.clip(np.floor(u + 0.5).astype(int), 0, len(values) - 1)
        return np.asarray(values)[idx]
    return np.interp(u, keys, values)


class LargeBowel:
    """Anal canal -> rectum -> sigmoid -> descending colon, and caecum -> ascending colon."""

    def __init__(self, sk: Skeleton, body: Body, rng: np.random.Generator):
        s = sk.p.scale
        self.sk = sk
        self.r_rect = float(rng.uniform(12, 23)) * s
        gap = float(rng.uniform(4, 12))  # presacral space
        ya = sk.sacrum_anterior_y

        def on_sacrum(z, r, dx=0.0):
            return (dx, float(ya(z)) - gap - r, z)

        self.z_rs = float(rng.uniform(52, 80) * s)  # rectosigmoid junction
        r = self.r_rect
        keys = [
            (rng.normal(0, 2), rng.normal(-6, 4) * s, -70 * s),  # anal verge
            (0.0, rng.normal(6, 3) * s, -44 * s),  # anorectal junction
            on_sacrum(-18 * s, r * 0.95, rng.normal(0, 4)),
            on_sacrum(10 * s, r, rng.normal(0, 6)),
            on_sacrum(38 * s, r * 0.9, rng.normal(0, 8)),
            on_sacrum(self.z_rs, r * 0.8, rng.normal(4, 8)),
        ]
        self.n_anal, self.n_rectum = 2, len(keys)
        cav_rx = lambda z: float(body.cavity.at(np.array([z]))["rx_pos"][0])  # noqa: E731
        sig = [
            (rng.normal(12, 12), rng.normal(-12, 10) * s, self.z_rs + rng.normal(14, 8)),
            (rng.normal(36, 12), rng.normal(-34, 10) * s, rng.normal(64, 10) * s),
            (rng.normal(62, 10), rng.normal(-20, 10) * s, rng.normal(90, 10) * s),
        ]
        zd = 128 * s
        r_dc = float(rng.uniform(13, 18)) * s
        desc = [(cav_rx(zd) - r_dc - 10, rng.normal(14, 6) * s, zd), (cav_rx(220) - r_dc - 10, rng.normal(22, 6) * s, 220 * s),
                (cav_rx(300) - r_dc - 10, 24 * s, 330.0)]
        self.keys = np.array(keys + sig + desc, dtype=float)
        n = len(self.keys)
        radius = np.array([10, 11, r * 0.95, r, r * 0.9, r * 0.8] + [rng.uniform(11, 17) * s] * 3 + [r_dc] * 3)
        wall = np.full(n, 3.0)
        gas = np.clip(rng.beta(0.6, 1.6, size=n) * (rng.random(n) < 0.7), 0, 0.85)
        faecal = rng.random(n) < 0.7
        content = np.where(faecal, Tissue.FAECES, Tissue.BOWEL_FLUID)
        part = np.array([Part.ANAL_CANAL] * 2 + [Part.RECTUM] * 4 + [Part.SIGMOID] * 3 + [Part.COLON] * 3)
        self.keys_sig = self.keys[self.n_rectum:self.n_rectum + 3]
        self.radius_keys = radius
        self.main_wall, self.main_gas, self.main_content, self.main_part = wall, gas, content, part
        self.main = self._tube(self.keys, radius, wall, gas, content, part, solid_until=1.0)
        # caecum and ascending colon on the right
        r_c = float(rng.uniform(18, 27)) * s
        zc = float(rng.uniform(35, 60) * s)
        asc = np.array([(-(cav_rx(zc) - r_c - 6), rng.normal(-18, 8) * s, zc),
                        (-(cav_rx(zc + 50) - r_c - 8), rng.normal(-4, 6) * s, zc + 50 * s),
                        (-(cav_rx(200) - r_c - 10), rng.normal(12, 6) * s, 200 * s),
                        (-(cav_rx(300) - r_c - 10), 16 * s, 330.0)])
        na = len(asc)
        self.ascending = self._tube(asc, np.array([r_c, r_c * 0.9, r_c * 0.8, r_c * 0.75]), np.full(na, 3.0),
                                    np.clip(rng.beta(0.8, 1.5, size=na), 0, 0.8), np.full(na, Tissue.FAECES),
                                    np.full(na, Part.COLON), solid_until=-1.0)

    @staticmethod
    def _tube(keys, radius, wall, gas, content, part, solid_until: float) -> GutTube:
        pts, u = spline_path(keys, 1.5)
        kk = np.arange(len(keys), dtype=float)
        cloud = PointCloud(pts, _tube_values(kk, radius, u))
        return GutTube(
            cloud, _tube_values(kk, wall, u), _tube_values(kk, gas, u), _tube_values(kk, content, u, True),
            _tube_values(kk, part, u, True), u <= solid_until,
        )

    def tubes(self) -> list[GutTube]:
        return [self.main, self.ascending]

    def paint(self, canvas: Canvas, rng: np.random.Generator) -> None:
        for t in self.tubes():
            paint_gut(canvas, t, rng, over=(Part.CAVITY, Part.BODY, Part.PELVIC_MUSCLE))


def paint_gut(canvas: Canvas, t: GutTube, rng: np.random.Generator, over) -> None:
    """Wall, lumen contents, gas on the anterior side, bubbles in faeces."""
    lo, hi = t.cloud.bounds(1.0)
    box = canvas.grid.box(lo, hi)
    if box is None:
        return
    d, idx = t.cloud.field(box)
    inside = d < 0
    if not inside.any():
        return
    i = np.where(inside, idx, 0)
    wall = t.wall[i]
    r = t.cloud.radii[i]
    cy = t.cloud.points[i, 1].astype(np.float32)
    lumen_r = np.maximum(r - wall, 0.1)
    tissue = np.where(d > -wall, Tissue.BOWEL_WALL, t.content[i]).astype(np.uint8)
    gas = (d <= -wall) & ((box.y - cy) < -lumen_r * (1 - 2 * t.gas[i]))
    tissue[gas] = Tissue.BOWEL_GAS
    g = canvas.grid
    spacing = (float(np.diff(g.zs[:2])[0]) if g.zs.size > 1 else 5.0, float(g.ys[1] - g.ys[0]), float(g.xs[1] - g.xs[0]))
    bubbles = smooth_field(rng, box.shape, spacing, 5.0) > 1.7
    tissue[(tissue == Tissue.FAECES) & bubbles] = Tissue.BOWEL_GAS
    solid = t.solid[i]
    tissue[solid & inside] = Tissue.ANAL_SPHINCTER
    part = t.part[i].astype(np.uint8)
    # paint per part so that the part label follows the path position
    for p in np.unique(part[inside]):
        m = inside & (part == p)
        canvas.paint(box, m, tissue, int(p), over_parts=over)


class SmallBowel:
    """Loops packed into the free space of the cavity (Poisson-disk centres chained into tubes)."""

    def __init__(self, body: Body, sk: Skeleton, blockers: list[Callable[[np.ndarray], np.ndarray]],
                 z_min: float, z_max: float, rng: np.random.Generator, oral_contrast: bool,
                 gas: tuple[float, float, float] = (0.25, 0.15, 0.6)):
        """``gas``: (probability that a loop holds gas, lowest and highest gas level)."""
        s = sk.p.scale
        self.r = float(rng.uniform(10, 13.5)) * s
        r = self.r
        lo = np.array([-140 * s, -130 * s, z_min])
        hi = np.array([140 * s, 60 * s, z_max])
        n_cand = 9000
        cand = lo + rng.random((n_cand, 3)) * (hi - lo)
        ok = body.cavity_sdf(cand[:, 0], cand[:, 1], cand[:, 2]) < -(r + 3)
        ok &= body.envelope(cand[:, 0], cand[:, 1], cand[:, 2]) < -(r + 12)
        for block in blockers:
            ok[ok] &= block(cand[ok]) > r + 2.5
        cand = cand[ok]
        min_d = 2 * r + float(rng.uniform(0.5, 3.0))
        accepted: list[np.ndarray] = []
        arr = np.empty((0, 3))
        for p in cand:
            if len(arr) and np.min(np.sum((arr - p) ** 2, axis=1)) < min_d * min_d:
                continue
            accepted.append(p)
            arr = np.asarray(accepted)
        self.centres = arr
        self.chains = self._chain(arr, 2.9 * r, rng)
        self.tubes: list[GutTube] = []
        for chain in self.chains:
            if len(chain) < 2:
                chain = [chain[0], chain[0] + np.array([0, 0, 0.5 * r])]
            pts, u = spline_path(np.asarray(chain), 1.6)
            n = len(pts)
            rad = r * (0.85 + 0.3 * rng.random()) * np.ones(n)
            gas_level = float(rng.uniform(gas[1], gas[2])) if rng.random() < gas[0] else 0.0
            content = Tissue.BOWEL_CONTRAST if (oral_contrast and rng.random() < 0.6) else Tissue.BOWEL_FLUID
            self.tubes.append(GutTube(PointCloud(pts, rad), np.full(n, 2.0), np.full(n, gas_level),
                                      np.full(n, content, np.uint8), np.full(n, Part.SMALL_BOWEL, np.uint8),
                                      np.zeros(n, bool)))

    @staticmethod
    def _chain(points: np.ndarray, max_link: float, rng: np.random.Generator) -> list[list[np.ndarray]]:
        """Greedy nearest-neighbour walks: each walk is one loop; long jumps start a new loop."""
        left = list(range(len(points)))
        chains = []
        while left:
            start = left.pop(int(rng.integers(len(left))))
            chain = [points[start]]
            cur = start
            while left:
                rest = np.asarray(left)
                dist = np.linalg.norm(points[rest] - points[cur], axis=1)
                j = int(np.argmin(dist))
                if dist[j] > max_link:
                    break
                cur = int(rest[j])
                left.remove(cur)
                chain.append(points[cur])
            chains.append(chain)
        return chains

    def paint(self, canvas: Canvas, rng: np.random.Generator) -> None:
        for t in self.tubes:
            paint_gut(canvas, t, rng, over=(Part.CAVITY,))
