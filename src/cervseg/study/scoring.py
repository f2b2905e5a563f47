"""Score one run: contour the study's test patients with its best checkpoint, as `segment` would.

Why the daily path and not the validation Dice of training: the papers' figures are of
the contours a clinic gets, after post-processing and with the femoral heads sided by
patient x, so each test CT goes through cervseg.infer.contour_case and is scored with
cervseg.metrics.evaluate_case (3D per patient and 2D per slice). The scores folder is
written atomically: it exists only when complete, which is how a rerun knows a run is done.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from cervseg.data.cache import Cache
from cervseg.errors import InputError
from cervseg.infer.predictor import Predictor
from cervseg.infer.segment import contour_case
from cervseg.metrics.evaluate import CaseResult, evaluate_case, write_metrics_csv, write_slices_csv
from cervseg.outputs import atomic_dir

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"
SLICES_FILE = "slices.csv"


def score_patients(checkpoint: Path, cache: Cache, patients: Sequence[str], threads: int | None = None) -> list[CaseResult]:
    """Every metric of every structure of the checkpoint on each patient of the cache.

    A structure the model did not produce counts as a complete miss (score_missing): a run
    that contours nothing must not look better for it.
    """
    predictor = Predictor.from_checkpoint(checkpoint, threads=threads)
    cases = []
    for pid in patients:
        reference = cache.labelmap(pid, predictor.structures)
        labels, _ = contour_case(predictor, cache.volume(pid), show_progress=False)
        cases.append(evaluate_case(pid, reference, labels, score_missing=True))
    return cases


def score_extra_cases(checkpoint: Path, cases: Path, names: Path | None = None,
                      threads: int | None = None) -> list[CaseResult]:
    """The checkpoint on each case of an extra test set, on the structures drawn there that it predicts.

    Cases are read as `cervseg evaluate --reference` reads them (metrics.cases), so a clinic's
    ROI names are matched through the catalogue and a names file.
    """
    from cervseg.metrics.cases import CaseReader, evaluation_template, find_cases
    from cervseg.structures import Catalogue

    predictor = Predictor.from_checkpoint(checkpoint, threads=threads)
    catalogue = Catalogue.builtin(names)
    reader = CaseReader(catalogue, evaluation_template(catalogue))
    results = []
    for case in find_cases(Path(cases), "extra test set")[1]:
        reference = reader.reference(case)
        if reference.image is None:
            raise InputError(f"{case.path}: an extra test case needs its CT (DICOM, or image.nii.gz beside masks/)")
        labels, _ = contour_case(predictor, reference.image, show_progress=False)
        common = [n for n in reference.labels if n in labels]
        if not common:
            raise InputError(f"{case.path}: none of its structures ({', '.join(reference.labels) or 'none'}) "
                             f"is predicted by the study's model ({', '.join(labels)})")
        results.append(evaluate_case(case.patient, reference.labels, labels, structures=common))
    return results


def write_scores(cases: Sequence[CaseResult], folder: Path) -> None:
    """metrics.csv (per patient) and slices.csv (per slice), as `cervseg evaluate` writes them."""
    with atomic_dir(Path(folder), overwrite=True) as tmp:
        write_metrics_csv(cases, tmp / METRICS_FILE)
        write_slices_csv(cases, tmp / SLICES_FILE)
    log.info("scores of %d test patient(s) written to %s", len(cases), folder)


def is_scored(folder: Path) -> bool:
    return (Path(folder) / METRICS_FILE).is_file() and (Path(folder) / SLICES_FILE).is_file()
