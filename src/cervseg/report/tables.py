"""Summary statistics per structure (paper 000 Table 1) and model comparison tables (paper 001 Table 1).

What a summary is computed over, stated once:
- slice metrics (``*_2d``): mean ± SD over all paired slices of all patients pooled, as the
  papers average their DSC and 95HD over 2D slices;
- every other metric: mean ± SD over patients (one value per patient; undefined values,
  e.g. HD95 of an empty prediction, are left out and ``n`` says how many remain).
SD is the sample standard deviation (ddof = 1); empty when n < 2.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from cervseg.metrics.evaluate import METRICS, CaseResult, format_value
from cervseg.metrics.overlap import dice
from cervseg.metrics.slicewise import PAIRED
from cervseg.metrics.surface import surface_distances
from cervseg.volume import LabelMap

#: The columns of the per-structure summary table in the report (Table-1 style).
TABLE_METRICS = (
    "dice_2d", "hd95_2d_mm", "dice_3d", "hd95_3d_mm", "msd_3d_mm", "surface_dice_3d",
    "apl_mm", "volume_diff_pct", "slices_missed", "slices_false_positive",
)
#: The metrics compared between models (best value per structure marked).
COMPARE_METRICS = ("dice_2d", "hd95_2d_mm", "dice_3d", "hd95_3d_mm", "msd_3d_mm", "surface_dice_3d", "apl_mm")


@dataclass(frozen=True)
class Summary:
    """Distribution of one metric of one structure."""

    structure: str
    metric: str
    over: str  # "slice" or "patient"
    n: int
    mean: float
    sd: float
    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float

    def mean_sd(self) -> str:
        return format_mean_sd(self.mean, self.sd, self.metric)


def decimals(metric: str) -> int:
    """Digits shown in tables: 3 for ratios, 2 for mm (0 for path lengths), 1 for ml, % and counts."""
    unit = METRICS[metric].unit
    if metric == "apl_mm":
        return 0
    if metric.startswith("slices_") or unit in ("ml", "%"):
        return 1
    return 2 if unit == "mm" else 3


def format_mean_sd(mean: float, sd: float, metric: str) -> str:
    """'0.852 ± 0.041'; '–' when undefined; the mean alone when SD is undefined."""
    if math.isnan(mean):
        return "–"
    d = decimals(metric)
    return f"{mean:.{d}f}" if math.isnan(sd) else f"{mean:.{d}f} ± {sd:.{d}f}"


def structures_of(cases: Sequence[CaseResult]) -> list[str]:
    """Structures in order of first appearance."""
    seen: dict[str, None] = {}
    for case in cases:
        for row in case.rows:
            seen.setdefault(row.structure, None)
    return list(seen)


def metric_values(cases: Sequence[CaseResult], structure: str, metric: str) -> np.ndarray:
    """The values a summary is computed over: pooled paired slices, or one per patient (NaN dropped)."""
    info = METRICS[metric]
    if info.over == "slice":
        values = [
            getattr(s, info.slice_field)
            for case in cases
            for s in case.slices.get(structure, [])
            if s.status == PAIRED
        ]
    else:
        values = [r.value for case in cases for r in case.rows if r.structure == structure and r.metric == metric]
    arr = np.asarray(values, dtype=float)
    return arr[~np.isnan(arr)]


def summarise_values(structure: str, metric: str, values: np.ndarray) -> Summary:
    nan = math.nan
    n = int(values.size)
    if n == 0:
        return Summary(structure, metric, METRICS[metric].over, 0, nan, nan, nan, nan, nan, nan, nan)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return Summary(
        structure, metric, METRICS[metric].over, n, float(values.mean()),
        float(values.std(ddof=1)) if n > 1 else nan, float(median), float(q1), float(q3),
        float(values.min()), float(values.max()),
    )


def summarise(cases: Sequence[CaseResult]) -> list[Summary]:
    """One Summary per structure x metric."""
    return [
        summarise_values(structure, metric, metric_values(cases, structure, metric))
        for structure in structures_of(cases)
        for metric in METRICS
    ]


SUMMARY_COLUMNS = ("structure", "metric", "unit", "over", "n", "mean", "sd", "median", "q1", "q3", "min", "max", "mean_sd")


def write_summary_csv(summaries: Sequence[Summary], path: Path, model: str | None = None, append: bool = False) -> None:
    """summary.csv: one row per structure x metric (a model column first when given)."""
    with open(path, "a" if append else "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        prefix = [model] if model is not None else []
        if not append:
            writer.writerow((["model"] if model is not None else []) + list(SUMMARY_COLUMNS))
        for s in summaries:
            writer.writerow(prefix + [
                s.structure, s.metric, METRICS[s.metric].unit, s.over, s.n,
                *(format_value(v) for v in (s.mean, s.sd, s.median, s.q1, s.q3, s.minimum, s.maximum)),
                s.mean_sd(),
            ])


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False


@dataclass
class Table:
    """A rendered table: column headers and rows of cells (shared by the CSV and HTML writers)."""

    columns: list[str]
    rows: list[list[Cell]]

    def write_csv(self, path: Path, best_mark: str = " *") -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(self.columns)
            for row in self.rows:
                writer.writerow([c.text + (best_mark if c.best else "") for c in row])


def header(metric: str) -> str:
    info = METRICS[metric]
    return f"{info.label} ({info.unit})" if info.unit else info.label


def summary_table(summaries: Sequence[Summary], metrics: Sequence[str] = TABLE_METRICS) -> Table:
    """Structures as rows, metrics as 'mean ± SD' columns (paper 000 Table 1)."""
    by_key = {(s.structure, s.metric): s for s in summaries}
    structures = list(dict.fromkeys(s.structure for s in summaries))
    rows = []
    for structure in structures:
        n_patients = max((by_key[structure, m].n for m in METRICS if METRICS[m].over == "patient" and (structure, m) in by_key), default=0)
        rows.append([Cell(structure), Cell(str(n_patients))] + [Cell(by_key[structure, m].mean_sd()) for m in metrics])
    return Table(["Structure", "Patients"] + [header(m) for m in metrics], rows)


def best_models(by_model: Mapping[str, Mapping[tuple[str, str], Summary]], structure: str, metric: str) -> set[str]:
    """Models whose mean is best for this structure and metric (ties all marked)."""
    better = METRICS[metric].better
    means = {
        model: s[structure, metric].mean
        for model, s in by_model.items()
        if (structure, metric) in s and not math.isnan(s[structure, metric].mean)
    }
    if not better or len(means) < 2:
        return set()
    score = {"higher": lambda v: -v, "lower": lambda v: v, "zero": abs}[better]
    best = min(score(v) for v in means.values())
    return {m for m, v in means.items() if math.isclose(score(v), best, rel_tol=1e-9, abs_tol=1e-12)}


def compare_table(summaries: Mapping[str, Sequence[Summary]], metrics: Sequence[str] = COMPARE_METRICS) -> Table:
    """Structures as rows; for each metric one 'mean ± SD' column per model, the best marked."""
    by_model = {model: {(s.structure, s.metric): s for s in rows} for model, rows in summaries.items()}
    structures = list(dict.fromkeys(s.structure for rows in summaries.values() for s in rows))
    columns = ["Structure"] + [f"{header(m)} {model}" for m in metrics for model in by_model]
    table_rows = []
    for structure in structures:
        row = [Cell(structure)]
        for metric in metrics:
            best = best_models(by_model, structure, metric)
            for model, s in by_model.items():
                summary = s.get((structure, metric))
                row.append(Cell(summary.mean_sd() if summary else "–", model in best))
        table_rows.append(row)
    return Table(columns, table_rows)


def score_table(truth: LabelMap, predicted: LabelMap) -> str:
    """Dice and HD95 (3D, mm) per structure, and both volumes: what `cervseg demo` prints."""
    spacing = truth.geometry.spacing
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lines = [f"{'structure':<14}{'Dice':>7}{'HD95 mm':>9}{'truth ml':>10}{'auto ml':>9}"]
    for name in truth:
        reference = truth[name]
        auto = predicted[name] if name in predicted else np.zeros_like(reference)
        hd95 = surface_distances(reference, auto, spacing).hd95()
        lines.append(f"{name:<14}{dice(reference, auto):>7.3f}{hd95:>9.1f}"
                     f"{reference.sum() * voxel_ml:>10.1f}{auto.sum() * voxel_ml:>9.1f}")
    return "\n".join(lines)
