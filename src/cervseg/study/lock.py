"""One study process per run at a time: an advisory lock on a file in the run's folder.

Why: a study is a queue of independent runs, so two ``cervseg study`` processes (two CPU
cores, two GPUs) can share one; each takes the runs no other process holds. ``flock`` is
released by the kernel when its holder dies, even by SIGKILL, so a killed process never
leaves a run locked and the resume rules stay as they are.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_FILE = ".lock"


@contextmanager
def run_lock(folder: Path) -> Iterator[bool]:
    """Hold the run's lock for the ``with`` block; yields False (holding nothing) when another process has it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock
