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

Images are resampled bilinearly, labels nearest-neighbour, so labels stay exactly 0/1.
Seeding: ``Augmenter(sample..., seed=s)`` reseeds every random transform from ``s``, so a
sample's augmentation depends only on (seed, epoch, index), not on worker processes.
"""

from __future__ import annotations

import math
import re
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import (
    Compose, MapTransform, RandAffined, RandFlipd, RandomizableTransform, RandRotated,
    RandScaleIntensityd, RandShiftIntensityd,
)
from scipy import ndimage

from cervseg.config import AugmentConfig

IMAGE, LABEL = "image", "label"
_PAIR = re.compile(r"^(.*)_([LR])$")


def left_right_pairs(structures: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs (left, right) of structures named ``X_L`` and ``X_R``."""
    index = {s: i for i, s in enumerate(structures)}
    pairs = []
    for s, i in index.items():
        m = _PAIR.match(s)
        if m and m.group(2) == "L" and f"{m.group(1)}_R" in index:
            pairs.append((i, index[f"{m.group(1)}_R"]))
    return pairs


def swap_permutation(n: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Channel order that exchanges each pair."""
    perm = np.arange(n)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class RandLeftRightFlipd(RandomizableTransform, MapTransform):
    """Flip image and label along the array columns and swap the L/R label channels."""

    def __init__(self, keys: KeysCollection, label_key: str, structures: Sequence[str], prob: float = 0.5):
        RandomizableTransform.__init__(self, prob)
        MapTransform.__init__(self, keys)
        self.label_key = label_key
        self.perm = swap_permutation(len(structures), left_right_pairs(structures))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        self.randomize(None)
        d = dict(data)
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            arr = np.flip(_numpy(d[key]), axis=-1)
            if key == self.label_key:
                arr = arr[self.perm]
            d[key] = np.ascontiguousarray(arr)
        return d


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
