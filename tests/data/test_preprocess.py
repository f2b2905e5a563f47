"""Preprocessing: known intensity values, body-centred crop, exact undo, 2.5D stacking."""

from __future__ import annotations

import numpy as np
import pytest

from cervseg.config import PreprocessConfig
from cervseg.data.preprocess import (
    AIR_HU, CropBox, Preprocessor, SliceGrid, body_bounding_box, clamp_zscore, context_indices, crop,
    crop_box_for, crop_geometry, fraction_outside, normalise, uncrop, window, zscore_statistics,
)
from cervseg.errors import ConfigError, GeometryError
from cervseg.volume import Geometry


def _ellipse(shape, cy, cx, ry, rx):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def test_window_known_values():
    hu = np.array([-1000, -100, 50, 125, 200, 3000], dtype=np.int16)
    np.testing.assert_allclose(window(hu, 300, 50), [0, 0, 0.5, 0.75, 1, 1], atol=1e-6)


def test_clamp_zscore_known_values():
    hu = np.array([-3000, -1024, 0, 2048, 4000], dtype=np.int16)
    np.testing.assert_allclose(clamp_zscore(hu, (-1024, 2048), 0.0, 1.0), [-1024, -1024, 0, 2048, 2048])
    np.testing.assert_allclose(clamp_zscore(hu, (-1024, 2048), 100.0, 4.0),
                               [-281, -281, -25, 487, 487])


def test_zscore_statistics_match_numpy():
    rng = np.random.default_rng(0)
    vols = [rng.integers(-3000, 3000, size=(5, 8, 8)).astype(np.int16) for _ in range(3)]
    mean, std = zscore_statistics(vols, (-1024, 2048))
    allv = np.clip(np.concatenate([v.ravel() for v in vols]).astype(float), -1024, 2048)
    assert mean == pytest.approx(allv.mean())
    assert std == pytest.approx(allv.std())
    cfg = PreprocessConfig(zscore_mean=mean, zscore_std=std)
    z = normalise(np.concatenate([v.ravel() for v in vols]), cfg)
    assert z.mean() == pytest.approx(0, abs=1e-4) and z.std() == pytest.approx(1, abs=1e-4)


def test_body_box_ignores_couch_and_crop_is_centred_on_body():
    img = np.full((64, 80), AIR_HU, dtype=np.int16)
    img[_ellipse(img.shape, 30, 50, 12, 20)] = 40  # body: rows 18..42, cols 30..70
    img[60:62, 0:80] = 200  # couch: a bright bar, smaller than the body
    assert body_bounding_box(img, -500) == (18, 42, 30, 70)
    box = crop_box_for(img, PreprocessConfig(crop_size=48))
    assert (box.height, box.width) == (48, 48)
    out = crop(img, box, fill=AIR_HU)
    rows = np.flatnonzero((out == 40).any(axis=1))
    cols = np.flatnonzero((out == 40).any(axis=0))
    # body centred: equal margins on both sides (within one pixel of rounding)
    assert abs(rows[0] - (47 - rows[-1])) <= 1 and abs(cols[0] - (47 - cols[-1])) <= 1


def test_body_box_leaves_out_a_couch_shell_touching_the_back():
    # a patient lying off the couch centre on a thin couch top that touches the skin: the
    # box (and the crop centre, and the femoral-head midline after it) must be the body's
    img = np.full((64, 120), AIR_HU, dtype=np.int16)
    img[_ellipse(img.shape, 30, 50, 12, 20)] = 40  # body: rows 18..42, cols 30..70
    img[42:44, 5:115] = 300  # couch shell, 2 px thick, its top row inside the body's lowest row
    for array in (img, np.stack([img, img])):
        ymin, ymax, xmin, xmax = body_bounding_box(array, -500)
        # sideways exactly the body; below it, at most the one couch row fused with the skin
        assert (ymin, xmin, xmax) == (18, 30, 70) and ymax in (42, 43)


def test_body_box_of_a_body_thinner_than_the_opening_is_still_found():
    img = np.full((20, 20), AIR_HU, dtype=np.int16)
    img[8:11, 5:15] = 40  # 3 px thick: the opening removes all of it
    assert body_bounding_box(img, -500) == (8, 10, 5, 14)


