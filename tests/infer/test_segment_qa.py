"""segment writes QA_<uid>.csv beside the RTSTRUCT; the predictor's probability map behind it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cervseg.dicom.series import read_ct_series
from cervseg.infer.predictor import Predictor
from cervseg.infer.segment import segment_series
from cervseg.qa.scores import QA_COLUMNS
from tests.infer.test_segment import ct_folder  # noqa: F401  (module fixture: a small HFP series)


def test_segment_writes_a_qa_row_for_every_contoured_slice(ct_folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    result = segment_series(ct_folder, tmp_path / "out", model=checkpoint)
    uid = result.volume.series.series_instance_uid
    qa_file = tmp_path / "out" / f"QA_{uid}.csv"
    assert qa_file in result.outputs and result.rtstruct.parent == qa_file.parent
    with open(qa_file, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == QA_COLUMNS
        rows = list(reader)
    expected = {(int(z), name) for name in result.labels for z in np.flatnonzero(result.labels[name].any(axis=(1, 2)))}
    assert expected and {(int(r["slice_index"]), r["structure"]) for r in rows} == expected
    assert all(0.0 <= float(r["score"]) <= 1.0 and r["uncertain_width_mm"] not in ("", "nan") for r in rows)
    assert "qa" in result.timings

    quiet = segment_series(ct_folder, tmp_path / "no_qa", model=checkpoint, qa=False)
    assert [p.name for p in quiet.outputs] == [f"RS_{uid}.dcm"]


def test_probabilities_come_back_on_the_ct_grid_and_do_not_change_the_masks(ct_folder: Path, checkpoint: Path) -> None:
    volume = read_ct_series(ct_folder)
    predictor = Predictor.from_checkpoint(checkpoint, threads=1)
    plain = predictor.predict(volume, show_progress=False)
    probabilities: dict[str, np.ndarray] = {}
    masks = predictor.predict(volume, show_progress=False, probabilities=probabilities)
    assert set(probabilities) == set(predictor.metadata.channels)
    for name in plain:
        np.testing.assert_array_equal(plain[name], masks[name])
        p = probabilities[name]
        assert p.shape == volume.geometry.shape and p.dtype == np.uint8
        seen = p > 0
        # the mask is where the probability passed the threshold (uint8 rounding aside)
        agree = masks[name][seen] == ((p[seen].astype(float) - 1) / 254 >= predictor.threshold)
        assert agree.mean() > 0.99, name
        assert not masks[name][~seen].any(), "nothing is contoured where the model did not look"


def test_qa_flag_on_the_command_line(ct_folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cervseg.cli.main import app

    result = CliRunner().invoke(app, ["segment", "--dicom", str(ct_folder), "--out", str(tmp_path / "o"),
                                      "--model", str(checkpoint), "--no-qa"])
    assert result.exit_code == 0, result.output
    assert not list((tmp_path / "o").glob("QA_*.csv")) and list((tmp_path / "o").glob("RS_*.dcm"))
