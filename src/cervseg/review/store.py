"""The review database: every grade an oncologist gives, with who and when, never overwritten.

Why SQLite in WAL mode with one transaction per grade: the review server may be killed at
any moment (a laptop closed, a session ended by IT); a grade the page was told is saved must
survive that, and two reviewers grading at once must not block or lose each other's work.
Changing a grade appends a new row; the current grade of a (case, slice, structure,
reviewer) is its latest row, and the older rows are the history.

The database holds no patient name or ID: cases are keyed by their folder name under the
review root, which a clinic chooses (and should make pseudonymous).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from cervseg.errors import InputError
from cervseg.metrics.evaluate import GRADES

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS grades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL,
    slice_index INTEGER NOT NULL,
    structure TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    grade INTEGER NOT NULL CHECK (grade BETWEEN 1 AND 4),
    seconds_on_slice REAL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grades_key ON grades (case_id, slice_index, structure, reviewer, id);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL,
    slice_index INTEGER NOT NULL,
    reviewer TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS slice_metrics (
    case_id TEXT NOT NULL,
    slice_index INTEGER NOT NULL,
    structure TEXT NOT NULL,
    status TEXT NOT NULL,
    dice REAL, hd95_mm REAL, apl_mm REAL,
    PRIMARY KEY (case_id, slice_index, structure)
);
CREATE VIEW IF NOT EXISTS current_grades AS
    SELECT g.* FROM grades g JOIN (
        SELECT MAX(id) AS id FROM grades GROUP BY case_id, slice_index, structure, reviewer
    ) latest ON g.id = latest.id;
"""


@dataclass(frozen=True)
class Grade:
    """One grade as stored (a row of `grades`)."""

    id: int
    case_id: str
    slice_index: int
    structure: str
    reviewer: str
    grade: int  # 1..4 = GRADES[grade - 1]
    seconds_on_slice: float | None
    created_at: str  # UTC ISO 8601

    @property
    def label(self) -> str:
        return GRADES[self.grade - 1]


