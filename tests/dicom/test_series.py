"""CT series reading: sorting, HU, orientation, compression, and every refusal."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

from cervseg.dicom.series import list_series, read_ct_series
from cervseg.errors import GeometryError, InputError, SeriesSelectionError
from tests.dicom.support import edit, phantom_volume, reorient, slice_files, write_series


@pytest.fixture()
def tiny(tmp_path: Path):
    """A 6-slice HFS series written by cervseg's writer; returns (folder, written volume)."""
    folder = tmp_path / "ct"
    return folder, write_series(phantom_volume(), folder)


# ---------------------------------------------------------------- the real case


@pytest.mark.realdata
def test_real_case_geometry_and_hu_match_the_files(real_case: Path, real_patient) -> None:
    volume = real_patient.volume
    g = volume.geometry
    files = sorted((real_case / "dicom").glob("CT*.dcm"))
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    z = sorted(float(h.ImagePositionPatient[2]) for h in headers)
    assert g.shape == (len(files), int(headers[0].Rows), int(headers[0].Columns))
    assert np.allclose(g.spacing, ((z[-1] - z[0]) / (len(z) - 1), *map(float, headers[0].PixelSpacing)))
    assert np.allclose(g.slice_normal_coordinates(), z, atol=1e-3)  # HFS: normal is +z
    assert g.frame_of_reference_uid == headers[0].FrameOfReferenceUID
    # every slice: HU = stored * slope + intercept, at the index its z gives it
    for path in files[::40]:
        ds = pydicom.dcmread(path)
        k = int(np.argmin(np.abs(g.slice_normal_coordinates() - float(ds.ImagePositionPatient[2]))))
        expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(volume.array[k], expected.astype(np.float32))
        assert volume.series.sop_instance_uids[k] == ds.SOPInstanceUID
        assert Path(volume.series.source_files[k]) == path
    info = volume.series
    assert info.patient["PatientID"] == headers[0].PatientID
    assert info.study["StudyDescription"] == headers[0].StudyDescription
    assert info.patient_position == "HFS"
    assert info.series_instance_uid == headers[0].SeriesInstanceUID
    assert volume.array.dtype == np.float32


@pytest.mark.realdata
def test_list_series_of_the_real_case(real_case: Path) -> None:
    series = list_series(real_case / "dicom")
    modalities = {s.modality: s.n_files for s in series}
    assert modalities == {"CT": 163, "RTSTRUCT": 1}


# ---------------------------------------------------------------- synthetic series


def test_sorting_ignores_names_instance_numbers_and_junk(tiny, tmp_path: Path) -> None:
    folder, written = tiny
    messy = tmp_path / "messy"
    rng = random.Random(3)
    files = slice_files(folder)
    numbers = list(range(1, len(files) + 1))
    rng.shuffle(numbers)
    for path, number in zip(files, numbers):
        target = messy / rng.choice(["a", "b/c", "."]) / f"{rng.getrandbits(32):08x}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        edit(target, InstanceNumber=number, SliceLocation=str(number))  # misleading on purpose
    (messy / "notes.txt").write_text("not DICOM")
    (messy / "b" / "image.png").write_bytes(bytes(range(256)) * 4)  # neither DICOM nor named like it
    volume = read_ct_series(messy)
    assert np.array_equal(volume.array, written.array)
    assert volume.geometry.same_grid(written.geometry)
    assert volume.series.sop_instance_uids == written.series.sop_instance_uids


@pytest.mark.parametrize("position", ["HFS", "FFS", "HFP", "FFP"])
def test_every_patient_position_gives_the_same_hu_at_the_same_point(tmp_path: Path, position: str) -> None:
    hfs = phantom_volume()
    stored = reorient(hfs, position)
    write_series(stored, tmp_path / position)
    volume = read_ct_series(tmp_path / position)
    header = pydicom.dcmread(slice_files(tmp_path / position)[0], stop_before_pixels=True)
    assert header.PatientPosition == position
    assert volume.series.patient_position == position
    # slice normal from IOP, slices increasing along it
    row, col = np.asarray(header.ImageOrientationPatient[:3], float), np.asarray(header.ImageOrientationPatient[3:], float)
    assert np.allclose(volume.geometry.axes_matrix[0], np.cross(row, col))
    assert np.all(np.diff(volume.geometry.slice_normal_coordinates()) > 0)
    # the same LPS point holds the same HU as in the HFS original
    rng = np.random.default_rng(0)
    idx = rng.integers(0, hfs.array.shape, size=(25, 3))
    lps = hfs.geometry.index_to_lps(idx)
    back = np.rint(volume.geometry.lps_to_index(lps)).astype(int)
    assert np.allclose(volume.geometry.index_to_lps(back), lps, atol=1e-4)
    assert np.array_equal(volume.array[tuple(back.T)], hfs.array[tuple(idx.T)])


