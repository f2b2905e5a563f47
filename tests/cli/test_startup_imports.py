"""Start-up: `--help` imports neither torch nor MONAI, and the contouring commands never import
MONAI or matplotlib, even when they run. Each check runs in a fresh interpreter, so
sys.modules holds only what that command imported (timings are in benchmarks/startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cervseg.cli.main import COMMANDS

HEAVY = ("torch", "monai", "matplotlib")
# What the contouring pipeline imports once it runs: none of it is needed to parse arguments.
PIPELINE = (*HEAVY, "numpy", "scipy", "skimage", "pydicom", "highdicom", "nibabel", "PIL")

# Runs the CLI in-process, then reports the exit code and which of the watched libraries got imported.
PROBE = """
import json, sys
watched = sys.argv[1].split(",")
from cervseg.cli.main import app
code = 0
try:
    app(sys.argv[2:], prog_name="cervseg")
except SystemExit as exc:
    code = exc.code or 0
print(json.dumps({"exit": code, "loaded": [m for m in watched if m in sys.modules]}))
"""


def run_cli(*args: str | Path, watch: tuple[str, ...] = HEAVY) -> dict:
    """Exit code and which of ``watch`` `cervseg ARGS` loaded, in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", PROBE, ",".join(watch), *map(str, args)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def imports_of(*modules: str, watch: tuple[str, ...] = HEAVY) -> list[str]:
    """Which of ``watch`` importing ``modules`` loads, in a fresh interpreter."""
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += f"print(' '.join(m for m in {watch!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_help_imports_neither_torch_nor_monai() -> None:
    probe = run_cli("--help", watch=PIPELINE)
    assert probe == {"exit": 0, "loaded": []}


@pytest.mark.parametrize("name", [entry.split(":")[1].replace("_", "-") for entry in COMMANDS])
def test_every_command_help_imports_nothing_heavy(name: str) -> None:
    """Not even numpy, scipy or pydicom: a command's --help parses no data."""
    probe = run_cli(name, "--help", watch=PIPELINE)
    assert probe == {"exit": 0, "loaded": []}


def test_segment_command_module_imports_no_pipeline_library() -> None:
    """Importing the command parses nothing: the CT reader, the model, post-processing and
    the contour libraries load when `cervseg segment` runs."""
    assert imports_of("cervseg.cli.main", "cervseg.cli.segment_cmd", watch=PIPELINE) == []
    loaded = imports_of("cervseg.infer.segment", watch=PIPELINE)  # the probe sees real imports
    assert {"torch", "numpy", "scipy", "pydicom"} <= set(loaded) and "monai" not in loaded


def test_segment_path_modules_do_not_import_monai_or_matplotlib() -> None:
    loaded = imports_of("cervseg.cli.segment_cmd", "cervseg.infer.segment", "cervseg.infer.predictor",
                        "cervseg.infer.builtin", "cervseg.models.registry")
    assert "torch" in loaded  # the probe sees real imports
    assert "monai" not in loaded and "matplotlib" not in loaded


@pytest.mark.slow  # importing MONAI takes seconds
def test_the_probe_sees_monai_where_it_is_used() -> None:
    assert "monai" in imports_of("cervseg.metrics.surface")
    assert "matplotlib" in imports_of("cervseg.report.case_overlay")


@pytest.fixture(scope="module")
def phantom_patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cervseg.phantom.cohort import write_cohort

    return write_cohort(tmp_path_factory.mktemp("phantom"), 1, seed=3, preset="tiny")[0]


def test_contouring_commands_run_without_monai_or_matplotlib(phantom_patient: Path, tmp_path: Path) -> None:
    """convert, to-rtstruct and segment (the built-in ResAU-Net) each in a fresh process."""
    converted = tmp_path / "nifti"
    assert run_cli("convert", "--dicom", phantom_patient, "--out", converted) == {"exit": 0, "loaded": []}
    ct = next(p.parent for p in phantom_patient.rglob("*.dcm") if not p.name.startswith("RS"))
    rs = tmp_path / "RS.dcm"
    assert run_cli("to-rtstruct", "--dicom", ct, "--masks", converted / "masks", "--out", rs) == {"exit": 0, "loaded": []}
    assert rs.is_file()
    probe = run_cli("segment", "--dicom", ct, "--out", tmp_path / "contours", "--threads", "1")
    assert probe == {"exit": 0, "loaded": ["torch"]}
    assert len(list((tmp_path / "contours").glob("RS_*.dcm"))) == 1
