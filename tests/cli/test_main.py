"""The console-script exit path (`cli.main.run`): exit codes kept, the heap frozen for a fast
shutdown, atexit handlers and buffered output still run. Each case is a fresh interpreter,
since freezing the heap is meant for a process that is about to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# run() ends the process; an atexit handler reports what shutdown saw, and a line printed
# without a newline checks that buffered stdout is still flushed.
PROBE = """
import atexit, gc, sys
atexit.register(lambda: sys.stderr.write(f"\\nfrozen at exit: {gc.get_freeze_count() > 0}\\n"))
sys.stdout.write("unflushed")
from cervseg.cli.main import run
run(sys.argv[1:])
"""


def _run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize(("args", "code"), [
    (("--help",), 0),
    (("segment", "--dicom", "/nonexistent-cervseg-input", "--out", "OUT"), 2),  # bad input
    (("segment", "--no-such-option"), 2),  # usage error
])
def test_exit_code_is_kept_and_shutdown_still_runs_atexit_and_flushes(args: tuple[str, ...], code: int,
                                                                       tmp_path: Path) -> None:
    args = tuple(str(tmp_path / a) if a == "OUT" else a for a in args)
    result = _run(*args)
    assert result.returncode == code, result.stderr
    assert result.stdout.startswith("unflushed")
    assert "frozen at exit: True" in result.stderr
    if code == 2:
        assert sum(ln.startswith("ERROR") for ln in result.stderr.splitlines()) == 1
    assert not (tmp_path / "OUT").exists()


def test_in_process_app_leaves_the_heap_alone() -> None:
    """Only the console script's exit freezes: tests and the demo call `app` and keep collecting."""
    code = """
import gc, sys
from cervseg.cli.main import app
try:
    app(["--help"], prog_name="cervseg")
except SystemExit:
    pass
print(gc.get_freeze_count())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "0"
