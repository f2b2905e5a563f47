"""Male phantoms: a prostate below the bladder, seminal vesicles behind it, no uterus, an empty CTV_UV."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cervseg.phantom.anatomy import Anatomy
from cervseg.phantom.cohort import write_cohort
from cervseg.phantom.generator import generate_case
from cervseg.phantom.presets import get_preset
from cervseg.phantom.tissues import Part

MALE = get_preset("small").with_overrides(male_p=1.0)


@pytest.fixture(scope="module")
def male_case():
    return generate_case(11, MALE)


def _centroid_mm(case, mask: np.ndarray) -> np.ndarray:
    g = case.volume.geometry
    return g.index_to_lps(np.argwhere(mask).mean(0)[None])[0]


def test_a_male_pelvis_has_a_prostate_and_vesicles_and_no_female_organs(male_case):
    part = male_case.part
    assert male_case.anatomy.male
    assert (part == Part.PROSTATE).sum() > 0 and (part == Part.SEMINAL_VESICLE).sum() > 0
    for female in (Part.UTERUS, Part.CERVIX, Part.VAGINA, Part.OVARY):
        assert not (part == female).any(), female
    assert not male_case.labels["CTV_UV"].any()
    assert male_case.volume.series.patient["PatientSex"] == "M"


def test_the_prostate_lies_below_the_bladder_in_front_of_the_rectum_and_is_not_bladder(male_case):
    part, labels = male_case.part, male_case.labels
    prostate = part == Part.PROSTATE
    p = _centroid_mm(male_case, prostate)
    b = _centroid_mm(male_case, labels["Bladder"])
    r = _centroid_mm(male_case, labels["Rectum"])
    assert p[2] < b[2] - 10  # LPS z: superior is +z
    assert p[1] < r[1]  # LPS y: posterior is +y, so the prostate is anterior to the rectum
    assert abs(p[0]) < 10  # on the midline
    assert (labels["Bladder"] & prostate).sum() < 0.05 * prostate.sum()  # the observer's blur only
    assert 15 < male_case.anatomy.prostate.volume_ml < 100


def test_the_prostate_is_soft_tissue_like_the_real_one(male_case):
    inner = male_case.part == Part.PROSTATE
    from scipy import ndimage

    inner = ndimage.binary_erosion(inner, iterations=2)
    hu = male_case.volume.array[inner]
    # pelvic-ref-002: prostate 44 +- 21 HU (the IV-enhanced gland is brighter)
    assert 25 < float(np.median(hu)) < (110 if male_case.anatomy.contrast.iv else 65)


def test_female_patients_do_not_change_with_the_male_fraction():
    females = [s for s in range(12) if not Anatomy(s, male_p=0.5).male]
    males = [s for s in range(12) if Anatomy(s, male_p=0.5).male]
    assert females and males  # the draw is a real draw
    seed = females[0]
    a = generate_case(seed, get_preset("tiny"))
    b = generate_case(seed, get_preset("tiny").with_overrides(male_p=0.5))
    assert np.array_equal(a.volume.array, b.volume.array)
    for name in a.labels:
        assert np.array_equal(a.labels[name], b.labels[name]), name


def test_the_cohort_records_each_patients_sex(tmp_path):
    write_cohort(tmp_path / "c", 4, seed=2, preset="tiny", male_fraction=0.5)
    manifest = json.loads((tmp_path / "c" / "cohort.json").read_text())
    assert manifest["male_fraction"] == 0.5
    sexes = [p["sex"] for p in manifest["patients"]]
    assert set(sexes) <= {"M", "F"}
    for p in manifest["patients"]:
        assert (p["volumes_ml"]["CTV_UV"] == 0) == (p["sex"] == "M")


def test_a_male_fraction_outside_0_1_is_one_clear_line_and_exit_2(tmp_path):
    out = tmp_path / "c"
    proc = subprocess.run([sys.executable, "-m", "cervseg", "phantom", "--out", str(out), "--patients", "1",
                           "--preset", "tiny", "--male-fraction", "1.5"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--male-fraction must be between 0 and 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
