"""What a finished review says: the papers' Table 2, inter-reviewer kappa, grades vs metrics, time.

Why these four: Table 2 is how both papers report the oncologists' verdict; Cohen's weighted
kappa tells whether two reviewers' grades can be trusted (the four grades are ordered, so a
"Minor" vs "Major" disagreement counts less than "Acceptable" vs "Not acceptable"); grades
against slice Dice / HD95 / added path length show which geometric error the reviewers
punish; review time per slice is the cost the QA ordering tries to cut.

All figures use each reviewer's current grade (the latest) of every (case, slice, structure).
"""

from __future__ import annotations

import csv
import logging
import math
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from cervseg.metrics.evaluate import GRADES
from cervseg.outputs import atomic_file
from cervseg.review.store import Grade, ReviewStore, SliceMetric

log = logging.getLogger(__name__)

MEAN_ROW = "Mean Percentage"


def table2_rows(grades: Sequence[Grade], structures: Sequence[str] | None = None) -> list[dict[str, object]]:
    """One row per structure (counts and percentages of each grade) and the mean-percentage row.

    The mean percentage is the mean over structures of each structure's percentage, as in
    paper 001's Table 2 (so a structure with few slices weighs as much as one with many).
    """
    by_structure: dict[str, Counter] = defaultdict(Counter)
    for g in grades:
        by_structure[g.structure][g.grade] += 1
    names = [s for s in (structures or sorted(by_structure)) if s in by_structure]
    rows: list[dict[str, object]] = []
    for name in names:
        counts = by_structure[name]
        total = sum(counts.values())
        row: dict[str, object] = {"structure": name, "slices": total}
        for k, label in enumerate(GRADES, start=1):
            row[label] = counts[k]
            row[f"{label} %"] = round(100.0 * counts[k] / total, 2)
        rows.append(row)
    if rows:
        mean: dict[str, object] = {"structure": MEAN_ROW, "slices": sum(int(r["slices"]) for r in rows)}  # type: ignore[arg-type]
        for label in GRADES:
            mean[label] = ""
            mean[f"{label} %"] = round(statistics.fmean(float(r[f"{label} %"]) for r in rows), 2)  # type: ignore[arg-type]
        rows.append(mean)
    return rows


def table2_text(rows: Sequence[dict[str, object]]) -> list[list[str]]:
    """The rows as the papers print them: "616 (90.86%)" per grade, percentages only in the mean row."""
    out = [["Anatomy", *GRADES]]
    for r in rows:
        if r["structure"] == MEAN_ROW:
            out.append([MEAN_ROW, *(f"{float(r[f'{g} %']):.2f}%" for g in GRADES)])  # type: ignore[arg-type]
        else:
            out.append([str(r["structure"]), *(f"{r[g]} ({float(r[f'{g} %']):.2f}%)" for g in GRADES)])  # type: ignore[arg-type]
    return out


def weighted_kappa(a: Sequence[int], b: Sequence[int], categories: int = 4, weights: str = "linear") -> float:
    """Cohen's weighted kappa of two raters' ordinal grades 1..categories.

    kappa = 1 - sum(w * observed) / sum(w * expected), with disagreement weights
    w_ij = |i - j| (linear) or (i - j)^2 (quadratic), expected = outer product of the marginals.
    NaN when there are no pairs or when both raters used a single identical grade throughout.
    """
    a_arr, b_arr = np.asarray(a, dtype=int) - 1, np.asarray(b, dtype=int) - 1
    if len(a_arr) != len(b_arr):
        raise ValueError("both raters need the same number of grades")
    if len(a_arr) == 0:
        return math.nan
    observed = np.zeros((categories, categories))
    np.add.at(observed, (a_arr, b_arr), 1.0)
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.indices((categories, categories))
    if weights == "linear":
        w = np.abs(i - j).astype(float)
    elif weights == "quadratic":
        w = ((i - j) ** 2).astype(float)
    else:
        raise ValueError(f"weights must be 'linear' or 'quadratic', got {weights}")
    denominator = float((w * expected).sum())
    if denominator == 0:
        return math.nan
    return 1.0 - float((w * observed).sum()) / denominator


def kappa_rows(grades: Sequence[Grade]) -> list[dict[str, object]]:
    """Weighted kappa for every pair of reviewers over the (case, slice, structure) both graded."""
    by_reviewer: dict[str, dict[tuple[str, int, str], int]] = defaultdict(dict)
    for g in grades:
        by_reviewer[g.reviewer][(g.case_id, g.slice_index, g.structure)] = g.grade
    names = sorted(by_reviewer)
    rows = []
    for x in range(len(names)):
        for y in range(x + 1, len(names)):
            ra, rb = by_reviewer[names[x]], by_reviewer[names[y]]
            common = sorted(set(ra) & set(rb))
            a = [ra[k] for k in common]
            b = [rb[k] for k in common]
            rows.append({
                "reviewer_a": names[x], "reviewer_b": names[y], "common_items": len(common),
                "exact_agreement": round(sum(p == q for p, q in zip(a, b)) / len(common), 4) if common else "",
                "kappa_linear": _fmt(weighted_kappa(a, b, weights="linear")),
                "kappa_quadratic": _fmt(weighted_kappa(a, b, weights="quadratic")),
            })
    return rows


