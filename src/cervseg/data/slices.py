"""A torch Dataset of 2D / 2.5D slices read from the training cache.

Each item is one axial slice: the preprocessed input (2k+1 channels for 2.5D, via
``preprocess.Preprocessor`` exactly as inference will do it: resampled to the plan's pixel
size and cut to its crop) and the structure masks put on the same grid (cropped, or
resampled linearly and cut at 0.5, so a mask keeps its outline at any pixel size). The grid
is fixed per patient (centred on the body outline of the whole volume, found once), so
neighbouring slices line up for 2.5D.

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
from cervseg.errors import ConfigError
from cervseg.structures import left_right_swap
from cervseg.data.preprocess import (
    AIR_HU, Preprocessor, SliceGrid, body_bounding_box, crop, grid_for, zscore_statistics,
)

log = logging.getLogger(__name__)


def patient_grid(cache: Cache, pid: str, cfg: PreprocessConfig) -> SliceGrid:
    """The plan's grid on one cached patient, placed by its one body detection (as inference does)."""
    geometry = cache.geometry(pid)
    needs_body = cfg.millimetre_plan or cfg.crop_size is not None
    body = body_bounding_box(cache.image(pid), cfg.body_threshold_hu) if needs_body else None
    return grid_for(cfg, body, geometry.shape[1:], geometry.spacing[1:])


def resolve_preprocess(cache: Cache, patients: Sequence[str], cfg: PreprocessConfig, every: int = 2) -> PreprocessConfig:
    """The config with z-score statistics filled in from ``patients`` (on the plan's grid).

    Measured on the region the network sees, on every ``every``-th slice, so that a clinic's
    field of view (how much air around the body) does not shift the normalisation.
    """
    if not cfg.needs_statistics:
        return cfg

    def crops():
        for pid in patients:
            grid = patient_grid(cache, pid, cfg)
            yield grid.to_network(np.asarray(cache.image(pid)[::every]), fill=AIR_HU)

    mean, std = zscore_statistics(crops(), cfg.clamp_hu)
    log.info("z-score statistics from %d training patients: mean %.1f HU, std %.1f HU", len(patients), mean, std)
    return cfg.model_copy(update={"zscore_mean": round(mean, 4), "zscore_std": round(std, 4)})


def masks_on_grid(masks: np.ndarray, grid: SliceGrid) -> np.ndarray:
    """(..., rows, cols) bool masks on the network grid as uint8 (cropped, or resampled and cut at 0.5)."""
    if grid.integral:
        return crop(masks, grid.crop_box, fill=False).astype(np.uint8)
    return (grid.to_network(np.asarray(masks, dtype=np.float32), fill=0.0) > 0.5).astype(np.uint8)


def _outside_fraction(cache: Cache, pid: str, structures: Sequence[str], grid: SliceGrid) -> np.ndarray:
    """Share of each structure's voxels that lie outside the grid's crop (0 in the usual case)."""
    packed = cache.packed_masks(pid)[:, cache.channels(structures)]
    width = cache.geometry(pid).shape[2]
    covered = grid.covered()
    footprint = unpack_masks(np.bitwise_or.reduce(np.asarray(packed), axis=0), width)  # (S, y, x)
    if not (footprint & ~covered).any():
        return np.zeros(len(structures))
    kept = np.zeros(len(structures))
    for z in range(packed.shape[0]):
        kept += (unpack_masks(packed[z], width) & covered).sum(axis=(1, 2))
    total = np.array([cache.entry(pid)["voxels"][s] for s in structures], dtype=float)
    return 1.0 - kept / np.maximum(total, 1)


