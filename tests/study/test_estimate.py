"""The --dry-run probe: real steps timed per arm, nothing written, the estimate adds up per run."""

from __future__ import annotations

import pytest

from cervseg.study.config import load_study_config
from cervseg.study.estimate import ArmTiming, estimate
from cervseg.study.plan import expand
from tests.study.support import phantom_study_cache, study_config


def test_run_estimate_is_epochs_of_steps_and_validation_plus_scoring():
    t = ArmTiming("a", step_seconds=2.0, validation_seconds=5.0, steps_per_epoch=10, epochs=3, scoring_seconds=7.0)
    assert t.run_seconds == pytest.approx(3 * (10 * 2.0 + 5.0) + 7.0)


def test_probe_times_each_arm_once_and_writes_nothing(tmp_path):
    phantom_study_cache(tmp_path / "cache")
    runs = expand(load_study_config(study_config(tmp_path)))
    timings, total = estimate(runs, steps=1)
    assert set(timings) == {"resau", "unet"}
    for t in timings.values():
        assert t.step_seconds > 0 and t.validation_seconds > 0 and t.scoring_seconds > 0
        assert t.steps_per_epoch == 2 and t.epochs == 2  # max_steps_per_epoch and epochs of the config
    assert total == pytest.approx(2 * timings["resau"].run_seconds + 2 * timings["unet"].run_seconds)
    assert not (tmp_path / "study").exists()
