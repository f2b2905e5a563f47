"""Image formation: noise statistics like the real case, partial volume conserves HU."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cervseg.phantom.imaging import NOISE_COMPONENTS, spectral_field, xy_partial_volume, z_partial_volume


def test_noise_has_unit_variance_is_correlated_in_plane_and_independent_between_slices():
    f = spectral_field(np.random.default_rng(0), (6, 128, 128), 1.0, NOISE_COMPONENTS)
    assert abs(f.std() - 1.0) < 0.05
    neighbour = np.corrcoef(f[:, :, :-1].ravel(), f[:, :, 1:].ravel())[0, 1]
    between = np.corrcoef(f[:-1].ravel(), f[1:].ravel())[0, 1]
    assert neighbour > 0.6
    assert abs(between) < 0.05


def test_noise_keeps_about_half_its_sd_after_a_three_pixel_high_pass_like_the_real_case():
    # real case (data README): SD 14.6 HU in urine, 6.6 HU after removing a 3-pixel blur (ratio 0.45)
    f = spectral_field(np.random.default_rng(1), (6, 160, 160), 1.0, NOISE_COMPONENTS)
    hp = f - ndimage.gaussian_filter(f, (0, 3, 3))
    assert 0.35 < hp.std() / f.std() < 0.6


def test_partial_volume_conserves_a_uniform_value_and_averages_blocks():
    a = np.full((4, 6, 6), 7.0, np.float32)
    np.testing.assert_allclose(z_partial_volume(a), 7.0)
    b = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    out = xy_partial_volume(b, 2)
    np.testing.assert_allclose(out[0], [[2.5, 4.5], [10.5, 12.5]])


def test_ct_noise_has_unit_variance_and_is_independent_between_slices():
    from cervseg.phantom.imaging import CtNoise, ct_noise_field

    f = ct_noise_field(np.random.default_rng(2), (6, 128, 128), 1.1, CtNoise(0.23, 0.75))
    assert abs(f.std() - 1.0) < 0.05
    assert abs(np.corrcoef(f[:-1].ravel(), f[1:].ravel())[0, 1]) < 0.05


def test_noise_amplitude_is_one_in_the_patient_and_the_air_level_far_outside():
    from cervseg.phantom.imaging import noise_amplitude

    inside = np.zeros((2, 200, 200), bool)
    inside[:, 60:140, 60:140] = True
    amp = noise_amplitude(inside, 1.0, 0.3)
    assert amp.shape == inside.shape
    assert np.allclose(amp[:, 95:105, 95:105], 1.0, atol=0.02)
    assert np.allclose(amp[:, :10, :10], 0.3, atol=0.02)


def test_marbling_turns_that_share_of_muscle_towards_fat():
    from cervseg.phantom.imaging import render
    from cervseg.phantom.intensities import Intensities
    from cervseg.phantom.tissues import Tissue

    tissue = np.full((3, 96, 96), Tissue.MUSCLE, np.uint8)
    intens = Intensities.draw(np.random.default_rng(0), iv_contrast=False)
    lean = render(tissue, intens, np.random.default_rng(1), 1.0, 1, 0.0)
    marbled = render(tissue, intens, np.random.default_rng(1), 1.0, 1, 0.0, marbling=0.1)
    mid = (intens.mean[Tissue.MUSCLE] + intens.mean[Tissue.FAT]) / 2
    assert (lean < mid).mean() == 0
    assert 0.02 < (marbled < mid).mean() < 0.12
    assert marbled.mean() < lean.mean() - 5
