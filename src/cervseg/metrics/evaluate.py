"""Rows per case x structure x metric: the numbers behind metrics.csv, slices.csv and the report.

A case is a reference LabelMap and a prediction LabelMap on the same grid. Every metric
has one name in METRICS with its unit and which direction is better, so that tables can
mark the best model without guessing. 3D figures and slice averages are separate names
(``dice_3d`` vs ``dice_2d``): the papers report the slice averages, clinics also want 3D.
Definitions: overlap.py, surface.py, slicewise.py and docs/evaluation.md.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from cervseg.errors import GeometryError, InputError, StructureError
from cervseg.metrics import overlap
from cervseg.metrics.slicewise import FALSE_POSITIVE, MISSED, PAIRED, SliceResult, mean_over_paired, slice_metrics
from cervseg.metrics.surface import DEFAULT_TOLERANCE_MM, surface_distances, union_box
from cervseg.volume import LabelMap

log = logging.getLogger(__name__)

REFERENCE_EMPTY = "reference empty"

# The four levels of paper 000 / 001 for the oncologist's per-slice grading (column "grade").
GRADES = ("Acceptable", "Minor revision", "Major revision", "Not acceptable")


@dataclass(frozen=True)
class MetricInfo:
    """What a metric name means: unit, better direction and what it is computed over."""

    name: str
    label: str  # short column header for tables and plots
    unit: str  # "" for unitless
    better: str  # "higher", "lower", "zero" (closest to 0 is best) or "" (descriptive only)
    over: str  # "patient" (one value per case) or "slice" (pooled over paired slices in summaries)
    description: str

    @property
    def slice_field(self) -> str:
        """The SliceResult attribute a slice metric averages ('' for patient metrics)."""
        return SLICE_FIELDS.get(self.name, "")


SLICE_FIELDS = {
    "dice_2d": "dice", "hd95_2d_mm": "hd95_mm", "hd_2d_mm": "hd_mm",
    "msd_2d_mm": "msd_mm", "surface_dice_2d": "surface_dice",
}


def _m(name: str, label: str, unit: str, better: str, over: str, description: str) -> MetricInfo:
    return MetricInfo(name, label, unit, better, over, description)


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        _m("dice_2d", "DSC 2D", "", "higher", "slice", "Dice averaged over paired slices (papers 000/001)"),
        _m("hd95_2d_mm", "HD95 2D", "mm", "lower", "slice", "95th percentile of pooled in-plane boundary distances, averaged over paired slices"),
        _m("hd_2d_mm", "HD 2D", "mm", "lower", "slice", "Hausdorff distance per slice, averaged over paired slices"),
        _m("msd_2d_mm", "MSD 2D", "mm", "lower", "slice", "mean symmetric surface distance per slice, averaged over paired slices"),
        _m("surface_dice_2d", "sDSC 2D", "", "higher", "slice", "surface Dice at the tolerance per slice, averaged over paired slices"),
        _m("dice_3d", "DSC 3D", "", "higher", "patient", "Dice of the whole 3D structure"),
        _m("jaccard_3d", "Jaccard 3D", "", "higher", "patient", "intersection over union in 3D"),
        _m("hd95_3d_mm", "HD95 3D", "mm", "lower", "patient", "95th percentile of pooled 3D boundary distances"),
        _m("hd_3d_mm", "HD 3D", "mm", "lower", "patient", "3D Hausdorff distance (maximum boundary distance)"),
        _m("msd_3d_mm", "MSD 3D", "mm", "lower", "patient", "mean symmetric 3D surface distance"),
        _m("surface_dice_3d", "sDSC 3D", "", "higher", "patient", "3D surface Dice at the tolerance"),
        _m("apl_mm", "APL", "mm", "lower", "patient", "added path length: reference contour farther than the tolerance from the prediction, summed over slices (missed slices included)"),
        _m("volume_ref_ml", "Vol ref", "ml", "", "patient", "reference volume"),
        _m("volume_pred_ml", "Vol pred", "ml", "", "patient", "predicted volume"),
        _m("volume_diff_pct", "dVol", "%", "zero", "patient", "100 (pred - ref) / ref"),
        _m("slices_reference", "slices ref", "", "", "patient", "slices where the reference is present"),
        _m("slices_paired", "paired", "", "", "patient", "slices where both are present"),
        _m("slices_missed", "missed", "", "lower", "patient", "slices with the reference but no prediction"),
        _m("slices_false_positive", "false pos.", "", "lower", "patient", "slices with a prediction but no reference"),
    )
}


@dataclass(frozen=True)
class MetricRow:
    """One line of metrics.csv."""

    patient: str
    structure: str
    metric: str
    value: float


@dataclass
class CaseResult:
    """All measures of one patient: metric rows and the per-slice results per structure."""

    patient: str
    rows: list[MetricRow] = field(default_factory=list)
    slices: dict[str, list[SliceResult]] = field(default_factory=dict)
    not_evaluated: dict[str, str] = field(default_factory=dict)  # structure -> why (one side only)

    def value(self, structure: str, metric: str) -> float:
        for row in self.rows:
            if row.structure == structure and row.metric == metric:
                return row.value
        raise KeyError((structure, metric))


def structure_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    labels: LabelMap,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
) -> tuple[dict[str, float], list[SliceResult]]:
    """All METRICS of one structure (3D and slice-averaged) and its per-slice results."""
    geometry = labels.geometry
    # crop once to the union (one pass over the CT-sized arrays); every measure below is
    # unchanged by a crop with a one-voxel margin (see surface.crop_to_union)
    box = union_box(reference, prediction, margin=1) or tuple(slice(0, 0) for _ in geometry.shape)
    reference, prediction = reference[box], prediction[box]
    slices = slice_metrics(reference, prediction, geometry, tolerance_mm, box=box) if reference.size else []
    distances = surface_distances(reference, prediction, geometry.spacing)
    statuses = [s.status for s in slices]
    values = {metric: mean_over_paired(slices, attribute) for metric, attribute in SLICE_FIELDS.items()}
    values.update({
        "dice_3d": overlap.dice(reference, prediction),
        "jaccard_3d": overlap.jaccard(reference, prediction),
        "hd95_3d_mm": distances.hd95(),
        "hd_3d_mm": distances.hausdorff(),
        "msd_3d_mm": distances.mean(),
        "surface_dice_3d": distances.surface_dice(tolerance_mm),
        "apl_mm": float(sum(s.apl_mm for s in slices)),
        "volume_ref_ml": overlap.volume_ml(reference, geometry.spacing),
        "volume_pred_ml": overlap.volume_ml(prediction, geometry.spacing),
        "volume_diff_pct": overlap.volume_difference_percent(reference, prediction),
        "slices_reference": float(statuses.count(PAIRED) + statuses.count(MISSED)),
        "slices_paired": float(statuses.count(PAIRED)),
        "slices_missed": float(statuses.count(MISSED)),
        "slices_false_positive": float(statuses.count(FALSE_POSITIVE)),
    })
    return values, slices


def common_structures(reference: LabelMap, prediction: LabelMap, patient: str = "") -> list[str]:
    """Structures in both label maps, in reference order; a clear error when there are none."""
    common = [name for name in reference if name in prediction]
    where = f"patient {patient}: " if patient else ""
    if not common:
        raise StructureError(
            f"{where}no structures in common between reference ({', '.join(reference) or 'none'}) "
            f"and prediction ({', '.join(prediction) or 'none'})"
        )
    only_ref = [n for n in reference if n not in prediction]
    only_pred = [n for n in prediction if n not in reference]
    if only_ref:
        log.warning("%sreference structures without a prediction (not evaluated): %s", where, ", ".join(only_ref))
    if only_pred:
        log.warning("%spredicted structures without a reference (not evaluated): %s", where, ", ".join(only_pred))
    return common


def evaluate_case(
    patient: str,
    reference: LabelMap,
    prediction: LabelMap,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    structures: Sequence[str] | None = None,
    score_missing: bool = False,
) -> CaseResult:
    """Every metric of every common structure of one patient.

    ``score_missing``: a reference structure with no prediction at all counts as a complete
    miss (an empty predicted mask) instead of being listed as not evaluated. Why: a model
    that was asked for a structure (a template) and produced none must not look better
    for it; an RTSTRUCT simply leaves an empty structure out.
    """
    if not reference.geometry.same_grid(prediction.geometry):
        raise GeometryError(
            f"patient {patient}: prediction grid {prediction.geometry.describe()} does not match "
            f"reference grid {reference.geometry.describe()} (resample the prediction first)"
        )
    if score_missing:
        missed = [n for n in reference if n not in prediction]
        if missed:
            log.warning("patient %s: no prediction of %s: scored as complete misses", patient, ", ".join(missed))
        prediction = LabelMap(prediction.geometry, {
            **dict(prediction.items()), **{n: np.zeros(reference.geometry.shape, bool) for n in missed}})
    names = list(structures) if structures is not None else common_structures(reference, prediction, patient)
    result = CaseResult(patient)
    # a reference that rasterises to nothing (contours between slices, outside the CT) cannot
    # be missed: scoring it would report Dice 0 for a model that did nothing wrong
    empty = [n for n in reference if not reference[n].any()]
    if empty:
        log.warning("patient %s: reference empty on this CT, not scored: %s", patient, ", ".join(empty))
    names = [n for n in names if n not in empty]
    for name in reference:
        if name in empty:
            result.not_evaluated[name] = REFERENCE_EMPTY
        elif name not in prediction:
            result.not_evaluated[name] = "no prediction"
    for name in prediction:
        if name not in reference:
            result.not_evaluated[name] = "no reference"
    for name in names:
        values, slices = structure_metrics(reference[name], prediction[name], reference, tolerance_mm)
        result.rows.extend(MetricRow(patient, name, metric, values[metric]) for metric in METRICS)
        result.slices[name] = slices
        log.debug("%s %s: dice_3d=%.4f hd95_3d=%.2f mm", patient, name, values["dice_3d"], values["hd95_3d_mm"])
    return result


def format_value(value: float) -> str:
    """CSV cell: empty for NaN (undefined), otherwise up to 6 significant decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.1f}"


