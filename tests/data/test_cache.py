"""Training cache: round trip of HU and masks, memory mapping, refused patients, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cervseg.data.cache import (
    Cache, PatientRecord, build_cache, pack_masks, patient_folders, unpack_masks,
)
from cervseg.errors import GeometryError, InputError
from cervseg.volume import Geometry, LabelMap
from tests.tiny_data import STRUCTURES, tiny_patient


def _folders(tmp_path: Path, n: int) -> list[Path]:
    root = tmp_path / "root"
    for i in range(n):
        (root / f"P{i:02d}").mkdir(parents=True)
    return patient_folders(root)


def _reader(bad: dict[str, str] | None = None):
    """Tiny patients by folder index; 'missing' drops a structure, 'geometry' raises, 'bug' is a bug."""
    bad = bad or {}

    def read(folder: Path) -> PatientRecord:
        seed = int(folder.name[1:])
        vol, labels = tiny_patient(seed)
        what = bad.get(folder.name)
        if what == "missing":
            labels = labels.subset([s for s in STRUCTURES if s != "Rectum"])
        elif what == "empty":
            labels["Bladder"] = np.zeros_like(labels["Bladder"])
        elif what == "geometry":
            raise GeometryError(f"{folder}/CT: gap of 9 mm between slices 3 and 4")
        elif what == "bug":
            raise RuntimeError("a bug")
        return PatientRecord(vol, labels, {"rtstruct": str(folder / "RS.dcm")})

    return read


def test_pack_unpack_round_trip_odd_width():
    rng = np.random.default_rng(0)
    m = rng.random((3, 4, 5, 13)) > 0.5
    packed = pack_masks(m)
    assert packed.shape == (4, 3, 5, 2) and packed.dtype == np.uint8
    np.testing.assert_array_equal(np.moveaxis(unpack_masks(packed, 13), 1, 0), m)


def test_round_trip_memory_mapped(tmp_path):
    folders = _folders(tmp_path, 3)
    manifest = build_cache(tmp_path / "cache", folders, _reader(), STRUCTURES, seed=1,
                           val_fraction=0.34, test_fraction=0.0, extra={"template": "test"})
    cache = Cache(tmp_path / "cache")
    assert cache.structures == list(STRUCTURES) and cache.patients == ["P00", "P01", "P02"]
    assert manifest["template"] == "test" and manifest["skipped"] == []
    for i, pid in enumerate(cache.patients):
        vol, labels = tiny_patient(i)
        img = cache.image(pid)
        assert isinstance(img, np.memmap) and img.dtype == np.int16
        np.testing.assert_array_equal(img, vol.array)
        assert cache.geometry(pid) == vol.geometry
        back = cache.labelmap(pid)
        for s in STRUCTURES:
            np.testing.assert_array_equal(back[s], labels[s])
        # a slice read straight from the packed memory map
        z = 10
        np.testing.assert_array_equal(cache.mask_slices(pid, z, ["Rectum", "Bladder"]),
                                      np.stack([labels["Rectum"][z], labels["Bladder"][z]]))
        expected_any = np.stack([labels[s] for s in STRUCTURES]).any(axis=(0, 2, 3))
        np.testing.assert_array_equal(cache.slices_with_structure(pid), expected_any)
        assert cache.entry(pid)["voxels"]["Bladder"] == int(labels["Bladder"].sum())
    assert sorted(cache.split("train") + cache.split("val")) == cache.patients
    assert len(cache.split("val")) == 1


def test_refused_patients_are_listed_with_reason_and_not_written(tmp_path):
    folders = _folders(tmp_path, 5)
    bad = {"P01": "missing", "P02": "geometry", "P03": "empty"}
    build_cache(tmp_path / "cache", folders, _reader(bad), STRUCTURES, val_fraction=0.0, test_fraction=0.0)
    cache = Cache(tmp_path / "cache")
    assert cache.patients == ["P00", "P04"]
    reasons = {s["patient"]: s["reason"] for s in cache.manifest["skipped"]}
    assert reasons["P01"] == "missing structures: Rectum"
    assert "gap of 9 mm" in reasons["P02"]
    assert reasons["P03"] == "empty structures: Bladder"
    on_disk = sorted(p.name for p in (tmp_path / "cache" / "patients").iterdir())
    assert on_disk == ["P00", "P04"]
    assert set(cache.split("train")) == {"P00", "P04"}


def test_masks_on_another_grid_are_refused(tmp_path):
    folders = _folders(tmp_path, 2)

    def read(folder):
        vol, labels = tiny_patient(0)
        if folder.name == "P01":
            g = vol.geometry
            shifted = Geometry(g.shape, g.spacing, (g.origin[0] + 5, g.origin[1], g.origin[2]), g.axes)
            labels = LabelMap(shifted, dict(labels))
        return PatientRecord(vol, labels)

    manifest = build_cache(tmp_path / "c", folders, read, STRUCTURES, val_fraction=0, test_fraction=0)
    assert [s["patient"] for s in manifest["skipped"]] == ["P01"]
    assert "does not match the CT grid" in manifest["skipped"][0]["reason"]


def test_a_bug_or_no_usable_patient_leaves_no_output(tmp_path):
    folders = _folders(tmp_path, 3)
    with pytest.raises(RuntimeError):
        build_cache(tmp_path / "c1", folders, _reader({"P02": "bug"}), STRUCTURES)
    with pytest.raises(InputError, match="no usable patient"):
        build_cache(tmp_path / "c2", folders, _reader({f"P0{i}": "geometry" for i in range(3)}), STRUCTURES)
    assert not (tmp_path / "c1").exists() and not (tmp_path / "c2").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["root"]  # no temporary folders left either


def test_refuses_foreign_folder_and_output_inside_input(tmp_path):
    folders = _folders(tmp_path, 1)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a previous cervseg output"):
        build_cache(other, folders, _reader(), STRUCTURES)
    assert (other / "notes.txt").read_text() == "keep me"
    with pytest.raises(InputError, match="inside"):
        build_cache(tmp_path / "root" / "cache", folders, _reader(), STRUCTURES, root=tmp_path / "root")


def test_cache_reader_errors(tmp_path):
    with pytest.raises(InputError, match="not a training cache"):
        Cache(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "x"}))
    with pytest.raises(InputError, match="not a version-1"):
        Cache(tmp_path)


def test_partial_labels_keep_a_patient_with_some_structures_and_record_which(tmp_path):
    folders = _folders(tmp_path, 3)
    bad = {"P01": "missing"}  # P01 has no Rectum
    with pytest.raises(InputError, match='missing structures: Rectum'):  # by default P01 is refused
        build_cache(tmp_path / "strict", folders[1:2], _reader(bad), STRUCTURES, val_fraction=0, test_fraction=0)
    build_cache(tmp_path / "cache", folders, _reader(bad), STRUCTURES, val_fraction=0.0, test_fraction=0.0,
                partial=True)
    cache = Cache(tmp_path / "cache")
    assert cache.patients == ["P00", "P01", "P02"]
    assert cache.labelled("P01") == [s for s in STRUCTURES if s != "Rectum"]
    assert cache.labelled("P00") == list(STRUCTURES)
    _, truth = tiny_patient(1)
    masks = cache.masks("P01")
    assert not masks[STRUCTURES.index("Rectum")].any()  # stored empty, marked not contoured
    np.testing.assert_array_equal(masks[STRUCTURES.index("Bladder")], truth["Bladder"])
    assert cache.entry("P01")["voxels"]["Rectum"] == 0


def test_partial_labels_still_refuse_no_structures_and_empty_contoured_ones(tmp_path):
    folders = _folders(tmp_path, 3)

    def read(folder: Path) -> PatientRecord:
        vol, labels = tiny_patient(int(folder.name[1:]))
        if folder.name == "P00":
            return PatientRecord(vol, labels.subset([]))
        if folder.name == "P01":
            labels = labels.subset(["Bladder", "Rectum"])
            labels["Bladder"] = np.zeros_like(labels["Bladder"])
        return PatientRecord(vol, labels)

    manifest = build_cache(tmp_path / "cache", folders, read, STRUCTURES, val_fraction=0.0, test_fraction=0.0,
                           partial=True)
    reasons = {s["patient"]: s["reason"] for s in manifest["skipped"]}
    assert list(manifest["patients"]) == ["P02"]
    assert reasons["P00"].startswith("missing structures") and reasons["P01"] == "empty structures: Bladder"


def test_caches_made_before_partial_labels_read_as_fully_labelled(tmp_path):
    build_cache(tmp_path / "cache", _folders(tmp_path, 2), _reader(), STRUCTURES, val_fraction=0.0,
                test_fraction=0.0)
    manifest_path = tmp_path / "cache" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["patients"].values():
        del entry["labelled"]
    manifest_path.write_text(json.dumps(manifest))
    assert Cache(tmp_path / "cache").labelled("P00") == list(STRUCTURES)


def test_an_absent_structure_is_kept_as_a_labelled_empty_mask_and_recorded(tmp_path):
    """A record that says 'this patient has none of Bladder' is trained as empty, not refused;
    the same empty mask without that statement is still refused as an empty contour."""
    folders = _folders(tmp_path, 2)

    def read(folder: Path) -> PatientRecord:
        vol, labels = tiny_patient(int(folder.name[1:]))
        labels["Bladder"] = np.zeros_like(labels["Bladder"])
        return PatientRecord(vol, labels, absent=["Bladder"] if folder.name == "P00" else [])

    manifest = build_cache(tmp_path / "cache", folders, read, STRUCTURES, val_fraction=0.0, test_fraction=0.0)
    assert list(manifest["patients"]) == ["P00"]
    assert {s["patient"]: s["reason"] for s in manifest["skipped"]} == {"P01": "empty structures: Bladder"}
    cache = Cache(tmp_path / "cache")
    assert cache.labelled("P00") == list(STRUCTURES)  # contoured: the loss learns "none here"
    assert cache.entry("P00")["absent"] == ["Bladder"] and cache.entry("P00")["voxels"]["Bladder"] == 0
    assert not cache.masks("P00")[STRUCTURES.index("Bladder")].any()
    _, truth = tiny_patient(0)
    np.testing.assert_array_equal(cache.masks("P00")[STRUCTURES.index("Rectum")], truth["Rectum"])
