"""The grade store: history kept, current = latest, WAL mode, bad input refused, threads racing."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from cervseg.errors import InputError
from cervseg.review.store import ReviewStore, SliceMetric, open_existing


def test_changing_a_grade_keeps_the_history_and_the_latest_is_current(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    first = store.add_grade("CASE01", 5, "Bladder", "Dr A", 3, seconds_on_slice=4.5)
    store.add_grade("CASE01", 5, "Rectum", "Dr A", 1)
    second = store.add_grade("CASE01", 5, "Bladder", "Dr A", 2)
    store.add_grade("CASE01", 5, "Bladder", "Dr B", 4)
    history = store.history("CASE01", 5, "Bladder")
    assert [(g.reviewer, g.grade) for g in history] == [("Dr A", 3), ("Dr A", 2), ("Dr B", 4)]
    assert history[0].created_at <= history[1].created_at and history[0].seconds_on_slice == 4.5
    current = {(g.structure, g.reviewer): g.grade for g in store.current_grades(case_id="CASE01")}
    assert current == {("Bladder", "Dr A"): 2, ("Rectum", "Dr A"): 1, ("Bladder", "Dr B"): 4}
    assert second.id > first.id and second.label == "Minor revision"
    assert [g.grade for g in store.current_grades(reviewer="Dr B")] == [4]
    assert store.reviewers() == ["Dr A", "Dr B"]
    assert len(store.all_grades()) == 4


def test_database_is_in_wal_mode_and_reopens_with_its_grades(tmp_path):
    path = tmp_path / "review.sqlite"
    ReviewStore(path).add_grade("C", 0, "Bladder", "Dr A", 1)
    assert ReviewStore(path).journal_mode() == "wal"
    with sqlite3.connect(path) as db:  # an independent reader sees the committed row
        assert db.execute("SELECT case_id, grade FROM grades").fetchall() == [("C", 1)]
    assert len(open_existing(path).current_grades()) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"grade": 5}, "grade must be 1-4"),
    ({"grade": 0}, "grade must be 1-4"),
    ({"reviewer": "  "}, "reviewer name is empty"),
    ({"slice_index": -1}, "must not be negative"),
])
def test_bad_grades_are_refused_and_nothing_is_stored(tmp_path, kwargs, message):
    store = ReviewStore(tmp_path / "review.sqlite")
    args = dict(case_id="C", slice_index=1, structure="Bladder", reviewer="Dr A", grade=2) | kwargs
    with pytest.raises(InputError, match=message):
        store.add_grade(**args)
    assert store.all_grades() == []


def test_not_a_database_and_missing_database_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="not a cervseg review database"):
        ReviewStore(junk)
    with pytest.raises(InputError, match="review database not found"):
        open_existing(tmp_path / "missing.sqlite")
    with pytest.raises(InputError, match="is a folder"):
        ReviewStore(tmp_path)


def test_comments_and_slice_metrics_round_trip(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    store.add_comment("C", 3, "Dr A", "first")
    store.add_comment("C", 3, "Dr A", "bladder wall missed anteriorly")
    assert store.current_comments("C") == {(3, "Dr A"): "bladder wall missed anteriorly"}
    rows = [SliceMetric("C", 3, "Bladder", "paired", 0.9, 2.0, 10.0), SliceMetric("C", 4, "Bladder", "missed", 0.0, None, 50.0)]
    store.replace_slice_metrics("C", rows)
    store.replace_slice_metrics("C", rows)  # replacing, not appending
    assert store.slice_metrics() == rows


def test_threads_writing_at_once_lose_nothing(tmp_path):
    store = ReviewStore(tmp_path / "review.sqlite")
    ids: list[int] = []
    lock = threading.Lock()

    def reviewer(name: str) -> None:
        own = ReviewStore(store.path)
        for z in range(60):
            g = own.add_grade("C", z, "Bladder", name, 1 + z % 4)
            with lock:
                ids.append(g.id)

    threads = [threading.Thread(target=reviewer, args=(f"Dr {k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = store.all_grades()
    assert sorted(g.id for g in stored) == sorted(ids) and len(ids) == 240
    assert {(g.reviewer, g.slice_index, g.grade) for g in stored} == {
        (f"Dr {k}", z, 1 + z % 4) for k in range(4) for z in range(60)}