def write_metrics_csv(cases: Iterable[CaseResult], path: Path, model: str | None = None) -> None:
    """metrics.csv: patient, structure, metric, value, unit, note (a model column first when given).

    A structure that was not scored gets one row with metric ``not_evaluated``, no value and
    the reason as note ("reference empty", "no prediction", "no reference").
    """
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow((["model"] if model is not None else []) + ["patient", "structure", "metric", "value", "unit", "note"])
        prefix = [model] if model is not None else []
        for case in cases:
            for row in case.rows:
                cells = [row.patient, row.structure, row.metric, format_value(row.value), METRICS[row.metric].unit, ""]
                writer.writerow(prefix + cells)
            for structure, why in case.not_evaluated.items():
                writer.writerow(prefix + [case.patient, structure, "not_evaluated", "", "", why])


SLICE_COLUMNS = (
    "patient", "slice_index", "slice_z_mm", "structure", "status", "dice", "hd95_mm", "hd_mm",
    "msd_mm", "surface_dice", "apl_mm", "reference_pixels", "prediction_pixels", "grade",
)


def write_slices_csv(
    cases: Iterable[CaseResult], path: Path, model: str | None = None,
    grades: Mapping[tuple[str, ...], str] | None = None,
) -> set[tuple[str, ...]]:
    """slices.csv: the per-slice review sheet, with a ``grade`` column (one of GRADES).

    ``grades`` (from ``read_grades`` of a previous sheet) fills the grade of every row whose
    other cells are unchanged, i.e. the same contours on the same slice; returns the keys used.
    """
    used: set[tuple[str, ...]] = set()
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        prefix = ["model"] if model is not None else []
        writer.writerow(prefix + list(SLICE_COLUMNS))
        for case in cases:
            for structure, slices in case.slices.items():
                for s in sorted(slices, key=lambda s: s.slice_index):
                    cells = [
                        case.patient, s.slice_index, f"{s.slice_z_mm:.2f}", structure, s.status,
                        format_value(s.dice), format_value(s.hd95_mm), format_value(s.hd_mm), format_value(s.msd_mm),
                        format_value(s.surface_dice), format_value(s.apl_mm), s.reference_pixels, s.prediction_pixels,
                    ]
                    row = ([model] if model is not None else []) + cells
                    key = tuple(str(c) for c in row)
                    grade = (grades or {}).get(key, "")
                    if grade:
                        used.add(key)
                    writer.writerow(row + [grade])
    return used


def read_grades(path: Path) -> dict[tuple[str, ...], str]:
    """{row cells without the grade: grade} of the graded rows of a previous slices.csv.

    Why: a reviewer grades slices in the sheet; a re-run must carry those grades over, not
    wipe them. A sheet cervseg cannot read is refused rather than overwritten.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the previous review sheet to carry its grades over ({exc}); "
                         "move it or choose a new --out") from None
    if not rows or not rows[0] or rows[0][-1] != "grade":
        raise InputError(f"{path}: previous review sheet has no 'grade' column as its last column; "
                         "move it or choose a new --out")
    width = len(rows[0])
    grades = {}
    for row in rows[1:]:
        if len(row) == width and row[-1].strip():
            grades[tuple(row[:-1])] = row[-1]
    return grades
