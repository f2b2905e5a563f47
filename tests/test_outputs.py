"""Atomic outputs: all or nothing, readable like any file the user would write."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cervseg.errors import InputError
from cervseg.outputs import (
    WRITTEN_RECORD, atomic_dir, atomic_file, check_output_folder, check_replaceable, check_writable, ensure_not_inside,
    exchange_paths, is_staging, remove_stale_staging,
)


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
    with atomic_dir(target) as tmp:
        (tmp / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == [WRITTEN_RECORD, "old.txt"]
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == [WRITTEN_RECORD, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"]
    assert target.stat().st_mode & 0o055  # group/others may enter and read


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="renameat2 RENAME_EXCHANGE is Linux's")
def test_replacing_an_output_is_one_exchange_never_a_moment_without_it(tmp_path: Path, monkeypatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x.txt").write_text("a"), (b / "y.txt").write_text("b")
    assert exchange_paths(a, b)
    assert [p.name for p in a.iterdir()] == ["y.txt"] and [p.name for p in b.iterdir()] == ["x.txt"]
    with pytest.raises(FileNotFoundError):
        exchange_paths(a, tmp_path / "missing")
    target = tmp_path / "case"
    with atomic_dir(target) as tmp:
        (tmp / "old.txt").write_text("old")

    def no_two_step_rename(src, dst):  # the fallback's first rename would leave no target
        raise AssertionError(f"os.replace({src}, {dst}) while replacing an existing output")

    monkeypatch.setattr(os, "replace", no_two_step_rename)
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == [WRITTEN_RECORD, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "case"]  # the old content is gone


def test_atomic_dir_never_deletes_what_cervseg_did_not_write(tmp_path: Path) -> None:
    """A user's file beside, or an edit inside, a previous output refuses the replacement."""
    target = tmp_path / "case"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a previous cervseg output .*notes.txt"):
        with atomic_dir(target) as tmp:
            (tmp / "x").write_text("x")
    assert (target / "notes.txt").read_text() == "mine"
    (target / "notes.txt").unlink()
    with atomic_dir(target) as tmp:
        (tmp / "masks").mkdir()
        (tmp / "masks" / "Bladder.nii.gz").write_text("cervseg")
    (target / "masks" / "Extra.nii.gz").write_text("user's own mask")
    with pytest.raises(InputError, match="did not write .*masks/Extra.nii.gz"):
        check_replaceable(target)
    (target / "masks" / "Extra.nii.gz").unlink()
    (target / "masks" / "Bladder.nii.gz").write_text("edited by hand")
    with pytest.raises(InputError, match="changed since cervseg wrote them .*masks/Bladder.nii.gz"):
        check_replaceable(target)
    check_replaceable(target, carried=["masks/Bladder.nii.gz"])  # a caller that carries the edit over
    with pytest.raises(InputError):
        with atomic_dir(target) as tmp:
            pass
    assert (target / "masks" / "Bladder.nii.gz").read_text() == "edited by hand"
    (target / "masks" / "Bladder.nii.gz").write_text("cervseg")
    os.utime(target / "masks" / "Bladder.nii.gz", (1, 1))
    check_replaceable(target)  # the same content again
    (tmp_path / "elsewhere").mkdir()
    (target / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(InputError, match="did not write .*linked"):
        check_replaceable(target)


def test_unchanged_copy_with_new_times_is_still_replaceable(tmp_path: Path) -> None:
    target = tmp_path / "case"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("same")
    os.utime(target / "a.txt", (1, 1))  # same content, other mtime (a plain `cp -r`)
    check_replaceable(target)


def test_stale_staging_of_a_dead_process_is_removed_and_ignored(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".RS.dcm.cervseg-{dead.pid}-abc.partial"
    stale.mkdir()
    (stale / "RS_1.dcm").write_text("complete but never moved")
    live = tmp_path / f".x.cervseg-{os.getpid()}-abc.partial"
    live.mkdir()
    assert is_staging(stale.name) and is_staging(live.name) and not is_staging("RS_1.dcm")
    assert remove_stale_staging(tmp_path) == [stale]
    assert not stale.exists() and live.exists()  # a running process's staging is left alone


def test_unwritable_or_overlong_output_is_refused_before_any_work(tmp_path: Path, locked_folder: Path) -> None:
    with pytest.raises(InputError, match="the name is 250 bytes; this file system allows"):
        check_writable(tmp_path / ("x" * 250) / "out")
    with pytest.raises(InputError, match="cannot write the output here"):
        check_writable(locked_folder / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is not a folder"):
        check_writable(tmp_path / "file" / "out")


def test_output_containing_an_input_is_refused(tmp_path: Path) -> None:
    (tmp_path / "figures").mkdir()
    with pytest.raises(InputError, match="contains the reference folder"):
        check_output_folder(tmp_path, {tmp_path / "figures": "reference folder"})


def test_output_inside_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must not be inside"):
        ensure_not_inside(tmp_path / "in" / "out", tmp_path / "in")
    ensure_not_inside(tmp_path / "out", tmp_path / "in")
