"""Shape primitives against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from cervseg.phantom.shapes import FAR, Grid, PointCloud, ellipsoid, spline_path, superellipse, tube


def _grid() -> Grid:
    return Grid(np.arange(-20, 21, 1.5), np.arange(-15, 16, 2.0), np.arange(-10, 11, 2.5))


def test_grid_box_selects_voxel_centres_inside_the_range():
    g = _grid()
    box = g.box((-3.0, -4.0, -5.0), (3.0, 4.0, 5.0))
    assert box is not None
    assert np.all((box.x >= -3) & (box.x <= 3)) and np.all((box.z >= -5) & (box.z <= 5))
    # every centre inside the range is in the box
    assert box.x.size == np.sum((g.xs >= -3) & (g.xs <= 3))
    assert g.box((100, 100, 100), (120, 120, 120)) is None


def test_point_cloud_field_equals_brute_force_union_of_balls():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-12, 12, size=(25, 3))
    radii = rng.uniform(1.0, 4.0, size=25)
    cloud = PointCloud(pts, radii)
    g = _grid()
    box = g.full()
    reach = 3.0
    d, idx = cloud.field(box, reach)
    P = box.points()
    brute = np.linalg.norm(P[:, None, :] - pts[None], axis=2) - radii[None]
    best = brute.min(axis=1).reshape(box.shape)
    near = best <= reach
    np.testing.assert_allclose(d[near], best[near], atol=1e-4)
    assert np.all(d[~near] >= reach - 1e-4)
    arg = brute.argmin(axis=1).reshape(box.shape)
    assert np.array_equal(idx[near], arg[near])
    # the point query (KD-tree) agrees with the grid evaluation
    dq, iq = cloud.query(P, reach)
    np.testing.assert_allclose(dq.reshape(box.shape)[near], best[near], atol=1e-4)


def test_ellipsoid_distance_is_exact_on_a_sphere_and_signed():
    x = np.array([0.0, 5.0, 10.0, 0.0])
    d = ellipsoid(x, np.zeros(4), np.zeros(4), (0, 0, 0), (5, 5, 5))
    np.testing.assert_allclose(d, [-5, 0, 5, -5], atol=1e-5)
    # an elongated ellipsoid: inside along the long axis, outside along the short one
    d2 = ellipsoid(np.array([8.0, 0.0]), np.array([0.0, 4.0]), np.zeros(2), (0, 0, 0), (10, 3, 3))
    assert d2[0] < 0 < d2[1]


def test_superellipse_asymmetric_half_axes():
    # 10 mm to the left, 20 mm to the right
    d = superellipse(np.array([-9.0, -11.0, 19.0, 21.0]), np.zeros(4), 0.0, 0.0, 10.0, 20.0, 5.0, 5.0)
    assert d[0] < 0 < d[1] and d[2] < 0 < d[3]


def test_tube_radius_follows_keypoints_and_path_is_evenly_sampled():
    pts, u = spline_path([(0, 0, 0), (0, 0, 50), (0, 30, 80)], step=2.0)
    steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert steps.max() < 2.2 and steps.min() > 1.5
    assert u[0] == pytest.approx(0) and u[-1] == pytest.approx(2)
    t = tube([(0, 0, 0), (0, 0, 50)], [2.0, 6.0])
    assert t.radii[0] == pytest.approx(2.0) and t.radii[-1] == pytest.approx(6.0)
    g = Grid(np.arange(-10, 11, 1.0), np.arange(-10, 11, 1.0), np.array([0.0, 25.0, 50.0]))
    d, _ = t.field(g.full())
    widths = (d < 0).sum(axis=(1, 2))
    assert widths[0] < widths[1] < widths[2]
    assert np.all(d[d < FAR] < FAR)
