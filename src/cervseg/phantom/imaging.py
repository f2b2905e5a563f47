"""From tissue labels to a CT image: HU with texture, partial volume, blur, correlated noise.

- Texture: each tissue gets its own fine structure (trabeculae, faecal mottling, fat
  strands) from a shared random field scaled by the tissue's texture SD.
- Partial volume: for coarse presets the anatomy is painted on sub-pixels and averaged into
  each pixel; along z each slice sees a little of its neighbours (a thick slice's
  sensitivity profile extends beyond its centre plane).
- Blur: a Gaussian in-plane point-spread function (reconstruction kernel).
- Noise: white noise filtered in-plane to the correlation of real CT noise (the real case
  shows SD 14.6 HU in urine but only 6.6 HU after removing a 3-pixel blur, i.e. most noise
  power is at low spatial frequency), independent between slices. Two models: a sum of
  Gaussian-filtered noises (``spectral_field``, coarse presets), and ``ct_noise_field``,
  whose radial noise power spectrum has the shape measured in pelvic-ref-002 (a band of
  filtered-back-projection noise, NPS rising with frequency up to a kernel-set peak and
  falling beyond it, plus a low-frequency mottle), with less noise in the air outside the
  patient than inside (fewer photons are lost there), as on real CT.
- Fatty infiltration ("marbling") of muscle: the lowest tail of muscle's own texture field
  becomes fat, so muscle has the negative HU tail real muscle labels show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import ndimage
from scipy.special import ndtri

from cervseg.phantom.fields import trilinear
from cervseg.phantom.intensities import Intensities
from cervseg.phantom.tissues import Tissue


def spectral_field(rng: np.random.Generator, shape: tuple[int, int, int], pixel_mm: float,
                   components: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Unit-variance noise, correlated in-plane only, as a sum of Gaussian-filtered white noises.

    ``components``: (sigma_mm, weight) pairs; the field has the power spectrum of
    sum_i weight_i * (white noise blurred by sigma_i, normalised), built in one FFT pass.
    """
    nz, ny, nx = shape
    ky = sfft.fftfreq(ny)[:, None]
    kx = sfft.rfftfreq(nx)[None, :]
    k2 = (kx ** 2 + ky ** 2).astype(np.float32)
    power = np.zeros_like(k2)
    for sigma_mm, weight in components:
        sg = sigma_mm / pixel_mm
        g2 = np.exp(-4 * np.pi ** 2 * sg ** 2 * k2)  # |Gaussian transfer|^2
        power += weight ** 2 * g2 / g2.mean()
    h = np.sqrt(power / power.mean()).astype(np.float32)
    w = rng.standard_normal(shape, dtype=np.float32)
    spec = sfft.rfft2(w, axes=(1, 2), workers=1)
    spec *= h
    return sfft.irfft2(spec, s=(ny, nx), axes=(1, 2), workers=1).astype(np.float32, copy=False)


def z_partial_volume(a: np.ndarray, weight: float = 0.125) -> np.ndarray:
    """Mix each slice with its neighbours (a thick slice sees a little of the tissue beyond its centre)."""
    if a.shape[0] < 3 or weight <= 0:
        return a
    out = a * np.float32(1 - 2 * weight)
    out[1:] += np.float32(weight) * a[:-1]
    out[:-1] += np.float32(weight) * a[1:]
    out[0] += np.float32(weight) * a[0]
    out[-1] += np.float32(weight) * a[-1]
    return out


