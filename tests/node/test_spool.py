"""The spool: instances stored once, by UID, atomically, and never outside the spool."""

from __future__ import annotations

from pathlib import Path

import pytest

from cervseg.node.spool import Spool, is_uid


def test_an_instance_is_stored_once_under_study_and_series(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.store("1.2", "1.2.3", "1.2.3.4", b"first")
    assert not spool.store("1.2", "1.2.3", "1.2.3.4", b"second")  # a re-send: kept as first received
    stored = tmp_path / "spool" / "series" / "1.2" / "1.2.3" / "1.2.3.4.dcm"
    assert stored.read_bytes() == b"first"
    assert [p.name for p in stored.parent.iterdir()] == ["1.2.3.4.dcm"]  # no temporary left


@pytest.mark.parametrize("uid", ["../../etc", "1.2/3", "", "1..2", "1.2.", "x" * 65, "1" * 65])
def test_network_uids_that_are_not_uids_never_become_paths(tmp_path: Path, uid: str) -> None:
    spool = Spool(tmp_path / "spool")
    assert not is_uid(uid)
    with pytest.raises(ValueError, match="not a DICOM UID"):
        spool.store("1.2", uid, "1.2.3", b"x")
    with pytest.raises(ValueError, match="not a DICOM UID"):
        spool.store("1.2", "1.2.3", uid, b"x")
    assert list((tmp_path / "spool" / "series").rglob("*")) == []


def test_removing_a_series_removes_its_empty_study_folder(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.store("1.2", "1.2.3", "1.2.3.4", b"a")
    spool.store("1.2", "1.2.5", "1.2.5.1", b"b")
    spool.remove_series("1.2", "1.2.3")
    assert (tmp_path / "spool" / "series" / "1.2").is_dir()
    spool.remove_series("1.2", "1.2.5")
    assert not (tmp_path / "spool" / "series" / "1.2").exists()
