"""Rasterisation: agreement with plastimatch on the real case, known answers, even-odd rule."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from cervseg.dicom.rasterize import rasterize_roi, read_structures
from cervseg.dicom.rtstruct_read import read_rtstruct
from cervseg.errors import GeometryError
from cervseg.structures import Catalogue, load_template
from cervseg.volume import Geometry
from tests.dicom.support import (
    MANUAL_ROIS, dice, make_rtstruct, map_to_grid, phantom_volume, reorient, square, write_series,
)

GEOMETRY = Geometry.axial((5, 12, 10), (3.0, 0.8, 0.9), (-4.0, -5.0, 20.0))


# ---------------------------------------------------------------- the real case


@pytest.mark.realdata
@pytest.mark.external
def test_real_case_masks_agree_with_plastimatch(real_patient, plastimatch_masks) -> None:
    for roi, canonical in MANUAL_ROIS.items():
        ours = real_patient.labels[canonical]
        theirs = plastimatch_masks[roi]
        assert theirs.sum() > 1000, f"{roi}: plastimatch mask empty, orientation mapping wrong?"
        score = dice(ours, theirs)
        assert score >= 0.99, f"{roi}: Dice {score:.4f} against plastimatch"


@pytest.mark.realdata
def test_real_case_masks_are_anatomically_plausible(real_patient) -> None:
    volume, labels = real_patient.volume, real_patient.labels
    assert set(labels) == set(MANUAL_ROIS.values())
    bladder_hu = float(volume.array[labels["Bladder"]].mean())
    assert 0.0 <= bladder_hu <= 30.0, bladder_hu  # urine
    for side in ("Femur_Head_L", "Femur_Head_R"):
        assert float(volume.array[labels[side]].mean()) > 150.0  # bone
    g = volume.geometry

    def centroid_x(name: str) -> float:
        return float(g.index_to_lps(np.argwhere(labels[name]).mean(axis=0))[0, 0])

    # LPS: +x is the patient's left, whatever the array orientation
    assert centroid_x("Femur_Head_L") > 30.0
    assert centroid_x("Femur_Head_R") < -30.0
    assert abs(centroid_x("Bladder")) < 40.0


# ---------------------------------------------------------------- known answers


def _expected(shape, *boxes) -> np.ndarray:
    """XOR of index boxes (k, r0, r1, c0, c1), inclusive bounds: an independent answer."""
    out = np.zeros(shape, bool)
    for k, r0, r1, c0, c1 in boxes:
        out[k, r0 : r1 + 1, c0 : c1 + 1] ^= True
    return out


def test_square_covers_exactly_the_pixel_centres_inside() -> None:
    mask = rasterize_roi([square(GEOMETRY, 2, (1.5, 6.5), (1.5, 5.5))], GEOMETRY)
    assert np.array_equal(mask, _expected(GEOMETRY.shape, (2, 2, 6, 2, 5)))


def test_holes_and_islands_follow_the_even_odd_rule() -> None:
    outer = square(GEOMETRY, 1, (0.5, 10.5), (0.5, 8.5))
    hole = square(GEOMETRY, 1, (2.5, 8.5), (2.5, 6.5))[::-1]  # opposite winding, as TPSs store holes
    island = square(GEOMETRY, 1, (4.5, 6.5), (3.5, 5.5))  # inside the hole
    separate = square(GEOMETRY, 3, (0.5, 2.5), (0.5, 2.5))
    other_part = square(GEOMETRY, 3, (6.5, 9.5), (5.5, 8.5))
    expected = _expected(
        GEOMETRY.shape, (1, 1, 10, 1, 8), (1, 3, 8, 3, 6), (1, 5, 6, 4, 5), (3, 1, 2, 1, 2), (3, 7, 9, 6, 8)
    )
    contours = [outer, hole, island, separate, other_part]
    assert np.array_equal(rasterize_roi(contours, GEOMETRY), expected)
    assert np.array_equal(rasterize_roi(contours[::-1], GEOMETRY), expected)  # order does not matter
    assert not rasterize_roi(contours, GEOMETRY)[1, 4, 4]  # the hole stays a hole


def test_random_polygons_match_matplotlib_contains_points() -> None:
    rng = np.random.default_rng(7)
    g = Geometry.axial((3, 40, 50), (2.0, 0.7, 0.6), (10.0, -3.0, 5.0))
    for _ in range(20):
        n = int(rng.integers(3, 12))
        rc = np.column_stack([rng.uniform(-3, 43, n), rng.uniform(-3, 53, n)])  # may leave the grid
        k = int(rng.integers(0, 3))
        lps = g.index_to_lps(np.column_stack([np.full(n, k), rc]))
        ours = rasterize_roi([lps], g)
        expected = np.zeros(g.shape, bool)
        rr, cc = np.mgrid[0 : g.shape[1], 0 : g.shape[2]]
        centres = np.column_stack([rr.ravel(), cc.ravel()]).astype(float)
        # an independent crossing-number test on every pixel centre, same pixel-centre rule
        expected[k] = MplPath(rc).contains_points(centres).reshape(rr.shape)
        assert np.array_equal(ours, expected)


@pytest.mark.parametrize("position", ["FFS", "HFP", "FFP"])
def test_same_contours_give_the_same_patient_space_mask_in_every_position(position: str) -> None:
    hfs = phantom_volume()
    contours = [square(hfs.geometry, 1, (0.5, 7.5), (1.5, 6.5)), square(hfs.geometry, 1, (2.5, 4.5), (2.5, 3.5)),
                square(hfs.geometry, 4, (5.5, 8.5), (0.5, 2.5))]
    reference = rasterize_roi(contours, hfs.geometry)
    g = reorient(hfs, position).geometry
    mask = rasterize_roi(contours, g)
    assert not np.array_equal(mask, reference)  # stored differently ...
    assert np.array_equal(map_to_grid(mask, g.index_to_lps_matrix, hfs.geometry), reference)  # ... same place


def test_contours_are_matched_to_slices_with_a_tolerance(caplog) -> None:
    base = square(GEOMETRY, 2, (1.5, 3.5), (1.5, 3.5))
    normal = GEOMETRY.axes_matrix[0]
    near = base + 0.2 * GEOMETRY.spacing[0] * normal  # within 0.25 x spacing: slice 2
    between = base + 0.4 * GEOMETRY.spacing[0] * normal  # between slices: skipped, reported
    outside = square(GEOMETRY, 9, (1.5, 3.5), (1.5, 3.5))  # beyond the last slice
    tilted = base.copy()
    tilted[0] += 1.5 * normal  # one point on another slice: not planar
    with caplog.at_level(logging.WARNING, logger="cervseg"):
        mask = rasterize_roi([near, between, outside, tilted], GEOMETRY, name="Bladder")
    assert np.array_equal(mask, _expected(GEOMETRY.shape, (2, 2, 3, 2, 3)))
    log = caplog.text
    assert "ROI 'Bladder': 1 contours not on a slice of the CT" in log and "1.20 mm off slice" in log
    assert "outside the CT volume" in log and "not planar" in log


# ---------------------------------------------------------------- read_structures


@pytest.fixture()
def tiny(tmp_path: Path):
    folder = tmp_path / "patient"
    return folder, write_series(phantom_volume(), folder / "ct")


def test_read_structures_matches_names_and_rasterises(tiny, tmp_path: Path) -> None:
    folder, volume = tiny
    g = volume.geometry
    names = tmp_path / "names.yaml"
    names.write_text("Rectum: [Retto_clinico]\n")
    path = make_rtstruct(folder / "rs.dcm", volume, {
        "Vescica": [square(g, 2, (1.5, 4.5), (1.5, 4.5))],
        "Retto_clinico": [square(g, 3, (5.5, 8.5), (2.5, 5.5))],
        "PTV": [square(g, 3, (0.5, 2.5), (0.5, 2.5))],
    })
    catalogue = Catalogue.builtin(names)
    labels, match = read_structures(read_rtstruct(path), volume, load_template("cervix", catalogue), catalogue)
    assert set(labels) == {"Bladder", "Rectum"}
    assert match.matched == {"Bladder": "Vescica", "Rectum": "Retto_clinico"}
    assert "PTV" in match.unmatched_rois and "CTV_UV" in match.missing
    assert np.array_equal(labels["Bladder"], _expected(g.shape, (2, 2, 4, 2, 4)))
    assert np.array_equal(labels["Rectum"], _expected(g.shape, (3, 6, 8, 3, 5)))
    assert labels.geometry is g


def test_other_frame_of_reference_is_refused_naming_both(tiny) -> None:
    folder, volume = tiny
    path = make_rtstruct(folder / "rs.dcm", volume, {"Bladder": [square(volume.geometry, 1, (1, 4), (1, 4))]},
                         frame_of_reference_uid="1.2.3.999")
    with pytest.raises(GeometryError) as err:
        read_structures(read_rtstruct(path), volume, "cervix")
    message = str(err.value)
    assert "1.2.3.999" in message and volume.geometry.frame_of_reference_uid in message
    assert str(path) in message and "frame of reference" in message


def test_other_series_same_frame_is_read_with_a_warning(tiny, caplog) -> None:
    folder, volume = tiny
    path = make_rtstruct(folder / "rs.dcm", volume, {"Bladder": [square(volume.geometry, 1, (1.5, 4.5), (1.5, 4.5))]},
                         series_uid="1.2.3.42")
    with caplog.at_level(logging.WARNING, logger="cervseg"):
        labels, _ = read_structures(read_rtstruct(path), volume, "cervix")
    assert labels["Bladder"].sum() == 9
    assert "references series 1.2.3.42" in caplog.text and volume.series.series_instance_uid in caplog.text


def test_contour_referencing_another_slice_is_placed_by_position_and_reported(tiny, caplog) -> None:
    folder, volume = tiny
    g = volume.geometry
    contours = [square(g, 2, (1.5, 4.5), (1.5, 4.5)), square(g, 3, (1.5, 4.5), (1.5, 4.5))]
    stale = {("Vescica", 2): volume.series.sop_instance_uids[0]}
    path = make_rtstruct(folder / "rs.dcm", volume, {"Vescica": contours}, image_refs=stale)
    rs = read_rtstruct(path)
    assert rs.roi("Vescica").contours[0].referenced_sop_instance_uid == volume.series.sop_instance_uids[2]
    with caplog.at_level(logging.WARNING, logger="cervseg"):
        labels, _ = read_structures(rs, volume, "cervix")
    assert labels["Bladder"][2].sum() == labels["Bladder"][3].sum() == 9
    assert "ROI 'Vescica': 1 contours reference another CT image" in caplog.text
    assert "#2 (references slice 0, lies on 3)" in caplog.text


@pytest.mark.external
@pytest.mark.parametrize("position", ["HFS", "FFP"])
def test_holes_and_islands_agree_with_plastimatch_xor(tmp_path: Path, position: str) -> None:
    """plastimatch --xor-contours is an independent even-odd rasteriser; it must agree on
    shapes with holes and several parts, in a supine and a prone feet-first series."""
    import subprocess

    from tests.conftest import require_tool
    from tests.dicom.support import nifti_to_grid

    exe = require_tool("plastimatch")
    hfs = phantom_volume(shape=(5, 24, 20), spacing=(2.0, 1.1, 0.9))
    volume = write_series(reorient(hfs, position), tmp_path / "ct")
    g = hfs.geometry  # contours drawn on the HFS grid, read on the stored one
    rng = np.random.default_rng(1)
    ring = [square(g, 1, (1.3, 20.2), (1.6, 17.4)), square(g, 1, (5.4, 14.1), (4.2, 12.7))[::-1],
            square(g, 1, (8.3, 11.2), (7.1, 9.6))]
    blob = [g.index_to_lps(np.column_stack([np.full(9, 3), 12.21 + 8 * np.sin(t) * rng.uniform(0.6, 1, 9),
                                            10.37 + 7 * np.cos(t)]))  # no vertex on a pixel centre
            for t in [np.linspace(0, 2 * np.pi, 9, endpoint=False)]]
    parts = [square(g, 2, (0.7, 5.2), (0.6, 4.3)), square(g, 2, (15.7, 22.4), (11.5, 18.8))]
    rs = make_rtstruct(tmp_path / "rs.dcm", volume, {"Ring": ring, "Blob": blob, "Parts": parts})
    subprocess.run(
        [exe, "convert", "--input", str(rs), "--referenced-ct", str(tmp_path / "ct"), "--xor-contours",
         "--output-prefix", str(tmp_path / "pm"), "--prefix-format", "nii.gz"],
        check=True, capture_output=True,
    )
    structures = read_rtstruct(rs)
    for name in ("Ring", "Blob", "Parts"):
        ours = rasterize_roi(structures.roi(name).contours, volume.geometry)
        theirs = nifti_to_grid(tmp_path / "pm" / f"{name}.nii.gz", volume.geometry) > 0
        assert ours.sum() > 20
        assert np.array_equal(ours, theirs), f"{name}: {int((ours ^ theirs).sum())} voxels differ"
    ring_hfs = map_to_grid(rasterize_roi(structures.roi("Ring").contours, volume.geometry),
                           volume.geometry.index_to_lps_matrix, g)
    assert ring_hfs[1, 3, 3] and not ring_hfs[1, 6, 5] and ring_hfs[1, 10, 8]  # ring, hole, island
