"""`cervseg study`: an architecture x loss x seed study over one cache, resumable, scored on its test split."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from cervseg.cli.app import command
from cervseg.errors import InputError

log = logging.getLogger(__name__)

HELP = (
    "Train every run of a study (arms = architecture + loss, x seeds, optionally x widths) as "
    "ordinary `train` runs over one cache, then contour the cache's test patients with each "
    "run's best checkpoint and score them (3D per patient, 2D per slice).\n\n"
    "Writes OUT/study.yaml and OUT/runs/<arm>-s<seed>/ (train.yaml, train/, scores/). Resumable: "
    "rerun the same command after an interrupt (even a kill); finished runs are never redone "
    "and an interrupted run continues from its last epoch. Start it more than once (one process "
    "per core or GPU) and the processes share the runs. --quick runs one step per run in "
    "OUT/quick/ (a check of the set-up, not a result). Then: `cervseg study-report`."
)
EXAMPLE = """\
Examples:

  cervseg study --config configs/study_phantom.yaml --dry-run     # the runs and a time estimate

  cervseg study --config configs/study_phantom.yaml --max-hours 1

  cervseg study --config configs/study_phantom.yaml --quick        # one step per run

  cervseg study-report --study study/phantom --out study/phantom-report
"""


def _check_hours(max_hours: Optional[float]) -> None:
    if max_hours is not None and not max_hours > 0:
        raise InputError(f"--max-hours must be positive, got {max_hours}")


def _dry_run(runs: list, steps: int, extra: list) -> None:
    from cervseg.study.estimate import estimate
    from cervseg.study.runner import SCORED, run_status

    status = {r.run_id: run_status(r, extra) for r in runs}
    to_do = [r for r in runs if status[r.run_id] != SCORED]
    timings, total = estimate(to_do, steps)
    log.info("%d runs, %d to do:", len(runs), len(to_do))
    for r in runs:
        t = timings.get(r.label)
        when = f"~{t.run_seconds / 60:.1f} min" if t and status[r.run_id] != SCORED else "-"
        log.info("  %-28s %-15s %-12s seed %-3d %-12s %s", r.run_id, r.train.model.name, r.train.loss.name,
                 r.seed, status[r.run_id], when)
    for label, t in timings.items():
        log.info("  probe %s: %.2f s/step x %d steps/epoch + %.1f s validation, %d epochs, scoring ~%.1f s",
                 label, t.step_seconds, t.steps_per_epoch, t.validation_seconds, t.epochs, t.scoring_seconds)
    log.info("estimated time for the %d runs to do: %.1f min (an upper bound: early stopping can shorten it)",
             len(to_do), total / 60)


@command("study", help=HELP, epilog=EXAMPLE)
def study(
    config: Path = typer.Option(..., "--config", help="Study config (YAML); see configs/study_phantom.yaml."),
    max_hours: Optional[float] = typer.Option(None, "--max-hours", help="Start no run after this many hours; stop the running one cleanly after its epoch."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and their state, and estimate the time from a short probe per arm; train nothing."),
    quick: bool = typer.Option(False, "--quick", help="One training step per run, in OUT/quick/: checks the whole study path quickly."),
) -> None:
    """Run an architecture x loss x seed study (see HELP)."""
    from cervseg.config import config_to_dict
    from cervseg.study.config import load_study_config
    from cervseg.study.plan import expand, quick_config
    from cervseg.study.runner import check_names, run_study

    _check_hours(max_hours)
    cfg = load_study_config(config)
    if quick:
        cfg = quick_config(cfg)
    runs = expand(cfg, str(config))
    check_names(runs, str(config))
    extra = cfg.active_extra_tests()
    for e in cfg.extra_tests:
        if e not in extra:
            log.warning("extra test set %s: %s is absent; not scored (optional)", e.name, e.cases)
    if dry_run:
        _dry_run(runs, cfg.probe_steps, extra)
        return
    try:
        outcome = run_study(runs, cfg.out_dir, config_to_dict(cfg), max_hours, extra=extra)
    except KeyboardInterrupt:
        log.error("interrupted; continue with: cervseg study --config %s%s", config, " --quick" if quick else "")
        raise typer.Exit(130) from None
    if outcome.busy:
        log.warning("%d run(s) being run by another study process (%s); when it ends, "
                    "rerun the same command to check that the study is complete", len(outcome.busy), ", ".join(outcome.busy))
    if outcome.remaining:
        log.warning("study not complete: %d run(s) left (%s); rerun the same command to continue",
                    len(outcome.remaining), ", ".join(outcome.remaining))
    if not outcome.complete:
        return
    log.info("study complete: %d run(s) done now, %d earlier; report: cervseg study-report --study %s --out REPORT",
             len(outcome.completed), len(outcome.skipped), cfg.out_dir)