@dataclass(frozen=True)
class SliceMetric:
    """Slice metrics of the automatic contour against the reference (NaN stored as NULL)."""

    case_id: str
    slice_index: int
    structure: str
    status: str
    dice: float | None
    hd95_mm: float | None
    apl_mm: float | None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _clean_name(value: str, what: str, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    if not text:
        raise InputError(f"{what} is empty")
    if len(text) > limit:
        raise InputError(f"{what} is longer than {limit} characters")
    return text


class ReviewStore:
    """Grades, comments and slice metrics in one SQLite file (one connection per call)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder, not a review database file")
        if not self.path.parent.is_dir():
            raise InputError(f"{self.path}: folder {self.path.parent} does not exist")
        try:
            with closing(sqlite3.connect(self.path, timeout=30.0)) as db:
                db.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
                db.executescript(_SCHEMA)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                db.commit()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a cervseg review database ({exc})") from None

    @contextmanager
    def _connect(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A fresh connection; its `with` block is one transaction, committed on success.

        synchronous=FULL: the commit has reached the disk before the server acknowledges.
        Readers take no write lock (WAL lets them run beside a writer).
        """
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def journal_mode(self) -> str:
        with closing(sqlite3.connect(self.path)) as db:
            return str(db.execute("PRAGMA journal_mode").fetchone()[0])

    # --- writing -----------------------------------------------------------------------
    def add_grade(
        self,
        case_id: str,
        slice_index: int,
        structure: str,
        reviewer: str,
        grade: int,
        seconds_on_slice: float | None = None,
    ) -> Grade:
        """Store one grade in its own transaction and return it as stored."""
        if int(grade) not in (1, 2, 3, 4):
            raise InputError(f"grade must be 1-4 ({', '.join(GRADES)}), got {grade}")
        if int(slice_index) < 0:
            raise InputError(f"slice index must not be negative, got {slice_index}")
        row = (
            _clean_name(case_id, "case"), int(slice_index), _clean_name(structure, "structure"),
            _clean_name(reviewer, "reviewer name"), int(grade),
            None if seconds_on_slice is None else max(0.0, float(seconds_on_slice)), _now(),
        )
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO grades (case_id, slice_index, structure, reviewer, grade, seconds_on_slice, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", row,
            )
            return Grade(int(cur.lastrowid), *row)  # type: ignore[arg-type]

    def add_comment(self, case_id: str, slice_index: int, reviewer: str, text: str) -> int:
        """Store a free-text comment on a slice (the latest one per reviewer is current)."""
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO comments (case_id, slice_index, reviewer, text, created_at) VALUES (?, ?, ?, ?, ?)",
                (_clean_name(case_id, "case"), int(slice_index), _clean_name(reviewer, "reviewer name"),
                 str(text)[:5000], _now()),
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def replace_slice_metrics(self, case_id: str, metrics: Iterable[SliceMetric]) -> None:
        """Replace a case's slice metrics (computed when the server first loads the case)."""
        rows = [(m.case_id, m.slice_index, m.structure, m.status, m.dice, m.hd95_mm, m.apl_mm) for m in metrics]
        with self._connect() as db:
            db.execute("DELETE FROM slice_metrics WHERE case_id = ?", (case_id,))
            db.executemany("INSERT INTO slice_metrics VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    # --- reading -----------------------------------------------------------------------
    def _grades(self, sql: str, args: Sequence[object] = ()) -> list[Grade]:
        with self._connect(write=False) as db:
            return [Grade(*row) for row in db.execute(sql, args).fetchall()]

    def current_grades(self, case_id: str | None = None, reviewer: str | None = None) -> list[Grade]:
        """The latest grade of every (case, slice, structure, reviewer), optionally filtered."""
        sql = ("SELECT id, case_id, slice_index, structure, reviewer, grade, seconds_on_slice, created_at"
               " FROM current_grades WHERE (? IS NULL OR case_id = ?) AND (? IS NULL OR reviewer = ?)"
               " ORDER BY case_id, slice_index, structure, reviewer")
        return self._grades(sql, (case_id, case_id, reviewer, reviewer))

    def history(self, case_id: str, slice_index: int, structure: str) -> list[Grade]:
        """Every grade ever given to one structure on one slice, oldest first."""
        sql = ("SELECT id, case_id, slice_index, structure, reviewer, grade, seconds_on_slice, created_at"
               " FROM grades WHERE case_id = ? AND slice_index = ? AND structure = ? ORDER BY id")
        return self._grades(sql, (case_id, int(slice_index), structure))

    def all_grades(self) -> list[Grade]:
        """Every stored grade row (history included), oldest first."""
        return self._grades("SELECT id, case_id, slice_index, structure, reviewer, grade, seconds_on_slice,"
                            " created_at FROM grades ORDER BY id")

    def current_comments(self, case_id: str, reviewer: str | None = None) -> dict[tuple[int, str], str]:
        """(slice, reviewer) -> latest comment text of a case."""
        with self._connect(write=False) as db:
            rows = db.execute(
                "SELECT slice_index, reviewer, text FROM comments WHERE case_id = ? AND (? IS NULL OR reviewer = ?)"
                " ORDER BY id", (case_id, reviewer, reviewer),
            ).fetchall()
        return {(int(z), str(r)): str(t) for z, r, t in rows}

    def slice_metrics(self) -> list[SliceMetric]:
        with self._connect(write=False) as db:
            return [SliceMetric(*row) for row in db.execute(
                "SELECT case_id, slice_index, structure, status, dice, hd95_mm, apl_mm FROM slice_metrics"
                " ORDER BY case_id, slice_index, structure").fetchall()]

    def reviewers(self) -> list[str]:
        with self._connect(write=False) as db:
            return [str(r[0]) for r in db.execute("SELECT DISTINCT reviewer FROM grades ORDER BY reviewer")]


def open_existing(path: Path | str) -> ReviewStore:
    """A review database that must already exist (review-stats reads, never creates one)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: review database not found")
    return ReviewStore(path)
