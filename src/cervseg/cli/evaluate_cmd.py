"""`cervseg evaluate`: score predicted contours against reference contours (CSV + HTML report)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cervseg.cli.app import command
from cervseg.cli.options import ROI_HELP, parse_roi_numbers
from cervseg.errors import InputError
from cervseg.metrics import DEFAULT_TOLERANCE_MM

HELP = (
    "Compare predicted contours with reference contours: Dice, HD95, HD, mean surface distance, "
    "surface Dice and added path length, in 3D and per axial slice, in mm.\n\n"
    "Each of --reference and --prediction is a DICOM folder (CT + RTSTRUCT; a prediction may be "
    "an RTSTRUCT alone), a convert-style NIfTI folder (image.nii.gz + masks/<Name>.nii.gz), or a "
    "ROOT folder with one such folder per patient (paired by subfolder name). Structures are "
    "matched by name through the catalogue (--names adds your synonyms). A suffix option keeps "
    "only the ROIs ending with it and strips it before matching, so one RTSTRUCT holding manual "
    "and automatic contours can be both reference and prediction.\n\n"
    "Writes metrics.csv (patient x structure x metric), summary.csv (mean ± SD per structure), "
    "slices.csv (per-slice review sheet with an empty 'grade' column: Acceptable, Minor revision, "
    "Major revision, Not acceptable), report.html (box plots, worst and median slices) and "
    "evaluation.json (settings). Definitions: docs/evaluation.md."
)
EXAMPLE = """\
Examples:

  cervseg evaluate --reference manual/ --prediction model_out/ --out eval/

  # one RTSTRUCT with manual ROIs (Vescica, Retto, ...) and automatic ones (Bladder_DL, ...)
  cervseg evaluate --reference case/ --prediction case/ --prediction-suffix _DL --out eval_dl/

  # many patients: manual/<patient>/ and model_out/<patient>/, NIfTI or DICOM
  cervseg evaluate --reference manual/ --prediction model_out/ --tolerance 3 --out eval/
"""


def check_tolerance(tolerance: float) -> None:
    if not tolerance >= 0 or tolerance != tolerance or tolerance == float("inf"):
        raise InputError(f"--tolerance must be a finite number of mm >= 0, got {tolerance}")


@command("evaluate", help=HELP, epilog=EXAMPLE)
def evaluate(
    reference: Path = typer.Option(..., "--reference", help="Reference contours: DICOM or NIfTI case folder, or a ROOT of patient folders."),
    prediction: Path = typer.Option(..., "--prediction", help="Predicted contours, same layout as --reference (paired by patient subfolder name)."),
    out: Path = typer.Option(..., "--out", help="Output folder (created or replaced as a whole; not inside an input)."),
    prediction_suffix: str = typer.Option("", "--prediction-suffix", help="Use only prediction ROIs ending with this suffix (e.g. _DL), stripped before matching."),
    reference_suffix: str = typer.Option("", "--reference-suffix", help="Use only reference ROIs ending with this suffix, stripped before matching."),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE_MM, "--tolerance", help="Surface tolerance in mm for surface Dice and added path length."),
    template: Optional[str] = typer.Option(None, "--template", help="Only the structures of this template (cervix, prostate or a YAML file); a template structure the reference has and the prediction lacks counts as a complete miss. Default: every catalogue structure found, one-sided ones listed as not evaluated."),
    names: Optional[Path] = typer.Option(None, "--names", help="YAML file mapping structure names to your ROI names."),
    patient: Optional[str] = typer.Option(None, "--patient", help="Name of the patient when --reference is a single patient folder (default: the folder's name)."),
    name: str = typer.Option("prediction", "--name", help="Name of the prediction set in the report."),
    roi: List[str] = typer.Option([], "--roi", help=ROI_HELP + " Applies to the reference and prediction RTSTRUCTs."),
) -> None:
    """Score predicted contours against reference contours (see HELP)."""
    from cervseg.report.runner import PredictionSet, Settings, write_evaluation

    check_tolerance(tolerance)
    settings = Settings(tolerance, template, names, reference_suffix, patient, parse_roi_numbers(roi))
    write_evaluation(reference, PredictionSet(name, prediction, prediction_suffix), out, settings)
