"""`cervseg convert`: a patient's DICOM folder (CT + RTSTRUCT) -> NIfTI image and masks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command
from cervseg.errors import InputError

log = logging.getLogger(__name__)

HELP = (
    "Convert a planning CT and its RTSTRUCT to NIfTI with the RAS affine that 3D Slicer, "
    "ITK-SNAP and nnU-Net expect.\n\n"
    "ROI names are matched to the template's structures through the catalogue's synonyms "
    "(case-insensitive) and your --names file; the log says what matched, what is missing "
    "and which ROIs matched nothing."
)
EXAMPLE = """\
Example:

  cervseg convert --dicom exports/patient01 --out nifti/patient01 --names our_names.yaml

writes nifti/patient01/image.nii.gz (HU) and nifti/patient01/masks/Bladder.nii.gz, ...
"""


def check_io_folders(inputs: list[Path], out: Path) -> None:
    """Inputs must exist; the output may be neither inside an input nor contain one
    (the output folder is replaced as a whole, which would delete the input)."""
    from cervseg.outputs import ensure_not_inside

    for folder in inputs:
        if not folder.is_dir():
            raise InputError(f"{folder}: input folder not found")
        ensure_not_inside(out, folder)
        if out.resolve() in folder.resolve().parents:
            raise InputError(f"{out}: output folder contains the input folder {folder} and would replace it")


@command("convert", help=HELP, epilog=EXAMPLE)
def convert(
    dicom: Path = typer.Option(..., "--dicom", help="Patient folder: planning CT series + RTSTRUCT, any layout, searched recursively."),
    out: Path = typer.Option(..., "--out", help="Output folder for image.nii.gz and masks/ (must not be inside --dicom)."),
    template: str = typer.Option("cervix", "--template", help="Structure template: cervix, prostate or a YAML file."),
    names: Optional[Path] = typer.Option(None, "--names", help="YAML file mapping structure names to your ROI names."),
    series: Optional[str] = typer.Option(None, "--series", help="SeriesInstanceUID of the CT when the folder holds several."),
) -> None:
    """Convert a planning CT and its RTSTRUCT to NIfTI image and masks (see HELP)."""
    from cervseg.dicom.patient import read_patient
    from cervseg.nifti import check_replaceable, write_case

    check_io_folders([dicom], out)
    check_replaceable(out)
    patient = read_patient(dicom, template, names, series)
    # read_patient has logged the name-match report (matched / missing / unmatched ROIs)
    if patient.match.missing:
        log.warning("not in the RTSTRUCT, no mask written: %s", ", ".join(patient.match.missing))
    write_case(patient.volume, patient.labels, out)
    log.info("wrote %s: image.nii.gz and %d masks (%s)", out, len(patient.labels), ", ".join(patient.labels))
