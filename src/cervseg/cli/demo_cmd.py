"""`cervseg demo`: what `make demo` runs -- the whole daily job on a synthetic patient.

Generates one phantom patient (DICOM CT + its "true" RTSTRUCT), contours it with the
built-in model exactly as `cervseg segment` would, then prints per-structure Dice and HD95
against the phantom's truth, the time taken, and saves an overlay PNG.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command

log = logging.getLogger(__name__)

HELP = """Run the whole job on a synthetic patient: phantom CT -> built-in model -> RTSTRUCT.

Writes OUT/phantom/<patient>/ (the phantom's DICOM CT and true RTSTRUCT), OUT/contours/RS_<UID>.dcm
(the automatic contours), OUT/overlay.png, and prints Dice / HD95 per structure.
The built-in model was trained on phantoms and two public real CTs: clinical use needs a
model trained on the clinic's own data.

Example:

  cervseg demo --out demo-output
"""


@command("demo", help=HELP)
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder (replaced if it holds a previous demo)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic patient."),
    preset: str = typer.Option("default", "--preset", help="Phantom preset: default, small or tiny."),
    model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint folder; default: the built-in model."),
) -> None:
    """Phantom CT -> built-in model -> RTSTRUCT, scored against the phantom's truth (see HELP)."""
    from cervseg.dicom.patient import read_patient
    from cervseg.infer.segment import segment_series
    from cervseg.outputs import atomic_dir, atomic_file, check_output_folder
    from cervseg.phantom.cohort import write_cohort
    from cervseg.report.case_overlay import render_case
    from cervseg.report.tables import score_table
    from cervseg.structures import Catalogue, colours

    check_output_folder(out, {})
    start = time.perf_counter()
    with atomic_dir(out) as tmp:
        folder = write_cohort(tmp / "phantom", 1, seed=seed, preset=preset)[0]
        truth = read_patient(folder, "cervix")
        generated = time.perf_counter() - start
        result = segment_series(folder, tmp / "contours", model=model)
        table = score_table(truth.labels, result.labels)
        png = render_case(truth.volume, truth.labels, result.labels,
                          colours(list(truth.labels), Catalogue.builtin()),
                          title="phantom truth (dashed) vs automatic contours (solid)")
        with atomic_file(tmp / "overlay.png") as tmp_png:
            tmp_png.write_bytes(png)
    nz = truth.volume.geometry.shape[0]
    seconds = result.timings["total"]
    typer.echo(table)
    typer.echo(
        f"\nsegmented {nz} slices in {seconds:.1f} s ({seconds / nz:.3f} s/slice, DICOM read to RTSTRUCT written); "
        f"phantom generated in {generated:.1f} s\n"
        f"wrote {out / 'contours' / result.rtstruct.name}\n"
        f"      {out / 'overlay.png'}\n"
        f"      phantom CT + true RTSTRUCT in {out / 'phantom' / folder.name}"
    )