def test_crop_pads_with_air_when_larger_than_image():
    img = np.zeros((2, 20, 30), dtype=np.int16)
    img[:, 5:15, 10:20] = 100
    cfg = PreprocessConfig(crop_size=40)
    box = crop_box_for(img, cfg)
    out = crop(img, box, fill=AIR_HU)
    assert out.shape == (2, 40, 40)
    assert (out == 100).sum() == (img == 100).sum()
    assert (out == AIR_HU).sum() == 2 * 40 * 40 - (img != AIR_HU).sum()


def test_uncrop_restores_the_grid_exactly():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 1000, size=(3, 50, 60)).astype(np.int16)
    for box in (CropBox(-7, 13, 32, 32, (50, 60)), CropBox(30, 40, 32, 32, (50, 60)), CropBox(-5, -5, 70, 80, (50, 60))):
        back = uncrop(crop(a, box, fill=-1), box, fill=-2)
        assert back.shape == a.shape
        inside = np.zeros((50, 60), bool)
        inside[max(box.y0, 0): box.y0 + box.height, max(box.x0, 0): box.x0 + box.width] = True
        np.testing.assert_array_equal(back[:, inside], a[:, inside])
        assert (back[:, ~inside] == -2).all()
    with pytest.raises(GeometryError):
        uncrop(np.zeros((10, 10)), CropBox(0, 0, 32, 32, (50, 60)))


def test_crop_geometry_keeps_patient_positions():
    geom = Geometry((4, 50, 60), (3.0, 0.9, 1.1), (-100.0, 20.0, 300.0),
                    ((0, 0, -1), (0, -1, 0), (-1, 0, 0)))  # an FFP-like grid
    box = CropBox(-3, 7, 32, 32, (50, 60))
    cg = crop_geometry(geom, box)
    idx = np.array([[2, 5, 9], [0, 0, 0], [3, 31, 31]], dtype=float)
    np.testing.assert_allclose(cg.index_to_lps(idx), geom.index_to_lps(idx + [0, box.y0, box.x0]))


def test_fraction_outside():
    m = np.zeros((2, 20, 20), bool)
    m[0, 0:10, 0:10] = True  # half of it is cut by a crop starting at row 5
    m[1, 10:12, 10:12] = True
    f = fraction_outside(m, CropBox(5, 0, 15, 20, (20, 20)))
    np.testing.assert_allclose(f, [0.5, 0.0])


def test_context_indices_replicate_edges():
    np.testing.assert_array_equal(context_indices(0, 5, 2), [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(context_indices(4, 5, 1), [3, 4, 4])
    np.testing.assert_array_equal(context_indices(2, 5, 0), [2])


def test_preprocessor_2p5d_and_volume_agree():
    rng = np.random.default_rng(2)
    vol = rng.integers(-1024, 1500, size=(6, 40, 40)).astype(np.int16)
    vol[:, 10:30, 12:28] = 60
    cfg = PreprocessConfig(intensity="window", crop_size=32, context_slices=1)
    pre = Preprocessor(cfg)
    box = pre.crop_box(vol)
    stacked, box2 = pre.volume_input(vol, box)
    assert stacked.shape == (6, 3, 32, 32) and stacked.dtype == np.float32 and box2 == box
    for z in range(6):
        s = pre.slice_input(vol, z, box)
        np.testing.assert_array_equal(s, stacked[z])
        np.testing.assert_array_equal(s[1], window(crop(vol[z], box, AIR_HU), 300, 50))
    np.testing.assert_array_equal(stacked[0, 0], stacked[0, 1])  # replicated bottom edge
    np.testing.assert_array_equal(stacked[5, 2], stacked[5, 1])  # replicated top edge


def test_zscore_without_statistics_is_refused():
    with pytest.raises(ConfigError):
        Preprocessor(PreprocessConfig(intensity="zscore"))


@pytest.mark.parametrize("k", [0, 1, 2])
@pytest.mark.parametrize("grid", [SliceGrid((40, 50), (-3.0, 2.0), (1.0, 1.0), (32, 32)),
                                  SliceGrid((40, 50), (-6.3, 1.7), (1.6, 1.25), (32, 32))])
def test_batch_input_is_every_slice_input_stacked(k, grid):
    hu = np.random.default_rng(k).normal(0, 300, size=(9, 40, 50)).astype(np.int16)
    pre = Preprocessor(PreprocessConfig(intensity="window", context_slices=k))
    for zs in (range(0, 4), range(3, 7), range(6, 9), range(0, 9)):
        expected = np.stack([pre.slice_input(hu, z, grid) for z in zs])
        np.testing.assert_array_equal(pre.batch_input(hu, zs, grid), expected)
