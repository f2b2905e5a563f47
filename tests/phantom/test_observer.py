"""Observer contours: close to the anatomy, never identical, smooth, deterministic."""

from __future__ import annotations

import numpy as np

from cervseg.phantom.observer import Style, draw_contour


def _sphere(r_mm: float = 25.0) -> tuple[np.ndarray, tuple[float, float, float]]:
    spacing = (3.0, 1.0, 1.0)
    z, y, x = np.mgrid[-20:21, -40:41, -40:41].astype(float)
    mask = (z * spacing[0]) ** 2 + y ** 2 + x ** 2 < r_mm ** 2
    return mask, spacing


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_without_wobble_the_contour_is_the_anatomy():
    mask, spacing = _sphere()
    out = draw_contour(mask, spacing, Style(sd_mm=1.0, smooth_mm=0.0), 0.0, np.random.default_rng(0))
    assert dice(out, mask) > 0.995


def test_wobble_changes_the_boundary_by_about_its_sd():
    mask, spacing = _sphere()
    rng = np.random.default_rng(1)
    out = draw_contour(mask, spacing, Style(sd_mm=1.5, corr_mm=20.0, smooth_mm=1.0), 1.0, rng)
    d = dice(out, mask)
    # a 1.5 mm displacement SD on a 25 mm sphere moves a few percent of the volume
    assert 0.85 < d < 0.99


def test_same_generator_state_gives_the_same_contour():
    mask, spacing = _sphere()
    a = draw_contour(mask, spacing, Style(), 1.0, np.random.default_rng(7))
    b = draw_contour(mask, spacing, Style(), 1.0, np.random.default_rng(7))
    c = draw_contour(mask, spacing, Style(), 1.0, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_slivers_below_the_minimum_area_are_not_drawn():
    mask = np.zeros((5, 40, 40), bool)
    mask[0, 10:13, 10:13] = True  # the structure's end: a 9 mm2 sliver on its own slice
    mask[1:4, 20:35, 20:35] = True
    out = draw_contour(mask, (3.0, 1.0, 1.0), Style(sd_mm=0.0, smooth_mm=0.0, min_area_mm2=15.0), 1.0,
                       np.random.default_rng(0))
    assert not out[0].any()
    assert out[2, 25, 25]


def test_closing_bridges_touching_loops():
    mask = np.zeros((3, 40, 60), bool)
    mask[:, 10:30, 5:27] = True
    mask[:, 10:30, 29:50] = True  # a 2 mm gap
    out = draw_contour(mask, (3.0, 1.0, 1.0), Style(sd_mm=0.0, smooth_mm=0.0, closing_mm=3.0), 1.0,
                       np.random.default_rng(0))
    assert out[1, 20, 27:29].all()


def test_wobble_acts_the_same_on_coarse_and_fine_pixels():
    # the same 25 mm sphere on 1 mm and 2.5 mm pixels: the observer moves about as much volume
    scores = []
    for px in (1.0, 2.5):
        n = int(40 / px)
        z, y, x = np.mgrid[-20:21, -n:n + 1, -n:n + 1].astype(float)
        mask = (z * 3.0) ** 2 + (y * px) ** 2 + (x * px) ** 2 < 25.0 ** 2
        d = [dice(draw_contour(mask, (3.0, px, px), Style(sd_mm=1.0, corr_mm=20.0, smooth_mm=0.0), 1.0,
                               np.random.default_rng(k)), mask) for k in range(4)]
        scores.append(np.mean(d))
    assert abs(scores[0] - scores[1]) < 0.02
    assert scores[1] < 0.985
