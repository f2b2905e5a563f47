"""Atomic outputs: all or nothing, readable like any file the user would write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cervseg.errors import InputError
from cervseg.outputs import atomic_dir, atomic_file, ensure_not_inside


def test_atomic_file_appears_only_on_success_with_default_permissions(tmp_path: Path) -> None:
    target = tmp_path / "RS.dcm"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_dir_replaces_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "case"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]
    assert target.stat().st_mode & 0o055  # group/others may enter and read


def test_output_inside_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must not be inside"):
        ensure_not_inside(tmp_path / "in" / "out", tmp_path / "in")
    ensure_not_inside(tmp_path / "out", tmp_path / "in")
