"""Every CT series under a folder, contoured with the model loaded once (`segment --all-series`).

Why apart from ``segment``: a department's export holds many patients; loading the model
once and going on after a series that fails its geometry checks turns a night of exports
into one command. Each series gets ``OUT/<PatientID or folder>/RS_<SeriesInstanceUID>.dcm``
written by ``segment_series`` itself, so a batch result is the same file a single run makes.
Series of one patient share that patient's folder (their files are named by series UID).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import CTImageStorage

from cervseg.dicom.series import list_series
from cervseg.errors import CervsegError, SeriesSelectionError
from cervseg.infer.segment import load_predictor, segment_series
from cervseg.outputs import ensure_not_inside

log = logging.getLogger(__name__)

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class BatchRow:
    """One series of the batch and what became of it."""

    series_uid: str
    folder: Path  # where its files are, relative to the root
    out: Path
    slices: int
    ok: bool
    seconds: float = 0.0
    error: str = ""


def output_name(patient_id: str, folder: Path) -> str:
    """A safe folder name: the PatientID, else the series' folder relative to the root."""
    name = UNSAFE.sub("_", patient_id.strip()).strip("._")
    if not name:
        name = UNSAFE.sub("_", "_".join(folder.parts)).strip("._") or "series"
    return name


def segment_all_series(root: Path, out: Path, *, model: Path | None = None, **options: object) -> list[BatchRow]:
    """Contour every single-frame CT series below ``root``; failures are rows, not exceptions.

    ``options`` go to ``segment_series`` (nifti, seg, names_file) and to the model loader
    (flip_tta, batch_size, threads).
    """
    root, out = Path(root), Path(out)
    ensure_not_inside(out, root)
    series = [s for s in list_series(root) if s.modality == "CT" and s.sop_class_uid == CTImageStorage]
    if not series:
        raise SeriesSelectionError(f"{root}: no CT image series found")
    loader = {k: options.pop(k) for k in ("flip_tta", "batch_size", "threads") if k in options}
    predictor = load_predictor(model, **loader)  # type: ignore[arg-type]
    log.info("%s: %d CT series to contour", root, len(series))
    rows = []
    for s in sorted(series, key=lambda s: (str(_common_folder(s.files)), s.series_instance_uid)):
        folder = _common_folder(s.files)
        relative = folder.relative_to(root) if folder != root else Path(".")
        target = out / output_name(_patient_id(s.files[0]), relative)
        try:
            result = segment_series(folder, target, series_uid=s.series_instance_uid, predictor=predictor,
                                    **options)  # type: ignore[arg-type]
            rows.append(BatchRow(s.series_instance_uid, relative, target, s.n_files, True, result.timings["total"]))
        except CervsegError as exc:
            reason = " ".join(str(exc).split())
            log.error("series %s in %s failed: %s", s.series_instance_uid, relative, reason)
            rows.append(BatchRow(s.series_instance_uid, relative, target, s.n_files, False, error=reason))
    return rows


def _common_folder(files: tuple[Path, ...]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in files]))


def _patient_id(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"]).get("PatientID", ""))
