"""The plan's grid: a crop when the pixels already fit, exact linear resampling otherwise,
centred on the body, and wide enough that nothing of a structure is cut."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cervseg.config import PreprocessConfig
from cervseg.data.grid import SliceGrid, body_bounding_box, crop, crop_box_around, grid_for, uncrop
from cervseg.volume import Geometry

BUILTIN_PIXEL_PLAN = PreprocessConfig(intensity="window", crop_size=256)  # the shipped v1 model's plan


def _patient_xy(geometry: Geometry, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LPS x, y (mm) of fractional (row, col) indices on an axial HFS grid."""
    pts = np.stack([np.zeros(rows.size), rows.ravel(), cols.ravel()], axis=1)
    lps = geometry.index_to_lps(pts)
    return lps[:, 0].reshape(rows.shape), lps[:, 1].reshape(rows.shape)


def test_pixel_plan_is_the_old_crop_exactly() -> None:
    img = np.random.default_rng(0).normal(size=(3, 50, 60)).astype(np.float32)
    img[:, 10:40, 5:50] += 1000
    cfg = PreprocessConfig(crop_size=32)
    body = body_bounding_box(img, -500)
    grid = grid_for(cfg, body, img.shape, (1.3, 1.3))
    box = crop_box_around(body, img.shape[-2:], cfg)
    assert grid.integral and grid.crop_box == box
    assert np.array_equal(grid.to_network(img, fill=-1024), crop(img, box, fill=-1024))
    out = img[:, :32, :32]
    assert np.array_equal(grid.to_source(out), uncrop(out, box))


def test_same_pixel_size_in_a_millimetre_plan_is_a_crop_not_an_interpolation() -> None:
    cfg = PreprocessConfig(spacing_mm=1.25, crop_mm=40)
    grid = grid_for(cfg, None, (64, 64), (1.25, 1.25))
    assert grid.integral and grid.shape == (32, 32)


def test_resampling_reproduces_a_linear_function_of_patient_position() -> None:
    """Known answer: an image that is a*x + b*y in patient mm is the same function on the network grid."""
    ct = Geometry.axial((1, 120, 110), (3.0, 0.8, 0.8), (-44.0, -48.0, 0.0))
    rows, cols = np.meshgrid(np.arange(120.0), np.arange(110.0), indexing="ij")
    x, y = _patient_xy(ct, rows, cols)
    image = (0.7 * x - 0.3 * y + 5.0).astype(np.float32)[None]
    body = body_bounding_box(np.where(np.ones((120, 110)), 100.0, -1000.0), -500)
    grid = grid_for(PreprocessConfig(spacing_mm=1.25, crop_mm=60), body, ct.shape[1:], ct.spacing[1:])
    assert not grid.integral and grid.shape == (48, 48) and grid.step == (1.5625, 1.5625)
    net = grid.to_network(image, fill=-1024)[0]
    i, j = np.meshgrid(np.arange(48.0), np.arange(48.0), indexing="ij")
    nx, ny = _patient_xy(ct, grid.origin[0] + grid.step[0] * i, grid.origin[1] + grid.step[1] * j)
    np.testing.assert_allclose(net, 0.7 * nx - 0.3 * ny + 5.0, atol=1e-3)
    # the network pixels are 1.25 mm apart in patient space and centred on the body box
    assert nx[0, 1] - nx[0, 0] == pytest.approx(1.25) and ny[1, 0] - ny[0, 0] == pytest.approx(1.25)
    centre = _patient_xy(ct, np.array([(120 - 1) / 2.0]), np.array([(110 - 1) / 2.0]))
    assert (nx[0, 0] + nx[0, -1]) / 2 == pytest.approx(centre[0][0])
    # and back: inside the crop the CT grid gets the same function again
    back = grid.to_source(net[None], fill=np.nan)[0]
    covered = ~np.isnan(back)
    assert covered.sum() > 0.9 * (60 / 0.8) ** 2 and np.array_equal(covered, grid.covered())
    # within the outermost network pixel centres (the last half pixel holds the edge value)
    inside = ndimage.binary_erosion(covered)
    np.testing.assert_allclose(back[inside], image[0][inside], atol=1e-3)


