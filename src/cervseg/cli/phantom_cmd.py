"""`cervseg phantom`: write a cohort of synthetic pelvic CT patients (DICOM CT + RTSTRUCT)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from cervseg.cli.app import command
from cervseg.errors import InputError

log = logging.getLogger(__name__)

HELP = (
    "Write synthetic cervical-cancer planning CTs with their contours: one folder per patient "
    "holding a DICOM CT series and an RTSTRUCT of the nine `cervix` structures (Bladder, "
    "Rectum, Femur_Head_L/R, BoneMarrow, Bowel_Small, SpinalCord, CTV_N, CTV_UV).\n\n"
    "Presets: default (512x512, about 1.15 mm pixels, mostly 5 mm slices, like the papers), "
    "small (256x256, for training on a CPU), tiny (96x96, for tests). The same --seed and "
    "--preset give the same images and contours."
)
EXAMPLE = """\
Example:

  cervseg phantom --out phantoms --patients 25 --seed 7 --preset small

writes phantoms/PH7-001 ... phantoms/PH7-025 (CT/ + RS_*.dcm each) and phantoms/cohort.json.
"""


@command("phantom", help=HELP, epilog=EXAMPLE)
def phantom(
    out: Path = typer.Option(..., "--out", help="Output folder (created; patient folders inside are replaced)."),
    patients: int = typer.Option(..., "--patients", help="Number of patients to write (>= 1)."),
    seed: int = typer.Option(0, "--seed", help="Cohort seed: the same seed gives the same patients."),
    preset: str = typer.Option("default", "--preset", help="default, small or tiny."),
    male_fraction: float = typer.Option(
        0.0, "--male-fraction", help="Probability of a male pelvis per patient (prostate and seminal "
        "vesicles, no uterus, an empty CTV_UV), 0-1: teaches a model that the soft tissue under a "
        "bladder is not always a cervix. The female patients are the same whatever it is."),
) -> None:
    """Write synthetic planning CTs with RTSTRUCTs (see HELP)."""
    from cervseg.phantom.cohort import write_cohort
    from cervseg.phantom.presets import PRESETS

    if preset not in PRESETS:
        raise InputError(f"unknown preset '{preset}' (choose from {', '.join(PRESETS)})")
    if patients < 1:
        raise InputError(f"--patients must be at least 1, got {patients}")
    if seed < 0:
        raise InputError(f"--seed must be >= 0, got {seed}")
    if not 0.0 <= male_fraction <= 1.0:
        raise InputError(f"--male-fraction must be between 0 and 1, got {male_fraction}")
    folders = write_cohort(out, patients, seed, preset, male_fraction=male_fraction)
    log.info("wrote %d %s phantom patients to %s", len(folders), preset, out)
