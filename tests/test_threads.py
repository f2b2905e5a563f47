"""The thread policy: training leaves busy cores alone, inference takes every core it may use."""

from __future__ import annotations

import pytest

from cervseg import threads


@pytest.mark.parametrize("cores, load, world, expected", [
    (2, 0.1, 1, 2), (2, 1.5, 1, 1), (2, 5.0, 1, 1), (8, 2.0, 1, 6), (8, 0.0, 2, 4), (8, 4.0, 2, 2), (1, 0.0, 4, 1),
])
def test_training_threads_leave_busy_cores_alone(monkeypatch, cores, load, world, expected):
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    assert threads.training_threads(world) == expected


def test_inference_threads_take_every_allowed_core_whatever_the_load(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert threads.available_cores() == 3
    assert threads.inference_threads() == 3
