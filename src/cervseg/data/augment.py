"""Training-time augmentation of 2D/2.5D slices (paper 001), deterministic for a seed.

Built from MONAI dictionary transforms (RandFlipd, RandRotated, RandAffined,
RandScaleIntensityd, RandShiftIntensityd) plus two small transforms MONAI lacks in 2D:

- ``RandLeftRightFlipd``: a left-right flip mirrors the patient, so Femur_Head_L ends up on
  the patient's right. MONAI's RandFlipd cannot rename channels; this transform flips the
  array columns (always the patient x direction in an axial series, whatever the patient
  position) and swaps every ``*_L`` / ``*_R`` pair of label channels, keeping labels
  anatomically right. (Chosen over disabling flips: flips are cheap, useful augmentation.)
- ``RandGaussianElasticd``: the elastic step as the paper describes it (Simard et al.
  2003): an independent random displacement per pixel, smoothed by a Gaussian of
  ``sigma`` pixels and scaled so its largest displacement is ``strength`` pixels.
  MONAI's Rand2DElastic uses a coarse control-point grid instead, and Rand3DElastic (which
  does smooth a per-voxel field) is 3-D only.

Sim-to-real intensity augmentation in the SynthSeg style (Billot et al. 2023), applied to
the image only, after the spatial steps, in SynthSeg's order: a random piecewise-linear remap
of the intensity scale (MONAI RandHistogramShiftd: each HU band, i.e. each tissue, gets its
own random contrast), a smooth multiplicative bias field (RandBiasFieldd), blur
(RandGaussianSmoothd) and a coarser resolution (RandSimulateLowResolutiond), correlated
noise (``RandCorrelatedNoised``, hand-written: MONAI's RandGaussianNoise is white), and a
gamma curve (RandAdjustContrastd). All are off unless their probability is set.

Images are resampled bilinearly, labels nearest-neighbour, so labels stay exactly 0/1.
Seeding: ``Augmenter(sample..., seed=s)`` reseeds every random transform from ``s``, so a
sample's augmentation depends only on (seed, epoch, index), not on worker processes.
"""

from __future__ import annotations

import math
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import (
    Compose, MapTransform, RandAdjustContrastd, RandAffined, RandBiasFieldd, RandFlipd, RandGaussianSmoothd,
    RandHistogramShiftd, RandomizableTransform, RandRotated, RandScaleIntensityd, RandShiftIntensityd,
    RandSimulateLowResolutiond,
)
from scipy import ndimage

from cervseg.config import AugmentConfig
from cervseg.structures import left_right_swap

IMAGE, LABEL = "image", "label"


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class _RandEachKeyd(RandomizableTransform, MapTransform):
    """One random draw per call, then ``transform_key`` on every key (or on none)."""

    def __init__(self, keys: KeysCollection, prob: float):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys)

    def transform_key(self, key: Hashable, arr: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize(None)
        d = dict(data)
        if self._do_transform:
            for key in self.key_iterator(d):
                d[key] = self.transform_key(key, _numpy(d[key]))
        return d


class RandLeftRightFlipd(_RandEachKeyd):
    """Flip image and label along the array columns and swap the L/R label channels."""

    def __init__(self, keys: KeysCollection, label_key: str, structures: Sequence[str], prob: float = 0.5):
        super().__init__(keys, prob)
        self.label_key = label_key
        self.perm = np.asarray(left_right_swap(structures), dtype=np.intp)

    def transform_key(self, key: Hashable, arr: np.ndarray) -> np.ndarray:
        arr = np.flip(arr, axis=-1)
        if key == self.label_key:
            arr = arr[self.perm]
        return np.ascontiguousarray(arr)


class RandGaussianElasticd(RandomizableTransform, MapTransform):
    """Per-pixel random displacement, Gaussian-smoothed, scaled to ``strength`` pixels at most."""

    def __init__(self, keys: KeysCollection, label_keys: Sequence[str], sigma: float, strength: float,
                 prob: float = 0.1):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys)
        self.label_keys = set(label_keys)
        self.sigma = float(sigma)
        self.strength = float(strength)
        self.field: np.ndarray | None = None

    def randomize(self, shape: Sequence[int] | None) -> None:  # type: ignore[override]
        super().randomize(None)
        self.field = None
        if not self._do_transform or shape is None:
            return
        noise = self.R.uniform(-1.0, 1.0, size=(2, *shape))
        field = np.stack([ndimage.gaussian_filter(c, self.sigma, mode="reflect") for c in noise])
        peak = float(np.abs(field).max())
        self.field = field * (self.strength / peak) if peak > 0 else field * 0.0

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        first = next(iter(self.key_iterator(d)))
        shape = _numpy(d[first]).shape[-2:]
        self.randomize(shape)
        if self.field is None:
            return d
        grid = np.mgrid[: shape[0], : shape[1]].astype(np.float64) + self.field
        for key in self.key_iterator(d):
            arr = _numpy(d[key])
            if key in self.label_keys and arr.shape[0] <= 52:
                # nearest neighbour of all channels at once: channels as bits of one integer image
                # (exact in float64 up to 52 bits)
                bits = (arr > 0.5).astype(np.int64)
                code = np.tensordot(np.left_shift(1, np.arange(arr.shape[0], dtype=np.int64)), bits, axes=1)
                moved = ndimage.map_coordinates(code.astype(np.float64), grid, order=0, mode="constant", cval=0.0)
                moved = moved.astype(np.int64)
                out = ((moved[None] >> np.arange(arr.shape[0])[:, None, None]) & 1).astype(arr.dtype)
            else:
                order, mode = (0, "constant") if key in self.label_keys else (1, "nearest")
                out = np.stack([ndimage.map_coordinates(c, grid, order=order, mode=mode, cval=0.0) for c in arr])
            d[key] = out
        return d


