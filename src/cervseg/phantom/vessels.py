"""Aorta, vena cava, iliac and femoral vessels, lymph nodes, and the nodal CTV they define.

The nodal CTV (``CTV_N``) of cervical-cancer radiotherapy is drawn, per the RTOG / Small et al.
2008 consensus and its successors, as the iliac vessels plus a margin of about 7 mm (5-10 mm
between observers) from the aortic bifurcation down to the femoral heads, plus the presacral
band and the obturator space, minus bone, muscle and bowel. So its boundary runs through fat
where the CT shows nothing: only the vessels it is drawn around are visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cervseg.phantom.canvas import Canvas
from cervseg.phantom.shapes import FAR, Box, PointCloud, ellipsoid, tube
from cervseg.phantom.skeleton import Skeleton, _mirror
from cervseg.phantom.tissues import Part, Tissue


@dataclass
class Vessel:
    name: str
    artery: bool
    cloud: PointCloud
    nodal: bool  # drawn into CTV_N (iliac vessels above the femoral heads)


class Vessels:
    """The vessel tree of one patient, its lymph nodes and the nodal-CTV support regions."""

    def __init__(self, sk: Skeleton, psoas: dict[int, PointCloud], rng: np.random.Generator):
        s = sk.p.scale
        self.sk = sk
        levels = {name: (z_top, yc) for name, z_top, yc in sk._vertebra_levels()}
        z4, y4 = levels["L4"]
        self.z_bif = float(z4 - 22 * s + rng.normal(0, 7))  # aortic bifurcation, around L4
        z_conf = self.z_bif - float(rng.uniform(12, 24))  # IVC confluence, L4/L5
        y_front = y4 - 17 * s
        y_ao = y_front - 11 * s
        z_cib = float(rng.uniform(80, 98) * s)  # common iliac bifurcation, near the SI joints
        self.z_femoral = float(min(sk.heads[1][2], sk.heads[-1][2]) + sk.p.head_r)  # femoral-head top
        top = 320.0
        vs: list[Vessel] = []
        vs.append(Vessel("aorta", True, tube([(12, y_ao, top), (12, y_ao, self.z_bif + 20), (10, y_ao + 1, self.z_bif)],
                                               np.array([10, 9, 8.5]) * s), True))
        vs.append(Vessel("ivc", False, tube([(-22 * s, y_ao + 3, top), (-20 * s, y_ao + 4, z_conf)],
                                              np.array([11, 10]) * s), True))
        for side in (1, -1):
            ps = psoas[side]
            # points on the antero-medial surface of the psoas at a few heights (the external iliac's path)
            def along_psoas(z, off, ps=ps, side=side):
                sel = np.argmin(np.abs(ps.points[:, 2] - z))
                c, r = ps.points[sel], float(ps.radii[sel])
                d = np.array([-side * 0.55, -0.83, 0.0])
                return c + d * (r + off)
            B = along_psoas(z_cib, 5 * s) + np.array([0, 6 * s, 0])
            jit = rng.normal(0, 2.5, size=(6, 3))
            cia = [(side * 11 + (2 if side > 0 else -2), y_ao + 1, self.z_bif), (side * 26 * s, -14 * s, (self.z_bif + z_cib) / 2), B]
            vs.append(Vessel(f"cia_{side}", True, tube(cia, np.array([6.5, 6, 5.5]) * s), True))
            eia = [B, along_psoas(60 * s, 5.5 * s) + jit[0], along_psoas(34 * s, 5.5 * s) + jit[1],
                   along_psoas(8 * s, 5 * s) + jit[2]]
            vs.append(Vessel(f"eia_{side}", True, tube(eia, np.array([5.5, 5, 5, 4.8]) * s), True))
            H = sk.heads[side]
            fem = [eia[-1], H + _mirror(np.array([-12, -52, -30]) * s, side), H + _mirror(np.array([-10, -36, -110]) * s, side),
                   H + _mirror(np.array([-14, -20, -260]) * s, side)]
            vs.append(Vessel(f"fa_{side}", True, tube(fem, np.array([4.8, 4.5, 4.2, 4]) * s), False))
            vein_off = np.array([-side * 9.5 * s, 5 * s, 0])
            vs.append(Vessel(f"eiv_{side}", False, tube([e + vein_off for e in eia], np.array([6.5, 7, 7, 7]) * s), True))
            vs.append(Vessel(f"fv_{side}", False, tube([f + vein_off for f in fem], np.array([7, 6.5, 6, 5.5]) * s), False))
            civ_end = (-20 * s, y_ao + 6, z_conf)
            vs.append(Vessel(f"civ_{side}", False, tube([civ_end, (side * 22 * s, -6 * s, (z_conf + z_cib) / 2),
                                                        B + np.array([-side * 6 * s, 10 * s, 0])],
                                                       np.array([8, 7.5, 7]) * s), True))
            iia = [B, B + np.array([side * 5, 18, -18]) * s, _mirror(np.array([56, 36, 52]) * s, side) + jit[3],
                   _mirror(np.array([55, 42, 30]) * s, side) + jit[4], _mirror(np.array([50, 30, 8]) * s, side)]
            vs.append(Vessel(f"iia_{side}", True, tube(iia, np.array([4.5, 4, 3.5, 3, 2.5]) * s), True))
            vs.append(Vessel(f"iiv_{side}", False,
                             tube([p + np.array([-side * 5 * s, 7 * s, 0]) for p in iia], np.array([6, 5.5, 5, 4, 3.5]) * s),
                             True))
            obt = [_mirror(np.array([52, 22, 36]) * s, side), _mirror(np.array([48, -6, 16]) * s, side),
                   _mirror(np.array([50, -28, 4]) * s, side)]
            vs.append(Vessel(f"obt_{side}", True, tube(obt, 2.5 * s), True))
        self.vessels = vs
        self.nodes = self._nodes(rng)

    def _nodes(self, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
        """Lymph nodes: small ovoids in the fat beside the iliac vessels (some enlarged)."""
        out = []
        nodal = [v for v in self.vessels if v.nodal and v.name[:3] in ("cia", "eia", "iia", "obt")]
        n = int(rng.integers(6, 16))
        big = int(rng.choice([0, 0, 0, 1, 2]))
        for i in range(n + big):
            v = nodal[int(rng.integers(len(nodal)))]
            k = int(rng.integers(len(v.cloud)))
            c = v.cloud.points[k]
            r_v = float(v.cloud.radii[k])
            r = rng.uniform(3.0, 6.5, size=3) if i < n else rng.uniform(9.0, 15.0, size=3)
            direction = rng.normal(size=3)
            direction[2] *= 0.3
            direction /= np.linalg.norm(direction)
            out.append((c + direction * (r_v + r.mean() + rng.uniform(1, 4)), r))
        return out

    def paint(self, canvas: Canvas) -> None:
        """Vessels (with a fat sheath in the thigh) and nodes, only into fat or unnamed soft tissue."""
        allowed = (Part.CAVITY, Part.BODY)
        for v in self.vessels:
            lo, hi = v.cloud.bounds(4.0)
            box = canvas.grid.box(lo, hi)
            if box is None:
                continue
            d, _ = v.cloud.field(box, reach=4.0)
            canvas.paint(box, d < 3.5, Tissue.FAT_VISCERAL, None, over_parts=(Part.BODY,))
            canvas.paint(box, d < 0, Tissue.ARTERY if v.artery else Tissue.VEIN, Part.VESSEL, over_parts=allowed)
        for c, r in self.nodes:
            box = canvas.grid.box(c - r - 1, c + r + 1)
            if box is None:
                continue
            d = ellipsoid(box.x, box.y, box.z, c, r)
            canvas.paint(box, d < 0, Tissue.LYMPH_NODE, Part.NODE, over_parts=(Part.CAVITY,))

    # ----------------------------------------------------------------- nodal CTV support
    def nodal_distance(self, box: Box, reach: float) -> np.ndarray:
        """Distance (mm) from the nodal vessels' walls, FAR beyond ``reach``."""
        merged = None
        for v in self.vessels:
            if v.nodal:
                merged = v.cloud if merged is None else merged + v.cloud
        return merged.field(box, reach)[0] if merged is not None else np.full(box.shape, FAR, np.float32)

    def nodal_bounds(self, reach: float) -> tuple[np.ndarray, np.ndarray]:
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for v in self.vessels:
            if v.nodal:
                a, b = v.cloud.bounds(reach)
                lo, hi = np.minimum(lo, a), np.maximum(hi, b)
        return lo, hi

    def obturator_space(self, side: int) -> PointCloud:
        """The obturator nodal region: a band along the pelvic side wall between the iliac vessels."""
        sk, s = self.sk, self.sk.p.scale
        H = sk.heads[side]
        inner = H[0] * side - sk.p.head_r - 19 * s - 5 * s
        zz, yy = np.meshgrid(np.arange(6, 48, 3.0) * s, np.arange(-34, 26, 3.0) * s, indexing="ij")
        xx = inner - 6 * s - 9 * s + 0.06 * np.abs(yy)
        pts = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], -1)
        return PointCloud(_mirror(pts, side), 9.0 * s)
