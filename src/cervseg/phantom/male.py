"""Male pelvic organs: prostate, seminal vesicles and the urethra below the prostate.

Why a cervix toolkit draws them: a network that has only seen female pelves contours the
prostate of a male CT (the public pelvic CTs, pelvic-ref-002 among them) as bladder, since
it is the soft tissue under the bladder where a cervix would be. Male phantoms teach that the
bladder is the urine-filled organ, not whatever lies behind the symphysis. Positions follow
supine planning CT: the prostate behind the lower pubic symphysis and in front of the rectum,
its base at the bladder neck and its apex just above the anorectal junction; the seminal
vesicles run up, back and out from its base, between the bladder and the rectum.
"""

from __future__ import annotations

import numpy as np

from cervseg.phantom.canvas import Canvas
from cervseg.phantom.organs import PELVIS_FAT, paint_urethra_path
from cervseg.phantom.shapes import Bumps, ellipsoid, tube
from cervseg.phantom.skeleton import Skeleton
from cervseg.phantom.tissues import Part, Tissue


class Prostate:
    """An ovoid of 20-80 ml (benign enlargement is common at the age of pelvic radiotherapy)."""

    def __init__(self, sk: Skeleton, rng: np.random.Generator):
        s = sk.p.scale
        grow = float(rng.uniform(0.9, 1.35))
        self.radii = np.array([rng.uniform(20, 24), rng.uniform(14, 17), rng.uniform(16, 20)]) * s * grow
        self.centre = np.array([rng.normal(0, 2), rng.normal(-10, 3) * s, rng.normal(-27, 4) * s])
        self.bumps = Bumps.random(rng, 0.05, 4)
        # the bladder's posterior wall rests on the seminal vesicles, behind the prostate base
        self.bladder_support_y = float(self.centre[1] + rng.uniform(2, 8) * s)
        self.top_z = float(self.centre[2] + self.radii[2])
        self.apex = self.centre - np.array([0.0, 0.0, self.radii[2]])

    @property
    def volume_ml(self) -> float:
        return float(4 / 3 * np.pi * np.prod(self.radii) / 1000)

    def sdf(self, x, y, z) -> np.ndarray:
        return ellipsoid(x, y, z, self.centre, self.radii, None, self.bumps)

    def paint(self, canvas: Canvas) -> None:
        box = canvas.grid.box(self.centre - self.radii * 1.2, self.centre + self.radii * 1.2)
        if box is None:
            return
        d = self.sdf(box.x, box.y, box.z)
        canvas.paint(box, d < 0, Tissue.PROSTATE, Part.PROSTATE, over_parts=PELVIS_FAT)


class SeminalVesicles:
    """Two round tubes from the prostate base, up, back and out behind the bladder."""

    def __init__(self, sk: Skeleton, prostate: Prostate, rng: np.random.Generator):
        s = sk.p.scale
        c, r = prostate.centre, prostate.radii
        clouds = []
        for side in (1, -1):
            length = float(rng.uniform(0.8, 1.2))
            keys = [
                (c[0] + side * 6 * s, c[1] + 0.5 * r[1], prostate.top_z - 3),
                (c[0] + side * 20 * s * length, c[1] + r[1] + 1 * s, prostate.top_z + 10 * s * length),
                (c[0] + side * 32 * s * length, c[1] + r[1] + 3 * s, prostate.top_z + 18 * s * length),
            ]
            clouds.append(tube(keys, float(rng.uniform(4.5, 6.5)) * s))
        self.cloud = clouds[0] + clouds[1]

    def sdf(self, x, y, z) -> np.ndarray:
        pts = np.stack(np.broadcast_arrays(x, y, z), axis=-1)
        d, _ = self.cloud.query(pts.reshape(-1, 3), reach=60.0)
        return d.reshape(pts.shape[:-1])

    def paint(self, canvas: Canvas) -> None:
        box = canvas.grid.box(*self.cloud.bounds(1.0))
        if box is None:
            return
        d, _ = self.cloud.field(box)
        canvas.paint(box, d < 0, Tissue.SEMINAL_VESICLE, Part.SEMINAL_VESICLE, over_parts=PELVIS_FAT)


def paint_male_urethra(canvas: Canvas, prostate: Prostate) -> None:
    """The membranous and bulbar urethra: from the prostate apex down and forward to the perineum."""
    a = prostate.apex
    paint_urethra_path(canvas, [a, a + np.array([0.0, -6.0, -14.0]), a + np.array([0.0, -22.0, -34.0])], 5.0)
