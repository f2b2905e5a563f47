"""Realism measurements: the NPS, HU statistics and body mask give known answers on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from cervseg.phantom.imaging import BAND_PEAK, CtNoise, ct_noise_field
from cervseg.phantom.realism import body_mask, high_pass_sd, hu_stats, radial_nps


def disk_mask(shape: tuple[int, int, int], radius: float) -> np.ndarray:
    nz, ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    m = (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 < radius ** 2
    return np.broadcast_to(m, shape).copy()


def test_nps_of_white_noise_is_flat_at_variance_times_pixel_area():
    rng = np.random.default_rng(0)
    px = 0.8
    img = rng.standard_normal((8, 128, 128)) * 10.0
    nps = radial_nps(img, disk_mask(img.shape, 50), px)
    mid = (nps.freq > 0.15) & (nps.freq < 0.55)
    np.testing.assert_allclose(nps.power[mid], 100.0 * px ** 2, rtol=0.12)
    assert 90 < nps.variance < 110


@pytest.mark.parametrize("cutoff", [0.18, 0.26])
def test_nps_of_ct_noise_peaks_where_configured(cutoff):
    field = ct_noise_field(np.random.default_rng(1), (12, 160, 160), 1.0, CtNoise(cutoff, low_share=0.0))
    nps = radial_nps(field * 12.0, disk_mask(field.shape, 70), 1.0, max_lag_mm=40.0, bin_width=0.01)
    assert abs(nps.peak_freq - BAND_PEAK * cutoff) < 0.025
    # filtered back-projection noise: little power at the lowest and the highest frequencies
    p = nps.normalised()
    assert p[nps.freq < 0.02].max() < 0.3 and p[nps.freq > 0.45].max() < 0.1


def test_low_frequency_mottle_moves_power_to_low_frequencies():
    shape, mask = (8, 160, 160), disk_mask((8, 160, 160), 60)
    band = radial_nps(ct_noise_field(np.random.default_rng(2), shape, 1.0, CtNoise(0.23, 0.0)), mask, 1.0)
    mottled = radial_nps(ct_noise_field(np.random.default_rng(2), shape, 1.0, CtNoise(0.23, 0.7)), mask, 1.0)
    assert mottled.mean_freq < band.mean_freq - 0.05
    assert mottled.peak_freq < band.peak_freq


def test_hu_stats_known_answer_and_empty_region():
    img = np.arange(100, dtype=float).reshape(1, 10, 10)
    mask = np.zeros(img.shape, bool)
    assert hu_stats(img, mask) is None
    mask[0, :5] = True  # values 0..49
    s = hu_stats(img, mask)
    assert s.mean == pytest.approx(24.5) and s.voxels == 50
    assert s.p5 == pytest.approx(np.percentile(np.arange(50), 5))


def test_body_mask_keeps_the_patient_and_drops_the_couch_and_holes_are_filled():
    img = np.full((2, 100, 100), -1000.0)
    yy, xx = np.mgrid[:100, :100]
    img[:, (yy - 45) ** 2 + (xx - 50) ** 2 < 30 ** 2] = 20.0
    img[:, (yy - 45) ** 2 + (xx - 50) ** 2 < 5 ** 2] = -950.0  # rectal gas: inside the body
    img[:, 85:87, 10:90] = 300.0  # couch shell, a separate component
    m = body_mask(img)
    assert m[:, 45, 50].all() and not m[:, 86, 50].any()
    assert abs(m[0].sum() - np.pi * 30 ** 2) < 0.05 * np.pi * 30 ** 2


def test_high_pass_sd_removes_smooth_signal():
    yy, xx = np.mgrid[:64, :64]
    smooth = np.broadcast_to(0.5 * xx + 0.2 * yy, (2, 64, 64)).astype(np.float32)
    mask = disk_mask((2, 64, 64), 20)
    assert high_pass_sd(smooth, mask) < 0.1 * smooth[mask].std()  # a ramp is almost all removed


def test_high_pass_sd_of_white_noise_inside_a_region_ignores_what_lies_outside():
    rng = np.random.default_rng(3)
    img = rng.standard_normal((4, 96, 96)).astype(np.float32) * 5.0
    mask = disk_mask(img.shape, 15)
    img[~mask] = -100.0  # fat around the urine
    # white noise minus its 3-px local mean keeps nearly all of its SD
    assert 4.4 < high_pass_sd(img, mask) < 5.1
