"""`cervseg dataset`: a folder of patient DICOM exports -> a training cache with patient-level splits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command
from cervseg.cli.convert_cmd import check_io_folders
from cervseg.errors import StructureError

log = logging.getLogger(__name__)

HELP = (
    "Read every patient folder under --dicom (one sub-folder per patient: planning CT + "
    "RTSTRUCT, any layout inside) and write a training cache: HU as int16 and the template's "
    "structures as bit-packed masks, memory-mappable, with manifest.json.\n\n"
    "A patient whose CT geometry is refused or whose RTSTRUCT lacks a structure (or has it "
    "empty) is skipped and listed in the manifest with the reason; nothing of it is written. "
    "Patients are split into train/val/test at patient level, reproducibly from --seed.\n\n"
    "--partial-labels keeps a patient that has only some of the structures (an older export, "
    "a case contoured for another site): the others are recorded as not contoured, and "
    "training leaves them out of that patient's loss instead of learning 'nothing there'.\n\n"
    "--empty-roi-means-none reads an ROI that the RTSTRUCT names but leaves without contours "
    "as 'this patient has none' (a phantom man's CTV_UV) and trains it as empty. It is off by "
    "default because clinical templates leave undrawn placeholder ROIs, which would teach the "
    "network that the organ is absent; without it such a structure counts as missing."
)
EXAMPLE = """\
Examples:

  cervseg dataset --dicom exports/ --out cache/ --names our_names.yaml

  cervseg dataset --dicom phantoms/ --out cache/ --structures Bladder,Rectum,CTV_UV,CTV_N \\
      --val-fraction 0.2 --test-fraction 0.1 --seed 1
"""


def _structures(template: str, names: Optional[Path], structures: Optional[str]) -> tuple[str, list[str]]:
    """The template's name and the structures to train (all, or the --structures subset)."""
    from cervseg.structures import Catalogue, load_template

    catalogue = Catalogue.builtin(names)
    tmpl = load_template(template, catalogue)
    if not structures:
        return tmpl.name, list(tmpl.structures)
    chosen = []
    for entry in structures.split(","):
        canonical = catalogue.canonical(entry.strip())
        if canonical is None or canonical not in tmpl.structures:
            raise StructureError(f"--structures: '{entry.strip()}' is not a structure of template "
                                 f"'{tmpl.name}' ({', '.join(tmpl.structures)})")
        chosen.append(canonical)
    return tmpl.name, chosen


@command("dataset", help=HELP, epilog=EXAMPLE)
def dataset(
    dicom: Path = typer.Option(..., "--dicom", help="Folder with one sub-folder per patient (CT + RTSTRUCT)."),
    out: Path = typer.Option(..., "--out", help="Cache folder to write (replaced as a whole if it is a cache)."),
    template: str = typer.Option("cervix", "--template", help="Structure template: cervix, prostate or a YAML file."),
    names: Optional[Path] = typer.Option(None, "--names", help="YAML file mapping structure names to your ROI names."),
    structures: Optional[str] = typer.Option(None, "--structures",
                                             help="Comma-separated subset of the template's structures."),
    seed: int = typer.Option(0, "--seed", help="Seed of the patient-level split."),
    val_fraction: float = typer.Option(0.15, "--val-fraction", help="Share of patients for validation."),
    test_fraction: float = typer.Option(0.15, "--test-fraction", help="Share of patients held out for testing."),
    partial_labels: bool = typer.Option(False, "--partial-labels",
                                        help="Keep patients with only some of the structures (multilabel training)."),
    empty_roi_means_none: bool = typer.Option(
        False, "--empty-roi-means-none",
        help="An ROI named without contours means the patient has none of it (trained as empty)."),
) -> None:
    """Build a training cache from DICOM exports (see HELP)."""
    from cervseg.data.cache import build_cache, dicom_patient_reader, patient_folders

    check_io_folders([dicom], out)
    tmpl_name, chosen = _structures(template, names, structures)
    folders = patient_folders(dicom)
    log.info("%d patient folders under %s; structures: %s", len(folders), dicom, ", ".join(chosen))
    reader = dicom_patient_reader(tmpl_name, names, chosen, partial_labels, empty_roi_means_none)
    manifest = build_cache(
        out, folders, reader, chosen, seed=seed,
        val_fraction=val_fraction, test_fraction=test_fraction, root=dicom, partial=partial_labels,
        extra={"template": tmpl_name, "source_root": str(dicom.resolve()),
               "names_file": str(names.resolve()) if names else None, "partial_labels": partial_labels,
               "empty_roi_means_none": empty_roi_means_none},
    )
    sp = manifest["splits"]
    log.info("wrote %s: %d patients (train %d, val %d, test %d), %d skipped", out, len(manifest["patients"]),
             len(sp["train"]), len(sp["val"]), len(sp["test"]), len(manifest["skipped"]))
