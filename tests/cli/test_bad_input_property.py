"""Property: whatever happens to the headers or bytes of a real CT series and its RTSTRUCT,
every command (convert, evaluate, to-rtstruct, segment) either succeeds or exits 2 with one
line; never a traceback, never a changed input.

The case is a 12-slice part of the real pelvic CT with its manual ROIs (so each command runs
in about a second); mutations are drawn from a fixed seed, a bounded number of them.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.sequence import Sequence as DicomSequence
from typer.testing import CliRunner

from cervseg.cli.main import app

SEED = 16
N_MUTATIONS = 30
KEEP_ROIS = ("Vescica", "Retto", "Prostata")
CT_KEYWORDS = (
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns", "RescaleSlope",
    "RescaleIntercept", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Modality", "FrameOfReferenceUID",
    "PixelData", "BitsAllocated", "PixelRepresentation", "SliceThickness", "PatientPosition", "StudyInstanceUID",
    "SamplesPerPixel", "PhotometricInterpretation", "GantryDetectorTilt",
)
RS_KEYWORDS = (
    "StructureSetROISequence", "ROIContourSequence", "ReferencedFrameOfReferenceSequence", "Modality",
    "SOPInstanceUID", "SeriesInstanceUID", "RTROIObservationsSequence", "FrameOfReferenceUID",
)
ODD_VALUES = ("", "abc", "1e400", "nan", "-0", "0", "99999999", "1\\2", "1\\2\\3\\4\\5\\6\\7")


@pytest.fixture(scope="module")
def small_case(real_case: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 consecutive slices of the real CT and its RTSTRUCT reduced to the manual pelvic ROIs."""
    folder = tmp_path_factory.mktemp("small") / "case"
    folder.mkdir()
    cts = sorted(
        (real_case / "dicom").glob("CT*.dcm"),
        key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]),
    )
    for path in cts[60:72]:
        shutil.copy(path, folder / path.name)
    rs = pydicom.dcmread(next((real_case / "dicom").glob("RS*.dcm")))
    keep = {int(s.ROINumber) for s in rs.StructureSetROISequence if s.ROIName in KEEP_ROIS}
    rs.StructureSetROISequence = DicomSequence([s for s in rs.StructureSetROISequence if int(s.ROINumber) in keep])
    rs.ROIContourSequence = DicomSequence([c for c in rs.ROIContourSequence if int(c.ReferencedROINumber) in keep])
    rs.RTROIObservationsSequence = DicomSequence(
        [o for o in rs.RTROIObservationsSequence if int(o.ReferencedROINumber) in keep])
    rs.save_as(folder / "RS_manual.dcm")
    return folder


def _mutate_header(path: Path, rng: random.Random, keywords: tuple[str, ...]) -> str:
    ds = pydicom.dcmread(path, force=True)
    keyword = rng.choice(keywords)
    if rng.random() < 0.5 or keyword.endswith("Sequence") or keyword == "PixelData":
        if keyword in ds:
            delattr(ds, keyword)
        action = f"delete {keyword}"
    else:
        value = rng.choice(ODD_VALUES)
        try:
            setattr(ds, keyword, value)
        except (TypeError, ValueError, OverflowError):
            return f"set {keyword}={value!r} refused by pydicom (no change)"
        action = f"set {keyword}={value!r}"
    try:
        ds.save_as(path)
    except Exception as exc:  # pydicom may refuse to write such a value: then the file stays as it was
        return f"{action} not writable ({type(exc).__name__})"
    return action


def _mutate_contour(path: Path, rng: random.Random) -> str:
    ds = pydicom.dcmread(path)
    item = rng.choice(list(ds.ROIContourSequence))
    contour = rng.choice(list(item.ContourSequence))
    kind = rng.choice(["odd", "nan", "far", "two_points", "roi_number"])
    values = list(contour.ContourData)
    if kind == "odd":
        contour.ContourData = values[:-1]
    elif kind == "nan":
        contour.ContourData = ["nan"] + values[1:]
    elif kind == "far":
        contour.ContourData = [float(v) + (5000 if i % 3 == 2 else 0) for i, v in enumerate(values)]
    elif kind == "two_points":
        contour.ContourData = values[:6]
        contour.NumberOfContourPoints = 2
    else:
        item.ReferencedROINumber = rng.choice([0, 999, int(ds.StructureSetROISequence[0].ROINumber)])
    ds.save_as(path)
    return f"contour {kind}"


def _mutate_bytes(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    kind = rng.choice(["truncate", "flip_header", "flip_any", "zero"])
    if kind == "truncate":
        cut = rng.randrange(0, len(data))
        path.write_bytes(bytes(data[:cut]))
        return f"truncate at {cut}"
    if kind == "zero":
        path.write_bytes(b"")
        return "empty file"
    region = min(len(data), 2048) if kind == "flip_header" else len(data)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(0, region)] = rng.randrange(256)
    path.write_bytes(bytes(data))
    return kind


def mutate(folder: Path, rng: random.Random) -> str:
    """One random change to one file of the case; returns what was done."""
    ct = sorted(folder.glob("CT*.dcm"))
    rs = folder / "RS_manual.dcm"
    which = rng.random()
    if which < 0.35:
        target = rng.choice(ct)
        return f"{target.name}: {_mutate_header(target, rng, CT_KEYWORDS)}"
    if which < 0.55:
        return f"RS: {_mutate_header(rs, rng, RS_KEYWORDS)}"
    if which < 0.7:
        return f"RS: {_mutate_contour(rs, rng)}"
    target = rng.choice(ct + [rs])
    return f"{target.name}: {_mutate_bytes(target, rng)}"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def check_outcome(result, what: str) -> None:
    """Success, or exit 2 with exactly one ERROR line; anything else (a traceback) fails."""
    if result.exit_code == 0:
        return
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{what}: uncaught {type(result.exception).__name__}: {result.exception}")
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert result.exit_code == 2 and len(errors) == 1, f"{what}: exit {result.exit_code}\n{result.output}"


@pytest.mark.slow
def test_random_mutations_end_in_success_or_one_clear_line(small_case: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    runner = CliRunner()
    outcomes = {0: 0, 2: 0}
    for i in range(N_MUTATIONS):
        case = Path(shutil.copytree(small_case, tmp_path / f"m{i:02d}" / "case"))
        what = f"mutation {i} ({mutate(case, rng)})"
        before = snapshot(case)
        for args in (
            ["convert", "--dicom", case, "--out", case.parent / "nifti", "--template", "prostate"],
            ["evaluate", "--reference", case, "--prediction", case, "--template", "prostate", "--out", case.parent / "eval"],
            # the masks convert wrote (when it succeeded) back onto the mutated CT
            ["to-rtstruct", "--dicom", case, "--masks", case.parent / "nifti" / "masks", "--out", case.parent / "RS.dcm"],
            ["segment", "--dicom", case, "--out", case.parent / "seg", "--threads", "1"],
        ):
            result = runner.invoke(app, [str(a) for a in args])
            check_outcome(result, f"{args[0]} after {what}")
            outcomes[result.exit_code] += 1
            assert snapshot(case) == before, f"{args[0]} changed its input after {what}"
        shutil.rmtree(case.parent)
    assert outcomes[0] > 0 and outcomes[2] > 0, outcomes  # the mutations exercise both ends
