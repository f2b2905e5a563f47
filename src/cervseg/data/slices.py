"""A torch Dataset of 2D / 2.5D slices read from the training cache.

Each item is one axial slice: the preprocessed input (2k+1 channels for 2.5D, via
``preprocess.Preprocessor`` exactly as inference will do it) and the structure masks cut
with the same crop box. The crop box is fixed per patient (centred on the body outline of
the whole volume), so neighbouring slices line up for 2.5D.

Slices without any structure can be thinned out (``empty_fraction``): the chosen empty
slices are drawn once from the seed, so a run is reproducible and resumable.
Augmentation, when given, is seeded per (seed, epoch, item), so the same item in the same
epoch is augmented identically whatever worker process or DDP rank loads it.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from cervseg.config import PreprocessConfig
from cervseg.data.augment import Augmenter
from cervseg.data.cache import Cache, unpack_masks
from cervseg.data.preprocess import CropBox, Preprocessor, crop, crop_box_for, zscore_statistics

log = logging.getLogger(__name__)


def resolve_preprocess(cache: Cache, patients: Sequence[str], cfg: PreprocessConfig, every: int = 2) -> PreprocessConfig:
    """The config with z-score statistics filled in from ``patients`` (inside their crop boxes).

    Measured on the region the network sees, on every ``every``-th slice, so that a clinic's
    field of view (how much air around the body) does not shift the normalisation.
    """
    if not cfg.needs_statistics:
        return cfg

    def crops():
        for pid in patients:
            img = cache.image(pid)
            box = crop_box_for(img, cfg)
            yield crop(np.asarray(img[::every]), box, fill=-1024)

    mean, std = zscore_statistics(crops(), cfg.clamp_hu)
    log.info("z-score statistics from %d training patients: mean %.1f HU, std %.1f HU", len(patients), mean, std)
    return cfg.model_copy(update={"zscore_mean": round(mean, 4), "zscore_std": round(std, 4)})


def _outside_fraction(cache: Cache, pid: str, structures: Sequence[str], box: CropBox) -> np.ndarray:
    """Share of each structure's voxels that the crop box cuts away (0 in the usual case)."""
    packed = cache.packed_masks(pid)[:, cache.channels(structures)]
    width = cache.geometry(pid).shape[2]
    footprint = unpack_masks(np.bitwise_or.reduce(np.asarray(packed), axis=0), width)  # (S, y, x)
    if crop(footprint, box, fill=False).sum() == footprint.sum():
        return np.zeros(len(structures))
    kept = np.zeros(len(structures))
    for z in range(packed.shape[0]):
        kept += crop(unpack_masks(packed[z], width), box, fill=False).sum(axis=(1, 2))
    total = np.array([cache.entry(pid)["voxels"][s] for s in structures], dtype=float)
    return 1.0 - kept / np.maximum(total, 1)


class SliceDataset(Dataset):
    """Slices of some cached patients, as dicts {image (C,H,W) float32, label (S,H,W) uint8, patient, z}."""

    def __init__(
        self,
        cache: Cache,
        patients: Sequence[str],
        structures: Sequence[str],
        preprocess: PreprocessConfig,
        *,
        augment: Augmenter | None = None,
        empty_fraction: float = 1.0,
        seed: int = 0,
    ):
        self.cache = cache
        self.patients = list(patients)
        self.structures = list(structures)
        cache.channels(self.structures)  # fail early, naming the structure the cache lacks
        self.pre = Preprocessor(preprocess)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        rng = np.random.default_rng(seed)
        self.boxes: list[CropBox] = []
        items: list[tuple[int, int]] = []
        self.cut_fraction: dict[str, dict[str, float]] = {}
        for pi, pid in enumerate(self.patients):
            box = crop_box_for(cache.image(pid), preprocess)
            self.boxes.append(box)
            fg = cache.slices_with_structure(pid, self.structures)
            empty = np.flatnonzero(~fg)
            keep = int(round(empty_fraction * len(empty)))
            chosen = np.sort(rng.choice(empty, size=keep, replace=False)) if keep < len(empty) else empty
            zs = np.sort(np.concatenate([np.flatnonzero(fg), chosen]))
            items.extend((pi, int(z)) for z in zs)
            cut = _outside_fraction(cache, pid, self.structures, box)
            self.cut_fraction[pid] = {s: float(c) for s, c in zip(self.structures, cut)}
            if cut.max() > 0.01:
                worst = self.structures[int(cut.argmax())]
                log.warning("%s: the %s crop cuts away %.0f%% of %s; consider a larger preprocess.crop_size",
                            pid, f"{box.height}x{box.width}", 100 * cut.max(), worst)
        self.items = items

    def set_epoch(self, epoch: int) -> None:
        """Augmentation of the coming epoch (call before creating the DataLoader iterator)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def sample_seed(self, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)[0])

    def __getitem__(self, index: int) -> dict:
        pi, z = self.items[index]
        pid = self.patients[pi]
        box = self.boxes[pi]
        image = self.pre.slice_input(self.cache.image(pid), z, box)
        label = crop(self.cache.mask_slices(pid, z, self.structures), box, fill=False).astype(np.uint8)
        if self.augment is not None:
            image, label = self.augment(image, label, self.sample_seed(index))
        return {"image": torch.from_numpy(np.ascontiguousarray(image)),
                "label": torch.from_numpy(np.ascontiguousarray(label)),
                "patient": pi, "z": z}

    def summary(self) -> dict:
        """Counts for the checkpoint's training-data summary."""
        per_patient = np.bincount([pi for pi, _ in self.items], minlength=len(self.patients))
        return {
            "patients": self.patients,
            "slices": len(self.items),
            "slices_per_patient": {p: int(n) for p, n in zip(self.patients, per_patient)},
        }
