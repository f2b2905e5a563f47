"""Hounsfield units per tissue, drawn per patient from ranges that real planning CT shows.

Sources of the ranges (mean HU of the tissue, before noise and partial volume):
- [REF] pelvic-ref-002 (../shared/data/README.md), measured on a real planning CT (Philips
  Brilliance Big Bore, 120 kV, no IV contrast in the pelvis organs): bladder interior
  14 +- 15, prostate 44 +- 21, pelvic muscles 23 +- 33 (iliacus 47, gluteus maximus 6: fatty
  infiltration), fat -94 +- 26, pelvis bone 311 +- 255, sacrum 179, lumbar spine 185
  (bone figures mix cortex and marrow), femur 590 +- 511, rectum 19 % gas voxels.
- [H] Hounsfield-scale tables in radiology texts (e.g. Brant & Helms, Fundamentals of
  Diagnostic Radiology; Lev & Gonzalez, CT of the head/spine): fat -120..-80, muscle 35..55,
  blood 35..55 (unenhanced), CSF 0..15, urine 0..20, cortical bone 700..1800,
  cancellous bone 100..400, air -1000, intervertebral disc 70..110.
- [U] Unenhanced uterus/cervix 40..60 HU, cervical tumour iso- to slightly hypodense
  (30..50 HU) on unenhanced CT; enhanced myometrium 90..150 HU, tumour 70..110 HU
  (CT staging literature of cervical cancer, e.g. Bipat et al. 2003 review).
- [TS] totalseg-example (../shared/data/README.md): a real abdomen-pelvis CT with a left
  metal hip prosthesis.
- [C] IV contrast, portal-venous phase: arteries 150..250 HU, veins 130..200 HU;
  excreted contrast in the bladder 150..800 HU layering dependently; positive oral contrast
  150..400 HU.
Each patient draws one mean per tissue (uniform in the range below), so that the organs of
one patient differ from each other by tens of HU only, as on real CT. ``TEXTURE`` is the SD
of the fine structure inside a tissue (trabeculae, faecal mottling, fat strands).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cervseg.phantom.tissues import Tissue

T = Tissue

#: (low, high) of the per-patient mean HU, unenhanced; sources in the module docstring.
HU_RANGE: dict[Tissue, tuple[float, float]] = {
    T.AIR: (-1000, -995),
    T.COUCH_SHELL: (250, 450),  # carbon fibre
    T.COUCH_FOAM: (-930, -880),
    T.SKIN: (20, 50),  # [H]
    T.FAT: (-110, -90),  # [REF] -94, [H]
    T.FAT_VISCERAL: (-105, -80),  # [REF], [H]; a little denser than subcutaneous fat (vessels, strands)
    T.MUSCLE: (30, 52),  # [REF] iliacus 47, [H] 35..55
    T.CORTICAL: (750, 1100),  # [H]; thin pelvic cortices lose HU to partial volume (default preset: 900-1300)
    T.CANCELLOUS: (90, 200),  # [REF] interior (3 px inside the bone labels): pelvis median 134, sacrum 71, spine 152
    T.MARROW_FATTY: (-40, 40),  # [H] yellow marrow of the femoral shaft
    T.CARTILAGE: (70, 100),  # [H]
    T.DISC: (70, 105),  # [H]
    T.CSF: (5, 25),  # [H] CSF with cauda equina roots
    T.URINE: (2, 18),  # [REF] 14 +- 15 interior (default preset: 6-20, see presets.py)
    T.BLADDER_WALL: (30, 45),  # [H], [REF] prostate-like soft tissue
    T.MYOMETRIUM: (40, 58),  # [U]
    T.ENDOMETRIUM: (25, 40),  # [U]
    T.TUMOUR: (33, 48),  # [U]
    T.VAGINA: (35, 50),  # [U]
    T.OVARY: (30, 45),  # [U]
    T.FOLLICLE: (5, 18),  # [H] simple fluid
    T.BOWEL_WALL: (32, 48),  # [H]
    T.BOWEL_FLUID: (5, 25),  # [H] enteric fluid
    T.BOWEL_GAS: (-1000, -960),  # [H]
    T.BOWEL_CONTRAST: (180, 350),  # [C]
    T.FAECES: (-120, 10),  # [REF] rectum mean -151 incl. 19 % gas; [H]
    T.ARTERY: (35, 50),  # [H]
    T.VEIN: (35, 50),  # [H]
    T.LYMPH_NODE: (28, 42),  # [H]
    T.ANAL_SPHINCTER: (35, 50),  # [H] muscle
    T.URINE_CONTRAST: (150, 700),  # [C] only painted when the patient has excreted contrast
    T.MUSCLE_FATTY: (-5, 25),  # [REF] gluteus maximus 6 +- 24
    T.METAL: (3000, 3400),  # [TS] totalseg-example's prosthesis reaches 3382 HU (the image is clipped at 3071)
    T.PROSTATE: (34, 50),  # [REF] prostate 44 +- 21
    T.SEMINAL_VESICLE: (20, 40),  # [H] fluid-filled glands, a little below the prostate
}

#: tissues added for the default preset's realism and the male phantoms (drawn after all
#: others, in this order, so the older tissues keep their values for a seed)
LATE_TISSUES = (T.METAL, T.MUSCLE_FATTY, T.PROSTATE, T.SEMINAL_VESICLE)
#: late soft tissues: the patient's soft-tissue offset, and enhancement drawn after the rest
LATE_ENHANCEMENT: dict[Tissue, tuple[float, float]] = {T.PROSTATE: (20, 45), T.SEMINAL_VESICLE: (5, 20)}

#: SD (HU) of the fine texture inside each tissue.
TEXTURE: dict[Tissue, float] = {
    T.FAT: 6.0, T.FAT_VISCERAL: 10.0, T.MUSCLE: 6.0, T.MUSCLE_FATTY: 12.0, T.CORTICAL: 120.0, T.CANCELLOUS: 85.0,
    T.MARROW_FATTY: 25.0, T.URINE: 2.0, T.MYOMETRIUM: 6.0, T.PROSTATE: 7.0, T.TUMOUR: 9.0, T.FAECES: 140.0,
    T.BOWEL_FLUID: 6.0, T.LYMPH_NODE: 4.0, T.OVARY: 5.0, T.SKIN: 5.0, T.COUCH_FOAM: 5.0,
}

#: enhancement (HU added) with IV contrast, portal-venous phase [C], [U]
ENHANCEMENT: dict[Tissue, tuple[float, float]] = {
    T.ARTERY: (120, 200), T.VEIN: (95, 150), T.MYOMETRIUM: (45, 90), T.TUMOUR: (30, 55),
    T.ENDOMETRIUM: (10, 30), T.VAGINA: (25, 50), T.BOWEL_WALL: (30, 60), T.BLADDER_WALL: (20, 40),
    T.MUSCLE: (5, 15), T.LYMPH_NODE: (20, 40), T.OVARY: (20, 40), T.ANAL_SPHINCTER: (10, 25),
    T.SKIN: (5, 15), T.CANCELLOUS: (10, 30),
}

#: the documented per-structure mean-HU ranges a test checks the phantom against
#: (unenhanced patients; the mixture of tissues inside each contour, before noise).
STRUCTURE_HU: dict[str, tuple[float, float]] = {
    "Bladder": (-10, 40),  # urine + wall [REF] whole contour 9 +- 22
    "Rectum": (-600, 45),  # wall + faeces + gas [REF] -151 +- 324
    "Femur_Head_L": (150, 550),  # [REF] 281-292
    "Femur_Head_R": (150, 550),
    "BoneMarrow": (150, 550),  # [REF] pelvis 311, sacrum 179
    "Bowel_Small": (-300, 60),  # wall + fluid + some gas [H]
    "SpinalCord": (-40, 45),  # CSF + epidural fat [H]
    "CTV_N": (-100, 40),  # fat around vessels + vessels + nodes [H]
    "CTV_UV": (-10, 60),  # uterus, cervix, tumour, upper vagina [U] (+ a vaginal gas marker, parametrial fat)
}


@dataclass(frozen=True)
class Intensities:
    """One patient's HU per tissue (a lookup table over Tissue values) and texture SDs."""

    mean: np.ndarray  # float32 (len(Tissue),)
    texture: np.ndarray  # float32 (len(Tissue),)
    iv_contrast: bool

    @classmethod
    def draw(cls, rng: np.random.Generator, iv_contrast: bool,
             overrides: tuple[tuple[int, float, float], ...] = ()) -> "Intensities":
        """``overrides``: (tissue, low, high) ranges replacing HU_RANGE's (the default preset's)."""
        ranges = dict(HU_RANGE)
        ranges.update({Tissue(t): (lo, hi) for t, lo, hi in overrides})
        n = max(int(t) for t in Tissue) + 1
        mean = np.zeros(n, np.float32)
        for t in Tissue:
            if t not in LATE_TISSUES:
                lo, hi = ranges[t]
                mean[t] = rng.uniform(lo, hi)
        # one shared soft-tissue offset per patient (scanner calibration, hydration)
        soft = rng.normal(0.0, 3.0)
        for t in (T.MUSCLE, T.MYOMETRIUM, T.TUMOUR, T.VAGINA, T.BOWEL_WALL, T.BLADDER_WALL, T.OVARY,
                  T.LYMPH_NODE, T.ARTERY, T.VEIN, T.ANAL_SPHINCTER):
            mean[t] += soft
        if iv_contrast:
            for t, (lo, hi) in ENHANCEMENT.items():
                mean[t] += rng.uniform(lo, hi)
        for t in LATE_TISSUES:  # drawn last, so the older tissues keep their values for a seed
            mean[t] = rng.uniform(*ranges[t])
        for t, (lo, hi) in LATE_ENHANCEMENT.items():
            mean[t] += soft + (rng.uniform(lo, hi) if iv_contrast else 0.0)
        texture = np.zeros(n, np.float32)
        for t, sd in TEXTURE.items():
            texture[t] = sd
        return cls(mean, texture, iv_contrast)