def xy_partial_volume(a: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` sub-pixels into each output pixel."""
    if factor == 1:
        return a.astype(np.float32, copy=False)
    nz, ny, nx = a.shape
    f = factor
    return a.reshape(nz, ny // f, f, nx // f, f).mean(axis=(2, 4), dtype=np.float32)


@dataclass(frozen=True)
class CtNoise:
    """Shape of one patient's noise power spectrum (see ``ct_noise_field``)."""

    band_cutoff: float  # cycles/mm; the band's NPS peaks at BAND_PEAK * band_cutoff
    low_share: float  # fraction of the variance in the low-frequency mottle
    low_sigma_mm: float = 2.5  # correlation of the mottle
    air_level: float = 0.3  # noise SD in the air around the patient relative to inside


#: the band NPS f * exp(-(f/fc)^3) peaks at f = fc * 3^(-1/3)
BAND_PEAK = 3.0 ** (-1.0 / 3.0)


def ct_noise_field(rng: np.random.Generator, shape: tuple[int, int, int], pixel_mm: float,
                   noise: CtNoise) -> np.ndarray:
    """Unit-variance noise whose radial NPS is (1 - s) B(f) + s G(f), independent between slices.

    B(f) = f exp(-(f/fc)^3) is the band of filtered-back-projection noise (zero at f = 0, a
    peak set by the reconstruction kernel, fall-off beyond it), G(f) the spectrum of white
    noise blurred by a Gaussian of ``low_sigma_mm`` (low-frequency mottle); each normalised
    to unit variance on this grid before mixing.
    """
    nz, ny, nx = shape
    ky = sfft.fftfreq(ny, pixel_mm)[:, None]
    kx = sfft.rfftfreq(nx, pixel_mm)[None, :]
    f = np.sqrt(kx ** 2 + ky ** 2)
    band = f * np.exp(-((f / noise.band_cutoff) ** 3))
    low = np.exp(-4 * np.pi ** 2 * noise.low_sigma_mm ** 2 * f ** 2)
    # rfft bins stand for two full-spectrum bins except the first (and Nyquist) column
    weight = np.full(f.shape, 2.0)
    weight[:, 0] = 1.0
    mean = lambda p: float((p * weight).sum() / weight.sum())  # noqa: E731
    power = (1 - noise.low_share) * band / max(mean(band), 1e-12) + noise.low_share * low / max(mean(low), 1e-12)
    h = np.sqrt(power / mean(power)).astype(np.float32)
    w = rng.standard_normal(shape, dtype=np.float32)
    spec = sfft.rfft2(w, axes=(1, 2), workers=1)
    spec *= h
    return sfft.irfft2(spec, s=(ny, nx), axes=(1, 2), workers=1).astype(np.float32, copy=False)


def noise_amplitude(inside: np.ndarray, pixel_mm: float, air_level: float) -> np.ndarray:
    """Relative noise SD per voxel: 1 in the patient, ``air_level`` in the air, a smooth rim (~10 mm)."""
    step = max(1, int(round(4.0 / pixel_mm)))
    coarse = inside[:, ::step, ::step].astype(np.float32)
    coarse = ndimage.gaussian_filter(coarse, sigma=(0, 10.0 / (pixel_mm * step), 10.0 / (pixel_mm * step)))
    coarse = air_level + (1 - air_level) * np.clip(coarse, 0, 1)
    nz, ny, nx = inside.shape
    return trilinear(coarse, (np.arange(nz, dtype=float), np.arange(ny) / step, np.arange(nx) / step))


def render(tissue: np.ndarray, intens: Intensities, rng: np.random.Generator, pixel_mm: float,
           xy_factor: int, noise_hu: float, ct_noise: CtNoise | None = None,
           marbling: float = 0.0, artefact: np.ndarray | None = None) -> np.ndarray:
    """Tissue labels (fine grid) -> CT image in HU (float32, output grid).

    ``ct_noise``: the measured-NPS noise model (else the Gaussian components);
    ``marbling``: fraction of muscle voxels that are intramuscular fat; ``artefact``: HU
    added after the blur, before the noise (metal streaks, on the output grid).
    """
    hu = xy_partial_volume(intens.mean[tissue], xy_factor)
    amp = xy_partial_volume(intens.texture[tissue], xy_factor)
    # tissue texture (scaled per tissue: trabeculae, faecal mottle, fat strands) is fine-grained
    field = spectral_field(rng, hu.shape, pixel_mm, TEXTURE_COMPONENTS)
    hu += amp * field
    del amp
    if marbling > 0:
        muscle = xy_partial_volume((tissue == Tissue.MUSCLE).astype(np.float32), xy_factor) > 0.5
        threshold = np.float32(ndtri(marbling))
        fat = muscle & (field < threshold)
        share = np.clip((threshold - field[fat]) / 0.4, 0.25, 1.0)  # partial-volume fat share
        hu[fat] = hu[fat] * (1 - share) + intens.mean[Tissue.FAT] * share
    del field
    hu = z_partial_volume(hu)
    hu = blur(hu, pixel_mm)
    if artefact is not None:
        hu += artefact
    if noise_hu > 0:
        if ct_noise is None:
            hu += np.float32(noise_hu) * spectral_field(rng, hu.shape, pixel_mm, NOISE_COMPONENTS)
        else:
            inside = xy_partial_volume((tissue > Tissue.COUCH_FOAM).astype(np.float32), xy_factor) > 0.5
            sd = np.float32(noise_hu) * noise_amplitude(inside, pixel_mm, ct_noise.air_level)
            hu += sd * ct_noise_field(rng, hu.shape, pixel_mm, ct_noise)
    return hu


#: trabecular / faecal texture: fine grain with a little organ-scale heterogeneity
TEXTURE_COMPONENTS = ((0.6, 0.9), (4.0, 0.45))

#: fine grain and low-frequency mottle; about a fifth of the noise variance survives a
#: 3-pixel high-pass, as measured on the real case (6.6 of 14.6 HU SD).
NOISE_COMPONENTS = ((0.8, 0.3), (3.5, 0.95))


def blur(hu: np.ndarray, pixel_mm: float, psf_mm: float = 0.75) -> np.ndarray:
    """In-plane Gaussian point-spread function of the reconstruction (sigma ``psf_mm``)."""
    sigma = psf_mm / pixel_mm
    if sigma < 0.15:
        return hu
    return ndimage.gaussian_filter(hu, sigma=(0, sigma, sigma), truncate=3.0).astype(np.float32, copy=False)
