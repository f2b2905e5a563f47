"""`cervseg compare`: several models against one reference, best per structure marked."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.metrics.overlap import dice
from cervseg.nifti import write_case
from cervseg.volume import LabelMap
from tests.tiny_data import tiny_patient


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Reference root of two patients; model 'near' is off by 1 voxel, 'far' by 3 (bladder), both exact on rectum."""
    root = tmp_path_factory.mktemp("models")
    for i, name in enumerate(("p1", "p2")):
        volume, labels = tiny_patient(i, shape=(12, 40, 40))
        write_case(volume, labels.subset(["Bladder", "Rectum"]), root / "ref" / name)
        for model, shift in (("near", 1), ("far", 3)):
            pred = LabelMap(labels.geometry, {"Bladder": np.roll(labels["Bladder"], shift, axis=2), "Rectum": labels["Rectum"]})
            write_case(volume, pred, root / model / name)
    return root


def test_compare_marks_the_better_model(models, tmp_path):
    out = tmp_path / "cmp"
    result = run("compare", "--reference", models / "ref", "--prediction", f"near={models / 'near'}",
                 "--prediction", f"far={models / 'far'}", "--out", out)
    assert result.exit_code == 0, result.output
    table = {r["Structure"]: r for r in read_csv(out / "compare.csv")}
    assert table["Bladder"]["DSC 3D near"].endswith(" *") and not table["Bladder"]["DSC 3D far"].endswith(" *")
    assert table["Bladder"]["HD95 3D (mm) near"].endswith(" *")
    # identical rectum: a tie, both marked
    assert table["Rectum"]["DSC 3D near"].endswith(" *") and table["Rectum"]["DSC 3D far"].endswith(" *")
    metrics = read_csv(out / "metrics.csv")
    assert {r["model"] for r in metrics} == {"near", "far"} and {r["patient"] for r in metrics} == {"p1", "p2"}
    volume, labels = tiny_patient(0, shape=(12, 40, 40))
    (near,) = [r for r in metrics if (r["model"], r["patient"], r["structure"], r["metric"]) == ("near", "p1", "Bladder", "dice_3d")]
    assert float(near["value"]) == pytest.approx(dice(labels["Bladder"], np.roll(labels["Bladder"], 1, axis=2)), abs=1e-5)
    summary = read_csv(out / "summary.csv")
    assert {r["model"] for r in summary} == {"near", "far"}
    slices = read_csv(out / "slices.csv")
    assert tuple(slices[0])[:2] == ("model", "patient") and all(s["grade"] == "" for s in slices)
    page = (out / "report.html").read_text()
    assert 'class="best"' in page and "near" in page and "far" in page
    assert (out / "figures" / "paired_boxplots.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "args,message",
    [
        (["--prediction", "nodir"], "expected NAME=VALUE"),
        (["--prediction", "a={near}", "--prediction", "a={far}"], "given twice"),
        (["--prediction", "a={near}", "--prediction-suffix", "b=_DL"], "unknown model"),
    ],
)
def test_bad_model_options(models, tmp_path, args, message):
    args = [a.format(near=models / "near", far=models / "far") for a in args]
    result = run("compare", "--reference", models / "ref", *args, "--out", tmp_path / "cmp")
    assert result.exit_code == 2
    errors = [ln for ln in result.output.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "cmp").exists()


@pytest.mark.realdata
def test_real_case_dl_vs_mbs(real_case, tmp_path):
    """The manual contours against RayStation's deep-learning and model-based ones."""
    names = tmp_path / "names.yaml"  # RayStation's MBS femoral heads: "FemoralHead (Left)_MBS"
    names.write_text('Femur_Head_L: ["FemoralHead (Left)"]\nFemur_Head_R: ["FemoralHead (Right)"]\n')
    dicom = real_case / "dicom"
    result = run("compare", "--reference", dicom, "--prediction", f"DL={dicom}", "--prediction", f"MBS={dicom}",
                 "--prediction-suffix", "DL=_DL", "--prediction-suffix", "MBS=_MBS", "--names", names,
                 "--patient", "pelvic-ref-002", "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    metrics = read_csv(tmp_path / "cmp" / "metrics.csv")
    for model in ("DL", "MBS"):
        assert {r["structure"] for r in metrics if r["model"] == model} == {
            "Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "Prostate"}
    table = {r["Structure"]: r for r in read_csv(tmp_path / "cmp" / "compare.csv")}
    for structure, row in table.items():
        dl = next(float(r["value"]) for r in metrics if (r["model"], r["structure"], r["metric"]) == ("DL", structure, "dice_3d"))
        mbs = next(float(r["value"]) for r in metrics if (r["model"], r["structure"], r["metric"]) == ("MBS", structure, "dice_3d"))
        assert row["DSC 3D DL"].endswith(" *") == (dl >= mbs) and row["DSC 3D MBS"].endswith(" *") == (mbs >= dl)
