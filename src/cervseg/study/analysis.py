"""The numbers of a study report: per-arm summaries over seeds, paired tests, claim verdicts.

Summaries (the papers' tables): a run's value of a structure is its 2D mean over the
paired slices of all test patients pooled (``*_2d``, as the papers average), or its mean
over the test patients (``*_3d``); an arm's cell is the mean ± SD (ddof 1) of its runs'
values over seeds. Tests pair the scores of one test patient by the arm's and the
baseline's runs of the same seed (cervseg.study.stats).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from cervseg.metrics.evaluate import METRICS
from cervseg.report.tables import Summary, summarise_values
from cervseg.study.config import ClaimConfig, StudyConfig
from cervseg.study.results import SLICE_COLUMNS, RunScores
from cervseg.study.stats import PairedTest, paired_wilcoxon, verdict

#: The papers' tables: DSC and HD95, per slice (2D) and per patient (3D).
TABLE_METRICS = ("dice_2d", "hd95_2d_mm", "dice_3d", "hd95_3d_mm")
MEAN_OF = "mean of"  # structure label of a scope-`mean` test


def run_value(scores: RunScores, structure: str, metric: str) -> float:
    """One run's figure for a structure: pooled over slices (2D) or mean over patients (3D)."""
    if metric in SLICE_COLUMNS:
        values = np.asarray(scores.per_slice.get((structure, metric), []), dtype=float)
    else:
        values = np.asarray([scores.value(p, structure, metric) for p in scores.patients], dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def arm_summary(runs: Sequence[RunScores], structure: str, metric: str) -> Summary:
    """Mean ± SD over the arm's runs (seeds) of their values."""
    values = np.asarray([run_value(r, structure, metric) for r in runs], dtype=float)
    return summarise_values(structure, metric, values[np.isfinite(values)])


def by_label(scores: Sequence[RunScores]) -> dict[str, list[RunScores]]:
    grouped: dict[str, list[RunScores]] = {}
    for s in scores:
        grouped.setdefault(s.run.label, []).append(s)
    return grouped


def arm_values(runs: Sequence[RunScores], structure: str, metric: str) -> list[float]:
    """The arm's defined values of one structure, one per (patient, seed): what its box plot shows."""
    values = [r.value(p, structure, metric) for r in runs for p in r.patients]
    return [v for v in values if math.isfinite(v)]


def paired_values(arm: Sequence[RunScores], baseline: Sequence[RunScores], structures: Sequence[str],
                  metric: str) -> tuple[list[float], list[float]]:
    """(arm, baseline) values per (patient, seed) both scored; over several structures, their mean."""
    base_by_seed = {r.run.seed: r for r in baseline}
    a_values, b_values = [], []
    for a in sorted(arm, key=lambda r: r.run.seed):
        b = base_by_seed.get(a.run.seed)
        if b is None:
            continue
        for patient in sorted(set(a.patients) & set(b.patients)):
            pa = [a.value(patient, s, metric) for s in structures]
            pb = [b.value(patient, s, metric) for s in structures]
            if all(map(math.isfinite, pa + pb)):
                a_values.append(float(np.mean(pa)))
                b_values.append(float(np.mean(pb)))
    return a_values, b_values


@dataclass(frozen=True)
class TestRow:
    claim: str
    arm: str
    baseline: str
    structure: str
    metric: str
    test: PairedTest


@dataclass(frozen=True)
class ClaimResult:
    claim: ClaimConfig
    arm: str  # arm label (with its width, if any)
    baselines: list[str]
    structures: list[str]
    tests: list[TestRow]
    verdict: str
    missing_runs: list[str]


def claim_structures(claim: ClaimConfig, grouped: Mapping[str, Sequence[RunScores]], labels: Sequence[str]) -> list[str]:
    """The claim's structures, or every structure the arm and all its baselines scored."""
    if claim.structures is not None:
        return list(claim.structures)
    scored = [set(s for r in grouped.get(label, []) for s in r.structures) for label in labels]
    first = [s for r in grouped.get(labels[0], []) for s in r.structures]
    common = set.intersection(*scored) if scored else set()
    return [s for s in dict.fromkeys(first) if s in common]


def evaluate_claim(claim: ClaimConfig, cfg: StudyConfig, grouped: Mapping[str, Sequence[RunScores]],
                   missing: Sequence[str], width: int | None) -> ClaimResult:
    """Every test of one claim (per baseline, and per structure for scope `each`) and its verdict."""
    label = claim.arm if width is None else f"{claim.arm}-w{width}"
    baselines = [b if width is None else f"{b}-w{width}" for b in claim.baselines]
    structures = claim_structures(claim, grouped, [label, *baselines])
    groups = [[s] for s in structures] if claim.scope == "each" else [structures]
    tests = []
    for baseline in baselines:
        for group in groups:
            if not group:
                continue
            a, b = paired_values(grouped.get(label, []), grouped.get(baseline, []), group, claim.metric)
            name = group[0] if claim.scope == "each" else f"{MEAN_OF} {len(group)}"
            tests.append(TestRow(claim.id, label, baseline, name, claim.metric, paired_wilcoxon(a, b)))
    higher = METRICS[claim.metric].better == "higher"
    involved = {label, *baselines}
    missing_here = [m for m in missing if m.rsplit("-s", 1)[0] in involved]
    return ClaimResult(claim, label, baselines, structures, tests, verdict([t.test for t in tests], higher, cfg.alpha),
                       missing_here)


def evaluate_claims(cfg: StudyConfig, scores: Sequence[RunScores], missing: Sequence[str]) -> list[ClaimResult]:
    grouped = by_label(scores)
    return [evaluate_claim(c, cfg, grouped, missing, w) for c in cfg.claims for w in (cfg.widths or [None])]
