"""The real server (uvicorn in a subprocess): concurrent reviewers, SIGKILL, localhost binding."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from cervseg.review.store import ReviewStore
from tests.review.conftest import ReviewServer

TOKEN = "process-test-token"
PASSES = 5  # each reviewer grades every item this many times (changing grades)


def gradeable_items(server: ReviewServer, case: str) -> list[tuple[int, str]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    meta = httpx.get(f"{server.url}/api/cases/{case}", headers=headers, timeout=120).json()
    items = []
    for z in meta["contour_slices"]:
        contours = httpx.get(f"{server.url}/api/cases/{case}/slices/{z}/contours", headers=headers, timeout=30).json()
        items += [(z, name) for name in sorted(contours["auto"])]
    return items


@pytest.mark.slow
def test_two_reviewers_grading_at_once_lose_nothing(review_root, tmp_path):
    root, _ = review_root
    server = ReviewServer(root, tmp_path / "review.sqlite", tmp_path / "server.log", token=TOKEN).start()
    try:
        items = gradeable_items(server, "CASE01")
        assert len(items) >= 30
        acknowledged: dict[str, list[tuple[int, int, str, int]]] = {"Dr A": [], "Dr B": []}
        errors: list[str] = []

        def review(reviewer: str, passes: int) -> None:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
                for p in range(passes):
                    for k, (z, name) in enumerate(items):
                        grade = 1 + (k + p + len(reviewer)) % 4
                        r = c.post("/api/grades", json={"case_id": "CASE01", "slice_index": z, "structure": name,
                                                        "reviewer": reviewer, "grade": grade})
                        if r.status_code != 200:
                            errors.append(r.text)
                            continue
                        acknowledged[reviewer].append((r.json()["id"], z, name, grade))

        threads = [threading.Thread(target=review, args=(who, PASSES)) for who in acknowledged]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    assert errors == []
    store = ReviewStore(tmp_path / "review.sqlite")
    stored = {g.id: g for g in store.all_grades()}
    total = sum(len(v) for v in acknowledged.values())
    assert total == 2 * PASSES * len(items) >= 400 and len(stored) == total
    for reviewer, rows in acknowledged.items():
        for gid, z, name, grade in rows:
            g = stored[gid]
            assert (g.reviewer, g.slice_index, g.structure, g.grade) == (reviewer, z, name, grade)
    current = {(g.reviewer, g.slice_index, g.structure): g.grade for g in store.current_grades()}
    for reviewer, rows in acknowledged.items():  # the last pass is what each reviewer sees now
        for gid, z, name, grade in rows[-len(items):]:
            assert current[(reviewer, z, name)] == grade


@pytest.mark.slow
def test_a_server_killed_mid_session_keeps_every_acknowledged_grade(review_root, tmp_path):
    root, _ = review_root
    db = tmp_path / "review.sqlite"
    server = ReviewServer(root, db, tmp_path / "server.log", token=TOKEN).start()
    acknowledged: list[int] = []
    stop = threading.Event()
    try:
        items = gradeable_items(server, "CASE02")

        def grade_until_killed() -> None:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
                k = 0
                while not stop.is_set():
                    z, name = items[k % len(items)]
                    try:
                        r = c.post("/api/grades", json={"case_id": "CASE02", "slice_index": z, "structure": name,
                                                        "reviewer": "Dr K", "grade": 1 + k % 4})
                    except httpx.TransportError:
                        return  # the server died: this grade was never acknowledged
                    if r.status_code == 200:
                        acknowledged.append(r.json()["id"])
                    k += 1

        writer = threading.Thread(target=grade_until_killed)
        writer.start()
        while len(acknowledged) < 150:
            threading.Event().wait(0.05)
        server.kill()  # SIGKILL while grades are in flight
        stop.set()
        writer.join()
    finally:
        server.kill()
    restarted = ReviewServer(root, db, tmp_path / "server2.log", token=TOKEN).start()
    try:
        saved = httpx.get(f"{restarted.url}/api/cases/CASE02/grades", params={"reviewer": "Dr K"},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60).json()["grades"]
    finally:
        restarted.stop()
    ids = {g.id for g in ReviewStore(db).all_grades()}
    assert len(acknowledged) >= 150 and set(acknowledged) <= ids
    assert sum(len(v) for v in saved.values()) == min(len(items), len(ids))


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.slow
def test_the_server_listens_on_localhost_only_by_default(review_root, tmp_path):
    root, _ = review_root
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to list listening sockets")
    server = ReviewServer(root, tmp_path / "review.sqlite", tmp_path / "server.log").start()
    try:
        assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, nothing else
        assert httpx.get(f"{server.url}/api/cases", timeout=30).status_code == 200
        assert "http://127.0.0.1:" in (tmp_path / "server.log").read_text()
    finally:
        server.stop()
