"""Whole-patient overlay: slice choice and a decodable PNG."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.image import imread

from cervseg.report.case_overlay import render_case, representative_slices
from cervseg.volume import Geometry, LabelMap, Volume


def test_representative_slices_spread_over_the_structures() -> None:
    g = Geometry.axial((20, 8, 8), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    a = np.zeros(g.shape, bool)
    b = np.zeros(g.shape, bool)
    a[2:10, 2:4, 2:4] = True
    b[6:18, 4:6, 4:6] = True
    slices = representative_slices(LabelMap(g, {"A": a, "B": b}), count=3)
    assert len(slices) == 3 and slices == sorted(slices)
    assert 2 <= slices[0] and slices[-1] < 18
    assert any(a[k].any() and b[k].any() for k in slices)


def test_render_case_png() -> None:
    g = Geometry.axial((4, 16, 16), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    m = np.zeros(g.shape, bool)
    m[1:3, 4:10, 4:10] = True
    png = render_case(Volume(np.zeros(g.shape, np.float32), g), LabelMap(g, {"Bladder": m}),
                      LabelMap(g, {"Bladder": np.roll(m, 1, axis=2)}), {"Bladder": (255, 255, 0)})
    image = imread(io.BytesIO(png))
    assert image.ndim == 3 and image.shape[0] > 100
