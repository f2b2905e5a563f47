"""What the model saw: facts of a CT, their ranges over a training set, and notes outside them."""

from __future__ import annotations

import numpy as np

from cervseg.data.grid import body_bounding_box
from cervseg.data.seen import METAL_HU, outside_seen, scan_facts, summarise
from cervseg.volume import Geometry


def _ct(pixel: float, slice_mm: float = 3.0, metal: bool = False) -> tuple[np.ndarray, Geometry]:
    hu = np.full((4, 100, 100), -1000.0, np.float32)
    hu[:, 20:80, 10:90] = 40.0
    hu[:, 40:50, 30:40] = 900.0
    if metal:
        hu[:, 40:50, 60:70] = METAL_HU + 500
    return hu, Geometry.axial(hu.shape, (slice_mm, pixel, pixel), (0.0, 0.0, 0.0))


def _facts(pixel: float, **kw) -> dict:
    hu, g = _ct(pixel, **kw)
    return scan_facts(hu, g, body_bounding_box(hu, -500), -500)


def test_facts_of_a_known_ct() -> None:
    f = _facts(2.0)
    assert f["pixel_mm"] == 2.0 and f["slice_mm"] == 3.0 and f["field_of_view_mm"] == 200.0
    assert f["body_width_mm"] == 80 * 2.0 and f["metal_voxels"] == 0
    assert f["hu_low"] == 40.0 and f["hu_high"] == 900.0


def test_a_ct_inside_the_training_range_gets_no_note_and_one_outside_gets_each_named() -> None:
    seen = summarise([_facts(1.0), _facts(1.2)], {"Bladder": [50.0, 300.0]})
    assert seen["pixel_mm"] == [1.0, 1.2] and seen["metal_patients"] == 0
    assert seen["structure_ml"] == {"Bladder": [50.0, 300.0]}
    assert outside_seen(_facts(1.1), seen) == []
    notes = outside_seen(_facts(0.6, slice_mm=1.0, metal=True), seen)
    assert any(n.startswith("pixel size 0.6 mm (model saw 1-1.2 mm)") for n in notes)
    assert any(n.startswith("slice spacing 1 mm") for n in notes)
    assert any(n.startswith("metal (400 voxels") for n in notes)
    assert any(n.startswith("HU range") for n in notes)  # the metal also lifts the 99.5th percentile
