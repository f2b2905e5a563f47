"""The study resumes: after a SIGKILL mid-run finished runs are not redone and the killed run continues;
--max-hours stops cleanly after an epoch and a rerun finishes the study."""

from __future__ import annotations

import csv
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.config import config_to_dict
from cervseg.study.config import load_study_config
from cervseg.study.plan import expand
from cervseg.study.runner import INTERRUPTED, NEW, SCORED, run_status, run_study
from tests.study.support import phantom_study_cache, study_config

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    phantom_study_cache(root / "cache")
    return root


def _child_env() -> dict[str, str]:
    """A `python -m cervseg` child that imports this checkout, on one thread."""
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}


def _log_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_keeps_finished_runs_and_resumes_the_killed_one(project):
    epochs = 8
    config = study_config(project, seeds=[0], base={
        "preprocess": {"intensity": "window", "spacing_mm": 5.6, "crop_mm": 448},
        "augment": {"enabled": False}, "batch_size": 8, "epochs": epochs, "max_steps_per_epoch": 2,
        "early_stopping_patience": epochs, "threads": 1})
    study = project / "study"
    first, second = study / "runs" / "resau-s0", study / "runs" / "unet-s0"
    env = _child_env()
    proc = subprocess.Popen([sys.executable, "-m", "cervseg", "study", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600  # a guard against a hung child, not a timing assertion
        while len(_log_rows(second / "train" / "log.csv")) < 2:  # the second run is two epochs in
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the study never reached its second run"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    before = _log_rows(second / "train" / "log.csv")
    assert 2 <= len(before) < epochs, "the kill came too late to interrupt the run"
    runs = expand(load_study_config(config), str(config))
    assert [run_status(r) for r in runs] == [SCORED, INTERRUPTED]
    finished = _snapshot(first)

    result = CliRunner().invoke(app, ["study", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "run resau-s0: finished earlier, not redone" in result.output
    assert "run unet-s0: resuming training" in result.output
    assert _snapshot(first) == finished  # not one byte or mtime of the finished run changed
    after = _log_rows(second / "train" / "log.csv")
    assert [int(r["epoch"]) for r in after] == list(range(1, epochs + 1))
    # the epochs before the kill were kept, not retrained (their timings are those of the first process)
    kept = len(before) - 1  # the last row may have been written just before its state was
    assert after[:kept] == before[:kept]
    assert [run_status(r) for r in runs] == [SCORED, SCORED]
    report = CliRunner().invoke(app, ["study-report", "--study", str(study), "--out", str(project / "report")])
    assert report.exit_code == 0, report.output
    assert "Runs scored: 2 of 2" in (project / "report" / "report.md").read_text(encoding="utf-8")


def test_max_hours_stops_after_an_epoch_and_a_rerun_finishes(project):
    config = study_config(project, "hours.yaml", out_dir="hours", seeds=[0])
    cfg = load_study_config(config)
    runs = expand(cfg, str(config))
    # the clock: the deadline is set at t=0, the first run starts at t=0, its first epoch ends far later
    clock = itertools.chain([0.0, 0.0], itertools.repeat(1e9)).__next__
    outcome = run_study(runs, cfg.out_dir, config_to_dict(cfg), max_hours=1.0, clock=clock)
    assert not outcome.complete and outcome.remaining == ["resau-s0", "unet-s0"]
    assert [int(r["epoch"]) for r in _log_rows(runs[0].train_dir / "log.csv")] == [1]
    assert [run_status(r) for r in runs] == [INTERRUPTED, NEW]
    assert not runs[1].folder.exists()  # no run started after the deadline

    outcome = run_study(runs, cfg.out_dir, config_to_dict(cfg))
    assert outcome.complete and outcome.completed == ["resau-s0", "unet-s0"]
    assert [int(r["epoch"]) for r in _log_rows(runs[0].train_dir / "log.csv")] == [1, 2]


def test_a_changed_config_is_refused_for_an_existing_run(project):
    config = study_config(project, "changed.yaml", out_dir="changed", seeds=[0])
    cfg = load_study_config(config)
    assert CliRunner().invoke(app, ["study", "--config", str(config), "--quick"]).exit_code == 0
    study_config(project, "changed.yaml", out_dir="changed", seeds=[0],
                 base={**cfg.base, "optimizer": {"lr": 0.01}})
    result = CliRunner().invoke(app, ["study", "--config", str(config), "--quick"])
    assert result.exit_code == 2 and "was made with a different config (it differs in optimizer)" in result.output


def test_a_run_held_by_another_process_is_left_to_it_and_a_rerun_takes_it(project):
    from cervseg.study.lock import run_lock

    config = study_config(project, "shared.yaml", out_dir="shared", seeds=[0])
    cfg = load_study_config(config)
    runs = expand(cfg, str(config))
    with run_lock(runs[0].folder) as held:  # flock conflicts across open files, even in one process
        assert held
        outcome = run_study(runs, cfg.out_dir, config_to_dict(cfg))
    assert outcome.busy == ["resau-s0"] and outcome.completed == ["unet-s0"] and not outcome.complete
    assert not runs[0].train_dir.exists()  # nothing of the held run was touched
    assert [run_status(r) for r in runs] == [NEW, SCORED]
    outcome = run_study(runs, cfg.out_dir, config_to_dict(cfg))
    assert outcome.complete and outcome.completed == ["resau-s0"] and outcome.skipped == ["unet-s0"]


@pytest.mark.slow
def test_two_study_processes_share_the_runs_and_train_each_once(project):
    config = study_config(project, "pair.yaml", out_dir="pair", seeds=[0, 1])
    env = _child_env()
    command = [sys.executable, "-m", "cervseg", "study", "--config", str(config)]
    files = [project / f"pair-{i}.log" for i in range(2)]
    procs = []
    for path in files:  # logs to files: neither process can stall on a full pipe while the other is waited for
        with open(path, "w", encoding="utf-8") as fh:
            procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=fh))
    for p in procs:
        p.wait(timeout=900)
    logs = [path.read_text(encoding="utf-8") for path in files]
    assert [p.returncode for p in procs] == [0, 0], logs
    runs = expand(load_study_config(config), str(config))
    assert all(run_status(r) == SCORED for r in runs)
    for run in runs:  # each run trained by exactly one of the two processes, from its first epoch to its last
        starts = [log.count(f"run {run.run_id}: starting training") for log in logs]
        assert sorted(starts) == [0, 1], (run.run_id, starts)
        assert [int(r["epoch"]) for r in _log_rows(run.train_dir / "log.csv")] == [1, 2]
    assert all(f"run {r.run_id}: starting training" in logs[0] + logs[1] for r in runs)
    # whichever process ends last finds every run the other held finished, so it reports the study complete
    assert any("study complete" in log for log in logs), logs


def test_a_run_made_before_a_config_field_existed_is_not_refused(project):
    config = study_config(project, "older.yaml", out_dir="older", seeds=[0])
    assert CliRunner().invoke(app, ["study", "--config", str(config), "--quick"]).exit_code == 0
    saved = project / "older" / "quick" / "runs" / "resau-s0" / "train.yaml"
    raw = yaml.safe_load(saved.read_text(encoding="utf-8"))
    assert raw["model"].pop("init") == "model"  # as if written before model.init was added (its default)
    saved.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["study", "--config", str(config), "--quick"])
    assert result.exit_code == 0, result.output
    assert "run resau-s0: finished earlier, not redone" in result.output


def test_a_state_being_rewritten_is_not_taken_for_a_finished_run(project):
    from cervseg.study.runner import peek_status

    config = study_config(project, "peek.yaml", out_dir="peek", seeds=[0])
    run = expand(load_study_config(config), str(config))[0]
    (run.train_dir / "last").mkdir(parents=True)
    (run.train_dir / "best").mkdir()
    (run.train_dir / "last" / "state.pt").write_bytes(b"half written")
    assert peek_status(run) is None  # unknown, so the run is looked at again under its lock
