"""`study --dry-run`: the runs, their state, and a time estimate from a short probe per arm.

The probe trains a few real steps and times as many validation batches of each arm's first
run (same data, model, loss and batch size as the study; nothing is written). A run's estimate
is ``epochs x (steps per epoch x step time + validation time) + scoring``, the scoring taken
as one validation pass scaled to the test patients' slices. It is an upper bound of the
training time: early stopping can only shorten it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from cervseg.data.cache import Cache
from cervseg.study.plan import Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArmTiming:
    label: str
    step_seconds: float
    validation_seconds: float
    steps_per_epoch: int
    epochs: int
    scoring_seconds: float

    @property
    def run_seconds(self) -> float:
        return self.epochs * (self.steps_per_epoch * self.step_seconds + self.validation_seconds) + self.scoring_seconds


def _slices(cache: Cache, split: str) -> int:
    return sum(int(cache.geometry(p).shape[0]) for p in cache.split(split))


def probe_arm(run: Run, steps: int) -> ArmTiming:
    """Time ``steps`` training steps and validation batches of ``run``'s config."""
    from cervseg.train.trainer import Trainer

    step, validation, per_epoch = Trainer(run.train, source=str(run.config_file)).time_steps(steps)
    cache = Cache(run.train.data.cache)
    scoring = validation * _slices(cache, "test") / max(1, _slices(cache, "val"))
    return ArmTiming(run.label, step, validation, per_epoch, run.train.epochs, scoring)


def estimate(to_do: Sequence[Run], steps: int) -> tuple[dict[str, ArmTiming], float]:
    """Timing per arm label (probed once, on its first run left to do) and the total seconds of ``to_do``."""
    timings: dict[str, ArmTiming] = {}
    for run in to_do:
        if run.label not in timings:
            log.info("probing %s: %d training step(s) and validation batch(es)", run.label, steps)
            timings[run.label] = probe_arm(run, steps)
    return timings, sum(timings[r.label].run_seconds for r in to_do)
