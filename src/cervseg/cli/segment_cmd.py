"""`cervseg segment`: contour a planning CT into an RTSTRUCT that references it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command, pipeline_imports

log = logging.getLogger(__name__)

HELP = """Contour a CT series with a trained model and write DIR/RS_<SeriesInstanceUID>.dcm.

The RTSTRUCT references every slice of the input series; its label and description say it
is automatic and which model made it. Beside it, QA_<SeriesInstanceUID>.csv scores every
slice of every structure (0-1, higher = more likely wrong) for `cervseg review`. The input folder is never written to; a CT that fails
the geometry checks gets one clear error and no output.

Examples:

  cervseg segment --dicom /exports/patient01/CT --out /contours/patient01

  cervseg segment --dicom CT --out OUT --model my_checkpoint --nifti --seg --tta

  cervseg segment --dicom /exports --out /contours --all-series

With --all-series every CT series under --dicom is contoured (model loaded once) into
OUT/<PatientID or folder>/; a series that fails is reported in the summary table and the
others go on. Exit code 0 when every series was contoured, 2 when any failed.
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
    qa: bool = typer.Option(True, "--qa/--no-qa", help="Write QA_<UID>.csv: per-slice QA scores for review (default on)."),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1, help="CPU threads for the model (default: every core this process may use)."
    ),
    all_series: bool = typer.Option(
        False, "--all-series", help="Contour every CT series under --dicom into OUT/<PatientID or folder>/."
    ),
) -> None:
    """Contour a CT series into an RTSTRUCT (see HELP)."""
    if all_series:
        if series is not None:
            from cervseg.errors import InputError

            raise InputError("--series and --all-series exclude each other: give one of them")
        _segment_all(dicom, out, model=model, nifti=nifti, seg=seg, flip_tta=tta, batch_size=batch_size,
                     names_file=names, threads=threads, qa=qa)
        return
    with pipeline_imports():
        from cervseg.infer.segment import segment_series

    result = segment_series(dicom, out, model=model, series_uid=series, nifti=nifti, seg=seg,
                            flip_tta=tta, batch_size=batch_size, names_file=names, threads=threads, qa=qa)
    log.info("wrote %s", ", ".join(str(p) for p in result.outputs))


def _segment_all(dicom: Path, out: Path, **options: object) -> None:
    """The batch, its summary table on stdout, and exit code 2 if any series failed."""
    from cervseg.cli.text import plain_table

    with pipeline_imports():
        from cervseg.infer.batch import segment_all_series

    rows = segment_all_series(dicom, out, **options)  # type: ignore[arg-type]
    table = [("result", "slices", "seconds", "series", "folder", "output / reason")] + [
        ("ok" if r.ok else "FAILED", str(r.slices), f"{r.seconds:.1f}" if r.ok else "-", r.series_uid,
         str(r.folder), str(r.out) if r.ok else r.error)
        for r in rows
    ]
    failed = sum(not r.ok for r in rows)
    typer.echo(plain_table(table))
    typer.echo(f"{len(rows) - failed} of {len(rows)} series contoured, {failed} failed")
    if failed:
        raise typer.Exit(2)
