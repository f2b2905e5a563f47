"""Body outline, skin, subcutaneous fat, the muscle envelope, the visceral cavity and the couch.

Cross-sections are superellipses keyframed along z (a torso that becomes two thighs below
the perineum), so every slice is consistent with its neighbours. Sizes are for a lean adult
woman at scale 1 and scale with the patient's skeleton, muscle bulk and adiposity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cervseg.phantom.canvas import Canvas
from cervseg.phantom.fields import smooth_field
from cervseg.phantom.shapes import FAR, Grid, Profile, smin, superellipse
from cervseg.phantom.tissues import Part, Tissue

# keyframes (z mm above the femoral head centres) of the lean torso envelope
_TZ = [-112, -95, -80, -50, -20, 10, 50, 90, 130, 180, 300]
_T_RX = [15, 55, 100, 150, 160, 163, 156, 148, 138, 134, 134]
_T_RYA = [15, 45, 62, 80, 88, 90, 92, 92, 92, 95, 100]
_T_RYP = [15, 55, 82, 108, 114, 112, 100, 96, 94, 94, 94]
_T_CY = [45, 38, 25, 8, 2, 0, 0, 0, 0, 0, 0]
# thighs (left one; the right is mirrored)
_HZ = [-260, -150, -110, -80, -50, -25]
_H_CX = [82, 86, 90, 92, 94, 96]
_H_CY = [0, 3, 6, 10, 12, 12]
_H_R = [60, 68, 74, 78, 72, 50]
# visceral cavity
_CZ = [-62, -50, -30, -5, 20, 45, 80, 120, 170, 300]
_C_CY = [22, 18, 8, 0, -6, -10, -18, -24, -26, -26]
_C_RX = [10, 30, 46, 54, 62, 92, 114, 120, 118, 118]
_C_RYA = [12, 28, 48, 60, 70, 76, 74, 72, 72, 74]
_C_RYP = [14, 34, 52, 58, 66, 70, 56, 48, 44, 44]


@dataclass(frozen=True)
class BodyParams:
    scale: float  # skeletal size
    muscle: float  # muscle bulk factor
    adiposity: float  # subcutaneous fat factor (1 = average)
    belly: float  # extra anterior abdominal fat factor
    couch_sag: float  # curvature of the couch top (mm at 200 mm off-centre)
    flatten: float  # fraction of posterior depth pressed flat by the couch
    thigh_gap: float  # extra separation of the thighs (mm)

    @classmethod
    def draw(cls, rng: np.random.Generator, scale: float) -> "BodyParams":
        return cls(
            scale=scale,
            muscle=float(rng.uniform(0.92, 1.1)),
            adiposity=float(np.clip(rng.lognormal(0.0, 0.45), 0.3, 2.8)),
            belly=float(rng.uniform(0.8, 1.5)),
            couch_sag=float(rng.uniform(5, 15)),
            flatten=float(rng.uniform(0.03, 0.07)),
            thigh_gap=float(rng.uniform(-6, 12)),
        )


class Body:
    """Signed distances of the outline, the muscle envelope and the visceral cavity."""

    def __init__(self, p: BodyParams):
        self.p = p
        s, m, a = p.scale, p.muscle, p.adiposity
        tz = np.asarray(_TZ, float) * s
        rx = np.asarray(_T_RX) * s * m
        rya = np.asarray(_T_RYA) * s * m
        ryp = np.asarray(_T_RYP) * s * m
        cy = np.asarray(_T_CY) * s
        self.envelope_torso = Profile(tz, cx=np.zeros_like(tz), cy=cy, rx_neg=rx, rx_pos=rx, ry_neg=rya, ry_pos=ryp)
        # subcutaneous fat: thicker on the belly and the buttocks, thinner on the thighs
        fat_lat = a * np.interp(tz, [-120 * s, -40 * s, 40 * s, 150 * s], [16, 28, 24, 20])
        fat_ant = a * np.interp(tz, [-120 * s, 0, 60 * s, 150 * s], [14, 18, 26 * p.belly, 30 * p.belly])
        fat_post = a * np.interp(tz, [-120 * s, -40 * s, 40 * s, 150 * s], [14, 26, 18, 16])
        # the couch presses the back flat: every trunk level reaches the couch top
        post = cy + ryp + fat_post
        trunk = (tz > -70 * s)
        self.y_table = float(np.max(post[trunk]) * (1.0 - p.flatten))
        ryp_out = np.where(trunk, np.maximum(ryp + fat_post, self.y_table - cy + 8.0), ryp + fat_post)
        self.outline_torso = Profile(
            tz, cx=np.zeros_like(tz), cy=cy, rx_neg=rx + fat_lat, rx_pos=rx + fat_lat,
            ry_neg=rya + fat_ant, ry_pos=ryp_out,
        )
        hz = np.asarray(_HZ, float) * s
        hr = np.asarray(_H_R) * s * m
        hcx = np.asarray(_H_CX) * s + p.thigh_gap * np.interp(hz, [hz[0], hz[-1]], [1.0, 0.0])
        hcy = np.asarray(_H_CY) * s
        self.envelope_thigh = Profile(hz, cx=hcx, cy=hcy, rx_neg=hr, rx_pos=hr, ry_neg=hr * 1.02, ry_pos=hr * 1.08)
        fat_thigh = a * 13.0
        self.outline_thigh = Profile(
            hz, cx=hcx, cy=hcy, rx_neg=hr + fat_thigh, rx_pos=hr + fat_thigh,
            ry_neg=hr * 1.02 + fat_thigh, ry_pos=np.maximum(hr * 1.08 + fat_thigh, self.y_table - hcy + 4.0),
        )
        cz = np.asarray(_CZ, float) * s
        env_a = np.interp(cz, tz, rya - cy)
        self.cavity = Profile(
            cz, cx=np.zeros_like(cz), cy=np.asarray(_C_CY) * s,
            rx_neg=np.asarray(_C_RX) * s, rx_pos=np.asarray(_C_RX) * s,
            ry_neg=np.minimum(np.asarray(_C_RYA) * s, env_a - 12.0 + np.asarray(_C_CY) * s),
            ry_pos=np.asarray(_C_RYP) * s,
        )

    def table_y(self, x: np.ndarray) -> np.ndarray:
        """y of the couch top under patient-x (curved up towards the sides)."""
        return (self.y_table - self.p.couch_sag * (x / 200.0) ** 2).astype(np.float32)

    @staticmethod
    def _two_sided(x, y, z, prof: Profile) -> np.ndarray:
        q = prof.at(z)
        d = None
        for side in (1.0, -1.0):
            e = superellipse(x, y, side * q["cx"], q["cy"], q["rx_neg"], q["rx_pos"], q["ry_neg"], q["ry_pos"], 2.0)
            d = e if d is None else np.minimum(d, e)
        return np.where(np.isnan(d), FAR, d)

    def _torso(self, x, y, z, prof: Profile) -> np.ndarray:
        q = prof.at(z)
        d = superellipse(x, y, q["cx"], q["cy"], q["rx_neg"], q["rx_pos"], q["ry_neg"], q["ry_pos"], 2.3)
        return np.where(np.isnan(d), FAR, d)

    def outline(self, x, y, z) -> np.ndarray:
        d = smin(self._torso(x, y, z, self.outline_torso), self._two_sided(x, y, z, self.outline_thigh), 25.0)
        return np.maximum(d, y - self.table_y(x))

    def envelope(self, x, y, z) -> np.ndarray:
        d = smin(self._torso(x, y, z, self.envelope_torso), self._two_sided(x, y, z, self.envelope_thigh), 20.0)
        return np.maximum(d, y - self.table_y(x) + 6.0)

    def cavity_sdf(self, x, y, z) -> np.ndarray:
        q = self.cavity.at(z)
        d = superellipse(x, y, q["cx"], q["cy"], q["rx_neg"], q["rx_pos"], q["ry_neg"], q["ry_pos"], 2.0)
        return np.where(np.isnan(d), FAR, d)

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) x, y, z bounds of the body in mm."""
        q = self.outline_torso
        w = float(np.nanmax(q.at(q.z)["rx_pos"]))
        h = self.outline_thigh.at(self.outline_thigh.z)
        w = max(w, float(np.nanmax(h["cx"] + h["rx_pos"])))
        ya = float(np.nanmax(q.at(q.z)["ry_neg"]))
        return np.array([-w - 5, -ya - 5, -1e9]), np.array([w + 5, self.y_table + 1, 1e9])


