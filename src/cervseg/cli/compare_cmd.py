"""`cervseg compare`: several prediction sets (models) against one reference, best marked."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cervseg.cli.app import command
from cervseg.cli.evaluate_cmd import check_tolerance
from cervseg.errors import InputError
from cervseg.metrics import DEFAULT_TOLERANCE_MM

HELP = (
    "Compare several models' contours with one reference: a table of mean ± SD per structure "
    "with the best model per structure and metric marked (bold in report.html, ' *' in "
    "compare.csv), paired box plots (a patient's values joined across models), and the "
    "evaluate files with a model column (metrics.csv, summary.csv, slices.csv).\n\n"
    "Folders are as for `cervseg evaluate`. Give each model as NAME=DIR; a per-model ROI "
    "suffix as NAME=SUFFIX with --prediction-suffix."
)
EXAMPLE = """\
Examples:

  cervseg compare --reference manual/ --prediction unet=out_unet/ --prediction resaunet=out_resau/ --out cmp/

  # the manual, RayStation deep-learning (_DL) and model-based (_MBS) contours of one RTSTRUCT
  cervseg compare --reference case/ --prediction DL=case/ --prediction MBS=case/ \\
      --prediction-suffix DL=_DL --prediction-suffix MBS=_MBS --out cmp/
"""


def parse_pairs(values: List[str], option: str) -> dict[str, str]:
    """NAME=VALUE items -> dict, with one clear error for a malformed or repeated name."""
    pairs: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"{option} '{item}': expected NAME=VALUE")
        if name.strip() in pairs:
            raise InputError(f"{option}: name '{name.strip()}' given twice")
        pairs[name.strip()] = value.strip()
    return pairs


@command("compare", help=HELP, epilog=EXAMPLE)
def compare(
    reference: Path = typer.Option(..., "--reference", help="Reference contours: DICOM or NIfTI case folder, or a ROOT of patient folders."),
    prediction: List[str] = typer.Option(..., "--prediction", help="NAME=DIR of one model's predictions; repeat for each model."),
    out: Path = typer.Option(..., "--out", help="Output folder (created or replaced as a whole; not inside an input)."),
    prediction_suffix: List[str] = typer.Option([], "--prediction-suffix", help="NAME=SUFFIX: use only that model's ROIs ending with SUFFIX (stripped before matching)."),
    reference_suffix: str = typer.Option("", "--reference-suffix", help="Use only reference ROIs ending with this suffix, stripped before matching."),
    tolerance: float = typer.Option(DEFAULT_TOLERANCE_MM, "--tolerance", help="Surface tolerance in mm for surface Dice and added path length."),
    template: Optional[str] = typer.Option(None, "--template", help="Only the structures of this template (cervix, prostate or a YAML file)."),
    names: Optional[Path] = typer.Option(None, "--names", help="YAML file mapping structure names to your ROI names."),
    patient: Optional[str] = typer.Option(None, "--patient", help="Name of the patient when --reference is a single patient folder."),
) -> None:
    """Compare several models against one reference (see HELP)."""
    from cervseg.report.runner import PredictionSet, Settings, write_comparison

    check_tolerance(tolerance)
    folders = parse_pairs(prediction, "--prediction")
    suffixes = parse_pairs(prediction_suffix, "--prediction-suffix")
    unknown = sorted(set(suffixes) - set(folders))
    if unknown:
        raise InputError(f"--prediction-suffix for unknown model(s) {', '.join(unknown)} (models: {', '.join(folders)})")
    sets = [PredictionSet(n, Path(d), suffixes.get(n, "")) for n, d in folders.items()]
    write_comparison(reference, sets, out, Settings(tolerance, template, names, reference_suffix, patient))
