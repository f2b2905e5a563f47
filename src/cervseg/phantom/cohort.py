"""write_cohort(out, n, seed, preset): one folder per synthetic patient, DICOM CT series + RTSTRUCT.

Layout::

    OUT/cohort.json                  preset, seed, male fraction and per-patient facts (sex, slices,
                                     spacing, volumes, IV contrast, metal hip side, arm position)
    OUT/PH<seed>-<i>/CT/CT_0001.dcm  the CT series
    OUT/PH<seed>-<i>/RS_<SeriesInstanceUID>.dcm

Each patient folder appears only when complete (atomic rename), so an interrupted run leaves
no half-written patient. Patient i of a cohort has its own seed drawn from the cohort seed,
so cohorts of different seeds never share patients and the first k patients of a cohort do
not depend on how many were asked for.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from cervseg.dicom.rtstruct_write import write_rtstruct
from cervseg.dicom.series_write import write_ct_series
from cervseg.errors import InputError
from cervseg.outputs import atomic_dir, atomic_file
from cervseg.phantom.generator import generate_case
from cervseg.phantom.presets import get_preset
from cervseg.progress import progress

log = logging.getLogger(__name__)


def patient_seeds(seed: int, n: int) -> list[int]:
    """The seeds of a cohort's patients (a prefix does not depend on ``n``)."""
    if n <= 0:
        return []
    return [int(v) for v in np.random.SeedSequence(int(seed)).generate_state(n, dtype=np.uint32)]


def patient_folder_name(seed: int, index: int) -> str:
    return f"PH{seed}-{index + 1:03d}"


def write_patient(folder: Path, patient_seed: int, preset: str, male_fraction: float = 0.0) -> dict:
    """Generate one patient and write it atomically into ``folder``; returns its facts."""
    case = generate_case(patient_seed, get_preset(preset).with_overrides(male_p=male_fraction))
    volume, labels = case.volume, case.labels
    with atomic_dir(folder) as tmp:
        written = write_ct_series(volume, tmp / "CT", series_description=f"cervseg phantom {preset}")
        rs_name = f"RS_{written.series.series_instance_uid}.dcm"
        write_rtstruct(labels, written, tmp / rs_name, label="phantom", description="cervseg phantom ground truth",
                       structure_set_name="phantom", roi_generation_algorithm="MANUAL",
                       write_empty=True)  # ground truth: a man's empty CTV_UV means "none", not "not drawn"
    g = volume.geometry
    return {
        "folder": folder.name,
        "seed": patient_seed,
        "sex": "M" if case.anatomy.male else "F",
        "slices": g.shape[0],
        "rows": g.shape[1],
        "columns": g.shape[2],
        "spacing_mm": [round(v, 4) for v in g.spacing],
        "series_instance_uid": written.series.series_instance_uid,
        "volumes_ml": {name: round(labels.voxel_volume_ml(name), 2) for name in labels},
        # what a model trained on the cohort saw: contrast, metal (patient side), arm position
        "iv_contrast": bool(case.anatomy.contrast.iv),
        "metal_hip": {1: "left", -1: "right"}.get(case.realism.metal_side),
        "arms": "beside" if case.realism.arms.beside else "raised",
    }


def write_cohort(out: Path, n: int, seed: int = 0, preset: str = "default",
                 on_patient: Callable[[int], None] | None = None, male_fraction: float = 0.0) -> list[Path]:
    """Write ``n`` synthetic patients under ``out``; returns their folders.

    ``out`` may exist; patient folders of the same names are replaced whole. ``male_fraction``:
    the probability of each patient being male (prostate, no uterus, an empty CTV_UV); the
    female patients are the same whatever it is.
    """
    if n < 1:
        raise InputError(f"the number of patients must be at least 1, got {n}")
    if not 0.0 <= male_fraction <= 1.0:
        raise InputError(f"the male fraction must be between 0 and 1, got {male_fraction}")
    p = get_preset(preset)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    seeds = patient_seeds(seed, n)
    facts, folders = [], []
    for i, s in enumerate(progress(seeds, "phantom patients", total=n)):
        folder = out / patient_folder_name(seed, i)
        facts.append(write_patient(folder, s, p.name, male_fraction))
        folders.append(folder)
        log.info("%s: %d slices of %.1f mm", folder, facts[-1]["slices"], facts[-1]["spacing_mm"][0])
        if on_patient is not None:
            on_patient(i)
    manifest = {"generator": "cervseg.phantom", "preset": p.name, "seed": seed, "male_fraction": male_fraction,
                "patients": facts}
    with atomic_file(out / "cohort.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return folders
