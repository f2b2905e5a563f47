"""QA scores: each anatomy check fires on the defect it names, model signals follow the probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cervseg.qa.scores import combine, slice_qa
from cervseg.structures import Catalogue
from cervseg.volume import LabelMap
from tests.tiny_data import tiny_patient


@pytest.fixture(scope="module")
def patient():
    return tiny_patient(3)


def rows_of(rows, structure):
    return {r.slice_index: r for r in rows if r.structure == structure}


def crisp(labels: LabelMap) -> dict[str, np.ndarray]:
    """Probabilities that agree with the masks exactly (uint8: 1 = p 0, 255 = p 1)."""
    return {name: np.where(labels[name], 255, 1).astype(np.uint8) for name in labels}


def test_a_clean_contour_scores_low_and_every_slice_with_a_contour_is_scored(patient):
    volume, labels = patient
    rows = slice_qa(volume, labels, crisp(labels), Catalogue.builtin(), midline_x=0.0)
    for name in labels:
        assert set(rows_of(rows, name)) == set(np.flatnonzero(labels[name].any(axis=(1, 2))))
    middle = [r for r in rows if r.extent_end < 0.2]
    assert middle and all(0 <= r.score <= 1 for r in rows)
    assert all(r.wrong_side == 0 and r.z_gap == 0 and r.outside_body == 0 for r in rows)
    assert max(r.score for r in middle) < 0.5


def test_a_femoral_head_on_the_wrong_side_by_patient_x_is_flagged(patient):
    volume, labels = patient
    swapped = LabelMap(labels.geometry, {"Femur_Head_L": labels["Femur_Head_R"], "Femur_Head_R": labels["Femur_Head_L"]})
    rows = slice_qa(volume, swapped, crisp(swapped), Catalogue.builtin(), midline_x=0.0)
    assert all(r.wrong_side == 1 for r in rows)
    right = slice_qa(volume, labels.subset(["Femur_Head_L", "Femur_Head_R"]), None, Catalogue.builtin(), midline_x=0.0)
    assert all(r.wrong_side == 0 for r in right)
    assert min(r.score for r in rows) > max(r.score for r in right)


def test_a_gap_an_area_jump_air_and_an_implausible_volume_are_flagged(patient):
    volume, labels = patient
    bladder = labels["Bladder"].copy()
    zs = np.flatnonzero(bladder.any(axis=(1, 2)))
    gap, jump = int(zs[len(zs) // 2]), int(zs[len(zs) // 2 - 2])
    bladder[gap] = False
    bladder[jump] |= np.roll(bladder[jump], 6, axis=0) | np.roll(bladder[jump], -6, axis=0)
    rectum = labels["Rectum"].copy()
    rz = int(np.flatnonzero(rectum.any(axis=(1, 2)))[3])
    rectum[rz, :4, :] = True  # a strip in the air in front of the body
    tiny = np.zeros_like(bladder)
    tiny[10:12, 30:32, 30:32] = True  # a "bladder" of 0.15 ml
    edited = LabelMap(labels.geometry, {"Bladder": bladder, "Rectum": rectum})
    rows = slice_qa(volume, edited, None, Catalogue.builtin())
    b = rows_of(rows, "Bladder")
    assert b[gap - 1].z_gap == 1 and b[gap + 1].z_gap == 1 and b[zs[0]].z_gap == 0
    assert b[jump].area_jump > 0.5 > b[zs[1]].area_jump
    r = rows_of(rows, "Rectum")
    assert r[rz].outside_body > 0.05 and r[rz].outside_view == 1  # touches the image border too
    assert r[rz].score > max(s.score for z, s in r.items() if z != rz and s.extent_end < 0.2)
    small = slice_qa(volume, LabelMap(labels.geometry, {"Bladder": tiny}), None, Catalogue.builtin())
    assert all(s.volume_out_of_range == 1 for s in small)
    assert all(s.volume_out_of_range == 0 for s in b.values())


def test_uncertain_probabilities_raise_the_model_signals(patient):
    from scipy import ndimage

    volume, labels = patient
    sure = crisp(labels.subset(["Bladder"]))
    blurred = ndimage.gaussian_filter(labels["Bladder"].astype(float), sigma=(0, 3, 3))
    unsure = {"Bladder": (1 + 254 * blurred).round().astype(np.uint8)}
    a = rows_of(slice_qa(volume, labels.subset(["Bladder"]), sure, Catalogue.builtin()), "Bladder")
    b = rows_of(slice_qa(volume, labels.subset(["Bladder"]), unsure, Catalogue.builtin()), "Bladder")
    for z in a:
        assert b[z].uncertain_width_mm > a[z].uncertain_width_mm
        assert b[z].soft_disagreement > a[z].soft_disagreement
        assert b[z].score >= a[z].score
    none = slice_qa(volume, labels.subset(["Bladder"]), None, Catalogue.builtin())
    assert all(math.isnan(r.uncertain_width_mm) for r in none)


def test_a_contour_along_the_edge_of_what_the_model_saw_is_flagged(patient):
    volume, labels = patient
    probs = crisp(labels.subset(["Bladder"]))
    cols = np.flatnonzero(labels["Bladder"].any(axis=(0, 1)))
    probs["Bladder"][:, :, cols[-1] - 2:] = 0  # the model's crop ended inside the bladder
    rows = slice_qa(volume, labels.subset(["Bladder"]), probs, Catalogue.builtin())
    touching = [r for r in rows if labels["Bladder"][r.slice_index][:, cols[-1] - 3:].any()]
    assert touching and all(r.outside_view == 1 for r in touching)


def test_combine_is_monotonic_in_every_sign_of_trouble():
    base = {"uncertain_width_mm": 1.0, "extent_end": 0.1, "log_area_mm2": 7.0}
    for key, value in (("wrong_side", 1.0), ("z_gap", 1.0), ("outside_view", 1.0), ("outside_body", 0.3),
                       ("uncertain_width_mm", 4.0), ("volume_out_of_range", 1.0)):
        assert combine(base | {key: value}) > combine(base)
    assert combine(base | {"uncertain_width_mm": math.nan}) == combine(base | {"uncertain_width_mm": 0.0})
