"""`cervseg to-rtstruct`: NIfTI masks (from any tool) + the CT folder -> an RTSTRUCT."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command
from cervseg.errors import InputError

log = logging.getLogger(__name__)

HELP = (
    "Turn NIfTI masks into an RTSTRUCT that references the CT series they were drawn on.\n\n"
    "Each file in --masks is one structure, named by its file name (Bladder.nii.gz -> Bladder). "
    "Names are matched through the catalogue (and --names), so Vescica.nii.gz becomes Bladder "
    "with the catalogue's colour and ROI type; unknown names are kept as they are, in grey, "
    "with a warning. Masks may come from any tool (3D Slicer, ITK-SNAP, TotalSegmentator, "
    "nnU-Net): a different axis order or flip of the same voxels is undone through the NIfTI "
    "affine, any other grid is refused. Voxels > 0 are inside; empty masks are skipped."
)
EXAMPLE = """\
Example:

  cervseg to-rtstruct --dicom exports/patient01/CT --masks predictions/patient01 --out RS_patient01.dcm
"""


def check_replaceable_rtstruct(out: Path) -> None:
    """An existing --out is only overwritten when it is an RTSTRUCT that cervseg wrote."""
    if not out.exists():
        return
    import pydicom

    try:
        header = pydicom.dcmread(out, stop_before_pixels=True, specific_tags=["Modality", "Manufacturer"])
        ours = str(header.get("Modality", "")) == "RTSTRUCT" and str(header.get("Manufacturer", "")) == "cervseg"
    except Exception:  # not DICOM at all: certainly not ours
        ours = False
    if not ours:
        raise InputError(f"{out}: exists and is not an RTSTRUCT written by cervseg; choose another --out file name")


@command("to-rtstruct", help=HELP, epilog=EXAMPLE)
def to_rtstruct(
    dicom: Path = typer.Option(..., "--dicom", help="Folder with the CT series the masks were drawn on."),
    masks: Path = typer.Option(..., "--masks", help="Folder of NIfTI masks, one structure per file (<Name>.nii.gz)."),
    out: Path = typer.Option(..., "--out", help="RTSTRUCT file to write (not inside --dicom or --masks)."),
    names: Optional[Path] = typer.Option(None, "--names", help="YAML file mapping structure names to your ROI names."),
    series: Optional[str] = typer.Option(None, "--series", help="SeriesInstanceUID of the CT when the folder holds several."),
) -> None:
    """NIfTI masks + CT folder -> RTSTRUCT (see HELP)."""
    from cervseg.dicom.rtstruct_write import write_rtstruct
    from cervseg.dicom.series import read_ct_series
    from cervseg.nifti import read_labels
    from cervseg.outputs import check_writable, ensure_not_inside
    from cervseg.structures import Catalogue, rename_to_catalogue

    for folder, what in ((dicom, "CT folder"), (masks, "masks folder")):
        if not folder.is_dir():
            raise InputError(f"{folder}: {what} not found")
        ensure_not_inside(out, folder, what)
    if out.is_dir():
        raise InputError(f"{out}: --out must be a file name, this is a folder")
    check_replaceable_rtstruct(out)
    check_writable(out.parent, "RTSTRUCT")
    catalogue = Catalogue.builtin(names)
    volume = read_ct_series(dicom, series)
    labels = rename_to_catalogue(read_labels(masks, volume.geometry), catalogue)
    write_rtstruct(labels, volume, out, catalogue=catalogue)
    log.info("wrote %s", out)