class SliceDataset(Dataset):
    """Slices of some cached patients, as dicts {image (C,H,W) float32, label (S,H,W) uint8,
    labelled (S,) bool, patient, z}.

    ``labelled`` says which structures were contoured on the slice's patient (all, unless the
    cache holds partial labels): a loss must leave the others out rather than learn "absent".
    ``extra`` adds patients of other caches, each as (cache, patient, repeat): e.g. a few
    real cases beside many phantoms, their slices counted ``repeat`` times per pass.
    """

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
        extra: Sequence[tuple[Cache, str, int]] = (),
    ):
        self.structures = list(structures)
        self.sources: list[tuple[Cache, str]] = [(cache, p) for p in patients] + [(c, p) for c, p, _ in extra]
        repeats = [1] * len(patients) + [int(r) for _, _, r in extra]
        self.patients = [pid if c is cache else f"{c.folder.name}/{pid}" for c, pid in self.sources]
        for c in {id(c): c for c, _ in self.sources}.values():
            c.channels(self.structures)  # fail early, naming the structure a cache lacks
        self.labelled = [np.array([s in c.labelled(pid) for s in self.structures]) for c, pid in self.sources]
        if augment is not None and augment.cfg.enabled and augment.cfg.flip_lr_prob > 0:
            # a left-right flip swaps *_L and *_R masks: each of a pair counts as contoured only
            # where both are, so a flipped slice cannot teach "absent" on the uncontoured side
            swap = np.asarray(left_right_swap(self.structures), dtype=np.intp)
            self.labelled = [known & known[swap] for known in self.labelled]
        self.pre = Preprocessor(preprocess)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        rng = np.random.default_rng(seed)
        self.grids: list[SliceGrid] = []
        items: list[tuple[int, int]] = []
        self.cut_fraction: dict[str, dict[str, float]] = {}
        for pi, ((source, pid), name) in enumerate(zip(self.sources, self.patients)):
            grid = patient_grid(source, pid, preprocess)
            self.grids.append(grid)
            fg = source.slices_with_structure(pid, self.structures)
            empty = np.flatnonzero(~fg)
            keep = int(round(empty_fraction * len(empty)))
            chosen = np.sort(rng.choice(empty, size=keep, replace=False)) if keep < len(empty) else empty
            zs = np.sort(np.concatenate([np.flatnonzero(fg), chosen]))
            items.extend((pi, int(z)) for z in np.tile(zs, repeats[pi]))
            cut = _outside_fraction(source, pid, self.structures, grid)
            self.cut_fraction[name] = {s: float(c) for s, c in zip(self.structures, cut)}
            if cut.max() > 0.01:
                worst = self.structures[int(cut.argmax())]
                log.warning("%s: the %s crop cuts away %.0f%% of %s; consider a larger preprocess.%s",
                            name, "x".join(str(n) for n in grid.shape), 100 * cut.max(), worst,
                            "crop_mm" if preprocess.millimetre_plan else "crop_size")
        self.items = items
        shapes = sorted({g.shape for g in self.grids})
        if len(shapes) > 1:
            raise ConfigError(f"preprocess: the patients' slices come out in {len(shapes)} sizes {shapes[:3]}; "
                              "set preprocess.crop_mm (or crop_size) so that every slice has one size")

    def set_epoch(self, epoch: int) -> None:
        """Augmentation of the coming epoch (call before creating the DataLoader iterator)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def sample_seed(self, index: int) -> int:
        return int(np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)[0])

    def __getitem__(self, index: int) -> dict:
        pi, z = self.items[index]
        source, pid = self.sources[pi]
        grid = self.grids[pi]
        image = self.pre.slice_input(source.image(pid), z, grid)
        label = masks_on_grid(source.mask_slices(pid, z, self.structures), grid)
        if self.augment is not None:
            image, label = self.augment(image, label, self.sample_seed(index))
        return {"image": torch.from_numpy(np.ascontiguousarray(image)),
                "label": torch.from_numpy(np.ascontiguousarray(label)),
                "labelled": torch.from_numpy(self.labelled[pi].copy()),
                "patient": pi, "z": z}

    def summary(self) -> dict:
        """Counts for the checkpoint's training-data summary."""
        per_patient = np.bincount([pi for pi, _ in self.items], minlength=len(self.patients))
        partial = {p: [s for s, k in zip(self.structures, known) if k]
                   for p, known in zip(self.patients, self.labelled) if not known.all()}
        return {
            "patients": self.patients,
            "slices": len(self.items),
            "slices_per_patient": {p: int(n) for p, n in zip(self.patients, per_patient)},
            **({"partially_labelled": partial} if partial else {}),
        }
