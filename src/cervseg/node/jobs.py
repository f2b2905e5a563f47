"""The node's job queue: an SQLite database (WAL) in the spool, so it survives a restart.

Why SQLite: a job moves queued -> running -> done | failed in one transaction each, so a
node killed at any moment (SIGKILL, power cut after the commit) finds every job in a known
state. On start, jobs left ``running`` go back to ``queued`` and run again; the stages a
job already finished are recorded (the RTSTRUCT it wrote, the destinations that confirmed
receipt), so a resumed job neither contours again nor sends twice what was delivered, and
only a ``running`` job can become ``done``: no job completes twice.

Two tables: ``series`` (CT series received, and whether instances arrived that no job has
seen yet) and ``jobs``. Times are seconds since the epoch (UTC).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cervseg.errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    instances INTEGER NOT NULL DEFAULT 0,
    last_received REAL NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    series_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    instances INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    last_received REAL NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    rtstruct TEXT,
    delivered TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    timings TEXT NOT NULL DEFAULT '{}',
    purged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
"""

FINISHED = ("done", "failed")


@dataclass(frozen=True)
class Job:
    """One row of the queue."""

    id: int
    series_uid: str
    study_uid: str
    instances: int
    state: str
    last_received: float
    created: float
    started: float | None
    finished: float | None
    attempts: int
    rtstruct: str | None
    delivered: tuple[str, ...]
    error: str | None
    timings: dict[str, float] = field(default_factory=dict)
    purged: bool = False

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        values = dict(row)
        values["delivered"] = tuple(json.loads(values["delivered"]))
        values["timings"] = json.loads(values["timings"])
        values["purged"] = bool(values["purged"])
        return cls(**values)


@dataclass(frozen=True)
class PendingSeries:
    """A CT series holding instances that no job has seen yet."""

    series_uid: str
    study_uid: str
    instances: int
    last_received: float


