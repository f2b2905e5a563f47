"""`cervseg evaluate`: NIfTI and DICOM folders, outputs, the real case against plastimatch, refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.metrics.evaluate import GRADES, METRICS, SLICE_COLUMNS
from cervseg.nifti import write_case
from cervseg.outputs import WRITTEN_RECORD
from cervseg.volume import Geometry, LabelMap, Volume
from tests.metrics import bruteforce
from tests.metrics import plastimatch as pmx
from tests.tiny_data import tiny_patient


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def value(rows, patient, structure, metric) -> float:
    (row,) = [r for r in rows if (r["patient"], r["structure"], r["metric"]) == (patient, structure, metric)]
    return float(row["value"]) if row["value"] else float("nan")


def nifti_cohort(root: Path, patients=("p1", "p2"), shape=(12, 40, 40)):
    """Reference and prediction roots; prediction = bladder shifted, rectum exact, no spinal cord."""
    truth = {}
    for i, name in enumerate(patients):
        volume, labels = tiny_patient(i, shape=shape)
        pred = LabelMap(labels.geometry, {
            "Bladder": np.roll(labels["Bladder"], 2, axis=2), "Rectum": labels["Rectum"],
            "Femur_Head_L": labels["Femur_Head_L"], "Femur_Head_R": np.zeros(shape, bool),
        })
        write_case(volume, labels, root / "ref" / name)
        write_case(volume, pred, root / "pred" / name)
        truth[name] = (labels, pred)
    return truth


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    truth = nifti_cohort(root)
    result = run("evaluate", "--reference", root / "ref", "--prediction", root / "pred", "--out", root / "eval")
    assert result.exit_code == 0, result.output
    return root, truth


def test_outputs_and_values(cohort):
    root, truth = cohort
    out = root / "eval"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [WRITTEN_RECORD, "metrics.csv", "summary.csv", "slices.csv", "report.html", "evaluation.json", "figures"]
    )
    rows = read_csv(out / "metrics.csv")
    structures = ["Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R"]  # SpinalCord has no prediction
    scored = [r for r in rows if r["metric"] != "not_evaluated"]
    assert len(scored) == 2 * len(structures) * len(METRICS)
    assert {(r["structure"], r["note"]) for r in rows if r["metric"] == "not_evaluated"} == {("SpinalCord", "no prediction")}
    labels, pred = truth["p1"]
    spacing = labels.geometry.spacing
    a, b = labels["Bladder"], pred["Bladder"]
    assert value(rows, "p1", "Bladder", "dice_3d") == pytest.approx(bruteforce.dice(a, b), abs=1e-5)
    pooled = bruteforce.pooled(a, b, spacing)
    assert value(rows, "p1", "Bladder", "hd95_3d_mm") == pytest.approx(np.percentile(pooled, 95), abs=1e-3)
    assert value(rows, "p1", "Rectum", "dice_3d") == 1.0 and value(rows, "p1", "Rectum", "hd95_3d_mm") == 0.0
    assert value(rows, "p2", "Femur_Head_R", "dice_3d") == 0.0
    assert np.isnan(value(rows, "p2", "Femur_Head_R", "hd95_3d_mm"))  # undefined, written empty
    n_ref_slices = int(labels["Femur_Head_R"].any(axis=(1, 2)).sum())
    assert value(rows, "p1", "Femur_Head_R", "slices_missed") == n_ref_slices


def test_slices_sheet(cohort):
    root, truth = cohort
    slices = read_csv(root / "eval" / "slices.csv")
    assert tuple(slices[0]) == SLICE_COLUMNS
    assert all(s["grade"] == "" for s in slices)
    labels, pred = truth["p1"]
    mine = [s for s in slices if s["patient"] == "p1" and s["structure"] == "Bladder"]
    expected = sorted(set(np.flatnonzero(labels["Bladder"].any(axis=(1, 2)))) | set(np.flatnonzero(pred["Bladder"].any(axis=(1, 2)))))
    assert [int(s["slice_index"]) for s in mine] == expected
    z = labels.geometry.slice_normal_coordinates()
    for s in mine:
        k = int(s["slice_index"])
        assert float(s["slice_z_mm"]) == pytest.approx(z[k], abs=0.01)
        if s["status"] == "paired":
            assert float(s["dice"]) == pytest.approx(bruteforce.dice(labels["Bladder"][k], pred["Bladder"][k]), abs=1e-5)


def test_summary_report_and_settings(cohort):
    root, _ = cohort
    summary = read_csv(root / "eval" / "summary.csv")
    dice = next(r for r in summary if r["structure"] == "Rectum" and r["metric"] == "dice_3d")
    assert dice["n"] == "2" and dice["mean_sd"] == "1.000 ± 0.000"
    page = (root / "eval" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "Femur_Head_R" in page
    assert all(grade in page for grade in GRADES)
    settings = json.loads((root / "eval" / "evaluation.json").read_text())
    assert settings["tolerance_mm"] == 2.0 and settings["patients"]["prediction"] == ["p1", "p2"]
    # the spinal cord has no prediction: listed, not silently left out
    assert settings["not_evaluated"]["prediction"]["p1"] == {"SpinalCord": "no prediction"}
    assert "Structures not evaluated" in page and "SpinalCord (no prediction)" in page


def test_tolerance_changes_surface_dice(cohort, tmp_path):
    root, _ = cohort
    result = run("evaluate", "--reference", root / "ref" / "p1", "--prediction", root / "pred" / "p1",
                 "--out", tmp_path / "e", "--tolerance", "20")
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "e" / "metrics.csv")
    assert {r["patient"] for r in rows} == {"p1"}
    assert value(rows, "p1", "Bladder", "surface_dice_3d") == 1.0  # every boundary voxel within 20 mm


def error_lines(result) -> list[str]:
    return [ln for ln in result.output.splitlines() if ln.startswith("ERROR")]


def test_bad_inputs_exit_2_with_one_line_and_no_output(cohort, tmp_path):
    root, _ = cohort
    ref, pred = root / "ref", root / "pred"
    cases = {
        "not found": ("--reference", tmp_path / "absent", "--prediction", pred),
        "tolerance": ("--reference", ref, "--prediction", pred, "--tolerance", "-1"),
    }
    for expected, args in cases.items():
        result = run("evaluate", *args, "--out", tmp_path / "out")
        assert result.exit_code == 2, result.output
        assert len(error_lines(result)) == 1 and expected in error_lines(result)[0]
        assert not (tmp_path / "out").exists()


def test_no_structures_in_common(tmp_path):
    volume, labels = tiny_patient(0, shape=(6, 20, 20))
    write_case(volume, LabelMap(labels.geometry, {"Bladder": labels["Bladder"]}), tmp_path / "ref")
    write_case(volume, LabelMap(labels.geometry, {"Rectum": labels["Rectum"]}), tmp_path / "pred")
    result = run("evaluate", "--reference", tmp_path / "ref", "--prediction", tmp_path / "pred", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "no structures in common" in error_lines(result)[0]
    assert not (tmp_path / "out").exists()


def test_grids_that_do_not_match(tmp_path):
    volume, labels = tiny_patient(0, shape=(6, 20, 20))
    write_case(volume, labels, tmp_path / "ref")
    other = Geometry.axial((6, 20, 20), (2.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    write_case(Volume(volume.array, other), LabelMap(other, {"Bladder": labels["Bladder"]}), tmp_path / "pred")
    result = run("evaluate", "--reference", tmp_path / "ref", "--prediction", tmp_path / "pred", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "does not match the CT grid" in error_lines(result)[0]
    assert len(error_lines(result)) == 1 and not (tmp_path / "out").exists()


def test_output_folder_safety(cohort, tmp_path):
    root, _ = cohort
    inside = run("evaluate", "--reference", root / "ref", "--prediction", root / "pred", "--out", root / "ref" / "eval")
    assert inside.exit_code == 2 and "must not be inside" in error_lines(inside)[0]
    precious = tmp_path / "docs"
    precious.mkdir()
    (precious / "thesis.docx").write_text("precious")
    result = run("evaluate", "--reference", root / "ref", "--prediction", root / "pred", "--out", precious)
    assert result.exit_code == 2 and (precious / "thesis.docx").read_text() == "precious"
    again = run("evaluate", "--reference", root / "ref", "--prediction", root / "pred", "--out", root / "eval")
    assert again.exit_code == 0, again.output  # a previous evaluation is replaced as a whole


def test_help_has_examples():
    result = run("evaluate", "--help")
    assert result.exit_code == 0
    assert "Examples" in result.output and "--prediction-suffix" in result.output


@pytest.mark.realdata
@pytest.mark.external
def test_real_case_against_plastimatch(real_case, real_case_plastimatch_masks, tmp_path):
    """Our whole pipeline (RTSTRUCT reader, rasteriser, metrics) vs plastimatch's (convert + dice)."""
    dicom = real_case / "dicom"
    result = run("evaluate", "--reference", dicom, "--prediction", dicom, "--prediction-suffix", "_DL",
                 "--patient", "pelvic-ref-002", "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "eval" / "metrics.csv")
    pairs = {"Bladder": ("Vescica", "Bladder_DL"), "Rectum": ("Retto", "Anorectum_DL"),
             "Femur_Head_L": ("FemoreSinistro", "Femur_Head_L_DL"), "Femur_Head_R": ("FemoreDestro", "Femur_Head_R_DL"),
             "Prostate": ("Prostata", "Prostate_DL")}
    assert {r["structure"] for r in rows} == set(pairs)
    for structure, (manual, automatic) in pairs.items():
        pm = pmx.plastimatch_dice(real_case_plastimatch_masks / f"{manual}.nii.gz",
                                  real_case_plastimatch_masks / f"{automatic}.nii.gz")
        assert value(rows, "pelvic-ref-002", structure, "dice_3d") == pytest.approx(pm[pmx.DICE], abs=1e-3), structure
        assert abs(value(rows, "pelvic-ref-002", structure, "hd95_3d_mm") - pm[pmx.HD95]) <= 3.0, structure  # one voxel
    slices = read_csv(tmp_path / "eval" / "slices.csv")
    assert {s["status"] for s in slices} <= {"paired", "missed", "false_positive"}
    assert (tmp_path / "eval" / "report.html").stat().st_size > 10_000


def test_template_scores_a_structure_the_prediction_lacks(tmp_path):
    """With --template, a reference structure absent from the prediction is a complete miss."""
    import csv

    import numpy as np

    from cervseg.nifti import write_case
    from cervseg.volume import Geometry, LabelMap, Volume

    g = Geometry.axial((4, 12, 12), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    m = np.zeros(g.shape, bool)
    m[1:3, 3:8, 3:8] = True
    volume = Volume(np.zeros(g.shape, np.int16), g)
    write_case(volume, LabelMap(g, {"Bladder": m, "Rectum": np.roll(m, 3, axis=2)}), tmp_path / "ref")
    write_case(volume, LabelMap(g, {"Bladder": m}), tmp_path / "pred")
    from typer.testing import CliRunner

    from cervseg.cli.main import app

    result = CliRunner().invoke(app, ["evaluate", "--reference", str(tmp_path / "ref"), "--prediction",
                                      str(tmp_path / "pred"), "--out", str(tmp_path / "out"), "--template", "cervix"])
    assert result.exit_code == 0, result.output
    rows = {(r["structure"], r["metric"]): r["value"] for r in csv.DictReader(open(tmp_path / "out" / "metrics.csv"))}
    assert float(rows[("Rectum", "dice_3d")]) == 0.0
    assert float(rows[("Bladder", "dice_3d")]) == 1.0
