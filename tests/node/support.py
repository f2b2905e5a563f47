"""Real DICOM peers for the node tests: dcmtk's storescu, storescp and echoscu, started here.

Every peer is a subprocess on a free port of 127.0.0.1, stopped by the test that started it.
Waiting is polling with a generous deadline (the machine is shared), never a timing assertion.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, TypeVar

import pydicom

from tests.conftest import require_tool

T = TypeVar("T")
NODE_AET = "CERVSEG"
SCANNER_AET = "SCANNER"
TPS_AET = "TPS"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 180.0, interval: float = 0.2) -> T:
    """Poll until ``predicate()`` is truthy and return it; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def echo(port: int, called: str, calling: str = SCANNER_AET) -> bool:
    """True when a C-ECHO from ``calling`` to ``called`` on ``port`` succeeds."""
    exe = require_tool("echoscu")
    result = subprocess.run([exe, "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
                            capture_output=True, text=True, timeout=60)
    return result.returncode == 0


def storescu(folder: Path, port: int, calling: str = SCANNER_AET, called: str = NODE_AET,
             wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    """Send every DICOM file under ``folder`` on one association (as a scanner does)."""
    exe = require_tool("storescu")
    cmd = [exe, "-aet", calling, "-aec", called, "127.0.0.1", str(port), "+sd", "+r", "+sp", "*.dcm", str(folder)]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class StoreSCP:
    """dcmtk storescp: the planning system receiving our RTSTRUCTs into ``folder``."""

    def __init__(self, folder: Path, port: int | None = None, ae_title: str = TPS_AET) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.ae_title = ae_title
        self.process: subprocess.Popen | None = None

    def start(self) -> "StoreSCP":
        exe = require_tool("storescp")
        self.process = subprocess.Popen([exe, "-aet", self.ae_title, "-od", str(self.folder), str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: echo(self.port, self.ae_title), f"storescp on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
            self.process = None

    def received(self) -> list[Path]:
        """Complete files storescp wrote (it names them <modality>.<SOP Instance UID>)."""
        return sorted(p for p in self.folder.iterdir() if p.is_file() and not p.name.startswith("."))

    def __enter__(self) -> "StoreSCP":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def sop_uids(folder: Path) -> set[str]:
    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in Path(folder).rglob("*.dcm")}


def referenced_instances(rtstruct: Path) -> tuple[str, set[str], set[str]]:
    """(referenced series UID, instances of its ContourImageSequence, instances the contours cite)."""
    ds = pydicom.dcmread(rtstruct)
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    listed = {str(item.ReferencedSOPInstanceUID) for item in series.ContourImageSequence}
    cited = {str(image.ReferencedSOPInstanceUID) for roi in ds.ROIContourSequence
             for contour in roi.get("ContourSequence", []) for image in contour.get("ContourImageSequence", [])}
    return str(series.SeriesInstanceUID), listed, cited


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's Error lines for one file (an empty list is a valid object)."""
    exe = require_tool("dciodvfy")
    report = subprocess.run([exe, str(path)], capture_output=True, text=True)
    return [ln for ln in (report.stdout + report.stderr).splitlines() if "Error" in ln]


def stop_process(process: subprocess.Popen, timeout: float = 60.0) -> None:
    """SIGTERM, then SIGKILL if it does not go; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
