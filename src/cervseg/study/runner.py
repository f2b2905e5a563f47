"""Run a study's plan: train each run (resumably), then score it on the shared test patients.

Resumability, run by run (state is read from the run's own folder, nothing else):
- ``scored``: training finished and every scores folder complete: never touched again;
- ``trained``: training finished (last/ says so): only the missing scores are made (an
  extra test set added to the config later is scored by the finished runs too);
- ``interrupted``: last/ holds an unfinished state: the training resumes from it with the
  train code's own resume (same weights as an uninterrupted run);
- ``new``: nothing usable: a train/ folder without last/ (killed before its first epoch
  ended) is removed and the run starts afresh.
A run folder whose train.yaml differs from what the config now says is an error: the
study would otherwise mix results of two configs.

Several processes may run one study at once (``cervseg study`` started twice): each run is
taken under a lock (cervseg.study.lock), and a run another process holds is left to it.

``max_hours``: no run starts after the deadline, and a running one stops cleanly after the
epoch that crosses it (its last/ is saved first); rerunning the command continues.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import yaml

from cervseg.config import config_to_dict, save_config, saved_train_config
from cervseg.data.cache import Cache
from cervseg.errors import ConfigError, InputError
from cervseg.study.plan import STUDY_FILE, Run
from cervseg.study.config import ExtraTestConfig
from cervseg.study.lock import run_lock
from cervseg.study.scoring import is_scored, score_extra_cases, score_patients, write_scores

log = logging.getLogger(__name__)

SCORED, TRAINED, INTERRUPTED, NEW = "scored", "trained", "interrupted", "new"


class StudyDeadline(Exception):
    """Raised from the epoch hook when --max-hours has passed (the epoch's state is saved)."""


@dataclass
class StudyOutcome:
    """What one invocation did: runs finished now, already finished, left to do, and held by another process."""

    completed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.remaining and not self.busy


def training_finished(run: Run) -> bool | None:
    """True/False from the run's last/ state; None when it has none."""
    from cervseg.train.callbacks import STATE_FILE, load_state

    if not (run.train_dir / "last" / STATE_FILE).is_file():
        return None
    return bool(load_state(run.train_dir / "last").get("finished")) and (run.train_dir / "best").is_dir()


def score_dirs(run: Run, extra: Sequence[ExtraTestConfig] = ()) -> list[Path]:
    """Every scores folder a finished run has: the cache's test split, then each extra test set."""
    return [run.scores_dir, *(run.extra_scores_dir(e.name) for e in extra)]


def run_status(run: Run, extra: Sequence[ExtraTestConfig] = ()) -> str:
    finished = training_finished(run)
    if finished and all(is_scored(d) for d in score_dirs(run, extra)):
        return SCORED
    if finished:
        return TRAINED
    return NEW if finished is None else INTERRUPTED


def peek_status(run: Run, extra: Sequence[ExtraTestConfig] = ()) -> str | None:
    """run_status without holding the run's lock: None when another process is rewriting its state."""
    try:
        return run_status(run, extra)
    except InputError:
        return None


def check_run_config(run: Run) -> None:
    """The run folder, if any, was made by this very train config."""
    if not run.config_file.is_file():
        return
    saved = saved_train_config(yaml.safe_load(run.config_file.read_text(encoding="utf-8")), str(run.config_file))
    current = config_to_dict(run.train)
    if saved != current:
        keys = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise ConfigError(f"{run.config_file}: run {run.run_id} was made with a different config "
                          f"(it differs in {', '.join(keys)}); restore the study config or choose a new out_dir")


def check_names(runs: Sequence[Run], source: str) -> None:
    """Model and loss names, and templates, of every run: a typo fails before hours of training."""
    from cervseg.models.registry import model_spec
    from cervseg.structures import load_template
    from cervseg.errors import StructureError
    from cervseg.train.losses import LOSSES

    for run in runs:
        where = f"{source}: arm {run.arm}"
        try:
            model_spec(run.train.model.name)
        except ConfigError as exc:
            raise ConfigError(f"{where}: model: {exc}") from None
        if run.train.loss.name not in LOSSES:
            raise ConfigError(f"{where}: loss: unknown loss '{run.train.loss.name}' (choose from {', '.join(LOSSES)})")
        if run.train.data.template is not None:
            try:
                load_template(run.train.data.template)
            except StructureError as exc:
                raise ConfigError(f"{where}: data.template: {exc}") from None


def prepare(runs: Sequence[Run], out_dir: Path, study: dict, extra: Sequence[ExtraTestConfig] = ()) -> Cache:
    """Check every run folder against the config, the cache's test split and the extra test sets, before any work."""
    from cervseg.metrics.cases import find_cases
    from cervseg.structures import Catalogue

    for e in extra:
        find_cases(e.cases, f"extra test set {e.name}")
        Catalogue.builtin(e.names)
    cache = Cache(runs[0].train.data.cache)
    if not cache.split("test"):
        raise InputError(f"{cache.folder}: the cache has no test patients; rebuild it with "
                         "`cervseg dataset --test-fraction` > 0 (the study scores every run on them)")
    for run in runs:
        check_run_config(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = out_dir / STUDY_FILE
    if not saved.is_file() or yaml.safe_load(saved.read_text(encoding="utf-8")) != study:
        from cervseg.outputs import atomic_file

        with atomic_file(saved) as tmp:
            tmp.write_text(yaml.safe_dump(study, sort_keys=False), encoding="utf-8")
    return cache


def _train(run: Run, resume: bool, deadline: float | None, clock: Callable[[], float]) -> None:
    from cervseg.train.trainer import train

    def stop_at_deadline(epoch: int, row: dict) -> None:
        if deadline is not None and clock() >= deadline:
            raise StudyDeadline(f"run {run.run_id} stopped after epoch {epoch}")

    train(run.train, resume=resume, on_epoch_end=stop_at_deadline, source=str(run.config_file))


def run_one(run: Run, cache: Cache, deadline: float | None, clock: Callable[[], float],
            extra: Sequence[ExtraTestConfig] = ()) -> bool:
    """Bring one run to SCORED; False when it was already there."""
    status = run_status(run, extra)
    if status == SCORED:
        log.info("run %s: finished earlier, not redone", run.run_id)
        return False
    if not run.config_file.is_file():
        save_config(run.train, run.config_file)
    if status == NEW and run.train_dir.exists():
        log.info("run %s: removing %s (stopped before its first epoch ended)", run.run_id, run.train_dir)
        shutil.rmtree(run.train_dir)
    if status in (NEW, INTERRUPTED):
        log.info("run %s: %s training (%s, loss %s, seed %d)", run.run_id,
                 "resuming" if status == INTERRUPTED else "starting", run.train.model.name,
                 run.train.loss.name, run.seed)
        _train(run, status == INTERRUPTED, deadline, clock)
    if not is_scored(run.scores_dir):
        log.info("run %s: scoring %d test patient(s)", run.run_id, len(cache.split("test")))
        write_scores(score_patients(run.train_dir / "best", cache, cache.split("test"), run.train.threads),
                     run.scores_dir)
    for e in extra:
        if not is_scored(run.extra_scores_dir(e.name)):
            log.info("run %s: scoring the extra test set %s (%s)", run.run_id, e.name, e.cases)
            write_scores(score_extra_cases(run.train_dir / "best", e.cases, e.names, run.train.threads),
                         run.extra_scores_dir(e.name))
    return True


def run_study(runs: Sequence[Run], out_dir: Path, study: dict, max_hours: float | None = None,
              clock: Callable[[], float] = time.monotonic, extra: Sequence[ExtraTestConfig] = ()) -> StudyOutcome:
    """Every run in order; stops starting runs (and stops the current one cleanly) after ``max_hours``."""
    cache = prepare(runs, out_dir, study, extra)
    deadline = None if max_hours is None else clock() + max_hours * 3600.0
    outcome = StudyOutcome()
    for i, run in enumerate(runs):
        status = peek_status(run, extra)
        if deadline is not None and clock() >= deadline and status != SCORED:
            outcome.remaining.extend(r.run_id for r in runs[i:] if peek_status(r, extra) != SCORED)
            break
        if status == SCORED:
            log.info("run %s: finished earlier, not redone", run.run_id)
            outcome.skipped.append(run.run_id)
            continue
        with run_lock(run.folder) as held:
            if not held:
                log.info("run %s: another study process is running it; left to that process", run.run_id)
                outcome.busy.append(run.run_id)
                continue
            log.info("run %d of %d: %s", i + 1, len(runs), run.run_id)
            try:
                done_now = run_one(run, cache, deadline, clock, extra)
                (outcome.completed if done_now else outcome.skipped).append(run.run_id)
            except StudyDeadline as stop:
                log.warning("--max-hours reached: %s (its state is saved)", stop)
                outcome.remaining.extend(r.run_id for r in runs[i:]
                                         if r.run_id not in outcome.busy and peek_status(r, extra) != SCORED)
                break
    # a run another process held when this one passed it may have finished since
    by_id = {r.run_id: r for r in runs}
    finished_elsewhere = [rid for rid in outcome.busy if peek_status(by_id[rid], extra) == SCORED]
    outcome.skipped.extend(finished_elsewhere)
    outcome.busy = [rid for rid in outcome.busy if rid not in finished_elsewhere]
    return outcome
