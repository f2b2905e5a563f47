"""`cervseg serve` and `cervseg jobs` as a clinic runs them: a process killed mid-job delivers after restart.

The node is the real command in a subprocess; storescu / storescp (dcmtk) are the scanner and
the planning system. Waiting is polling with generous deadlines, never a timing assertion.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import yaml

from cervseg.node.jobs import JobStore
from tests.node.conftest import phantom_series  # noqa: F401  (fixture)
from tests.node.support import (
    NODE_AET, StoreSCP, echo, free_port, referenced_instances, sop_uids, stop_process, storescu, wait_for,
)


def _cervseg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cervseg", *args], capture_output=True, text=True)


def _serve(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "a") as fh:
        return subprocess.Popen([sys.executable, "-m", "cervseg", "serve", "--config", str(config)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)


def _jobs(spool: Path):
    if not (spool / "jobs.sqlite").is_file():
        return []
    store = JobStore(spool / "jobs.sqlite", read_only=True)
    try:
        return store.jobs()
    finally:
        store.close()


def _wait_listening(node: subprocess.Popen, port: int, log: Path) -> None:
    def up() -> bool:
        assert node.poll() is None, f"cervseg serve exited with {node.returncode}: {log.read_text()}"
        return echo(port, NODE_AET)

    wait_for(up, "the node to listen")


@pytest.mark.parametrize("command", ["serve", "jobs"])
def test_help_has_an_example(command: str) -> None:
    result = _cervseg(command, "--help")
    assert result.returncode == 0 and f"cervseg {command} --config" in result.stdout


@pytest.mark.parametrize("case", ["bad_ae_title", "unknown_key", "missing_file", "no_jobs_yet", "missing_model"])
def test_bad_config_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    config = tmp_path / "node.yaml"
    data = {"allowed_calling_aets": ["SCANNER"], "spool": "spool", "port": free_port()}
    if case == "bad_ae_title":
        data["ae_title"] = "MUCH_TOO_LONG_AE_TITLE"
    elif case == "unknown_key":
        data["quiet"] = 3
    elif case == "missing_model":
        data["model"] = "no_such_checkpoint"
    if case != "missing_file":
        config.write_text(yaml.safe_dump(data))
    result = _cervseg("jobs" if case == "no_jobs_yet" else "serve", "--config", str(config))
    assert result.returncode == 2, result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    expected = {"bad_ae_title": "ae_title", "unknown_key": "quiet: unknown key", "missing_file": "not found",
                "no_jobs_yet": "no job database", "missing_model": "no_such_checkpoint"}[case]
    assert expected in errors[0] and str(tmp_path) in errors[0]


@pytest.mark.slow
@pytest.mark.external
def test_a_node_killed_mid_job_delivers_once_after_restart(phantom_series: list[Path], tmp_path: Path) -> None:  # noqa: F811
    series = phantom_series[0]
    tps_port, node_port = free_port(), free_port()
    config = tmp_path / "node.yaml"
    config.write_text(yaml.safe_dump({
        "ae_title": NODE_AET, "port": node_port, "allowed_calling_aets": ["SCANNER"], "spool": "spool",
        "quiet_seconds": 0.5, "threads": 1, "retries": 100, "retry_backoff_seconds": 0.5,
        "retry_backoff_max_seconds": 1,
        "destinations": [{"ae_title": "TPS", "host": "127.0.0.1", "port": tps_port}],
    }))
    spool, log = tmp_path / "spool", tmp_path / "serve.log"
    node = _serve(config, log)
    try:
        _wait_listening(node, node_port, log)
        assert storescu(series, node_port).returncode == 0
        wait_for(lambda: [j for j in _jobs(spool) if j.state == "running"], "the job to start")
        node.send_signal(signal.SIGKILL)  # the planning system is down, the job is mid-way
        node.wait(60)
        (killed,) = _jobs(spool)
        assert killed.state == "running"

        with StoreSCP(tmp_path / "tps", port=tps_port) as tps:
            node = _serve(config, log)
            _wait_listening(node, node_port, log)
            (job,) = wait_for(lambda: [j for j in _jobs(spool) if j.state in ("done", "failed")], "the job to end")
            assert (job.id, job.state, job.attempts, job.error) == (killed.id, "done", 2, None)
            (received,) = tps.received()
            series_uid, listed, _ = referenced_instances(received)
            assert series_uid == job.series_uid and listed == sop_uids(series)

            listing = _cervseg("jobs", "--config", str(config))
            assert listing.returncode == 0, listing.stderr
            (row,) = [ln for ln in listing.stdout.splitlines() if ln.startswith(f"{job.id} ")]
            assert f" {series_uid} " in row and " done " in row
            node.terminate()
            assert node.wait(120) == 0
    finally:
        stop_process(node)

    text = log.read_text()
    assert f"job={job.id} state=done" in text
    first = pydicom.dcmread(next(series.glob("*.dcm")), stop_before_pixels=True)
    assert str(first.PatientID) not in text and str(first.PatientName) not in text  # no patient identity in logs
