"""The nine `cervix` structures as exact anatomical masks, before the observer draws them.

Each structure is a set of parts (the bladder is the bladder part, BoneMarrow the hip bones
and sacrum) cut where clinical contouring guidelines cut it: the rectum from the level of
the ischial tuberosities to the rectosigmoid junction, the proximal femur (head, neck and
trochanters) down to the lower edge of the ischial tuberosities (both per the RTOG female
pelvis normal-tissue atlas, Gay et al. 2012), the spinal canal down
to the end of the thecal sac, the nodal CTV as iliac vessels plus a margin from the aortic
bifurcation to the femoral heads with the presacral and obturator regions, cropped off bone,
muscle and bowel (Small et al. 2008), and CTV_UV as uterus, cervix, tumour and upper vagina.
Where a guideline leaves room (the margin, the levels), each patient's observer picks a value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cervseg.phantom.anatomy import Anatomy
from cervseg.phantom.shapes import Box
from cervseg.phantom.tissues import Part

STRUCTURE_NAMES = ("Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "BoneMarrow", "Bowel_Small",
                   "SpinalCord", "CTV_N", "CTV_UV")


@dataclass(frozen=True)
class ObserverChoices:
    """Where this patient's observer puts the levels and margins the guidelines leave open."""

    rectum_low: float  # z (mm) of the rectum's inferior limit
    femur_low: float  # z (mm) of the femur's inferior limit (lower edge of the ischial tuberosities)
    cord_stop: float  # z of the spinal canal's inferior limit
    ctv_margin: float  # mm around the iliac vessels
    ctv_top: float  # mm below the aortic bifurcation where CTV_N starts
    ctv_bottom: float  # mm relative to the femoral-head top where CTV_N ends
    vagina_mm: float  # length of vagina below the external os included in CTV_UV

    @classmethod
    def draw(cls, rng: np.random.Generator, an: Anatomy) -> "ObserverChoices":
        s = an.scale
        return cls(
            rectum_low=float(rng.normal(-58, 5) * s),
            femur_low=float(rng.normal(-62, 3) * s),
            cord_stop=float(an.canal_end + rng.normal(0, 6)),
            ctv_margin=float(np.clip(rng.normal(7.0, 1.0), 5.0, 10.0)),
            ctv_top=float(rng.uniform(0, 8)),
            ctv_bottom=float(rng.normal(0, 4)),
            vagina_mm=float(rng.uniform(12, 25) * s),
        )


def _union_slices(objs: list, labels) -> tuple[slice, ...] | None:
    found = [objs[int(p) - 1] for p in labels if int(p) - 1 < len(objs) and objs[int(p) - 1] is not None]
    if not found:
        return None
    return tuple(slice(min(f[a].start for f in found), max(f[a].stop for f in found)) for a in range(3))


def _sub(box: Box, sl: tuple[slice, ...]) -> Box:
    return Box(sl, box.z[sl[0]], box.y[:, sl[1]], box.x[:, :, sl[2]])


def anatomical_masks(an: Anatomy, part: np.ndarray, box: Box, obs: ObserverChoices) -> dict[str, np.ndarray]:
    """Boolean masks (part's shape) of the nine structures on a grid box in local mm.

    Each structure is evaluated only inside the bounding box of its parts.
    """
    objs = ndimage.find_objects(part)
    out = {name: np.zeros(part.shape, bool) for name in STRUCTURE_NAMES}

    def fill(name: str, parts, rule) -> None:
        sl = _union_slices(objs, parts)
        if sl is None:
            return
        b = _sub(box, sl)
        p = part[sl]
        out[name][sl] = np.broadcast_to(rule(p, b), p.shape)

    fill("Bladder", [Part.BLADDER], lambda p, b: p == Part.BLADDER)
    fill("Rectum", [Part.RECTUM, Part.ANAL_CANAL],
         lambda p, b: np.isin(p, (Part.RECTUM, Part.ANAL_CANAL)) & (b.z >= obs.rectum_low))
    for name, label in (("Femur_Head_L", Part.FEMUR_L), ("Femur_Head_R", Part.FEMUR_R)):
        fill(name, [label], lambda p, b, label=label: (p == label) & (b.z >= obs.femur_low))
    bones = (Part.HIP_L, Part.HIP_R, Part.SACRUM)
    fill("BoneMarrow", bones, lambda p, b: np.isin(p, bones))
    fill("Bowel_Small", [Part.SMALL_BOWEL], lambda p, b: p == Part.SMALL_BOWEL)
    fill("SpinalCord", [Part.CANAL], lambda p, b: (p == Part.CANAL) & (b.z >= obs.cord_stop))
    u = an.uterus
    if u is not None:  # a male phantom has no CTV_UV: an empty structure, not a missing one
        uv = (Part.UTERUS, Part.CERVIX, Part.VAGINA)
        fill("CTV_UV", uv, lambda p, b: np.isin(p, (Part.UTERUS, Part.CERVIX))
             | ((p == Part.VAGINA) & (b.z >= u.os[2] - obs.vagina_mm)))
    lo, hi = an.vessels.nodal_bounds(obs.ctv_margin + 1)
    z_top = an.vessels.z_bif - obs.ctv_top
    z_bottom = an.vessels.z_femoral + obs.ctv_bottom
    lo[2], hi[2] = max(lo[2], z_bottom), min(hi[2], z_top)
    sl = (slice(int(np.searchsorted(box.z.ravel(), lo[2])), int(np.searchsorted(box.z.ravel(), hi[2], "right"))),
          slice(int(np.searchsorted(box.y.ravel(), lo[1])), int(np.searchsorted(box.y.ravel(), hi[1], "right"))),
          slice(int(np.searchsorted(box.x.ravel(), lo[0])), int(np.searchsorted(box.x.ravel(), hi[0], "right"))))
    if all(a.stop > a.start for a in sl):
        out["CTV_N"][sl] = nodal_ctv(an, part[sl], _sub(box, sl), obs)
    return out


def nodal_ctv(an: Anatomy, part: np.ndarray, box: Box, obs: ObserverChoices) -> np.ndarray:
    """Iliac vessels + margin, presacral band and obturator space, cropped to fat, vessels and nodes."""
    v = an.vessels
    sk = an.skeleton
    s = an.scale
    m = obs.ctv_margin
    support = v.nodal_distance(box, m) < m
    for side in (1, -1):
        support |= v.obturator_space(side).field(box)[0] < 0
    ya = sk.sacrum_anterior_y(box.z)
    presacral = (box.y > ya - 12 * s) & (box.y < ya + 1) & (np.abs(box.x) < 22 * s) & \
                (box.z > sk.s1_top - 40 * s) & (box.z < sk.s1_top + 5)
    support = support | presacral
    z_top = v.z_bif - obs.ctv_top
    z_bottom = v.z_femoral + obs.ctv_bottom
    support &= (box.z <= z_top) & (box.z >= z_bottom)
    return support & np.isin(part, (Part.VESSEL, Part.NODE, Part.CAVITY))
