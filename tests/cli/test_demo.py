"""`cervseg demo` (what `make demo` runs): phantom -> model -> RTSTRUCT, scores and overlay."""

from __future__ import annotations

from pathlib import Path

import pydicom
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.structures import load_template
from tests.infer.conftest import checkpoint  # noqa: F401  (fixture)


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_demo_runs_the_whole_job(tmp_path: Path, checkpoint: Path) -> None:  # noqa: F811
    out = tmp_path / "demo"
    result = run("demo", "--out", out, "--preset", "tiny", "--seed", "3", "--model", checkpoint)
    assert result.exit_code == 0, result.output
    table = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()
             if line.split() and line.split()[0] in load_template("cervix").structures}
    assert sorted(table) == sorted(load_template("cervix").structures)
    assert all(0.0 <= float(row[0]) <= 1.0 for row in table.values())
    assert "s/slice" in result.output
    rs = list((out / "contours").glob("RS_*.dcm"))
    assert len(rs) == 1
    phantom_series = {p.parent.name for p in (out / "phantom").rglob("CT*.dcm")}
    assert phantom_series, "the phantom CT is kept beside the contours"
    ds = pydicom.dcmread(rs[0])
    assert "AUTOMATIC" in ds.StructureSetDescription
    assert (out / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run("demo", "--out", out, "--preset", "tiny", "--seed", "3", "--model", checkpoint)
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_demo_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    result = run("demo", "--out", tmp_path, "--preset", "tiny")
    assert result.exit_code == 2
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_demo_without_builtin_model_says_how_to_get_one(tmp_path: Path, monkeypatch) -> None:
    from cervseg.errors import InputError
    import cervseg.infer.segment as segment

    def missing() -> Path:
        raise InputError("built-in model is not installed; pass --model")

    monkeypatch.setattr(segment, "builtin_model_path", missing)
    result = run("demo", "--out", tmp_path / "demo", "--preset", "tiny")
    assert result.exit_code == 2
    assert "--model" in result.output
    assert not (tmp_path / "demo").exists()
