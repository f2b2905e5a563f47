"""Where the node keeps what it received and what it made, on disk.

Layout under the spool folder:
``series/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` (received instances),
``results/<job id>/`` (the RTSTRUCT a job wrote) and ``jobs.sqlite`` (the job queue).

Why files named by UID: a peer that re-sends an instance (same SOP Instance UID) overwrites
nothing and is stored once, and a series folder is exactly what ``read_ct_series`` reads.
UIDs come from the network, so they are checked to be DICOM UIDs (digits and dots) before
they become path components: a crafted UID cannot write outside the spool.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

from cervseg.outputs import atomic_file

UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_uid(value: str) -> bool:
    """True for a syntactically valid DICOM UID (at most 64 characters of digits and dots)."""
    return len(value) <= 64 and bool(UID_PATTERN.match(value))


class Spool:
    """Received instances and job results below one root folder; safe to use from many threads."""

    DATABASE = "jobs.sqlite"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.series_root = self.root / "series"
        self.results_root = self.root / "results"
        self.series_root.mkdir(parents=True, exist_ok=True)
        self.results_root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._in_flight: set[Path] = set()

    @property
    def database(self) -> Path:
        return self.root / self.DATABASE

    def series_folder(self, study_uid: str, series_uid: str) -> Path:
        for uid in (study_uid, series_uid):
            if not is_uid(uid):
                raise ValueError(f"not a DICOM UID: {uid!r}")
        return self.series_root / study_uid / series_uid

    def store(self, study_uid: str, series_uid: str, sop_instance_uid: str, encoded: bytes) -> bool:
        """Write one instance atomically; False (and nothing written) when it is already here."""
        if not is_uid(sop_instance_uid):
            raise ValueError(f"not a DICOM UID: {sop_instance_uid!r}")
        target = self.series_folder(study_uid, series_uid) / f"{sop_instance_uid}.dcm"
        with self._lock:
            if target in self._in_flight or target.exists():
                return False
            self._in_flight.add(target)
        try:
            with atomic_file(target) as tmp:
                tmp.write_bytes(encoded)
        finally:
            with self._lock:
                self._in_flight.discard(target)
        return True

    def result_folder(self, job_id: int) -> Path:
        return self.results_root / str(int(job_id))

    def remove_series(self, study_uid: str, series_uid: str) -> None:
        folder = self.series_folder(study_uid, series_uid)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.parent.rmdir()  # the study folder, once its last series is gone
        except OSError:
            pass

    def remove_result(self, job_id: int) -> None:
        shutil.rmtree(self.result_folder(job_id), ignore_errors=True)