def _fmt(value: float | None) -> object:
    return "" if value is None or not math.isfinite(value) else round(value, 4)


def grade_metric_rows(grades: Sequence[Grade], metrics: Sequence[SliceMetric]) -> list[dict[str, object]]:
    """Each current grade beside its slice's Dice / HD95 / APL (only where a reference exists)."""
    by_key = {(m.case_id, m.slice_index, m.structure): m for m in metrics}
    rows = []
    for g in grades:
        m = by_key.get((g.case_id, g.slice_index, g.structure))
        if m is None:
            continue
        rows.append({"case": g.case_id, "slice_index": g.slice_index, "structure": g.structure,
                     "reviewer": g.reviewer, "grade": g.grade, "grade_label": g.label, "status": m.status,
                     "dice": _fmt(m.dice), "hd95_mm": _fmt(m.hd95_mm), "apl_mm": _fmt(m.apl_mm)})
    return rows


def review_time_rows(grades: Sequence[Grade]) -> list[dict[str, object]]:
    """Per reviewer: slices graded and the time spent per slice (the longest time on any of its grades)."""
    per_slice: dict[str, dict[tuple[str, int], float]] = defaultdict(dict)
    for g in grades:
        if g.seconds_on_slice is None:
            continue
        key = (g.case_id, g.slice_index)
        per_slice[g.reviewer][key] = max(per_slice[g.reviewer].get(key, 0.0), g.seconds_on_slice)
    rows = []
    for reviewer in sorted(per_slice):
        times = list(per_slice[reviewer].values())
        rows.append({"reviewer": reviewer, "slices": len(times),
                     "median_seconds_per_slice": round(statistics.median(times), 2),
                     "mean_seconds_per_slice": round(statistics.fmean(times), 2),
                     "total_minutes": round(sum(times) / 60.0, 2)})
    return rows


def _write_csv(path: Path, rows: Sequence[dict[str, object]] | Sequence[Sequence[str]], header: Sequence[str] | None = None) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        if header is not None:
            writer = csv.DictWriter(fh, fieldnames=list(header))
            writer.writeheader()
            writer.writerows(rows)  # type: ignore[arg-type]
        else:
            csv.writer(fh).writerows(rows)  # type: ignore[arg-type]


def _box_plots(rows: Sequence[dict[str, object]], out: Path) -> list[Path]:
    """grade_vs_<metric>.png: one box per grade (matplotlib imported here: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for metric, label in (("dice", "slice Dice"), ("hd95_mm", "slice HD95 (mm)"), ("apl_mm", "added path length (mm)")):
        data = [[float(r[metric]) for r in rows if r["grade"] == k and r[metric] != ""] for k in range(1, 5)]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.boxplot([d if d else [math.nan] for d in data], tick_labels=[f"{g}\n(n={len(d)})" for g, d in zip(GRADES, data)])
        ax.set_ylabel(label)
        ax.set_title(f"{label} by oncologist grade")
        fig.tight_layout()
        target = out / f"grade_vs_{metric.replace('_mm', '')}.png"
        with atomic_file(target) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        written.append(target)
    return written


def write_review_stats(store: ReviewStore, out: Path, reviewer: str | None = None) -> list[Path]:
    """Write table2.csv (+ table2_long.csv), kappa.csv, grade_vs_metrics.csv with box plots and review_time.csv."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    grades = store.current_grades()
    if not grades:
        log.warning("the review database holds no grades yet")
    table_grades = [g for g in grades if reviewer is None or g.reviewer == reviewer]
    written: list[Path] = []
    rows = table2_rows(table_grades)
    _write_csv(out / "table2.csv", table2_text(rows))
    long = [{"structure": r["structure"], "grade": g, "count": r[g], "percent": r[f"{g} %"]} for r in rows for g in GRADES]
    _write_csv(out / "table2_long.csv", long, ["structure", "grade", "count", "percent"])
    written += [out / "table2.csv", out / "table2_long.csv"]
    kappas = kappa_rows(grades)
    _write_csv(out / "kappa.csv", kappas,
               ["reviewer_a", "reviewer_b", "common_items", "exact_agreement", "kappa_linear", "kappa_quadratic"])
    written.append(out / "kappa.csv")
    versus = grade_metric_rows(grades, store.slice_metrics())
    _write_csv(out / "grade_vs_metrics.csv", versus,
               ["case", "slice_index", "structure", "reviewer", "grade", "grade_label", "status", "dice", "hd95_mm", "apl_mm"])
    written.append(out / "grade_vs_metrics.csv")
    if versus:
        written += _box_plots(versus, out)
    else:
        log.info("no graded slice has a reference contour: no grade-vs-metric box plots")
    _write_csv(out / "review_time.csv", review_time_rows(grades),
               ["reviewer", "slices", "median_seconds_per_slice", "mean_seconds_per_slice", "total_minutes"])
    written.append(out / "review_time.csv")
    for r in table2_text(rows)[1:]:
        log.info("%s", " | ".join(r))
    for k in kappas:
        log.info("kappa %s vs %s on %s items: linear %s, quadratic %s", k["reviewer_a"], k["reviewer_b"],
                 k["common_items"], k["kappa_linear"], k["kappa_quadratic"])
    return written