def test_rescale_slope_and_intercept_are_applied_per_slice(tiny) -> None:
    folder, written = tiny
    files = slice_files(folder)
    edit(files[0], RescaleSlope="2", RescaleIntercept="-3000")
    edit(files[1], RescaleSlope="0.5", RescaleIntercept="10.25")
    volume = read_ct_series(folder)
    raw0 = pydicom.dcmread(files[0]).pixel_array.astype(float)
    raw1 = pydicom.dcmread(files[1]).pixel_array.astype(float)
    assert np.allclose(volume.array[0], raw0 * 2 - 3000)
    assert np.allclose(volume.array[1], raw1 * 0.5 + 10.25)
    assert np.array_equal(volume.array[2:], written.array[2:])


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=lambda s: s.name)
def test_compressed_transfer_syntaxes_read_back_equal(tmp_path: Path, syntax) -> None:
    folder = tmp_path / "ct"  # 64 x 64: JPEG 2000's default 6 resolution levels need >= 32 pixels
    written = write_series(phantom_volume(shape=(5, 64, 64)), folder)
    for path in slice_files(folder)[1:4]:
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)
        assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    volume = read_ct_series(folder)
    assert np.array_equal(volume.array, written.array)


def test_localizer_in_the_series_is_left_out(tiny) -> None:
    folder, written = tiny
    scout = pydicom.dcmread(slice_files(folder)[0])
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    scout.SOPInstanceUID = generate_uid()
    scout.save_as(folder / "scout.dcm")
    volume = read_ct_series(folder)
    assert np.array_equal(volume.array, written.array)


def test_choose_among_several_ct_series(tmp_path: Path) -> None:
    a = write_series(phantom_volume(), tmp_path / "p" / "a", series_description="first")
    b = write_series(phantom_volume(shape=(4, 10, 8)), tmp_path / "p" / "b", series_description="second")
    with pytest.raises(SeriesSelectionError) as err:
        read_ct_series(tmp_path / "p")
    message = str(err.value)
    assert str(tmp_path / "p") in message and "2 CT series" in message
    for v, n, desc in ((a, 6, "first"), (b, 4, "second")):
        assert f"{v.series.series_instance_uid} (CT, {n} slices, '{desc}')" in message
    assert "\n" not in message
    chosen = read_ct_series(tmp_path / "p", series_uid=b.series.series_instance_uid)
    assert chosen.geometry.shape == (4, 10, 8)
    with pytest.raises(SeriesSelectionError, match="no series with UID 1.2.3"):
        read_ct_series(tmp_path / "p", series_uid="1.2.3")


# ---------------------------------------------------------------- refusals


def _mr(folder: Path, files: list[Path]) -> None:
    for p in files:
        edit(p, Modality="MR", SOPClassUID="1.2.840.10008.5.1.4.1.1.4")


def _tilt_tag(folder: Path, files: list[Path]) -> None:
    for p in files:
        edit(p, GantryDetectorTilt="12.5")


def _oblique(folder: Path, files: list[Path]) -> None:
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    for p in files:
        edit(p, ImageOrientationPatient=[f"{c:.6f}", f"{s:.6f}", "0", f"{-s:.6f}", f"{c:.6f}", "0"])


def _sagittal(folder: Path, files: list[Path]) -> None:  # axis-aligned but not axial
    for k, p in enumerate(files):
        edit(p, ImageOrientationPatient=["0", "1", "0", "0", "0", "-1"], ImagePositionPatient=[2.5 * k, 0, 0])


def _sheared(folder: Path, files: list[Path]) -> None:  # tilt without the tag: IPP drifts in y
    for k, p in enumerate(files):
        ipp = [float(v) for v in pydicom.dcmread(p).ImagePositionPatient]
        edit(p, ImagePositionPatient=[ipp[0], ipp[1] + 0.8 * k, ipp[2]])