def paint_couch(canvas: Canvas, body: Body, curved: bool = False) -> None:
    """A carbon-fibre couch top: thin dense shells around a foam core, curved like the patient's back.

    ``curved``: the underside bows down in the middle (about 55 mm deep at the centre, 10 mm at
    the edges), the profile of wide-bore CT couches (pelvic-ref-002's Brilliance Big Bore).
    """
    g = canvas.grid
    box = g.box((-260, body.y_table - 5, -1e9), (260, body.y_table + 75, 1e9))
    if box is None:
        return
    top = body.table_y(box.x) + 1.0
    depth = box.y - top
    if curved:
        bottom = 10.0 + 45.0 * np.sqrt(np.clip(1.0 - (box.x / 245.0) ** 2, 0.0, 1.0))
    else:
        bottom = np.float32(48.0)
    inside = (depth >= 0) & (depth < bottom) & (np.abs(box.x) < 245)
    shell = inside & ((depth < 2.5) | (depth > bottom - 2.5) | (np.abs(box.x) > 241))
    m = np.broadcast_to(inside, box.shape)
    canvas.paint(box, m, Tissue.COUCH_FOAM, Part.COUCH)
    canvas.paint(box, np.broadcast_to(shell, box.shape), Tissue.COUCH_SHELL, Part.COUCH)


