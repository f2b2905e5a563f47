"""Contact sheet and presets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cervseg.errors import InputError
from cervseg.phantom.generator import generate_patient
from cervseg.phantom.presets import PRESETS, get_preset
from cervseg.phantom.preview import contact_sheet
from cervseg.volume import Geometry, Volume


def test_contact_sheet_writes_a_png(tmp_path: Path):
    vol, labels = generate_patient(5, "tiny")
    out = contact_sheet([("tiny 5", vol, labels)], tmp_path / "sheet.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert not list(tmp_path.glob(".*partial"))


def test_contact_sheet_refuses_a_non_hfs_volume(tmp_path: Path):
    vol, labels = generate_patient(5, "tiny")
    g = vol.geometry
    ffs = Geometry(g.shape, g.spacing, g.origin, ((0, 0, -1), (0, 1, 0), (-1, 0, 0)))
    with pytest.raises(ValueError):
        contact_sheet([("ffs", Volume(vol.array, ffs), labels)], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_presets():
    assert set(PRESETS) == {"default", "small", "tiny"}
    assert get_preset("small").matrix == 256 and get_preset("default").matrix == 512
    assert get_preset(PRESETS["tiny"]) is PRESETS["tiny"]
    with pytest.raises(InputError):
        get_preset("huge")
    quiet = get_preset("tiny").with_overrides(noise_hu=(0.0, 0.0))
    assert quiet.noise_hu == (0.0, 0.0) and PRESETS["tiny"].noise_hu != (0.0, 0.0)
    assert dataclasses.is_dataclass(quiet)
    assert np.isclose(sum(get_preset("default").slice_p), 1.0)
