"""`cervseg review` refusals: one clear ERROR line, exit 2, no server started."""

from __future__ import annotations

from typer.testing import CliRunner

from cervseg.cli.main import app


def error_lines(*args) -> list[str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    return [ln for ln in result.output.splitlines() if ln.startswith("ERROR")]


def test_review_refuses_a_missing_root_a_short_token_and_a_missing_db_folder(tmp_path):
    (line,) = error_lines("review", "--cases", tmp_path / "missing", "--db", tmp_path / "r.sqlite")
    assert "review root folder not found" in line and "missing" in line
    (line,) = error_lines("review", "--cases", tmp_path, "--db", tmp_path / "r.sqlite", "--token", "abc")
    assert "--token" in line and "at least 8 characters" in line
    (line,) = error_lines("review", "--cases", tmp_path, "--db", tmp_path / "no" / "r.sqlite")
    assert "does not exist" in line