def paint_body(canvas: Canvas, body: Body, rng: np.random.Generator,
               septa_rng: np.random.Generator | None = None) -> None:
    """Skin, subcutaneous fat, muscle envelope (with intermuscular fat planes) and cavity fat.

    ``septa_rng``: also divide the envelope into muscle groups by 2-4 mm fat planes (a second,
    shorter-range field), as the gluteal, thigh and abdominal-wall muscles are on real CT.
    """
    g = canvas.grid
    lo, hi = body.extent()
    box = g.box(lo, hi)
    if box is None:
        return
    d_out = body.outline(box.x, box.y, box.z)
    inside = d_out < 0
    tissue = np.where(d_out > -2.0, Tissue.SKIN, Tissue.FAT).astype(np.uint8)
    d_env = body.envelope(box.x, box.y, box.z)
    muscle = d_env < 0
    tissue[muscle] = Tissue.MUSCLE
    # intermuscular fat planes: thin sheets where a smooth random field crosses zero
    spacing = (float(np.diff(g.zs[:2])[0]) if g.zs.size > 1 else 5.0,
               float(np.diff(g.ys[:2])[0]), float(np.diff(g.xs[:2])[0]))
    planes = smooth_field(rng, box.shape, spacing, (70.0, 50.0, 50.0))
    tissue[muscle & (np.abs(planes) < 0.035) & (d_env < -8)] = Tissue.FAT
    if septa_rng is not None:
        groups = smooth_field(septa_rng, box.shape, spacing, (50.0, 26.0, 26.0))
        tissue[muscle & (np.abs(groups) < 0.07) & (d_env < -4)] = Tissue.FAT
        # some groups are fattier (pelvic-ref-002: gluteus maximus 6 HU, iliacus 47 HU)
        tissue[(tissue == Tissue.MUSCLE) & (groups > 0.3) & (planes > 0)] = Tissue.MUSCLE_FATTY
    canvas.paint(box, inside, tissue, Part.BODY)
    d_cav = body.cavity_sdf(box.x, box.y, box.z)
    cav = (d_cav < 0) & (d_env < -10)
    canvas.paint(box, cav, Tissue.FAT_VISCERAL, Part.CAVITY)


@dataclass(frozen=True)
class ArmParams:
    """Arms along the body (forearms and hands beside the pelvis), or raised out of the scan."""

    beside: bool  # False: arms raised on the chest or above the head, outside the pelvic scan
    gap: float  # mm between the torso's side and the forearm
    radius: float  # forearm half-depth (mm)

    @classmethod
    def draw(cls, rng: np.random.Generator, scale: float, p_beside: float) -> "ArmParams":
        beside = bool(rng.random() < p_beside)
        return cls(beside, float(rng.uniform(3.0, 15.0)), float(rng.uniform(26.0, 34.0) * scale))


def paint_arms(canvas: Canvas, body: Body, arms: ArmParams) -> None:
    """Forearms (skin, fat, muscle, radius and ulna) from the elbow at the waist to the wrist at
    the hips, then flat hands to mid-thigh, resting on the couch beside the body (air only)."""
    if not arms.beside:
        return
    s = body.p.scale
    z_elbow, z_wrist, z_hand = 230.0 * s, 0.0, -110.0 * s
    box = canvas.grid.box((-360, body.y_table - 4 * arms.radius, z_hand), (360, body.y_table, z_elbow))
    if box is None:
        return
    z = box.z
    q = body.outline_torso.at(np.clip(z, body.outline_torso.z_range[0], body.outline_torso.z_range[1]))
    forearm = z > z_wrist
    ry = np.where(forearm, arms.radius, 0.45 * arms.radius).astype(np.float32)
    rx = np.where(forearm, 1.15 * arms.radius, 1.5 * arms.radius).astype(np.float32)
    taper = np.clip((z - z_hand) / 25.0, 0.3, 1.0)  # fingertips
    rx, ry = rx * taper, ry * taper
    cy = (body.table_y(np.float32(0.0)) - ry - 1.0).astype(np.float32)
    tissue = np.zeros(box.shape, np.uint8)
    inside = np.zeros(box.shape, bool)
    for side in (1.0, -1.0):
        cx = side * (q["rx_pos"] + arms.gap + rx)
        d = superellipse(box.x, box.y, cx, cy, rx, rx, ry, ry, 2.0)
        arm = d < 0
        t = np.where(d > -2.0, Tissue.SKIN, np.where(d > -7.0, Tissue.FAT, Tissue.MUSCLE)).astype(np.uint8)
        for off in (-0.35, 0.35):  # radius and ulna side by side; metacarpals in the hand
            bx = cx + side * off * rx
            br = np.where(forearm, 0.25 * arms.radius, 0.15 * arms.radius).astype(np.float32) * taper
            db = superellipse(box.x, box.y, bx, cy, br, br, br, br, 2.0)
            t = np.where(db < 0, np.where(db > -2.0, Tissue.CORTICAL, Tissue.CANCELLOUS), t).astype(np.uint8)
        tissue = np.where(arm, t, tissue)
        inside |= arm
    canvas.paint(box, inside, tissue, Part.BODY, over_parts=(Part.NONE,))
