"""`study-report`: the papers' tables, the paired tests, box plots and a verdict per claim.

Output folder::

    report.md        everything below, readable as it is and pasteable into docs/
    tables.csv       arm, structure, metric, runs, mean, sd, best (long format)
    table_<metric>.csv  structures x arms, 'mean ± SD', the best per structure marked ' *'
    tests.csv        claim, arm, baseline, structure, metric, pairs, nonzero, median difference,
                     rank-biserial r, W, raw p, significant
    verdicts.csv     claim, text, arm, baselines, verdict, tests, missing runs
    box_<claim>.png  the claim's per-(patient, seed) values, one box per arm and structure
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Sequence

from cervseg.errors import InputError
from cervseg.metrics.evaluate import METRICS, format_value
from cervseg.outputs import atomic_dir, ensure_apart
from cervseg.report.tables import Summary, best_models, header
from cervseg.study.analysis import TABLE_METRICS, ClaimResult, arm_summary, arm_values, by_label, evaluate_claims
from cervseg.study.config import StudyConfig
from cervseg.study.results import RunScores, load_study, read_scores
from cervseg.study.stats import smallest_p

log = logging.getLogger(__name__)


def _summaries(grouped: dict[str, list[RunScores]], labels: Sequence[str], structures: Sequence[str],
               metric: str) -> dict[str, dict[tuple[str, str], Summary]]:
    return {label: {(s, metric): arm_summary(grouped[label], s, metric) for s in structures}
            for label in labels if label in grouped}


def markdown_table(grouped: dict[str, list[RunScores]], labels: Sequence[str], structures: Sequence[str],
                   metric: str) -> list[str]:
    """Structures x arms, 'mean ± SD' over seeds, the best per structure in bold."""
    by_arm = _summaries(grouped, labels, structures, metric)
    shown = [label for label in labels if label in by_arm]
    lines = [f"| {header(metric)} | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
    for s in structures:
        best = best_models(by_arm, s, metric)
        cells = [by_arm[a][s, metric].mean_sd() for a in shown]
        cells = [f"**{c}**" if a in best else c for a, c in zip(shown, cells)]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def write_table_csvs(folder: Path, grouped: dict[str, list[RunScores]], labels: Sequence[str],
                     structures: Sequence[str]) -> None:
    with open(folder / "tables.csv", "w", newline="", encoding="utf-8") as fh:
        long = csv.writer(fh)
        long.writerow(["arm", "structure", "metric", "runs", "mean", "sd", "best"])
        for metric in TABLE_METRICS:
            by_arm = _summaries(grouped, labels, structures, metric)
            with open(folder / f"table_{metric}.csv", "w", newline="", encoding="utf-8") as wf:
                wide = csv.writer(wf)
                wide.writerow(["structure", *by_arm])
                for s in structures:
                    best = best_models(by_arm, s, metric)
                    wide.writerow([s, *(by_arm[a][s, metric].mean_sd() + (" *" if a in best else "") for a in by_arm)])
                    for a, summaries in by_arm.items():
                        x = summaries[s, metric]
                        long.writerow([a, s, metric, x.n, format_value(x.mean), format_value(x.sd), int(a in best)])


def write_tests_csv(path: Path, claims: Sequence[ClaimResult], alpha: float) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["claim", "arm", "baseline", "structure", "metric", "pairs", "nonzero", "median_difference",
                    "rank_biserial", "W", "p", "significant"])
        for c in claims:
            for t in c.tests:
                x = t.test
                w.writerow([t.claim, t.arm, t.baseline, t.structure, t.metric, x.pairs, x.nonzero,
                            format_value(x.median_difference), format_value(x.rank_biserial),
                            format_value(x.statistic), format_value(x.p_value), int(x.significant(alpha))])


def write_verdicts_csv(path: Path, claims: Sequence[ClaimResult]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["claim", "text", "arm", "baselines", "verdict", "tests", "missing_runs"])
        for c in claims:
            w.writerow([c.claim.id, c.claim.text, c.arm, " ".join(c.baselines), c.verdict, len(c.tests),
                        " ".join(c.missing_runs)])


def _p(value: float) -> str:
    return "–" if math.isnan(value) else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def verdict_line(c: ClaimResult, alpha: float) -> str:
    higher = METRICS[c.claim.metric].better == "higher"
    favour = sum(t.test.significant(alpha) and t.test.favours_arm(higher) for t in c.tests)
    against = sum(t.test.significant(alpha) and not t.test.favours_arm(higher) for t in c.tests)
    pairs = min((t.test.nonzero for t in c.tests), default=0)
    tail = f"; runs missing: {', '.join(c.missing_runs)}" if c.missing_runs else ""
    return (f"- **{c.claim.id}** — {c.claim.text}: **{c.verdict}** ({len(c.tests)} test(s) on "
            f"{header(c.claim.metric)}: {favour} significant for {c.arm}, {against} against, at alpha {alpha}; "
            f"fewest differing pairs {pairs}, smallest p they allow {_p(smallest_p(pairs)) if pairs else '–'}{tail})")


def claim_section(c: ClaimResult, grouped: dict[str, list[RunScores]], alpha: float) -> list[str]:
    labels = [c.arm, *c.baselines]
    lines = [f"### {c.claim.id}: {c.claim.text}", "", f"Verdict: **{c.verdict}**", ""]
    for metric in TABLE_METRICS:
        lines += markdown_table(grouped, labels, c.structures, metric) + [""]
    lines += ["| arm | baseline | structure | pairs | median diff | rank-biserial r | W | p (raw) |",
              "|---|---|---|---|---|---|---|---|"]
    for t in c.tests:
        x = t.test
        mark = " *" if x.significant(alpha) else ""
        lines.append(f"| {t.arm} | {t.baseline} | {t.structure} | {x.pairs} | {format_value(x.median_difference)} | "
                     f"{format_value(x.rank_biserial)} | {format_value(x.statistic)} | {_p(x.p_value)}{mark} |")
    return lines + ["", f"![{c.claim.id}](box_{c.claim.id}{_width_suffix(c)}.png)", ""]


def _width_suffix(c: ClaimResult) -> str:
    return c.arm[len(c.claim.arm):]


def _box_plot(c: ClaimResult, grouped: dict[str, list[RunScores]]) -> bytes:
    from cervseg.study.plots import claim_box_plot

    values = {label: {s: arm_values(grouped.get(label, []), s, c.claim.metric) for s in c.structures}
              for label in [c.arm, *c.baselines]}
    return claim_box_plot(values, c.claim.metric, f"{c.claim.id}: {c.claim.text}")


def _structures(scores: Sequence[RunScores]) -> list[str]:
    return list(dict.fromkeys(s for r in scores for s in r.structures))


def write_study_report(study: Path, out: Path) -> Path:
    """Read every finished run of ``study`` and write the report folder ``out``."""
    study, out = Path(study), Path(out)
    ensure_apart(out, study, "study folder")
    cfg, runs = load_study(study)
    scores = [s for s in (read_scores(r) for r in runs) if s is not None]
    scored = {s.run.run_id for s in scores}
    missing = [r.run_id for r in runs if r.run_id not in scored]
    if not scores:
        raise InputError(f"{study}: none of the study's {len(runs)} runs has been scored yet; run `cervseg study` first")
    if missing:
        log.warning("%d of %d runs have no scores yet (not in the report): %s", len(missing), len(runs), ", ".join(missing))
    grouped = by_label(scores)
    labels = list(dict.fromkeys(r.label for r in runs))
    claims = evaluate_claims(cfg, scores, missing)
    lines = _header_lines(cfg, runs, scores, missing, claims)
    for c in claims:
        lines += claim_section(c, grouped, cfg.alpha)
    structures = _structures(scores)
    lines += ["## All arms", "", "Mean ± SD over seeds; the best per structure in bold.", ""]
    for metric in TABLE_METRICS:
        lines += markdown_table(grouped, labels, structures, metric) + [""]
    for e in cfg.active_extra_tests():
        lines += extra_test_section(e.name, str(e.cases), runs, labels)
    with atomic_dir(out) as tmp:
        (tmp / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        write_table_csvs(tmp, grouped, [label for label in labels if label in grouped], structures)
        write_tests_csv(tmp / "tests.csv", claims, cfg.alpha)
        write_verdicts_csv(tmp / "verdicts.csv", claims)
        for c in claims:
            if c.structures:
                (tmp / f"box_{c.claim.id}{_width_suffix(c)}.png").write_bytes(_box_plot(c, grouped))
    for c in claims:
        log.info("%s: %s", c.claim.id, c.verdict)
    log.info("study report written to %s", out)
    return out


def extra_test_section(name: str, cases: str, runs: Sequence, labels: Sequence[str]) -> list[str]:
    """Tables only: an extra test set of a few cases cannot resolve a paired test."""
    scores = [s for s in (read_scores(r, r.extra_scores_dir(name)) for r in runs) if s is not None]
    lines = [f"## Extra test set {name}", "", f"Cases: `{cases}`; runs scored: {len(scores)} of {len(runs)}."]
    if not scores:
        return lines + ["", "No run has scored this test set yet.", ""]
    patients = sorted({p for s in scores for p in s.patients})
    lines += [f"Patients: {', '.join(patients)}. Mean ± SD over seeds; no tests (too few patients).", ""]
    grouped = by_label(scores)
    structures = _structures(scores)
    for metric in TABLE_METRICS:
        lines += markdown_table(grouped, [label for label in labels if label in grouped], structures, metric) + [""]
    return lines


def _header_lines(cfg: StudyConfig, runs: Sequence, scores: Sequence[RunScores], missing: Sequence[str],
                  claims: Sequence[ClaimResult]) -> list[str]:
    patients = sorted({p for s in scores for p in s.patients})
    n_tests = sum(len(c.tests) for c in claims)
    lines = ["# Study report", "",
             f"- Study: `{cfg.out_dir}`; cache: `{cfg.cache}`",
             f"- Runs scored: {len(scores)} of {len(runs)}; seeds {', '.join(map(str, cfg.seeds))}",
             f"- Test patients (the cache's test split, shared by every run): {len(patients)} ({', '.join(patients)})",
             f"- Tests: {n_tests} two-sided Wilcoxon signed-rank tests over patients x seeds, raw p-values, "
             f"no multiple-comparison correction; alpha {cfg.alpha} per test",
             ""]
    if missing:
        lines += ["## Missing runs", "",
                  f"**{len(missing)} of {len(runs)} runs have no scores yet and are not in this report** "
                  "(rerun `cervseg study` with the same config to finish them): " + ", ".join(missing), ""]
    lines += ["## Verdicts", ""] + [verdict_line(c, cfg.alpha) for c in claims] + [""]
    return lines
