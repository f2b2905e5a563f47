"""Mask -> polygons: holes and islands kept, exact round trip through an even-odd rasteriser.

The reference rasteriser is skimage.draw.polygon2mask applied per polygon and combined with
XOR (the even-odd rule planning systems use), independent of find_contours.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import polygon2mask
from skimage.measure import find_contours

from cervseg.dicom.contours import mask_to_contours, slice_polygons
from cervseg.volume import Geometry

HFS_AXES = ((0, 0, 1), (0, 1, 0), (1, 0, 0))
FFS_AXES = ((0, 0, -1), (0, 1, 0), (-1, 0, 0))
HFP_AXES = ((0, 0, 1), (0, -1, 0), (-1, 0, 0))


def even_odd(polygons: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for poly in polygons:
        out ^= polygon2mask(shape, poly)
    return out


def annulus(shape=(40, 40), centre=(20, 19), r_in=6.0, r_out=12.0) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(yy - centre[0], xx - centre[1])
    return (r < r_out) & (r > r_in)


def box_with_cavity_and_island() -> np.ndarray:
    m = np.zeros((30, 30), dtype=bool)
    m[3:27, 4:26] = True
    m[8:22, 9:21] = False  # cavity
    m[13:17, 13:17] = True  # island inside the cavity
    return m


def test_annulus_gives_outer_and_hole_contours() -> None:
    m = annulus()
    polys = slice_polygons(m)
    assert len(polys) == 2
    assert np.array_equal(even_odd(polys, m.shape), m)
    # the hole matters: filling every polygon (OR rule) would fill it
    filled = np.zeros(m.shape, bool)
    for p in polys:
        filled |= polygon2mask(m.shape, p)
    assert filled.sum() > m.sum()


def test_box_with_cavity_and_island_inside() -> None:
    m = box_with_cavity_and_island()
    polys = slice_polygons(m)
    assert len(polys) == 3
    assert np.array_equal(even_odd(polys, m.shape), m)


def test_several_islands_and_border_touching() -> None:
    m = np.zeros((25, 30), dtype=bool)
    m[0:5, 0:4] = True  # touches two borders
    m[10:12, 26:30] = True  # touches the right border
    m[20, 15] = True  # single pixel
    m[15, 5] = m[16, 6] = True  # diagonal neighbours: two separate parts
    polys = slice_polygons(m)
    assert len(polys) == 5
    assert np.array_equal(even_odd(polys, m.shape), m)
    assert all(len(p) >= 3 for p in polys)


def test_random_blobs_round_trip_exactly() -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        m = ndi.gaussian_filter(rng.random((48, 48)), 1.5) > 0.52
        assert np.array_equal(even_odd(slice_polygons(m), m.shape), m)


def test_vertex_reduction_keeps_polygons_small() -> None:
    m = np.zeros((50, 50), dtype=bool)
    m[10:40, 5:45] = True
    (poly,) = slice_polygons(m)
    assert len(poly) == 8  # four sides with cut corners, not one vertex per boundary pixel
    disk = annulus((200, 200), (100, 97.3), -1, 70)
    (traced,) = find_contours(np.pad(disk.astype(np.uint8), 1), 0.5)
    (reduced,) = slice_polygons(disk)
    assert len(reduced) < len(traced) / 2
    assert np.array_equal(even_odd([reduced], disk.shape), disk)


def test_optional_douglas_peucker_still_exact() -> None:
    rng = np.random.default_rng(11)
    for _ in range(10):
        m = ndi.gaussian_filter(rng.random((48, 48)), 2.0) > 0.5
        polys = slice_polygons(m, tolerance_px=0.25)
        assert np.array_equal(even_odd(polys, m.shape), m)
        assert sum(map(len, polys)) <= sum(map(len, slice_polygons(m)))


def test_polygons_are_open_rings() -> None:
    """CLOSED_PLANAR closes implicitly: the first point must not be repeated at the end."""
    for poly in slice_polygons(annulus()):
        assert not np.allclose(poly[0], poly[-1])


def test_empty_slice_gives_nothing() -> None:
    assert slice_polygons(np.zeros((5, 5), bool)) == []


@pytest.mark.parametrize("axes", [HFS_AXES, FFS_AXES, HFP_AXES], ids=["HFS", "FFS", "HFP"])
def test_contours_in_lps_on_their_slice(axes: tuple) -> None:
    g = Geometry((5, 30, 30), (2.5, 0.9, 0.8), (-12.5, 30.0, 100.0), axes)
    mask = np.zeros(g.shape, dtype=bool)
    mask[1] = box_with_cavity_and_island()
    mask[3] = annulus((30, 30), (15, 14), 4, 10)
    contours = mask_to_contours(mask, g)
    assert [c.slice_index for c in contours] == [1, 1, 1, 3, 3]
    normals = g.slice_normal_coordinates()
    for c in contours:
        # every point lies on its CT slice's plane
        assert np.allclose(c.points_lps @ g.axes_matrix[0], normals[c.slice_index])
        # mapping back to indices gives the pixel-space polygon
        idx = g.lps_to_index(c.points_lps)
        assert np.allclose(idx[:, 0], c.slice_index)
    back = np.zeros(g.shape, dtype=bool)
    for c in contours:
        idx = g.lps_to_index(c.points_lps)
        back[c.slice_index] ^= polygon2mask(g.shape[1:], idx[:, 1:])
    assert np.array_equal(back, mask)


def test_shape_mismatch_refused() -> None:
    g = Geometry((2, 4, 4), (1, 1, 1), (0, 0, 0), HFS_AXES)
    with pytest.raises(ValueError, match="does not match"):
        mask_to_contours(np.zeros((2, 4, 5), bool), g)
