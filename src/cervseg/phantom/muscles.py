"""Named muscles that shape the pelvis on CT: psoas, iliacus, obturator internus, piriformis, levator ani.

The rest of the muscle mass (gluteals, paraspinals, abdominal wall, thigh) is the body's
muscle envelope. These muscles matter because they touch the organs being contoured with
almost the same HU (psoas and iliacus beside the nodal CTV, obturator internus beside the
bladder, levator ani around the rectum), which is what makes real contouring hard.
"""

from __future__ import annotations

import numpy as np

from cervseg.phantom.canvas import Canvas
from cervseg.phantom.shapes import PointCloud, superellipse, tube
from cervseg.phantom.skeleton import Skeleton, _mirror
from cervseg.phantom.tissues import Part, Tissue


def muscle_clouds(sk: Skeleton, rng: np.random.Generator) -> list[tuple[str, Part, PointCloud]]:
    """Tube/plate models of the named muscles of both sides."""
    s, w = sk.p.scale, sk.p.width
    bulk = float(rng.uniform(0.85, 1.15))
    out = []
    levels = {name: (z_top, yc) for name, z_top, yc in sk._vertebra_levels()}
    yl5 = levels["L5"][1]
    for side in (1, -1):
        H = sk.heads[side]
        lt = H + _mirror(np.array([20, 16, -55]) * s, side)
        # psoas: beside the lumbar bodies, over the pelvic brim, in front of the hip, to the lesser trochanter
        pts = [
            (34 * s, yl5 - 4, 290 * s), (38 * s, yl5 - 2, 200 * s), (45 * s, yl5 - 2, 150 * s),
            (55 * s * w, yl5 - 8, 110 * s), (64 * s * w, -14 * s, 70 * s), (70 * s * w, -34 * s, 36 * s),
            (H[0] * side - 14 * s, -44 * s, 8 * s), (H[0] * side - 10 * s, -36 * s, -22 * s),
            (lt[0] * side - 4 * s, lt[1] - 8 * s, lt[2] + 4 * s),
        ]
        radii = np.array([11, 15, 19, 21, 20, 17, 14, 12, 9]) * s * bulk
        out.append(("psoas", Part.PSOAS, tube(_mirror(pts, side), radii, 1.5)))
        # iliacus: a layer on the inner (medial) face of the iliac wing, over the iliac fossa
        cloud, n, uv = sk.wing_clouds[side], sk.wing_normals[side], sk.wing_uv[side]
        sel = (uv[:, 0] > 0.3) & (uv[:, 1] > 38 * s)
        top = np.max(uv[sel, 1])
        sel &= uv[:, 1] < top - 6 * s
        r_il = np.interp(uv[sel, 1], [38 * s, 70 * s, 130 * s], [11, 9, 6]) * s * bulk
        centres = cloud.points[sel] + n[sel] * (cloud.radii[sel] + r_il - 1.0)[:, None]
        keep = np.arange(len(centres)) % 2 == 0
        out.append(("iliacus", Part.ILIACUS, PointCloud(centres[keep], r_il[keep])))
        # obturator internus: the side wall of the true pelvis, medial to the acetabulum
        zz, yy = np.meshgrid(np.arange(-38, 26, 3.0) * s, np.arange(-44, 36, 3.0) * s, indexing="ij")
        inner = H[0] * side - sk.p.head_r - 19 * s
        xx = inner - 5 * s + 0.06 * np.abs(yy) - 0.12 * np.minimum(zz, 0)
        r = np.full(xx.size, 6.0 * s * bulk)
        ok = (zz.ravel() < 22 * s - 0.3 * np.maximum(yy.ravel(), 0))
        ob = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], -1)[ok]
        out.append(("obturator", Part.PELVIC_MUSCLE, PointCloud(_mirror(ob, side), r[ok])))
        # piriformis: front of the sacrum, out through the greater sciatic notch to the trochanter
        ya = float(sk.sacrum_anterior_y(50 * s))
        pts = [(22 * s, ya + 6, 52 * s), (50 * s, ya + 4, 36 * s), (80 * s * w, 34 * s, 16 * s),
               (H[0] * side + 44 * s, 18 * s, 2 * s)]
        out.append(("piriformis", Part.PELVIC_MUSCLE, tube(_mirror(pts, side), np.array([8, 11, 10, 7]) * s * bulk)))
    return out


def paint_muscles(canvas: Canvas, sk: Skeleton, rng: np.random.Generator) -> None:
    """Named muscles over body and cavity, then the levator ani funnel of the pelvic floor."""
    allowed = (Part.BODY, Part.CAVITY)
    for _, part, cloud in muscle_clouds(sk, rng):
        lo, hi = cloud.bounds(1.0)
        box = canvas.grid.box(lo, hi)
        if box is None:
            continue
        d, _ = cloud.field(box)
        canvas.paint(box, d < 0, Tissue.MUSCLE, part, over_parts=allowed)
    paint_levator(canvas, sk)


def levator_profile(sk: Skeleton) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(z, cy, rx, ry) keyframes of the levator ani funnel (inner surface)."""
    s = sk.p.scale
    z = np.array([-46, -36, -22, -8, 2]) * s
    cy = np.array([22, 22, 18, 12, 8]) * s
    rx = np.array([14, 22, 34, 45, 50]) * s
    ry = np.array([16, 24, 36, 46, 52]) * s
    return z, cy, rx, ry


def paint_levator(canvas: Canvas, sk: Skeleton) -> None:
    z, cy, rx, ry = levator_profile(sk)
    box = canvas.grid.box((-rx.max() - 8, -80, z[0] - 3), (rx.max() + 8, 90, z[-1]))
    if box is None:
        return
    c = np.interp(box.z, z, cy)
    a = np.interp(box.z, z, rx)
    b = np.interp(box.z, z, ry)
    d = superellipse(box.x, box.y, 0.0, c, a, a, b, b, 2.0)
    band = (d > 0) & (d < 8.0) & (box.y > c - 0.6 * b) & (box.z >= z[0]) & (box.z <= z[-1])
    canvas.paint(box, band, Tissue.MUSCLE, Part.PELVIC_MUSCLE, over_parts=(Part.BODY, Part.CAVITY))


def paint_fascia(canvas: Canvas, sk: Skeleton, rng: np.random.Generator) -> None:
    """Fat planes between the gluteal muscles: sheets parallel to the outer face of the ilium."""
    s = sk.p.scale
    for side in (1, -1):
        cloud, n, uv = sk.wing_clouds[side], sk.wing_normals[side], sk.wing_uv[side]
        for depth in (rng.uniform(20, 28) * s, rng.uniform(42, 55) * s):
            sel = (uv[:, 0] < 0.85) & (uv[:, 0] > 0.05)
            centres = cloud.points[sel] - n[sel] * (cloud.radii[sel] + depth)[:, None]
            sheet = PointCloud(centres, 1.6)
            box = canvas.grid.box(*sheet.bounds(1.0))
            if box is None:
                continue
            d, _ = sheet.field(box)
            canvas.paint(box, d < 0, Tissue.FAT, None, over_parts=(Part.BODY,), over_tissues=(Tissue.MUSCLE,))
