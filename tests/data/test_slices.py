"""Slice dataset: the same preprocessing as inference, empty-slice thinning, seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cervseg.config import AugmentConfig, PreprocessConfig
from cervseg.data.augment import Augmenter
from cervseg.data.cache import Cache
from cervseg.data.preprocess import Preprocessor, crop
from cervseg.data.slices import SliceDataset, resolve_preprocess
from tests.tiny_data import STRUCTURES, build_tiny_cache, tiny_patient


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return Cache(build_tiny_cache(tmp_path_factory.mktemp("slices") / "cache", n=3))


def test_items_match_inference_preprocessing(cache):
    cfg = PreprocessConfig(intensity="window", crop_size=48, context_slices=1)
    ds = SliceDataset(cache, ["P00", "P01"], ["Rectum", "Bladder"], cfg)
    assert len(ds) == 2 * 24
    pre = Preprocessor(cfg)
    for index in (0, 5, 30, 47):
        item = ds[index]
        pi, z = item["patient"], item["z"]
        vol, labels = tiny_patient(pi)
        stacked, box = pre.volume_input(vol.array)
        assert item["image"].shape == (3, 48, 48) and item["image"].dtype == torch.float32
        np.testing.assert_array_equal(item["image"].numpy(), stacked[z])
        expected = crop(np.stack([labels["Rectum"][z], labels["Bladder"][z]]), box, fill=False)
        assert item["label"].dtype == torch.uint8
        np.testing.assert_array_equal(item["label"].numpy(), expected)
    assert ds.cut_fraction["P00"] == {"Rectum": 0.0, "Bladder": 0.0}


def test_millimetre_plan_items_are_the_predictors_input_and_masks_keep_their_area(cache):
    """2.5 mm cached pixels resampled to a 2 mm plan: the image is what inference computes, masks keep mm^2."""
    from cervseg.data.preprocess import body_bounding_box, grid_for

    cfg = PreprocessConfig(intensity="window", spacing_mm=2.0, crop_mm=120, context_slices=1)
    ds = SliceDataset(cache, ["P00"], ["Bladder", "Rectum"], cfg)
    vol, labels = tiny_patient(0)
    grid = grid_for(cfg, body_bounding_box(vol.array, cfg.body_threshold_hu), vol.geometry.shape[1:],
                    vol.geometry.spacing[1:])
    assert not grid.integral and grid.shape == (60, 60)
    pre = Preprocessor(cfg)
    for index in range(len(ds)):
        item = ds[index]
        z = item["z"]
        assert item["image"].shape == (3, 60, 60)
        np.testing.assert_array_equal(item["image"].numpy(), pre.slice_input(vol.array, z, grid))
        for c, name in enumerate(("Bladder", "Rectum")):
            area = labels[name][z].sum() * 2.5 ** 2
            if area > 150:  # at least ~24 source pixels: the outline, not a speck, decides
                assert item["label"][c].sum().item() * 2.0 ** 2 == pytest.approx(area, rel=0.15), (z, name)


def test_crop_that_cuts_structures_is_measured(cache, caplog):
    ds = SliceDataset(cache, ["P00"], ["Femur_Head_L"], PreprocessConfig(intensity="window", crop_size=16))
    assert 0.2 < ds.cut_fraction["P00"]["Femur_Head_L"] <= 1.0
    assert "crop cuts away" in caplog.text


def test_empty_slice_fraction(cache):
    cfg = PreprocessConfig(intensity="window", crop_size=64)
    fg = cache.slices_with_structure("P00", STRUCTURES)
    n_fg, n_empty = int(fg.sum()), int((~fg).sum())
    assert n_empty > 0
    only_fg = SliceDataset(cache, ["P00"], STRUCTURES, cfg, empty_fraction=0.0)
    assert len(only_fg) == n_fg and all(only_fg[i]["label"].any() for i in range(len(only_fg)))
    half = SliceDataset(cache, ["P00"], STRUCTURES, cfg, empty_fraction=0.5, seed=4)
    assert len(half) == n_fg + round(0.5 * n_empty)
    again = SliceDataset(cache, ["P00"], STRUCTURES, cfg, empty_fraction=0.5, seed=4)
    assert half.items == again.items


def test_augmentation_seeded_per_epoch_and_item_and_same_in_workers(cache):
    cfg = PreprocessConfig(intensity="window", crop_size=64)
    aug = Augmenter(AugmentConfig(rotate_prob=1.0, elastic_prob=0.5, elastic_sigma_px=4, elastic_strength_px=2),
                    STRUCTURES)
    ds = SliceDataset(cache, ["P00"], STRUCTURES, cfg, augment=aug, seed=1)
    ds.set_epoch(0)
    a = [ds[i]["image"] for i in range(4)]
    ds.set_epoch(1)
    b = [ds[i]["image"] for i in range(4)]
    assert not torch.equal(a[0], b[0])
    ds.set_epoch(0)
    loaded = next(iter(DataLoader(ds, batch_size=4, shuffle=False, num_workers=1)))
    torch.testing.assert_close(loaded["image"], torch.stack(a), rtol=0, atol=0)


def test_resolve_preprocess_measures_zscore_in_crop(cache):
    cfg = PreprocessConfig(intensity="zscore", crop_size=40)
    resolved = resolve_preprocess(cache, ["P00", "P01"], cfg, every=1)
    assert not resolved.needs_statistics
    pre = Preprocessor(resolved)
    vals = np.concatenate([pre.volume_input(tiny_patient(i)[0].array)[0].ravel() for i in (0, 1)])
    assert abs(vals.mean()) < 1e-3 and abs(vals.std() - 1) < 1e-3
    assert resolve_preprocess(cache, ["P00"], resolved) is resolved


def test_extra_caches_add_their_patients_repeated_and_say_what_was_contoured(cache, tmp_path):
    from cervseg.data.cache import PatientRecord, build_cache

    (tmp_path / "src" / "R07").mkdir(parents=True)

    def read(folder):
        vol, labels = tiny_patient(7)
        return PatientRecord(vol, labels.subset(["Bladder", "Femur_Head_L"]))

    build_cache(tmp_path / "real", [tmp_path / "src" / "R07"], read, STRUCTURES, val_fraction=0.0,
                test_fraction=0.0, partial=True)
    real = Cache(tmp_path / "real")
    cfg = PreprocessConfig(intensity="window", crop_size=64)
    alone = SliceDataset(cache, ["P00"], STRUCTURES, cfg, empty_fraction=0.0)
    extra = SliceDataset(real, ["R07"], STRUCTURES, cfg, empty_fraction=0.0)
    both = SliceDataset(cache, ["P00"], STRUCTURES, cfg, empty_fraction=0.0, extra=[(real, "R07", 3)])
    assert len(both) == len(alone) + 3 * len(extra)
    assert both.patients == ["P00", "real/R07"]
    assert both.summary()["partially_labelled"] == {"real/R07": ["Bladder", "Femur_Head_L"]}
    first_real = next(i for i, (pi, _) in enumerate(both.items) if pi == 1)
    item = both[first_real]
    assert item["labelled"].tolist() == [s in ("Bladder", "Femur_Head_L") for s in STRUCTURES]
    assert both[0]["labelled"].all()
    torch.testing.assert_close(item["image"], extra[0]["image"], rtol=0, atol=0)


def test_with_left_right_flips_a_side_counts_as_contoured_only_with_its_twin(tmp_path):
    from cervseg.data.cache import PatientRecord, build_cache

    (tmp_path / "src" / "R03").mkdir(parents=True)

    def read(folder):
        vol, labels = tiny_patient(3)
        return PatientRecord(vol, labels.subset(["Bladder", "Femur_Head_L"]))  # no right head contoured

    build_cache(tmp_path / "c", [tmp_path / "src" / "R03"], read, STRUCTURES, val_fraction=0.0,
                test_fraction=0.0, partial=True)
    partial = Cache(tmp_path / "c")
    cfg = PreprocessConfig(intensity="window", crop_size=64)
    flips = Augmenter(AugmentConfig(flip_lr_prob=0.5), STRUCTURES)
    no_flips = Augmenter(AugmentConfig(flip_lr_prob=0.0, rotate_prob=1.0), STRUCTURES)
    with_flips = SliceDataset(partial, ["R03"], STRUCTURES, cfg, augment=flips)
    without = SliceDataset(partial, ["R03"], STRUCTURES, cfg, augment=no_flips)
    assert [s for s, k in zip(STRUCTURES, with_flips.labelled[0]) if k] == ["Bladder"]
    assert [s for s, k in zip(STRUCTURES, without.labelled[0]) if k] == ["Bladder", "Femur_Head_L"]
