"""`cervseg segment`: contour a planning CT into an RTSTRUCT that references it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command

HELP = """Contour a CT series with a trained model and write DIR/RS_<SeriesInstanceUID>.dcm.

The RTSTRUCT references every slice of the input series; its label and description say it
is automatic and which model made it. The input folder is never written to; a CT that fails
the geometry checks gets one clear error and no output.

Examples:

  cervseg segment --dicom /exports/patient01/CT --out /contours/patient01

  cervseg segment --dicom CT --out OUT --model my_checkpoint --nifti --seg --tta
"""


@command("segment", help=HELP)
def segment(
    dicom: Path = typer.Option(..., "--dicom", help="Folder holding the planning CT series (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Output folder (created; must not be inside --dicom)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint folder; default: the built-in model."),
    series: Optional[str] = typer.Option(None, "--series", help="SeriesInstanceUID when the folder holds several CT series."),
    nifti: bool = typer.Option(False, "--nifti", help="Also write nifti_<UID>/image.nii.gz and masks/<Name>.nii.gz."),
    seg: bool = typer.Option(False, "--seg", help="Also write a DICOM-SEG, SEG_<UID>.dcm."),
    tta: bool = typer.Option(False, "--tta", help="Average with the left-right mirrored prediction (about 2x slower)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Slices per forward pass."),
    names: Optional[Path] = typer.Option(None, "--names", help="YAML names file adding ROI synonyms."),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="CPU threads for the model (default: every core this process may use)."
    ),
) -> None:
    """Contour a CT series into an RTSTRUCT (see HELP)."""
    from cervseg.infer.segment import segment_series

    segment_series(dicom, out, model=model, series_uid=series, nifti=nifti, seg=seg,
                   flip_tta=tta, batch_size=batch_size, names_file=names, threads=threads)
