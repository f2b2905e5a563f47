"""Augmentation: deterministic for a seed, labels stay binary and aligned, L/R swapped on flip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cervseg.config import AugmentConfig
from cervseg.data.augment import Augmenter, RandGaussianElasticd
from cervseg.structures import left_right_swap
from tests.tiny_data import STRUCTURES, tiny_patient

OFF = dict(flip_lr_prob=0, flip_ap_prob=0, rotate_prob=0, scale_intensity_prob=0, shift_intensity_prob=0,
           affine_prob=0, elastic_prob=0)


def _slice(z=7):
    vol, labels = tiny_patient(0)
    image = (vol.array[z - 1: z + 2].astype(np.float32) + 1000) / 1000  # 3 channels
    label = np.stack([labels[s][z] for s in STRUCTURES]).astype(np.uint8)
    return image, label


def test_left_right_pairs():
    assert left_right_swap(STRUCTURES) == [0, 1, 3, 2, 4]  # the (2, 3) pair exchanged
    assert left_right_swap(["Bladder", "Femur_Head_L"]) == [0, 1]  # no twin: nothing moves


def test_everything_off_is_identity():
    image, label = _slice()
    aug = Augmenter(AugmentConfig(**OFF), STRUCTURES)
    out_i, out_l = aug(image, label, seed=1)
    np.testing.assert_array_equal(out_i, image)
    np.testing.assert_array_equal(out_l, label)
    aug = Augmenter(AugmentConfig(enabled=False), STRUCTURES)
    assert aug(image, label, 3)[0] is image


def test_flip_swaps_left_and_right_heads():
    image, label = _slice()
    assert label[2].any() and label[3].any()
    aug = Augmenter(AugmentConfig(**{**OFF, "flip_lr_prob": 1.0}), STRUCTURES)
    out_i, out_l = aug(image, label, seed=0)
    np.testing.assert_array_equal(out_i, image[..., ::-1])
    # the mirrored right head is now the left one: Femur_Head_L stays on the patient's left (high columns)
    np.testing.assert_array_equal(out_l[2], label[3][:, ::-1])
    np.testing.assert_array_equal(out_l[3], label[2][:, ::-1])
    cols_l = np.nonzero(out_l[2])[1].mean()
    cols_r = np.nonzero(out_l[3])[1].mean()
    assert cols_l > image.shape[-1] / 2 > cols_r
    np.testing.assert_array_equal(out_l[0], label[0][:, ::-1])  # unpaired structures just flip


def test_deterministic_for_a_seed_and_varied_across_seeds():
    image, label = _slice()
    cfg = AugmentConfig(flip_lr_prob=0.5, rotate_prob=0.5, affine_prob=0.5, elastic_prob=0.5,
                        scale_intensity_prob=0.5, shift_intensity_prob=0.5)
    a = Augmenter(cfg, STRUCTURES)
    b = Augmenter(cfg, STRUCTURES)  # a fresh pipeline, as in another worker process
    first = a(image, label, seed=42)
    a(image, label, seed=7)  # state from other calls must not leak
    for x, y in zip(first, b(image, label, seed=42)):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(first, a(image, label, seed=42)):
        np.testing.assert_array_equal(x, y)
    outs = {a(image, label, seed=s)[0].tobytes() for s in range(8)}
    assert len(outs) > 4


@pytest.mark.parametrize("which", ["rotate", "affine", "elastic", "all"])
def test_labels_stay_binary_and_follow_the_image(which):
    image, label = _slice()
    # an image that is the label itself: after augmentation both must still coincide
    img = label[:1].astype(np.float32) * 100
    probs = {"rotate": dict(rotate_prob=1, rotate_degrees=30), "affine": dict(affine_prob=1),
             "elastic": dict(elastic_prob=1, elastic_sigma_px=4, elastic_strength_px=4)}
    kw = {**OFF, **probs.get(which, {k: v for p in probs.values() for k, v in p.items()})}
    aug = Augmenter(AugmentConfig(**kw), STRUCTURES)
    for seed in range(3):
        out_i, out_l = aug(img, label, seed=seed)
        assert out_l.dtype == label.dtype and set(np.unique(out_l)) <= {0, 1}
        assert out_i.shape == img.shape and out_l.shape == label.shape
        moved = not np.array_equal(out_l, label)
        assert moved
        a, b = out_i[0] > 50, out_l[0].astype(bool)
        iou = (a & b).sum() / (a | b).sum()
        assert iou > 0.85, iou
        # areas are kept within the zoom range (nearest neighbour does not erode labels away)
        assert 0.6 < out_l.sum() / label.sum() < 1.5


def test_gaussian_elastic_displacement_is_smooth_and_bounded():
    t = RandGaussianElasticd(["image"], [], sigma=6, strength=3, prob=1.0)
    t.set_random_state(0)
    t.randomize((64, 64))
    f = t.field
    assert f.shape == (2, 64, 64)
    assert np.abs(f).max() == pytest.approx(3.0)
    # smooth: neighbouring displacements differ far less than the field's range
    assert np.abs(np.diff(f, axis=1)).max() < 0.5
    # a ramp image moves by at most `strength` pixels
    ramp = np.tile(np.arange(64, dtype=np.float32), (64, 1))[None]
    t.set_random_state(0)
    out = t({"image": ramp})["image"]
    assert np.abs(out - ramp)[:, 8:-8, 8:-8].max() <= 3.0 + 1e-4


def test_intensity_changes_touch_the_image_only():
    image, label = _slice()
    aug = Augmenter(AugmentConfig(**{**OFF, "scale_intensity_prob": 1, "shift_intensity_prob": 1}), STRUCTURES)
    out_i, out_l = aug(image, label, seed=5)
    np.testing.assert_array_equal(out_l, label)
    # image = a * image + b with |a - 1| <= 0.1, |b| <= 0.1
    a, b = np.polyfit(image.ravel(), out_i.ravel(), 1)
    assert abs(a - 1) <= 0.1 + 1e-4 and abs(b) <= 0.1 + 1e-4 and (abs(a - 1) > 1e-4 or abs(b) > 1e-4)


def test_elastic_labels_match_channel_by_channel_resampling():
    """The bit-packed nearest-neighbour path equals resampling each label channel on its own."""
    from scipy import ndimage

    image, label = _slice()
    t = RandGaussianElasticd(["image", "label"], ["label"], sigma=4, strength=5, prob=1.0)
    t.set_random_state(3)
    out = t({"image": image, "label": label})
    grid = np.mgrid[:64, :64].astype(np.float64) + t.field
    ref = np.stack([ndimage.map_coordinates(c.astype(np.float64), grid, order=0, mode="constant") for c in label])
    np.testing.assert_array_equal(out["label"], ref.astype(label.dtype))
    assert not np.array_equal(out["label"], label)


# ---------------------------------------------------------------- sim-to-real (SynthSeg style)

SIM_TO_REAL = ("intensity_remap_prob", "bias_field_prob", "blur_prob", "low_resolution_prob",
               "noise_texture_prob", "gamma_prob")


def _only(**settings) -> Augmenter:
    return Augmenter(AugmentConfig(**{**OFF, **settings}), STRUCTURES)


def _high_frequency(img: np.ndarray) -> float:
    """Mean squared difference of horizontal neighbours: falls when an image is blurred."""
    return float(np.mean(np.diff(img, axis=-1) ** 2))


def test_sim_to_real_is_off_by_default_and_in_the_paper_configs() -> None:
    from cervseg.config import load_config

    assert all(getattr(AugmentConfig(), name) == 0 for name in SIM_TO_REAL)
    for paper in ("cab_se_unet_paper000.yaml", "resau_net_paper001.yaml"):
        cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / paper)
        assert all(getattr(cfg.augment, name) == 0 for name in SIM_TO_REAL), paper
    image, label = _slice()
    out, lab = _only()(image, label, seed=1)
    assert np.array_equal(out, image) and np.array_equal(lab, label)


@pytest.mark.parametrize("name", SIM_TO_REAL)
def test_each_sim_to_real_transform_changes_the_image_only_and_is_seeded(name: str) -> None:
    image, label = _slice()
    aug = _only(**{name: 1.0})
    a, la = aug(image, label, seed=3)
    b, lb = aug(image, label, seed=3)
    c, _ = aug(image, label, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.allclose(a, image) and a.shape == image.shape and a.dtype == np.float32
    assert np.array_equal(la, label) and np.array_equal(lb, label)


def test_blur_and_low_resolution_remove_fine_detail() -> None:
    image, label = _slice()
    for name in ("blur_prob", "low_resolution_prob"):
        out, _ = _only(**{name: 1.0})(image, label, seed=2)
        assert _high_frequency(out) < 0.8 * _high_frequency(image), name


def test_noise_texture_has_the_asked_sd_and_is_correlated() -> None:
    flat = np.zeros((1, 128, 128), np.float32)
    label = np.zeros((len(STRUCTURES), 128, 128), np.uint8)
    white, _ = _only(noise_texture_prob=1.0, noise_texture_std=0.2, noise_texture_sigma_px=0.0)(flat, label, seed=0)
    smooth, _ = _only(noise_texture_prob=1.0, noise_texture_std=0.2, noise_texture_sigma_px=2.0)(flat, label, seed=0)

    def neighbour_correlation(x: np.ndarray) -> float:
        return float(np.corrcoef(x[0, :, :-1].ravel(), x[0, :, 1:].ravel())[0, 1])

    assert white.std() == pytest.approx(0.2, rel=0.01) and smooth.std() == pytest.approx(0.2, rel=0.01)
    assert abs(neighbour_correlation(white)) < 0.05 and neighbour_correlation(smooth) > 0.8


def test_intensity_remap_is_one_function_of_intensity() -> None:
    """Every pixel of one input value gets one output value: a remap of the scale, not noise."""
    levels = np.repeat(np.linspace(0, 1, 8, dtype=np.float32), 8)
    image = np.tile(levels, (1, 64, 1))
    label = np.zeros((len(STRUCTURES), 64, 64), np.uint8)
    out, _ = _only(intensity_remap_prob=1.0)(image, label, seed=5)
    for v in np.unique(image):
        assert np.ptp(out[image == v]) < 1e-5
    assert not np.allclose(out, image)


def test_bias_field_is_smooth_and_multiplicative() -> None:
    image = np.ones((1, 64, 64), np.float32)
    label = np.zeros((len(STRUCTURES), 64, 64), np.uint8)
    out, _ = _only(bias_field_prob=1.0, bias_field_coeff=0.5)(image, label, seed=1)
    assert out.min() > 0 and np.ptp(out) > 0.05
    log_field = np.log(out[0])  # the field is exp(polynomial): smooth, no texture
    first = np.abs(np.diff(log_field, axis=-1)).mean()
    second = np.abs(np.diff(log_field, n=2, axis=-1)).mean()
    assert second < 0.1 * first


def test_gamma_keeps_mean_and_sd() -> None:
    image, label = _slice()
    out, _ = _only(gamma_prob=1.0, gamma_range=(0.5, 0.6))(image, label, seed=1)
    assert out.mean() == pytest.approx(image.mean(), rel=1e-3) and out.std() == pytest.approx(image.std(), rel=1e-3)
    assert not np.allclose(out, image)


def test_left_right_flip_still_swaps_labels_with_sim_to_real_on() -> None:
    image, label = _slice()
    out, lab = _only(flip_lr_prob=1.0, **{n: 1.0 for n in SIM_TO_REAL})(image, label, seed=0)
    left, right = STRUCTURES.index("Femur_Head_L"), STRUCTURES.index("Femur_Head_R")
    assert np.array_equal(lab[left], label[right][:, ::-1]) and np.array_equal(lab[right], label[left][:, ::-1])
