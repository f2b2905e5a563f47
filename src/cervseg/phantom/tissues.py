"""Label vocabularies of the phantom: tissues (what sets the HU) and parts (which organ).

Why two labels per voxel: the image is made from tissues (urine, bladder wall, cortical
bone...), the ground-truth contours from parts (bladder, left hip bone...). A voxel of
cortical bone belongs to the sacrum or to a femur; a voxel of muscle-like soft tissue may be
uterus, bowel wall or gluteus. Keeping both lets the image be hard (similar tissues in
different organs) while the truth stays exact.
"""

from __future__ import annotations

from enum import IntEnum


class Tissue(IntEnum):
    AIR = 0
    COUCH_SHELL = 1
    COUCH_FOAM = 2
    SKIN = 3
    FAT = 4  # subcutaneous
    FAT_VISCERAL = 5  # mesenteric / pelvic / epidural fat
    MUSCLE = 6
    CORTICAL = 7
    CANCELLOUS = 8  # red marrow of pelvis, spine, proximal femur
    MARROW_FATTY = 9  # femoral shaft medulla
    CARTILAGE = 10  # joint spaces (hip, sacroiliac, symphysis)
    DISC = 11
    CSF = 12  # thecal sac content (CSF + cauda equina)
    URINE = 13
    BLADDER_WALL = 14
    MYOMETRIUM = 15
    ENDOMETRIUM = 16
    TUMOUR = 17
    VAGINA = 18
    OVARY = 19
    FOLLICLE = 20
    BOWEL_WALL = 21
    BOWEL_FLUID = 22
    BOWEL_GAS = 23
    BOWEL_CONTRAST = 24
    FAECES = 25
    ARTERY = 26
    VEIN = 27
    LYMPH_NODE = 28
    ANAL_SPHINCTER = 29
    URINE_CONTRAST = 30  # excreted IV contrast layering in the bladder
    METAL = 31  # hip prosthesis (cobalt-chromium / titanium)
    MUSCLE_FATTY = 32  # muscle with fatty infiltration (gluteus maximus of older patients)
    PROSTATE = 33  # male phantoms (phantom/male.py)
    SEMINAL_VESICLE = 34


class Part(IntEnum):
    NONE = 0
    BODY = 1  # skin, fat, unnamed muscle
    COUCH = 2
    VERTEBRA = 3
    SACRUM = 4
    HIP_L = 5
    HIP_R = 6
    FEMUR_L = 7
    FEMUR_R = 8
    CANAL = 9  # spinal canal contents
    BLADDER = 10
    UTERUS = 11
    CERVIX = 12
    VAGINA = 13
    ANAL_CANAL = 14
    RECTUM = 15
    SIGMOID = 16
    COLON = 17
    SMALL_BOWEL = 18
    VESSEL = 19
    NODE = 20
    OVARY = 21
    PSOAS = 22
    ILIACUS = 23
    PELVIC_MUSCLE = 24  # obturator internus, piriformis, levator ani
    URETHRA = 25
    CAVITY = 26  # visceral fat of the abdomino-pelvic cavity
    PROSTATE = 27  # male phantoms (phantom/male.py)
    SEMINAL_VESICLE = 28


MUSCLE_PARTS = (Part.PSOAS, Part.ILIACUS, Part.PELVIC_MUSCLE)
BONE_PARTS = (Part.VERTEBRA, Part.SACRUM, Part.HIP_L, Part.HIP_R, Part.FEMUR_L, Part.FEMUR_R)