@pytest.mark.parametrize("grid", [
    SliceGrid((50, 60), (10.0, -5.0), (1.0, 1.0), (32, 32)),  # a crop padded past the left edge
    SliceGrid((50, 60), (30.0, 40.0), (1.0, 1.0), (32, 32)),  # ... past the bottom and right edges
    SliceGrid((50, 60), (-100.0, 0.0), (1.0, 1.0), (32, 32)),  # wholly outside: nothing covered
    SliceGrid((50, 60), (3.3, -2.7), (1.5625, 0.8), (24, 40)),  # resampled, partly outside
])
def test_window_of_is_to_source_on_the_covered_window(grid: SliceGrid) -> None:
    """What the predictor keeps per batch (``window_of`` pasted into zeros) is ``to_source`` exactly."""
    net = np.random.default_rng(1).random((2, 3, *grid.shape)).astype(np.float32)
    rows, cols = grid.covered_window()
    pasted = np.zeros((2, 3, *grid.source_shape), np.float32)
    pasted[..., rows, cols] = grid.window_of(net)
    assert np.array_equal(pasted, grid.to_source(net, fill=0.0))
    covered = np.zeros(grid.source_shape, bool)
    covered[rows, cols] = True
    assert np.array_equal(covered, grid.covered())
    # the covered pixels are those that to_source fills from the network, no more, no fewer
    assert np.array_equal(covered, ~np.isnan(grid.to_source(net[:1, :1], fill=np.nan)[0, 0]))


def _wide_patient(width_mm: float, pixel_mm: float, matrix: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One slice: an elliptical body ``width_mm`` wide with femoral heads 15 mm inside its sides."""
    c = (matrix - 1) / 2.0
    yy, xx = (np.mgrid[:matrix, :matrix] - c) * pixel_mm
    a, b = width_mm / 2, width_mm / 3.2
    body = (xx / a) ** 2 + (yy / b) ** 2 <= 1
    hu = np.where(body, 40.0, -1000.0)
    heads = {side: (xx - sign * (a - 40)) ** 2 + yy ** 2 <= 25 ** 2 for side, sign in (("L", 1), ("R", -1))}
    for mask in heads.values():
        hu[mask] = 700.0
    return hu[None], {"body": body, **heads}


def test_nothing_is_cut_on_a_500_mm_wide_patient() -> None:
    hu, masks = _wide_patient(500.0, 600 / 512, 512)
    pixel = (600 / 512, 600 / 512)
    body = body_bounding_box(hu, -500)
    grid = grid_for(PreprocessConfig(), body, hu.shape, pixel)  # the default plan: 1 mm, 512 mm
    assert max(grid.outside_mm(body, pixel).values()) <= 0
    covered = grid.covered()
    for name, mask in masks.items():
        assert mask.any() and not (mask & ~covered).any(), name
    # the old 256-pixel crop cuts both heads of this patient: the test can tell
    old = grid_for(BUILTIN_PIXEL_PLAN, body, hu.shape, pixel).covered()
    assert (masks["L"] & ~old).any() and (masks["R"] & ~old).any()


def test_nothing_of_a_structure_is_cut_on_the_real_case(real_patient) -> None:
    volume, labels = real_patient.volume, real_patient.labels
    cfg = PreprocessConfig()
    body = body_bounding_box(volume.array, cfg.body_threshold_hu)
    grid = grid_for(cfg, body, volume.geometry.shape[1:], volume.geometry.spacing[1:])
    covered = grid.covered()
    assert len(labels) >= 4
    for name, mask in labels.items():
        assert mask.any() and not (mask & ~covered[None]).any(), name
    old = grid_for(BUILTIN_PIXEL_PLAN, body, volume.geometry.shape[1:], volume.geometry.spacing[1:]).covered()
    assert any((m & ~old[None]).any() for m in labels.values())  # the 256-pixel crop did cut


def test_whole_slice_millimetre_plan_covers_the_field_of_view() -> None:
    grid = grid_for(PreprocessConfig(spacing_mm=2.0, crop_mm=None), None, (100, 80), (1.0, 1.5))
    assert grid.shape == (50, 60)
    top, bottom, left, right = grid.extent()
    assert (top, bottom) == pytest.approx((-0.5, 99.5)) and (left, right) == pytest.approx((-0.5, 79.5))


def test_grid_refuses_an_image_of_another_size() -> None:
    from cervseg.errors import GeometryError

    grid = SliceGrid((10, 10), (0.5, 0.5), (0.5, 0.5), (20, 20))
    with pytest.raises(GeometryError):
        grid.to_network(np.zeros((12, 10)))