def _missing(folder: Path, files: list[Path]) -> None:
    files[3].unlink()


def _duplicate(folder: Path, files: list[Path]) -> None:
    ds = pydicom.dcmread(files[2])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(folder / "copy_of_slice_3.dcm")


def _irregular(folder: Path, files: list[Path]) -> None:
    ipp = [float(v) for v in pydicom.dcmread(files[2]).ImagePositionPatient]
    edit(files[2], ImagePositionPatient=[ipp[0], ipp[1], ipp[2] + 0.8])


def _rows(folder: Path, files: list[Path]) -> None:
    ds = pydicom.dcmread(files[4])
    ds.Rows, ds.Columns = 4, 4
    ds.PixelData = np.zeros((4, 4), np.int16).tobytes()
    ds.save_as(files[4])


def _spacing(folder: Path, files: list[Path]) -> None:
    edit(files[4], PixelSpacing=["1.5", "1.3"])


def _iop(folder: Path, files: list[Path]) -> None:
    edit(files[4], ImageOrientationPatient=["-1", "0", "0", "0", "1", "0"])


def _truncated_pixels(folder: Path, files: list[Path]) -> None:
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 60])


def _truncated_header(folder: Path, files: list[Path]) -> None:  # cut inside an element
    data = files[2].read_bytes()
    files[2].write_bytes(data[:300])


def _header_cut_between_elements(folder: Path, files: list[Path]) -> None:  # pydicom reads it quietly
    data = files[2].read_bytes()
    files[2].write_bytes(data[:600])


def _no_ipp(folder: Path, files: list[Path]) -> None:
    edit(files[1], ImagePositionPatient=None)


BAD_INPUTS = {
    # case: (how to break the series, error class, words the message must contain, index of file named or None for folder)
    "non-CT only": (_mr, SeriesSelectionError, ["no CT image series", "MR"], None),
    "gantry tilt tag": (_tilt_tag, GeometryError, ["gantry tilt", "12.5"], 0),
    "oblique": (_oblique, GeometryError, ["oblique"], 0),
    "sagittal": (_sagittal, GeometryError, ["non-axial (sagittal) series"], 0),
    "IPP not along normal": (_sheared, GeometryError, ["not along the slice normal"], 1),
    "missing slice": (_missing, GeometryError, ["missing slices", "gap of 5.000 mm", "median spacing 2.500"], None),
    "duplicate position": (_duplicate, GeometryError, ["duplicate slice position"], None),
    "irregular spacing": (_irregular, GeometryError, ["irregular slice spacing"], 2),
    "inconsistent rows": (_rows, GeometryError, ["inconsistent Rows/Columns", "(10, 8)", "(4, 4)"], 4),
    "inconsistent spacing": (_spacing, GeometryError, ["inconsistent PixelSpacing"], 4),
    "inconsistent IOP": (_iop, GeometryError, ["inconsistent ImageOrientationPatient"], 4),
    "truncated pixel data": (_truncated_pixels, InputError, ["cannot read pixel data"], 2),
    "truncated header": (_truncated_header, InputError, ["header cannot be read"], 2),
    "header cut quietly": (_header_cut_between_elements, InputError, ["header cannot be read", "truncated"], 2),
    "missing IPP": (_no_ipp, GeometryError, ["missing ImagePositionPatient"], 1),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_series_is_refused_with_one_clear_line(tiny, case: str) -> None:
    folder, _ = tiny
    breaker, error, words, named = BAD_INPUTS[case]
    files = slice_files(folder)
    breaker(folder, files)
    with pytest.raises(error) as err:
        read_ct_series(folder)
    message = str(err.value)
    for word in words:
        assert word in message, f"{case}: '{word}' not in: {message}"
    assert (str(files[named]) if named is not None else str(folder)) in message
    assert "\n" not in message


def test_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="folder not found"):
        read_ct_series(tmp_path / "absent")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        read_ct_series(tmp_path / "file.txt")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.dcm").write_text("hello")
    with pytest.raises(SeriesSelectionError, match=r"no DICOM series found \(1 files, none of them DICOM\)"):
        read_ct_series(junk)
