"""`cervseg convert`: DICOM CT + RTSTRUCT -> NIfTI image and masks, names matched, geometry right."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.dicom.rtstruct_write import write_rtstruct
from cervseg.dicom.series_write import write_ct_series
from cervseg.volume import Geometry, LabelMap, Volume

AXES = {
    "HFS": ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
    "FFS": ((0, 0, -1), (0, 1, 0), (-1, 0, 0)),
    "HFP": ((0, 0, 1), (0, -1, 0), (-1, 0, 0)),
}


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def make_patient(folder: Path, position: str = "HFS") -> tuple[Volume, dict[str, np.ndarray]]:
    """A small CT with an RTSTRUCT whose ROI names are a clinic's own (Italian) names.

    The femoral heads are placed by patient x (LPS +x = left), whatever the array order.
    """
    g = Geometry((10, 40, 48), (3.0, 2.0, 2.0), (-20.0, -30.0, 100.0), AXES[position])
    idx = np.indices(g.shape).reshape(3, -1).T
    x, y, z = g.index_to_lps(idx).T.reshape(3, *g.shape)
    cx, cy, cz = g.index_to_lps([[4.5, 19.5, 23.5]])[0]
    hu = np.full(g.shape, 20.0)
    left = (x - cx - 25) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 < 64
    right = (x - cx + 25) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 < 64
    bladder = ((x - cx) ** 2 + (y - cy + 18) ** 2 < 100) & ~((x - cx) ** 2 + (y - cy + 18) ** 2 < 16)
    hu[left | right] = 500.0
    volume = write_ct_series(Volume(hu, g), folder / "ct")
    rois = {"Vescica": bladder, "FemoreSinistro": left, "FemoreDestro": right, "Boost_PTV": bladder}
    write_rtstruct(LabelMap(volume.geometry, rois), volume, folder / "rs" / "RS.dcm")
    return volume, {"Bladder": bladder, "Femur_Head_L": left, "Femur_Head_R": right}


def ras_centroid(path: Path) -> np.ndarray:
    img = nib.load(path)
    ijk = np.argwhere(np.asanyarray(img.dataobj) > 0).mean(axis=0)
    return (img.affine @ np.append(ijk, 1.0))[:3]


@pytest.mark.parametrize("position", ["HFS", "FFS", "HFP"])
def test_convert_writes_image_and_masks(tmp_path, position) -> None:
    volume, truth = make_patient(tmp_path / "in", position)
    out = tmp_path / "out"
    result = run("convert", "--dicom", tmp_path / "in", "--out", out, "--template", "prostate")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "Bladder.nii.gz", "Femur_Head_L.nii.gz", "Femur_Head_R.nii.gz"]
    img = nib.load(out / "image.nii.gz")
    assert np.allclose(img.affine, volume.geometry.nifti_affine(), atol=1e-3)
    assert np.array_equal(np.asanyarray(img.dataobj), np.transpose(volume.array, (2, 1, 0)).astype(np.int16))
    for name, mask in truth.items():
        data = np.asanyarray(nib.load(out / "masks" / f"{name}.nii.gz").dataobj)
        assert np.array_equal(data > 0, np.transpose(mask, (2, 1, 0))), name
    # left femoral head: patient left = LPS +x = RAS -x, in every patient position
    left, right = ras_centroid(out / "masks" / "Femur_Head_L.nii.gz"), ras_centroid(out / "masks" / "Femur_Head_R.nii.gz")
    assert left[0] < right[0] and right[0] - left[0] == pytest.approx(50, abs=1)
    # the name-match report: what matched, what is missing, what matched nothing
    assert "Vescica -> Bladder" in result.output
    assert "FemoreSinistro -> Femur_Head_L" in result.output
    assert "Prostate" in result.output and "missing" in result.output
    assert "Boost_PTV" in result.output


def test_names_file_extends_matching(tmp_path) -> None:
    make_patient(tmp_path / "in")
    names = tmp_path / "names.yaml"
    names.write_text("Prostate: [Boost_PTV]\n")
    out = tmp_path / "out"
    result = run("convert", "--dicom", tmp_path / "in", "--out", out, "--template", "prostate", "--names", names)
    assert result.exit_code == 0, result.output
    assert (out / "masks" / "Prostate.nii.gz").exists()


def test_refuses_out_inside_input(tmp_path) -> None:
    make_patient(tmp_path / "in")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = run("convert", "--dicom", tmp_path / "in", "--out", tmp_path / "in" / "nifti")
    assert result.exit_code == 2
    assert "must not be inside the input folder" in result.output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_refuses_out_containing_input(tmp_path) -> None:
    make_patient(tmp_path / "in")
    result = run("convert", "--dicom", tmp_path / "in", "--out", tmp_path)
    assert result.exit_code == 2
    assert "contains the input folder" in result.output
    assert (tmp_path / "in" / "rs" / "RS.dcm").exists()


def test_refuses_non_empty_foreign_out(tmp_path) -> None:
    make_patient(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    result = run("convert", "--dicom", tmp_path / "in", "--out", out)
    assert result.exit_code == 2
    assert "not a previous cervseg output" in result.output
    assert (out / "thesis.docx").read_text() == "precious"


def test_rerun_replaces_previous_output(tmp_path) -> None:
    make_patient(tmp_path / "in")
    names = tmp_path / "names.yaml"
    names.write_text("Prostate: [Boost_PTV]\n")
    out = tmp_path / "out"
    first = run("convert", "--dicom", tmp_path / "in", "--out", out, "--template", "prostate", "--names", names)
    assert first.exit_code == 0 and (out / "masks" / "Prostate.nii.gz").exists()
    second = run("convert", "--dicom", tmp_path / "in", "--out", out, "--template", "cervix")
    assert second.exit_code == 0, second.output
    assert (out / "masks" / "Bladder.nii.gz").exists()
    assert not (out / "masks" / "Prostate.nii.gz").exists()  # replaced as a whole, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "names.yaml", "out"]


def test_nothing_left_behind_on_failure(tmp_path, monkeypatch) -> None:
    make_patient(tmp_path / "in")
    out = tmp_path / "out"
    from cervseg import nifti
    from cervseg.errors import InputError

    def fail(*args, **kwargs):
        raise InputError("disk full (simulated)")

    monkeypatch.setattr(nifti, "write_labels", fail)  # fails after image.nii.gz is written
    result = run("convert", "--dicom", tmp_path / "in", "--out", out)
    assert result.exit_code == 2
    assert "disk full" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no out, no .partial


def test_bad_input_is_one_line_exit_2(tmp_path) -> None:
    result = run("convert", "--dicom", tmp_path / "absent", "--out", tmp_path / "out")
    assert result.exit_code == 2
    errors = [ln for ln in result.output.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1 and "absent" in errors[0] and "not found" in errors[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("convert", "--dicom", empty, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_help_has_an_example() -> None:
    result = run("convert", "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and "cervseg convert --dicom" in result.output


@pytest.mark.realdata
def test_real_case_left_femoral_head_at_negative_ras_x(real_case, tmp_path) -> None:
    out = tmp_path / "out"
    result = run("convert", "--dicom", real_case / "dicom", "--out", out, "--template", "prostate")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(
        f"{n}.nii.gz" for n in ["Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "Prostate"])
    left = ras_centroid(out / "masks" / "Femur_Head_L.nii.gz")
    right = ras_centroid(out / "masks" / "Femur_Head_R.nii.gz")
    # patient left = LPS +x = RAS -x
    assert left[0] < 0 < right[0]
    assert 150 < right[0] - left[0] < 260  # the two heads are ~20 cm apart
    # HU inside the masks are plausible for the organ (README's measured values)
    hu = np.asanyarray(nib.load(out / "image.nii.gz").dataobj)
    def mean_hu(name: str) -> float:
        return float(hu[np.asanyarray(nib.load(out / "masks" / f"{name}.nii.gz").dataobj) > 0].mean())
    assert -20 < mean_hu("Bladder") < 40
    assert mean_hu("Femur_Head_L") > 150 and mean_hu("Femur_Head_R") > 150
    assert "Vescica -> Bladder" in result.output and "Bladder_DL" in result.output
