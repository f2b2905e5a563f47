"""Metal artefacts: the projection model is a correct scanner model, streaks only where metal is."""

from __future__ import annotations

import numpy as np

from cervseg.phantom.artefacts import filtered_back_projection, metal_streaks, parallel_projection


def disk(shape, centre, radius, value=1.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.where((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius ** 2, value, 0.0)


def test_projection_conserves_mass_and_back_projection_inverts_it():
    img = disk((160, 160), (70, 95), 25, 100.0)
    angles = np.linspace(0, np.pi, 180, endpoint=False)
    px = 1.5
    sino, bins = parallel_projection(img, px, angles)
    np.testing.assert_allclose(sino.sum(axis=1), img.sum() * px, rtol=1e-9)  # each angle sees all the mass
    # a chord through the centre is the diameter: 50 px * 1.5 mm * 100
    assert abs(np.median(sino.max(axis=1)) - 100 * 50 * px) < 0.03 * 100 * 50 * px
    rec = filtered_back_projection(sino, angles, img.shape, px)
    assert abs(rec[70, 95] - 100.0) < 3.0
    assert abs(rec[140, 20]) < 3.0


def test_streaks_only_on_slices_with_metal_and_strongest_near_it():
    metal = np.zeros((3, 200, 200), np.float32)
    metal[1] = disk((200, 200), (100, 150), 15)  # metal on the right half of the array (+x)
    s = metal_streaks(metal, 1.0, np.random.default_rng(0))
    assert not s[0].any() and not s[2].any()
    assert np.abs(s[1]).max() > 100  # hundreds of HU near the metal, as on real CT
    ring = disk((200, 200), (100, 150), 45) - disk((200, 200), (100, 150), 25)
    mirror = ring[:, ::-1]
    assert np.abs(s[1][ring > 0]).mean() > 1.5 * np.abs(s[1][mirror > 0]).mean()


def test_streaks_are_deterministic_for_a_seed():
    metal = np.zeros((1, 128, 128), np.float32)
    metal[0] = disk((128, 128), (60, 80), 10)
    a = metal_streaks(metal, 1.2, np.random.default_rng(5))
    b = metal_streaks(metal, 1.2, np.random.default_rng(5))
    assert np.array_equal(a, b)
