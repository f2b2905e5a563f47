"""`segment --all-series`: every CT series under a root, model loaded once, a failure does not stop the rest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from cervseg.errors import InputError, SeriesSelectionError
from cervseg.infer import batch
from cervseg.infer.batch import output_name, segment_all_series
from cervseg.outputs import WRITTEN_RECORD
from tests.infer.conftest import checkpoint  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A department export: three phantom patients (CT + RTSTRUCT), the third CT missing a slice."""
    from cervseg.phantom.cohort import write_cohort

    root = tmp_path_factory.mktemp("export") / "root"
    folders = write_cohort(root, 3, seed=5, preset="tiny")
    (root / "cohort.json").unlink()
    by_z = sorted((folders[2] / "CT").glob("*.dcm"),
                  key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
    by_z[len(by_z) // 2].unlink()
    return root


def _series(folder: Path) -> tuple[str, str]:
    ds = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
    return str(ds.SeriesInstanceUID), str(ds.PatientID)


def test_every_ct_series_is_contoured_once_with_one_model_and_a_failure_is_a_row(
    export_root: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    loads = []
    real_loader = batch.load_predictor
    monkeypatch.setattr(batch, "load_predictor", lambda *a, **k: loads.append(a) or real_loader(*a, **k))
    rows = segment_all_series(export_root, tmp_path / "out", model=checkpoint, threads=1)

    assert len(loads) == 1
    patients = sorted(p for p in export_root.iterdir())
    expected = {_series(p / "CT")[0]: (p, _series(p / "CT")[1]) for p in patients}
    assert {r.series_uid for r in rows} == set(expected)  # the RTSTRUCTs are not series to contour
    good, bad = [r for r in rows if r.ok], [r for r in rows if not r.ok]
    assert len(good) == 2 and len(bad) == 1
    assert expected[bad[0].series_uid][0] == patients[2]
    assert "missing slices" in bad[0].error and "\n" not in bad[0].error
    for row in good:
        patient, patient_id = expected[row.series_uid]
        assert row.out == tmp_path / "out" / patient_id and row.folder == Path(patient.name) / "CT"
        assert sorted(p.name for p in row.out.iterdir()) == [WRITTEN_RECORD, f"QA_{row.series_uid}.csv",
                                                             f"RS_{row.series_uid}.dcm"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(expected[r.series_uid][1] for r in good)


def test_output_names_are_safe_and_fall_back_to_the_folder() -> None:
    assert output_name("CERVSEG-tiny-12", Path("a/CT")) == "CERVSEG-tiny-12"
    assert output_name("../../etc/x y", Path("a")) == "etc_x_y"
    assert output_name("  ", Path("site/p01/CT")) == "site_p01_CT"
    assert output_name("", Path(".")) == "series"


def test_a_root_without_ct_or_with_the_output_inside_is_refused(export_root: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must not be inside"):
        segment_all_series(export_root, export_root / "out")
    empty = tmp_path / "empty"
    shutil.copytree(export_root / sorted(p.name for p in export_root.iterdir())[0], empty, ignore=shutil.ignore_patterns("CT"))
    with pytest.raises(SeriesSelectionError, match="no CT image series"):
        segment_all_series(empty, tmp_path / "out")