class RandCorrelatedNoised(_RandEachKeyd):
    """Add Gaussian noise smoothed over ``sigma`` pixels and rescaled to SD ``std`` (CT noise has texture).

    Each channel (each slice of a 2.5D input) gets its own noise, as neighbouring CT slices do.
    """

    def __init__(self, keys: KeysCollection, std: float, sigma: float, prob: float = 0.1):
        super().__init__(keys, prob)
        self.std = float(std)
        self.sigma = float(sigma)

    def transform_key(self, key: Hashable, arr: np.ndarray) -> np.ndarray:
        noise = self.R.standard_normal(arr.shape)
        if self.sigma > 0:
            noise = np.stack([ndimage.gaussian_filter(c, self.sigma, mode="reflect") for c in noise])
        sd = noise.reshape(noise.shape[0], -1).std(axis=1).reshape(-1, *([1] * (noise.ndim - 1)))
        return arr.astype(np.float32) + (self.std * noise / np.maximum(sd, 1e-12)).astype(np.float32)


def sim_to_real_transforms(cfg: AugmentConfig) -> list[Any]:
    """The configured SynthSeg-style intensity transforms of the image, in SynthSeg's order."""
    t: list[Any] = []
    if cfg.intensity_remap_prob > 0:
        t.append(RandHistogramShiftd(IMAGE, num_control_points=cfg.intensity_remap_points,
                                     prob=cfg.intensity_remap_prob))
    if cfg.bias_field_prob > 0 and cfg.bias_field_coeff > 0:
        t.append(RandBiasFieldd(IMAGE, degree=3, coeff_range=(0.0, cfg.bias_field_coeff), prob=cfg.bias_field_prob))
    if cfg.blur_prob > 0:
        t.append(RandGaussianSmoothd(IMAGE, sigma_x=cfg.blur_sigma_px, sigma_y=cfg.blur_sigma_px, prob=cfg.blur_prob))
    if cfg.low_resolution_prob > 0:
        t.append(RandSimulateLowResolutiond(IMAGE, prob=cfg.low_resolution_prob, downsample_mode="area",
                                            upsample_mode="bilinear", zoom_range=cfg.low_resolution_zoom))
    if cfg.noise_texture_prob > 0 and cfg.noise_texture_std > 0:
        t.append(RandCorrelatedNoised(IMAGE, cfg.noise_texture_std, cfg.noise_texture_sigma_px,
                                      prob=cfg.noise_texture_prob))
    if cfg.gamma_prob > 0:
        t.append(RandAdjustContrastd(IMAGE, gamma=cfg.gamma_range, retain_stats=True, prob=cfg.gamma_prob))
    return t


class Augmenter:
    """The configured augmentation of one (image, label) slice pair, reseeded per call."""

    def __init__(self, cfg: AugmentConfig, structures: Sequence[str]):
        self.cfg = cfg
        keys = (IMAGE, LABEL)
        modes = ("bilinear", "nearest")
        pads = ("border", "zeros")
        t: list[Any] = []
        if cfg.flip_lr_prob > 0:
            t.append(RandLeftRightFlipd(keys, LABEL, structures, prob=cfg.flip_lr_prob))
        if cfg.flip_ap_prob > 0:  # rows: anterior-posterior, no renaming needed
            t.append(RandFlipd(keys, prob=cfg.flip_ap_prob, spatial_axis=0))
        if cfg.rotate_prob > 0 and cfg.rotate_degrees > 0:
            t.append(RandRotated(keys, range_x=math.radians(cfg.rotate_degrees), prob=cfg.rotate_prob,
                                 mode=modes, padding_mode=pads, keep_size=True))
        if cfg.affine_prob > 0:
            t.append(RandAffined(
                keys, prob=cfg.affine_prob,
                scale_range=(cfg.affine_scale, cfg.affine_scale),
                shear_range=(cfg.affine_shear, cfg.affine_shear),
                translate_range=(cfg.affine_translate_px, cfg.affine_translate_px),
                mode=modes, padding_mode=pads,
            ))
        if cfg.elastic_prob > 0 and cfg.elastic_strength_px > 0:
            t.append(RandGaussianElasticd(keys, [LABEL], cfg.elastic_sigma_px, cfg.elastic_strength_px,
                                          prob=cfg.elastic_prob))
        t.extend(sim_to_real_transforms(cfg))
        if cfg.scale_intensity_prob > 0 and cfg.scale_intensity_factor > 0:
            t.append(RandScaleIntensityd(IMAGE, factors=cfg.scale_intensity_factor, prob=cfg.scale_intensity_prob))
        if cfg.shift_intensity_prob > 0 and cfg.shift_intensity_offset > 0:
            t.append(RandShiftIntensityd(IMAGE, offsets=cfg.shift_intensity_offset, prob=cfg.shift_intensity_prob))
        self.transform = Compose(t) if cfg.enabled and t else None

    def __call__(self, image: np.ndarray, label: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """image (C, H, W) float32, label (S, H, W) 0/1 -> augmented copies of the same types."""
        if self.transform is None:
            return image, label
        self.transform.set_random_state(seed=int(seed) % (2**32))
        out = self.transform({IMAGE: np.asarray(image, dtype=np.float32),
                              LABEL: np.asarray(label, dtype=np.float32)})
        img = _numpy(out[IMAGE]).astype(np.float32, copy=False)
        lab = _numpy(out[LABEL]) > 0.5
        return np.ascontiguousarray(img), np.ascontiguousarray(lab.astype(np.asarray(label).dtype))