class JobStore:
    """The queue database; one connection shared by the node's threads under a lock."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        try:
            if read_only:
                if not self.path.is_file():
                    raise InputError(f"{self.path}: no job database (has the node run with this spool?)")
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise InputError(f"{self.path}: cannot open the job database: {exc}") from None
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db, self._lock)

    # ------------------------------------------------------------------ receiving

    def record_instance(self, study_uid: str, series_uid: str, at: float) -> None:
        """A new CT instance of the series was stored: it needs a job."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO series (series_uid, study_uid, instances, last_received, pending) VALUES (?, ?, 1, ?, 1) "
                "ON CONFLICT (series_uid) DO UPDATE SET instances = instances + 1, "
                "last_received = MAX(last_received, excluded.last_received), pending = 1",
                (series_uid, study_uid, at),
            )

    def pending_series(self) -> list[PendingSeries]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT series_uid, study_uid, instances, last_received FROM series WHERE pending = 1"
            ).fetchall()
        return [PendingSeries(*row) for row in rows]

    def create_job(self, series_uid: str, now: float) -> int | None:
        """Turn the series' unseen instances into a job (or into the queued job not yet started)."""
        with self._transaction() as db:
            series = db.execute(
                "SELECT study_uid, instances, last_received FROM series WHERE series_uid = ? AND pending = 1",
                (series_uid,),
            ).fetchone()
            if series is None:
                return None
            study_uid, instances, last_received = series
            db.execute("UPDATE series SET pending = 0 WHERE series_uid = ?", (series_uid,))
            queued = db.execute(
                "SELECT id FROM jobs WHERE series_uid = ? AND state = 'queued' AND attempts = 0 "
                "AND rtstruct IS NULL", (series_uid,),
            ).fetchone()
            if queued is not None:
                db.execute("UPDATE jobs SET instances = ?, last_received = ? WHERE id = ?",
                           (instances, last_received, queued[0]))
                return int(queued[0])
            cursor = db.execute(
                "INSERT INTO jobs (series_uid, study_uid, instances, state, last_received, created) "
                "VALUES (?, ?, ?, 'queued', ?, ?)",
                (series_uid, study_uid, instances, last_received, now),
            )
            return int(cursor.lastrowid)

    # ------------------------------------------------------------------ running

    def recover(self) -> int:
        """After a restart: jobs left running were interrupted; queue them again. Returns how many."""
        with self._transaction() as db:
            return db.execute("UPDATE jobs SET state = 'queued' WHERE state = 'running'").rowcount

    def claim_next(self, now: float, max_attempts: int) -> Job | None:
        """The oldest queued job, now ``running`` (a job interrupted too often is failed instead)."""
        with self._transaction() as db:
            while True:
                row = db.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1").fetchone()
                if row is None:
                    return None
                if row["attempts"] >= max_attempts:
                    db.execute(
                        "UPDATE jobs SET state = 'failed', finished = ?, error = ? WHERE id = ?",
                        (now, f"interrupted {row['attempts']} times (node stopped while running it); given up",
                         row["id"]),
                    )
                    continue
                db.execute("UPDATE jobs SET state = 'running', started = ?, attempts = attempts + 1 WHERE id = ?",
                           (now, row["id"]))
                return Job.from_row(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def requeue(self, job_id: int) -> None:
        """A running job given back by a stopping node: queued again, this attempt not counted."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = 'queued', attempts = MAX(0, attempts - 1) "
                       "WHERE id = ? AND state = 'running'", (job_id,))

    def set_rtstruct(self, job_id: int, path: Path, timings: dict[str, float]) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET rtstruct = ?, timings = ? WHERE id = ?",
                       (str(path), json.dumps(timings), job_id))

    def mark_delivered(self, job_id: int, destination: str) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT delivered FROM jobs WHERE id = ?", (job_id,)).fetchone()
            done = json.loads(row[0])
            if destination not in done:
                done.append(destination)
            db.execute("UPDATE jobs SET delivered = ? WHERE id = ?", (json.dumps(done), job_id))

    def finish(self, job_id: int, state: str, now: float, *, error: str | None = None,
               timings: dict[str, float] | None = None) -> bool:
        """Close a running job as done or failed; False if it was not running (never twice)."""
        if state not in FINISHED:
            raise ValueError(f"a job finishes as done or failed, not {state}")
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE jobs SET state = ?, finished = ?, error = ?, timings = COALESCE(?, timings) "
                "WHERE id = ? AND state = 'running'",
                (state, now, error, json.dumps(timings) if timings is not None else None, job_id),
            ).rowcount
        return updated == 1

    # ------------------------------------------------------------------ listing and clean-up

    def jobs(self, state: str | None = None) -> list[Job]:
        query, args = "SELECT * FROM jobs", ()
        if state is not None:
            query, args = query + " WHERE state = ?", (state,)
        with self._transaction() as db:
            rows = db.execute(query + " ORDER BY id", args).fetchall()
        return [Job.from_row(r) for r in rows]

    def job(self, job_id: int) -> Job:
        with self._transaction() as db:
            return Job.from_row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def purgeable(self, finished_before: float) -> list[Job]:
        """Finished jobs older than the retention time whose spool data is still there."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE state IN ('done', 'failed') AND purged = 0 AND finished <= ? ORDER BY id",
                (finished_before,),
            ).fetchall()
        return [Job.from_row(r) for r in rows]

    def series_still_needed(self, series_uid: str) -> bool:
        """True while a job is queued or running for the series, or instances await a job."""
        with self._transaction() as db:
            return db.execute(
                "SELECT 1 FROM jobs WHERE series_uid = ? AND state IN ('queued', 'running') "
                "UNION SELECT 1 FROM series WHERE series_uid = ? AND pending = 1",
                (series_uid, series_uid),
            ).fetchone() is not None

    def mark_purged(self, job_id: int, series_removed: bool) -> None:
        """Record the job's spool data as removed (and its series, if that went too)."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET purged = 1 WHERE id = ?", (job_id,))
            if series_removed:
                db.execute("DELETE FROM series WHERE series_uid = (SELECT series_uid FROM jobs WHERE id = ?)",
                           (job_id,))


class _Transaction:
    """``with store._transaction() as db``: one lock holder, BEGIN IMMEDIATE ... COMMIT/ROLLBACK."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            if not self._db.in_transaction and self._db.isolation_level is None:
                self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
