"""The job queue on disk: states, restart recovery, no job completed twice, clean-up rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from cervseg.errors import InputError
from cervseg.node.jobs import JobStore

STUDY, SERIES = "1.2.3", "1.2.3.4"


def _received(store: JobStore, n: int, series: str = SERIES, at: float = 100.0) -> None:
    for i in range(n):
        store.record_instance(STUDY, series, at + i)


def test_a_series_becomes_one_job_and_later_instances_join_it_until_it_starts(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    assert store.create_job(SERIES, 200.0) is None  # nothing received
    _received(store, 3)
    (pending,) = store.pending_series()
    assert (pending.instances, pending.last_received) == (3, 102.0)
    first = store.create_job(SERIES, 200.0)
    assert store.pending_series() == [] and store.create_job(SERIES, 201.0) is None
    _received(store, 2, at=300.0)
    assert store.create_job(SERIES, 400.0) == first  # not yet started: the same job, now 5 instances
    job = store.claim_next(401.0, max_attempts=3)
    assert (job.id, job.state, job.instances, job.attempts, job.last_received) == (first, "running", 5, 1, 301.0)
    _received(store, 1, at=500.0)
    assert store.create_job(SERIES, 600.0) != first  # the series changed while its job ran: a new job


def test_a_job_interrupted_by_a_crash_runs_again_and_completes_once(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    store = JobStore(path)
    _received(store, 4)
    job_id = store.create_job(SERIES, 200.0)
    store.claim_next(201.0, max_attempts=3)
    store.set_rtstruct(job_id, tmp_path / "RS.dcm", {"predict": 1.5})
    store.mark_delivered(job_id, "TPS@host:1")
    # the process dies here: the connection is never closed; a new node opens the same file
    restarted = JobStore(path)
    assert restarted.recover() == 1
    job = restarted.claim_next(300.0, max_attempts=3)
    assert (job.id, job.attempts, job.rtstruct, job.delivered, job.timings) == (
        job_id, 2, str(tmp_path / "RS.dcm"), ("TPS@host:1",), {"predict": 1.5})
    assert restarted.finish(job_id, "done", 301.0)
    assert not restarted.finish(job_id, "done", 302.0)  # never twice
    assert not restarted.finish(job_id, "failed", 302.0, error="late")
    assert restarted.claim_next(303.0, max_attempts=3) is None
    assert [(j.state, j.error, j.finished) for j in JobStore(path, read_only=True).jobs()] == [("done", None, 301.0)]


def test_a_job_interrupted_too_often_is_failed_and_a_shutdown_does_not_count(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    _received(store, 1)
    job_id = store.create_job(SERIES, 200.0)
    store.claim_next(201.0, max_attempts=2)
    store.requeue(job_id)  # a clean stop gives the job back
    assert store.job(job_id).attempts == 0
    for _ in range(2):
        store.claim_next(202.0, max_attempts=2)
        store.recover()
    assert store.claim_next(203.0, max_attempts=2) is None
    job = store.job(job_id)
    assert job.state == "failed" and job.error.startswith("interrupted 2 times")


def test_spool_data_of_finished_jobs_is_released_only_when_nothing_needs_it(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite")
    _received(store, 1)
    job_id = store.create_job(SERIES, 200.0)
    store.claim_next(201.0, max_attempts=3)
    assert store.purgeable(1000.0) == []  # running
    store.finish(job_id, "failed", 300.0, error="x")
    assert store.purgeable(299.0) == [] and [j.id for j in store.purgeable(300.0)] == [job_id]
    _received(store, 1, at=400.0)
    assert store.series_still_needed(SERIES)  # new instances wait for a job
    store.create_job(SERIES, 500.0)
    assert store.series_still_needed(SERIES)  # queued
    store.mark_purged(job_id, series_removed=False)
    assert store.purgeable(10_000.0) == []


def test_read_only_listing_of_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no job database"):
        JobStore(tmp_path / "none.sqlite", read_only=True)
