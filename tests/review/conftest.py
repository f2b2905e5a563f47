"""A review root on disk: tiny DICOM patients with an automatic and a reference RTSTRUCT.

The automatic contours differ from the reference in known ways (bladder shifted by two
pixels on every slice, rectum exact), so slice metrics and grades have something to show.
A review server in a subprocess on a free port, for the kill/restart and browser tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from cervseg.dicom.rtstruct_write import write_rtstruct
from cervseg.dicom.series_write import write_ct_series
from cervseg.qa.files import qa_file_name, write_qa_csv
from cervseg.qa.scores import slice_qa
from cervseg.structures import Catalogue
from cervseg.volume import LabelMap
from tests.tiny_data import tiny_patient

REPO = Path(__file__).resolve().parents[2]
CASES = ("CASE01", "CASE02")


def write_case(folder: Path, seed: int, with_reference: bool = True, with_qa: bool = True) -> dict:
    """One case folder as `segment` leaves it (+ a reference); returns the patient's identity."""
    volume, truth = tiny_patient(seed)
    written = write_ct_series(volume, folder / "CT")
    auto = LabelMap(truth.geometry, {
        "Bladder": np.roll(truth["Bladder"], 2, axis=2), "Rectum": truth["Rectum"],
        "Femur_Head_L": truth["Femur_Head_L"], "Femur_Head_R": truth["Femur_Head_R"],
    })
    write_rtstruct(auto, written, folder / f"RS_{written.series.series_instance_uid}.dcm", label="cervseg AUTO")
    if with_reference:
        write_rtstruct(truth, written, folder / "reference" / "RS_manual.dcm", label="manual")
    if with_qa:
        rows = slice_qa(written, auto, None, Catalogue.builtin())
        write_qa_csv(rows, folder / qa_file_name(written.series.series_instance_uid))
    return {"volume": written, "auto": auto, "truth": truth, **volume.series.patient}


@pytest.fixture(scope="session")
def review_root(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    root = tmp_path_factory.mktemp("review_root")
    info = {}
    for i, name in enumerate(CASES):
        (root / name / "reference").mkdir(parents=True)
        info[name] = write_case(root / name, seed=i)
    (root / "not-a-case").mkdir()  # a folder without DICOM: skipped with a warning
    return root, info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ReviewServer:
    """`cervseg review` in a subprocess (its stderr kept in a file for the log checks)."""

    def __init__(self, root: Path, db: Path, log_file: Path, token: str | None = None) -> None:
        self.root, self.db, self.log_file, self.token = root, db, log_file, token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "ReviewServer":
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
        args = [sys.executable, "-m", "cervseg", "-v", "review", "--cases", str(self.root), "--db", str(self.db),
                "--port", str(self.port)]
        if self.token:
            args += ["--token", self.token]
        self._log = open(self.log_file, "ab")
        self.process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"review server exited: {self.log_file.read_text()}")
            try:
                httpx.get(self.url + "/static/style.css", params={"token": self.token} if self.token else None, timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("review server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()
