"""One patient's anatomy: draw every structure's parameters, then paint them on a grid.

Why split drawing from painting: the parameters are drawn once per patient from a seed
(so the same patient can be painted on a fine grid for the image and a coarse one for a
quick look), and structures are placed against each other (the bladder lifts the uterus,
bowel loops fill what space is left) before a single voxel is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cervseg.phantom.body import Body, BodyParams, paint_body, paint_couch
from cervseg.phantom.bowel import LargeBowel, SmallBowel
from cervseg.phantom.canvas import Canvas
from cervseg.phantom.male import Prostate, SeminalVesicles, paint_male_urethra
from cervseg.phantom.muscles import muscle_clouds, paint_fascia, paint_levator
from cervseg.phantom.organs import Bladder, Ovaries, Uterus, Vagina, paint_urethra, place_uterus
from cervseg.phantom.shapes import Grid, PointCloud
from cervseg.phantom.skeleton import Skeleton, SkeletonParams, paint_bones, paint_canal
from cervseg.phantom.tissues import Part, Tissue
from cervseg.phantom.vessels import Vessels


@dataclass
class Contrast:
    iv: bool  # IV contrast: enhanced vessels and organs
    bladder: bool  # excreted contrast layering in the bladder
    oral: bool  # positive oral contrast in some small-bowel loops


class Anatomy:
    """All structures of one patient in the local patient frame (mm, LPS axes)."""

    def __init__(self, seed: int | np.random.SeedSequence, contrast_p: float = 0.25,
                 bowel_gas: tuple[float, float, float] = (0.25, 0.15, 0.6), male_p: float = 0.0):
        """``male_p``: the probability of a male pelvis (prostate and seminal vesicles, no
        uterus; phantom/male.py). Drawn from its own stream, so a female patient of a seed is
        the same whatever ``male_p`` is."""
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        rngs = [np.random.default_rng(c) for c in ss.spawn(12)]
        self.paint_seed = ss.spawn(1)[0]
        self.male = bool(np.random.default_rng(ss.spawn(1)[0]).random() < male_p)
        r_main = rngs[0]
        self.scale = float(r_main.uniform(0.92, 1.08))
        iv = bool(r_main.random() < contrast_p)
        self.contrast = Contrast(iv=iv, bladder=bool(iv and r_main.random() < 0.5), oral=bool(r_main.random() < contrast_p))
        self.body = Body(BodyParams.draw(rngs[1], self.scale))
        self.skeleton = Skeleton(SkeletonParams.draw(rngs[2], self.scale))
        self.muscles = muscle_clouds(self.skeleton, rngs[3])
        psoas = {1: self.muscles[0][2], -1: self.muscles[4][2]}
        self.vessels = Vessels(self.skeleton, psoas, rngs[4])
        self.uterus: Uterus | None = None
        self.vagina: Vagina | None = None
        self.ovaries: Ovaries | None = None
        self.prostate: Prostate | None = None
        self.vesicles: SeminalVesicles | None = None
        if self.male:
            self.prostate = Prostate(self.skeleton, rngs[5])
            self.bladder = Bladder(self.skeleton, self.body, self.prostate.bladder_support_y, rngs[6],
                                   z_base_min=self.prostate.top_z - 6.0)
            self.vesicles = SeminalVesicles(self.skeleton, self.prostate, rngs[7])
        else:
            self.uterus = Uterus(self.skeleton, rngs[5])
            self.bladder = Bladder(self.skeleton, self.body, float(self.uterus.os[1] - self.uterus.r_c[1]), rngs[6])
            place_uterus(self.uterus, self.bladder)
            self.vagina = Vagina(self.skeleton, self.uterus, rngs[7])
            self.ovaries = Ovaries(self.skeleton, self.uterus, rngs[8])
        self.large_bowel = LargeBowel(self.skeleton, self.body, rngs[9])
        self._lift_sigmoid()
        self.canal_end = float(self.skeleton.s1_top - rngs[10].uniform(20, 40) * self.scale)  # thecal sac ends ~S2
        z_sb = float(rngs[11].normal(22, 12) * self.scale)
        self.small_bowel = SmallBowel(self.body, self.skeleton, self._blockers(), z_sb, 330.0, rngs[11],
                                      self.contrast.oral, bowel_gas)

    def _lift_sigmoid(self) -> None:
        """Keep the sigmoid above the bladder dome and the uterus (or prostate and seminal vesicles)."""
        lb = self.large_bowel
        keys = lb.keys.copy()
        for i in range(lb.n_rectum, lb.n_rectum + 3):
            for _ in range(20):
                p = keys[i]
                r = lb.radius_keys[i] + 3
                clear = float(np.min([f(p[0], p[1], p[2]) for f in [self.bladder.sdf, *self._genital_sdfs()]]))
                if clear > r:
                    break
                keys[i, 2] += 5.0
        if not np.array_equal(keys, lb.keys):
            lb.keys = keys
            lb.main = lb._tube(keys, lb.radius_keys, lb.main_wall, lb.main_gas, lb.main_content, lb.main_part, 1.0)

    def _genital_sdfs(self) -> list:
        """The signed distances of the organs between bladder and rectum (what the bowel keeps clear of)."""
        if self.male:
            return [self.prostate.sdf, self.vesicles.sdf]
        return [self.uterus.sdf, self.vagina.sdf]

    def _blockers(self):
        sk = self.skeleton
        clouds: list[PointCloud] = [t.cloud for t in self.large_bowel.tubes()]
        clouds += [v.cloud for v in self.vessels.vessels if v.name in ("aorta", "ivc") or v.name[:3] in ("cia", "civ", "eia", "eiv")]
        clouds += [c for name, _, c in self.muscles if name in ("psoas", "iliacus")]
        clouds += [sk.wing_clouds[1], sk.wing_clouds[-1]]
        merged = clouds[0]
        for c in clouds[1:]:
            merged = merged + c
        levels = sk._vertebra_levels()
        z_l = np.array([z for _, z, _ in levels])
        y_l = np.array([y for _, _, y in levels])
        order = np.argsort(z_l)

        def organs(p):
            x, y, z = p[:, 0], p[:, 1], p[:, 2]
            return np.minimum.reduce([f(x, y, z) for f in [self.bladder.sdf, *self._genital_sdfs()]])

        def tubes(p):
            return merged.query(p, reach=40.0)[0]

        def spine(p):
            x, y, z = p[:, 0], p[:, 1], p[:, 2]
            y_front = np.interp(z, z_l[order], y_l[order]) - 18 * sk.p.scale
            sac = sk.sacrum_anterior_y(z)
            wall = np.where(z > sk.s1_top, np.where(np.abs(x) < 48, y_front, 999.0), sac)
            return (wall - y).astype(np.float32)

        return [organs, tubes, spine]

    def paint(self, grid: Grid, realistic: bool = False) -> Canvas:
        """Paint the patient on ``grid`` (local mm) in anatomical order.

        ``realistic``: muscle groups with fat planes and a curved couch (default preset); their
        random field has its own seed, so the rest of the painting is the same either way.
        """
        rng = np.random.default_rng(self.paint_seed)
        canvas = Canvas(grid)
        paint_couch(canvas, self.body, curved=realistic)
        septa = None
        if realistic:
            seed = self.paint_seed
            septa = np.random.default_rng(np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (1,)))
        paint_body(canvas, self.body, rng, septa)
        for _, part, cloud in self.muscles:
            box = grid.box(*cloud.bounds(1.0))
            if box is not None:
                canvas.paint(box, cloud.field(box)[0] < 0, Tissue.MUSCLE, part, over_parts=(Part.BODY, Part.CAVITY))
        paint_levator(canvas, self.skeleton)
        paint_fascia(canvas, self.skeleton, rng)
        if self.male:
            self.prostate.paint(canvas)
            self.vesicles.paint(canvas)
            self.bladder.paint(canvas, self.contrast.bladder)
            paint_male_urethra(canvas, self.prostate)
            self.large_bowel.paint(canvas, rng)
        else:
            self.vagina.paint(canvas)
            self.uterus.paint(canvas)
            self.bladder.paint(canvas, self.contrast.bladder)
            paint_urethra(canvas, self.bladder, self.vagina)
            self.large_bowel.paint(canvas, rng)
            self.ovaries.paint(canvas)
        self.vessels.paint(canvas)
        self.small_bowel.paint(canvas, rng)
        paint_bones(canvas, self.skeleton)
        paint_canal(canvas, self.skeleton, self.canal_end)
        return canvas


def build_canvas(grid: Grid, seed: int):
    """Quick-look helper: the painted canvas and the anatomy of one seed."""
    an = Anatomy(seed)
    return an.paint(grid), an
