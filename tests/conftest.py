"""Shared fixtures: paths to the real case, skips for missing tools, tiny geometries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_CASE = SHARED_DATA / "pelvic-ref-002"


@pytest.fixture(scope="session")
def real_case() -> Path:
    """The real pelvic CT + RTSTRUCT case; skips with a reason when ../shared/data is absent."""
    if not (REAL_CASE / "dicom").is_dir():
        pytest.skip(f"real data not present at {REAL_CASE} (only in the project's CI/dev machines)")
    return REAL_CASE


def require_tool(name: str) -> str:
    """Path of an external tool, or skip the test naming the missing Debian package."""
    path = shutil.which(name)
    if path is None:
        packages = {"dciodvfy": "dicom3tools", "plastimatch": "plastimatch", "storescu": "dcmtk", "storescp": "dcmtk", "echoscu": "dcmtk"}
        pytest.skip(f"{name} not installed (Debian package {packages.get(name, name)})")
    return path

from tests.dicom.support import plastimatch_masks, real_patient  # noqa: E402,F401  (session fixtures: real case read once)


@pytest.fixture(scope="session")
def real_case_plastimatch_masks(real_case: Path, tmp_path_factory) -> Path:
    """Folder of NIfTI masks of every ROI of the real RTSTRUCT, rasterised by plastimatch.

    Independent of cervseg's readers: the metric tests score these masks with both
    plastimatch and cervseg; the evaluate CLI test compares cervseg's whole pipeline with
    plastimatch's.
    """
    import subprocess

    exe = require_tool("plastimatch")
    out = tmp_path_factory.mktemp("plastimatch_all_rois")
    dicom = real_case / "dicom"
    rtstruct = next(dicom.glob("RS*.dcm"))
    subprocess.run(
        [exe, "convert", "--input", str(rtstruct), "--referenced-ct", str(dicom),
         "--output-prefix", str(out), "--prefix-format", "nii.gz"],
        capture_output=True, check=True,
    )
    return out


@pytest.fixture
def locked_folder(tmp_path: Path):
    """A folder nobody may create files in: read-only mode, or immutable when running as root."""
    import os
    import subprocess

    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i: cannot make a folder unwritable")
    try:
        yield folder
    finally:
        subprocess.run([chattr, "-i", str(folder)], capture_output=True)
