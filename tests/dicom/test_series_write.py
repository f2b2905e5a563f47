"""CT series writer: valid DICOM (dciodvfy), headers that put every pixel where it belongs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cervseg.dicom.series import read_ct_series
from cervseg.dicom.series_write import write_ct_series
from cervseg.errors import InputError
from cervseg.outputs import WRITTEN_RECORD
from cervseg.volume import Volume
from tests.conftest import require_tool
from tests.dicom.support import phantom_volume, reorient, slice_files


@pytest.mark.external
@pytest.mark.parametrize("position", ["HFS", "FFS", "HFP", "FFP"])
def test_dciodvfy_reports_no_errors(tmp_path: Path, position: str) -> None:
    exe = require_tool("dciodvfy")
    write_ct_series(reorient(phantom_volume(), position), tmp_path / "ct")
    for path in slice_files(tmp_path / "ct")[::2]:
        result = subprocess.run([exe, str(path)], capture_output=True, text=True)
        report = result.stdout + result.stderr
        assert "CTImage" in report  # dciodvfy recognised the IOD
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"


@pytest.mark.parametrize("position", ["HFS", "FFS", "HFP", "FFP"])
def test_headers_place_every_pixel_at_its_lps_position(tmp_path: Path, position: str) -> None:
    volume = reorient(phantom_volume(), position)
    written = write_ct_series(volume, tmp_path / "ct")
    g = volume.geometry
    for k, path in enumerate(slice_files(tmp_path / "ct")):  # InstanceNumber = array order
        ds = pydicom.dcmread(path)
        assert ds.PatientPosition == position
        assert ds.SOPInstanceUID == written.series.sop_instance_uids[k]
        row_dir = np.asarray(ds.ImageOrientationPatient[:3], float)
        col_dir = np.asarray(ds.ImageOrientationPatient[3:], float)
        ipp = np.asarray(ds.ImagePositionPatient, float)
        dr, dc = (float(v) for v in ds.PixelSpacing)  # DICOM: row spacing, column spacing
        # DICOM PS3.3 C.7.6.2.1.1: P(r, c) = IPP + c * dc * row_dir + r * dr * col_dir
        r, c = np.meshgrid(np.arange(ds.Rows), np.arange(ds.Columns), indexing="ij")
        lps = ipp + c[..., None] * dc * row_dir + r[..., None] * dr * col_dir
        ours = g.index_to_lps(np.stack([np.full(r.size, k), r.ravel(), c.ravel()], axis=1))
        assert np.allclose(lps.reshape(-1, 3), ours, atol=1e-4)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(hu, volume.array[k])
        assert ds.pixel_array.dtype == np.int16 and float(ds.RescaleSlope) == 1.0


def test_round_trip_keeps_array_geometry_and_identity(tmp_path: Path) -> None:
    volume = reorient(phantom_volume(), "FFP")
    written = write_ct_series(volume, tmp_path / "ct", series_description="round trip")
    back = read_ct_series(tmp_path / "ct")
    assert np.array_equal(back.array, volume.array)
    assert back.geometry.same_grid(volume.geometry)
    assert back.geometry.frame_of_reference_uid == written.geometry.frame_of_reference_uid != ""
    assert back.series.sop_instance_uids == written.series.sop_instance_uids
    assert back.series.series_instance_uid == written.series.series_instance_uid
    assert back.series.study_instance_uid == written.series.study_instance_uid
    assert back.series.patient == volume.series.patient
    assert back.series.study["StudyDescription"] == "cervseg test"
    assert back.series.patient_position == "FFP"
    assert [Path(p) for p in back.series.source_files] == [Path(p) for p in written.series.source_files]
    assert all(Path(p).is_file() for p in written.series.source_files)


def test_existing_uids_are_kept_unless_new_ones_are_asked_for(tmp_path: Path) -> None:
    first = write_ct_series(phantom_volume(), tmp_path / "a")
    again = write_ct_series(first, tmp_path / "b")
    assert again.series.sop_instance_uids == first.series.sop_instance_uids
    assert again.geometry.frame_of_reference_uid == first.geometry.frame_of_reference_uid
    fresh = write_ct_series(first, tmp_path / "c", new_uids=True)
    assert not set(fresh.series.sop_instance_uids) & set(first.series.sop_instance_uids)
    assert fresh.series.series_instance_uid != first.series.series_instance_uid
    assert len(set(fresh.series.sop_instance_uids)) == first.geometry.shape[0]


def test_intercept_chosen_so_extreme_hu_fit(tmp_path: Path) -> None:
    volume = phantom_volume()
    array = volume.array.copy()
    array[0, 0, 0], array[1, 1, 1] = -30000, 30000  # does not fit with intercept -1024
    array[2, 2, 2] = 12.6  # rounded to integer HU
    wide = Volume(array, volume.geometry, volume.series)
    written = write_ct_series(wide, tmp_path / "ct")
    back = read_ct_series(tmp_path / "ct")
    assert np.array_equal(back.array, np.rint(array))
    assert np.array_equal(written.array, back.array)
    array[3, 3, 3] = 40000
    with pytest.raises(InputError, match="wider than 16 bits"):
        write_ct_series(Volume(array, volume.geometry, volume.series), tmp_path / "too_wide")
    assert not (tmp_path / "too_wide").exists()


def test_no_partial_output_and_no_silent_overwrite(tmp_path: Path) -> None:
    volume = phantom_volume()
    out = tmp_path / "ct"
    out.mkdir()
    (out / "precious.txt").write_text("user data")
    with pytest.raises(InputError, match="not empty"):
        write_ct_series(volume, out)
    assert (out / "precious.txt").read_text() == "user data"
    bad = volume.array.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_ct_series(Volume(bad, volume.geometry, volume.series), tmp_path / "nan")
    assert not (tmp_path / "nan").exists()
    write_ct_series(volume, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [WRITTEN_RECORD] + [f"CT_{k:04d}.dcm" for k in range(1, 7)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers
