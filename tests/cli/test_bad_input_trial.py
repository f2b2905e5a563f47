"""The bad-input trial of issue 16, reproduced: each case ends in a correct result or one clear
line with exit code 2, and nothing the user gave or wrote is lost.

Trials found on the real case run on a copy of it in a tmp folder (never on ../shared/data).
"""

from __future__ import annotations

import csv
import os
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
from cervseg.dicom.series import read_ct_series
from cervseg.nifti import write_case
from cervseg.outputs import make_staging_dir
from tests.dicom.support import edit

REPO = Path(__file__).resolve().parents[2]


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    """The single ERROR line of a refused command (and assert there is exactly one, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def case(real_case: Path, tmp_path: Path) -> Path:
    """A private copy of the real case's DICOM folder (CT + RTSTRUCT)."""
    return Path(shutil.copytree(real_case / "dicom", tmp_path / "case"))


def ct_files_by_z(folder: Path) -> list[Path]:
    """The CT slice files sorted by patient z (first = most inferior)."""
    files = [p for p in folder.glob("CT*.dcm")]
    return sorted(files, key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))


def rtstruct_file(folder: Path) -> Path:
    return next(folder.glob("RS*.dcm"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- 1. an output that contains an input


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_output_holding_the_reference_folder_is_refused_and_nothing_deleted(real_case: Path, tmp_path: Path, command: str) -> None:
    parent = tmp_path / "P"
    reference = Path(shutil.copytree(real_case / "dicom", parent / "figures"))  # named like evaluate's own sub-folder
    before = snapshot(reference)
    prediction = ["--prediction", reference] if command == "evaluate" else ["--prediction", f"DL={reference}"]
    result = run(command, "--reference", reference, *prediction, "--out", parent, "--template", "prostate")
    assert "contains the reference folder" in one_error_line(result)
    assert snapshot(reference) == before and len(before) == 164


# ---------------------------------------------------------------- 4. re-runs keep the user's work


def test_convert_rerun_keeps_a_mask_the_user_added(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "nifti"
    assert run("convert", "--dicom", case, "--out", out, "--template", "prostate").exit_code == 0
    mine = out / "masks" / "PTV_mine.nii.gz"
    shutil.copy(out / "masks" / "Bladder.nii.gz", mine)
    line = one_error_line(run("convert", "--dicom", case, "--out", out, "--template", "prostate"))
    assert "did not write (masks/PTV_mine.nii.gz)" in line
    assert mine.is_file()
    mine.unlink()  # without the user's file the re-run replaces its own output
    assert run("convert", "--dicom", case, "--out", out, "--template", "cervix").exit_code == 0


def _grade(sheet: Path, every: int) -> dict[tuple[str, ...], str]:
    """Fill the grade of every n-th row, as a reviewer would; returns {row without grade: grade}."""
    with open(sheet, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    graded = {}
    for i, row in enumerate(rows[1:]):
        if i % every == 0:
            row[-1] = ("Acceptable", "Minor revision", "Major revision")[i % 3]
            graded[tuple(row[:-1])] = row[-1]
    with open(sheet, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return graded


def _grades(sheet: Path) -> dict[tuple[str, ...], str]:
    with open(sheet, newline="", encoding="utf-8") as fh:
        return {tuple(r[:-1]): r[-1] for r in list(csv.reader(fh))[1:] if r[-1]}


@pytest.mark.slow
def test_evaluate_rerun_carries_the_reviewers_grades_over_and_ignores_a_killed_segment(case: Path, tmp_path: Path) -> None:
    """Items 4 and 10: a re-run keeps the grades (or refuses), and a stale staging folder left by
    a SIGKILLed `segment` (holding a complete RS) is neither a second RTSTRUCT nor kept."""
    prediction = tmp_path / "segment_out"
    prediction.mkdir()
    shutil.copy(rtstruct_file(case), prediction / "RS_auto.dcm")
    script = (
        "import os, shutil, signal, sys; from pathlib import Path; from cervseg.outputs import make_staging_dir; "
        "d = make_staging_dir(Path(sys.argv[1]), 'segment'); shutil.copy(sys.argv[2], d / 'RS_auto.dcm'); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    killed = subprocess.run([sys.executable, "-c", script, str(prediction), str(rtstruct_file(case))], env=env)
    assert killed.returncode == -9
    stale = [p for p in prediction.iterdir() if p.name.endswith(".partial")]
    assert len(stale) == 1 and (stale[0] / "RS_auto.dcm").is_file()

    out = tmp_path / "eval"
    args = ("evaluate", "--reference", case, "--prediction", prediction, "--prediction-suffix", "_DL",
            "--template", "prostate", "--out", out)
    first = run(*args)
    assert first.exit_code == 0, first.output
    graded = _grade(out / "slices.csv", every=1)
    assert len(graded) > 100
    again = run(*args)
    assert again.exit_code == 0, again.output
    assert _grades(out / "slices.csv") == graded, "every grade carried over to the same row"
    # other settings change the rows (surface Dice at 0.5 mm): the grades cannot be placed, so refuse
    line = one_error_line(run(*args, "--tolerance", "0.5"))
    assert "graded rows of the previous review sheet are not in this evaluation" in line
    assert _grades(out / "slices.csv") == graded
    # a later segment run in that folder clears the dead process's staging
    make_staging_dir(prediction, "segment").rmdir()
    assert not stale[0].exists()


def test_segment_nifti_rerun_keeps_the_users_notes(real_patient, tmp_path: Path) -> None:
    """The check comes before the model runs: a user's file in nifti_<UID>/ refuses the job."""
    volume = real_patient.volume
    out = tmp_path / "out"
    nifti = write_case(volume, real_patient.labels, out / f"nifti_{volume.series.series_instance_uid}")
    (nifti / "notes.txt").write_text("Rectum slice 40: check")
    line = one_error_line(run("segment", "--dicom", Path(volume.series.source_files[0]).parent, "--out", out, "--nifti"))
    assert "did not write (notes.txt)" in line
    assert (nifti / "notes.txt").read_text() == "Rectum slice 40: check"
    assert not list(out.glob("RS_*.dcm"))


# ---------------------------------------------------------------- 2. rescale attributes


@pytest.mark.parametrize("missing", [("RescaleSlope", "RescaleIntercept"), ("RescaleIntercept",)])
def test_ct_without_rescale_is_refused_naming_the_file(case: Path, tmp_path: Path, missing: tuple[str, ...]) -> None:
    target = ct_files_by_z(case)[80]
    edit(target, **{k: None for k in missing})
    line = one_error_line(run("convert", "--dicom", case, "--out", tmp_path / "out", "--template", "prostate"))
    assert str(target) in line and f"without {missing[0]}" in line and "HU" in line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 3. unreadable slices


@pytest.mark.parametrize("which", [0, -1])
@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_an_unreadable_end_slice_refuses_the_series(case: Path, tmp_path: Path, which: int, damage: str) -> None:
    target = ct_files_by_z(case)[which]
    target.write_bytes(b"" if damage == "empty" else target.read_bytes()[:100])
    result = run("convert", "--dicom", case, "--out", tmp_path / "out", "--template", "prostate")
    line = one_error_line(result)
    assert str(target) in line and "cannot be read" in line and "first or last slice" in line
    assert not (tmp_path / "out").exists()


def test_an_unreadable_middle_slice_is_named_in_the_gap_message(case: Path, tmp_path: Path) -> None:
    target = ct_files_by_z(case)[50]
    target.write_bytes(b"not a DICOM file at all" * 10)
    line = one_error_line(run("convert", "--dicom", case, "--out", tmp_path / "out", "--template", "prostate"))
    assert "missing slices" in line and str(target) in line


def test_a_slice_without_preamble_is_read(case: Path, real_patient) -> None:
    for target in (ct_files_by_z(case)[0], ct_files_by_z(case)[-1]):
        data = target.read_bytes()
        assert data[128:132] == b"DICM"
        target.write_bytes(data[132:])  # the same dataset without the 128-byte preamble and "DICM"
    volume = read_ct_series(case)
    assert volume.geometry.shape == real_patient.volume.geometry.shape
    assert np.array_equal(volume.array, real_patient.volume.array)


# ---------------------------------------------------------------- 5. two ROIs of one name


def test_two_rois_of_one_name_are_refused_or_chosen(case: Path, tmp_path: Path, real_patient) -> None:
    rs = rtstruct_file(case)
    ds = pydicom.dcmread(rs)
    numbers = {int(s.ROINumber): s for s in ds.StructureSetROISequence}
    manual = next(k for k, s in numbers.items() if s.ROIName == "Vescica")
    model_based = next(k for k, s in numbers.items() if s.ROIName == "Bladder_MBS")
    numbers[model_based].ROIName = "Vescica"  # the model-based contour first in file order
    ds.save_as(rs)
    line = one_error_line(run("convert", "--dicom", case, "--out", tmp_path / "a", "--template", "prostate"))
    assert "2 ROIs are named 'Vescica'" in line and f"{model_based}, {manual}" in line and "--roi Vescica=NUMBER" in line
    line = one_error_line(run("evaluate", "--reference", case, "--prediction", case, "--prediction-suffix", "_DL",
                              "--template", "prostate", "--out", tmp_path / "e"))
    assert "2 ROIs are named 'Vescica'" in line
    chosen = run("convert", "--dicom", case, "--out", tmp_path / "b", "--template", "prostate", "--roi", f"Vescica={manual}")
    assert chosen.exit_code == 0, chosen.output
    mask = np.asarray(nib.load(tmp_path / "b" / "masks" / "Bladder.nii.gz").dataobj).transpose(2, 1, 0) > 0
    assert np.array_equal(mask, real_patient.labels["Bladder"]), "the manual contour, not the model-based one"
    wrong = run("convert", "--dicom", case, "--out", tmp_path / "c", "--template", "prostate", "--roi", "Vescica=99")
    assert "no ROI 'Vescica' with number 99" in one_error_line(wrong)


# ---------------------------------------------------------------- 6. a reference that rasterises to nothing


def test_a_reference_between_slices_is_reported_empty_not_dice_zero(case: Path, tmp_path: Path) -> None:
    rs = rtstruct_file(case)
    ds = pydicom.dcmread(rs)
    number = next(int(s.ROINumber) for s in ds.StructureSetROISequence if s.ROIName == "Prostata")
    item = next(c for c in ds.ROIContourSequence if int(c.ReferencedROINumber) == number)
    for contour in item.ContourSequence:  # every contour half-way between two 3 mm slices
        values = [float(v) for v in contour.ContourData]
        contour.ContourData = [f"{v + 1.5:.4f}" if i % 3 == 2 else f"{v:.4f}" for i, v in enumerate(values)]
    ds.save_as(rs)
    result = run("evaluate", "--reference", case, "--prediction", case, "--prediction-suffix", "_DL",
                 "--template", "prostate", "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "e" / "metrics.csv", encoding="utf-8")))
    prostate = [r for r in rows if r["structure"] == "Prostate"]
    assert [(r["metric"], r["value"], r["note"]) for r in prostate] == [("not_evaluated", "", "reference empty")]
    assert not [r for r in csv.DictReader(open(tmp_path / "e" / "slices.csv", encoding="utf-8")) if r["structure"] == "Prostate"]
    assert "Prostate (reference empty)" in (tmp_path / "e" / "report.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------- 7. mixed modality, foreign frame of reference


def test_an_mr_slice_inside_the_ct_series_is_refused(case: Path, tmp_path: Path) -> None:
    target = ct_files_by_z(case)[0]
    edit(target, Modality="MR", SOPClassUID="1.2.840.10008.5.1.4.1.1.4")
    line = one_error_line(run("convert", "--dicom", case, "--out", tmp_path / "out", "--template", "prostate"))
    assert str(target) in line and "Modality MR" in line and "inside CT series" in line


def test_an_roi_in_another_frame_of_reference_is_refused(case: Path, tmp_path: Path) -> None:
    rs = rtstruct_file(case)
    ds = pydicom.dcmread(rs)
    roi = next(s for s in ds.StructureSetROISequence if s.ROIName == "Retto")
    roi.ReferencedFrameOfReferenceUID = pydicom.uid.generate_uid()
    ds.save_as(rs)
    line = one_error_line(run("convert", "--dicom", case, "--out", tmp_path / "out", "--template", "prostate"))
    assert "ROI 'Retto'" in line and "frame of reference" in line


# ---------------------------------------------------------------- 8. SEG on the de-identified real case


@pytest.mark.slow
def test_segment_seg_on_the_real_case_writes_rtstruct_and_seg(real_case: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("segment", "--dicom", real_case / "dicom", "--out", out, "--seg")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith(("QA_", ".cervseg-written")))
    assert len(names) == 2 and names[0].startswith("RS_") and names[1].startswith("SEG_")
    seg = pydicom.dcmread(out / names[1], stop_before_pixels=True)
    assert seg.Modality == "SEG" and seg.AccessionNumber == ""
    assert ".partial" not in result.output, "log lines name the final files, not the staging folder"


# ---------------------------------------------------------------- 9. unwritable outputs, impossible configs


def test_an_unwritable_output_is_refused_before_the_model_runs(real_case: Path, locked_folder: Path) -> None:
    result = run("segment", "--dicom", real_case / "dicom", "--out", locked_folder / "out")
    line = one_error_line(result)
    assert str(locked_folder) in line and "cannot write the output" in line
    assert "CT series" not in result.output, "refused before reading the CT"


def test_an_overlong_output_name_is_refused(real_case: Path, tmp_path: Path) -> None:
    line = one_error_line(run("segment", "--dicom", real_case / "dicom", "--out", tmp_path / ("n" * 300)))
    assert "the name is 300 bytes" in line


def test_a_huge_crop_is_refused_by_the_config(tmp_path: Path) -> None:
    """The trial's `crop_size: 100000` ended in a MemoryError traceback."""
    config = tmp_path / "train.yaml"
    text = (REPO / "configs" / "tiny_test.yaml").read_text(encoding="utf-8")
    assert "crop_mm: 448" in text
    config.write_text(text.replace("crop_mm: 448", "crop_mm: 560000"), encoding="utf-8")  # 100000 px
    line = one_error_line(run("train", "--config", config))
    assert str(config) in line and "100000-pixel crop" in line
    pixel_plan = text.replace("  spacing_mm: 5.6\n", "").replace("crop_mm: 448", "crop_size: 100000")
    config.write_text(pixel_plan, encoding="utf-8")
    line = one_error_line(run("train", "--config", config))
    assert str(config) in line and "crop_size" in line


# ---------------------------------------------------------------- unclear messages


def test_an_unknown_template_names_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    text = (REPO / "configs" / "tiny_test.yaml").read_text(encoding="utf-8")
    config.write_text(text.replace("template: cervix", "template: cervic"), encoding="utf-8")
    line = one_error_line(run("train", "--config", config))
    assert str(config) in line and "data.template" in line and "unknown template 'cervic'" in line


def test_convert_chooses_among_two_rtstructs(case: Path, tmp_path: Path) -> None:
    rs = rtstruct_file(case)
    other = pydicom.dcmread(rs)
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    other.save_as(case / "RS_copy.dcm")
    line = one_error_line(run("convert", "--dicom", case, "--out", tmp_path / "a", "--template", "prostate"))
    assert "2 RTSTRUCT files" in line and "--rtstruct" in line
    chosen = run("convert", "--dicom", case, "--out", tmp_path / "b", "--template", "prostate", "--rtstruct", rs.name)
    assert chosen.exit_code == 0, chosen.output


def test_convert_of_a_file_says_it_is_a_file(case: Path, tmp_path: Path) -> None:
    line = one_error_line(run("convert", "--dicom", rtstruct_file(case), "--out", tmp_path / "a"))
    assert "must be a folder, this is a file" in line


def test_segment_checks_the_names_file_before_predicting(real_case: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.yaml"
    names.write_text("Bladder: [Vescica\nRectum: [Retto]\n", encoding="utf-8")
    result = run("segment", "--dicom", real_case / "dicom", "--out", tmp_path / "out", "--names", names)
    line = one_error_line(result)
    assert str(names) in line and "line 2, column" in line
    assert "CT series" not in result.output and not (tmp_path / "out").exists()


def test_a_contour_far_from_the_ct_is_reported_outside_not_off_slice(case: Path, caplog) -> None:
    from cervseg.dicom.patient import read_patient

    rs = rtstruct_file(case)
    ds = pydicom.dcmread(rs)
    number = next(int(s.ROINumber) for s in ds.StructureSetROISequence if s.ROIName == "Retto")
    contour = next(c for c in ds.ROIContourSequence if int(c.ReferencedROINumber) == number).ContourSequence[0]
    values = [float(v) for v in contour.ContourData]
    contour.ContourData = [f"{v + 2000:.4f}" if i % 3 == 2 else f"{v:.4f}" for i, v in enumerate(values)]
    ds.save_as(rs)
    read_patient(case, "prostate")
    messages = [r.getMessage() for r in caplog.records if "Retto" in r.getMessage() and "skipped" in r.getMessage()]
    assert len(messages) == 1 and "outside the CT volume" in messages[0] and "the CT spans" in messages[0]
    assert "off slice" not in messages[0]


def test_a_symlinked_ct_subfolder_is_followed(real_case: Path, tmp_path: Path, real_patient) -> None:
    folder = tmp_path / "patient"
    folder.mkdir()
    (folder / "CT").symlink_to(real_case / "dicom", target_is_directory=True)
    volume = read_ct_series(folder)
    assert np.array_equal(volume.array, real_patient.volume.array)


def test_to_rtstruct_does_not_overwrite_an_unrelated_file(real_patient, tmp_path: Path) -> None:
    volume = real_patient.volume
    masks = write_case(volume, real_patient.labels, tmp_path / "case") / "masks"
    out = tmp_path / "report.pdf"
    out.write_bytes(b"%PDF-1.4 a physicist's report")
    dicom = Path(volume.series.source_files[0]).parent
    line = one_error_line(run("to-rtstruct", "--dicom", dicom, "--masks", masks, "--out", out))
    assert "not an RTSTRUCT written by cervseg" in line
    assert out.read_bytes() == b"%PDF-1.4 a physicist's report"


@pytest.mark.parametrize("args", [["convert", "--bogus"], ["convert"], ["segment", "--dicom", "x", "--out", "y", "--batch-size", "0"], ["nosuch"]])
def test_usage_errors_are_one_line_with_exit_code_2(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-m", "cervseg", *args], capture_output=True, text=True, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: cervseg"), done.stderr
    assert "--help" in lines[0]
