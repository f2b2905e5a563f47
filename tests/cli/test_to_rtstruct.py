"""`cervseg to-rtstruct`: NIfTI masks from any tool + CT folder -> RTSTRUCT on that series."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.dicom.rasterize import rasterize_roi
from cervseg.dicom.rtstruct_read import read_rtstruct
from cervseg.dicom.series_write import write_ct_series
from cervseg.nifti import write_mask
from cervseg.volume import Geometry, Volume
from tests.conftest import require_tool

FFS_AXES = ((0, 0, -1), (0, 1, 0), (-1, 0, 0))


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def ct(folder: Path) -> Volume:
    g = Geometry((8, 36, 40), (2.5, 1.5, 1.5), (30.0, -20.0, 80.0), FFS_AXES)
    return write_ct_series(Volume(np.zeros(g.shape), g), folder)


def shapes(shape) -> dict[str, np.ndarray]:
    zz, yy, xx = np.indices(shape)
    r = np.hypot(yy - 18, xx - 12)
    ring = (r < 8) & (r > 3) & (zz > 1) & (zz < 7)
    islands = (((yy - 5) ** 2 + (xx - 30) ** 2) < 9) | (((yy - 30) ** 2 + (xx - 30) ** 2) < 9)
    islands &= zz == 4
    other = (abs(yy - 18) < 4) & (abs(xx - 30) < 4) & (zz < 3)
    return {"Vescica": ring, "Rectum": islands, "Clinic Marker": other}


def save_lps_flipped(mask: np.ndarray, g: Geometry, path: Path) -> None:
    """What a tool that stores rows/columns the other way round writes for the same voxels."""
    data = np.transpose(mask, (2, 1, 0)).astype(np.uint8)[::-1, ::-1, :] * 255
    a = g.nifti_affine().copy()
    a[:3, 3] += a[:3, 0] * (data.shape[0] - 1) + a[:3, 1] * (data.shape[1] - 1)
    a[:3, :2] *= -1
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), a), str(path))


@pytest.fixture()
def case(tmp_path):
    volume = ct(tmp_path / "ct")
    masks = shapes(volume.geometry.shape)
    folder = tmp_path / "masks"
    folder.mkdir()
    write_mask(masks["Vescica"], volume.geometry, folder / "Vescica.nii.gz")
    save_lps_flipped(masks["Rectum"], volume.geometry, folder / "Rectum.nii.gz")
    write_mask(masks["Clinic Marker"], volume.geometry, folder / "Clinic Marker.nii.gz")
    write_mask(np.zeros(volume.geometry.shape, bool), volume.geometry, folder / "Bowel_Small.nii.gz")
    (folder / "README.txt").write_text("not a mask")
    return volume, masks, tmp_path


def test_masks_to_rtstruct_round_trip(case) -> None:
    volume, masks, tmp = case
    out = tmp / "rs" / "RS.dcm"
    result = run("to-rtstruct", "--dicom", tmp / "ct", "--masks", tmp / "masks", "--out", out)
    assert result.exit_code == 0, result.output
    rt = read_rtstruct(out)
    assert sorted(rt.roi_names()) == ["Bladder", "Clinic Marker", "Rectum"]  # empty one skipped
    assert "Clinic Marker" in result.output and "not in the catalogue" in result.output
    assert "Bowel_Small" in result.output and "empty" in result.output
    for ours, theirs in (("Bladder", "Vescica"), ("Rectum", "Rectum"), ("Clinic Marker", "Clinic Marker")):
        assert np.array_equal(rasterize_roi(rt.roi(ours).contours, volume.geometry), masks[theirs]), ours
    ds = pydicom.dcmread(out)
    colours = {c.ReferencedROINumber: list(c.ROIDisplayColor) for c in ds.ROIContourSequence}
    by_name = {r.ROIName: colours[r.ROINumber] for r in ds.StructureSetROISequence}
    assert by_name["Bladder"] == [255, 255, 0] and by_name["Clinic Marker"] == [128, 128, 128]
    refs = {i.ReferencedSOPInstanceUID for i in ds.ReferencedFrameOfReferenceSequence[0]
            .RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].ContourImageSequence}
    assert refs == set(volume.series.sop_instance_uids)


@pytest.mark.external
def test_output_passes_dciodvfy(case) -> None:
    tool = require_tool("dciodvfy")
    _, _, tmp = case
    out = tmp / "RS.dcm"
    assert run("to-rtstruct", "--dicom", tmp / "ct", "--masks", tmp / "masks", "--out", out).exit_code == 0
    res = subprocess.run([tool, str(out)], capture_output=True, text=True)
    assert [ln for ln in (res.stdout + res.stderr).splitlines() if "Error" in ln] == []


def test_wrong_grid_refused_with_both_geometries(case) -> None:
    volume, masks, tmp = case
    g = volume.geometry
    other = Geometry(g.shape, g.spacing, (g.origin[0], g.origin[1] + 4.5, g.origin[2]), g.axes)
    write_mask(masks["Vescica"], other, tmp / "masks" / "Vescica.nii.gz")
    out = tmp / "RS.dcm"
    result = run("to-rtstruct", "--dicom", tmp / "ct", "--masks", tmp / "masks", "--out", out)
    assert result.exit_code == 2
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("ERROR")]
    assert "Vescica.nii.gz" in line and g.describe() in line and other.describe() in line
    assert not out.exists() and not list(tmp.glob("*.partial"))


def test_two_files_for_one_structure_refused(case) -> None:
    volume, masks, tmp = case
    write_mask(masks["Vescica"], volume.geometry, tmp / "masks" / "Bladder.nii.gz")
    result = run("to-rtstruct", "--dicom", tmp / "ct", "--masks", tmp / "masks", "--out", tmp / "RS.dcm")
    assert result.exit_code == 2
    assert "Bladder" in result.output and "Vescica" in result.output
    assert not (tmp / "RS.dcm").exists()


@pytest.mark.parametrize("inside", ["ct", "masks"])
def test_out_inside_an_input_refused(case, inside) -> None:
    _, _, tmp = case
    out = tmp / inside / "RS.dcm"
    result = run("to-rtstruct", "--dicom", tmp / "ct", "--masks", tmp / "masks", "--out", out)
    assert result.exit_code == 2
    assert "must not be inside" in result.output
    assert not out.exists()


def test_all_empty_masks_refused(tmp_path) -> None:
    volume = ct(tmp_path / "ct")
    (tmp_path / "masks").mkdir()
    write_mask(np.zeros(volume.geometry.shape, bool), volume.geometry, tmp_path / "masks" / "Bladder.nii.gz")
    result = run("to-rtstruct", "--dicom", tmp_path / "ct", "--masks", tmp_path / "masks", "--out", tmp_path / "RS.dcm")
    assert result.exit_code == 2
    assert "empty" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct", "masks"]


def test_help_has_an_example() -> None:
    result = run("to-rtstruct", "--help")
    assert result.exit_code == 0 and "cervseg to-rtstruct --dicom" in result.output


def test_exit_code_from_the_installed_command(tmp_path) -> None:
    """The console script, not only the in-process app, maps bad input to exit 2."""
    script = Path(sys.executable).with_name("cervseg")
    exe = str(script) if script.exists() else shutil.which("cervseg")
    if exe is None:
        pytest.skip("the cervseg console script is not installed (pip install -e .)")
    res = subprocess.run(
        [exe, "to-rtstruct", "--dicom", str(tmp_path / "nope"), "--masks", str(tmp_path),
         "--out", str(tmp_path / "RS.dcm")],
        capture_output=True, text=True,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("ERROR:") and "nope" in res.stderr
