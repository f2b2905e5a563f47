"""`cervseg convert`: a patient's DICOM folder (CT + RTSTRUCT) -> NIfTI image and masks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional

import typer

from cervseg.cli.app import command
from cervseg.cli.options import ROI_HELP, parse_roi_numbers
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

  # two ROIs named Vescica (manual and model-based): use ROI number 8
  cervseg convert --dicom exports/patient01 --out nifti/patient01 --roi Vescica=8
"""


def check_io_folders(inputs: list[Path], out: Path) -> None:
    """Inputs must be folders; the output obeys cervseg.outputs.check_output_folder
    (apart from every input, only a previous unchanged cervseg output is replaced, writable)."""
    from cervseg.outputs import check_output_folder

    for folder in inputs:
        if folder.is_file():
            raise InputError(f"{folder}: --dicom must be a folder, this is a file (give the folder that holds it)")
        if not folder.is_dir():
            raise InputError(f"{folder}: input folder not found")
    check_output_folder(out, inputs)


@command("convert", help=HELP, epilog=EXAMPLE)
def convert(
    dicom: Path = typer.Option(..., "--dicom", help="Patient folder: planning CT series + RTSTRUCT, any layout, searched recursively."),
    out: Path = typer.Option(..., "--out", help="Output folder for image.nii.gz and masks/ (must not be inside --dicom)."),
    template: str = typer.Option("cervix", "--template", help="Structure template: cervix, prostate or a YAML file."),
    names: Optional[Path] = typer.Option(None, "--names", help="YAML file mapping structure names to your ROI names."),
    series: Optional[str] = typer.Option(None, "--series", help="SeriesInstanceUID of the CT when the folder holds several."),
    rtstruct: Optional[str] = typer.Option(None, "--rtstruct", help="SOPInstanceUID or file of the RTSTRUCT when the folder holds several."),
    roi: List[str] = typer.Option([], "--roi", help=ROI_HELP),
) -> None:
    """Convert a planning CT and its RTSTRUCT to NIfTI image and masks (see HELP)."""
    from cervseg.dicom.patient import read_patient
    from cervseg.nifti import write_case

    check_io_folders([dicom], out)
    roi_numbers = parse_roi_numbers(roi)
    patient = read_patient(dicom, template, names, series, rtstruct_uid=rtstruct, roi_numbers=roi_numbers)
    # read_patient has logged the name-match report (matched / missing / unmatched ROIs)
    if patient.match.missing:
        log.warning("not in the RTSTRUCT, no mask written: %s", ", ".join(patient.match.missing))
    write_case(patient.volume, patient.labels, out)
    log.info("wrote %s: image.nii.gz and %d masks (%s)", out, len(patient.labels), ", ".join(patient.labels))
