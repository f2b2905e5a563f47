"""`cervseg demo`: what `make demo` runs. For now: convert the real case (or, where it is
absent, a small built-in synthetic patient) and log the structures found.

A later issue replaces this with the full contouring job; keep it small.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import typer

import cervseg
from cervseg.cli.main import command
from cervseg.dicom.patient import read_patient
from cervseg.dicom.rtstruct_write import write_rtstruct
from cervseg.dicom.series_write import write_ct_series
from cervseg.nifti import check_replaceable, write_case
from cervseg.outputs import atomic_dir
from cervseg.volume import Geometry, LabelMap, SeriesInfo, Volume

log = logging.getLogger(__name__)

REAL_CASE = "pelvic-ref-002"
ENV_SHARED_DATA = "CERVSEG_SHARED_DATA"
HELP = (
    "Run the demo: convert the real pelvic case (../shared/data/pelvic-ref-002, or the folder "
    f"named by ${ENV_SHARED_DATA}) with the prostate template, or a small built-in synthetic "
    "patient when that case is absent, and log each structure's volume and centroid.\n\n"
    "Writes OUT/nifti/image.nii.gz and OUT/nifti/masks/; the synthetic patient's DICOM CT "
    "and RTSTRUCT go to OUT/dicom/."
)
EXAMPLE = """\
Example:

  cervseg demo --out demo-output
"""


def real_case_folder() -> Path | None:
    """The real case's DICOM folder, or None when it is not on this machine."""
    env = os.environ.get(ENV_SHARED_DATA)
    shared = Path(env) if env else Path(cervseg.__file__).resolve().parents[2].parent / "shared" / "data"
    folder = shared / REAL_CASE / "dicom"
    return folder if folder.is_dir() else None


def synthetic_patient(out_dir: Path) -> Path:
    """Write a tiny HFS pelvis (CT + RTSTRUCT) into ``out_dir``: spheres and boxes standing
    for bladder, rectum (with gas), prostate and femoral heads (left at +x, patient left)."""
    shape, spacing = (24, 64, 72), (3.0, 4.0, 4.0)
    origin = (-(shape[2] - 1) * spacing[2] / 2, -(shape[1] - 1) * spacing[1] / 2, -36.0)
    geometry = Geometry.axial(shape, spacing, origin)
    zz, yy, xx = np.indices(shape)
    lps = geometry.index_to_lps(np.column_stack([zz.ravel(), yy.ravel(), xx.ravel()])).reshape(*shape, 3)
    x, y, z = lps[..., 0], lps[..., 1], lps[..., 2]

    def ball(cx: float, cy: float, cz: float, r: float) -> np.ndarray:
        return (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r**2

    body = (x / 130) ** 2 + (y / 95) ** 2 <= 1
    masks = {
        "Bladder": ball(0, -30, 10, 24),
        "Prostate": ball(0, 4, -15, 14),
        "Rectum": ((x / 14) ** 2 + ((y - 34) / 14) ** 2 <= 1) & (np.abs(z) <= 30),
        "Femur_Head_L": ball(85, 0, -10, 22),
        "Femur_Head_R": ball(-85, 0, -10, 22),
    }
    hu = np.where(body, 30.0, -1000.0)
    hu[masks["Bladder"]] = 10.0
    hu[masks["Prostate"]] = 45.0
    hu[masks["Rectum"]] = 20.0
    hu[masks["Rectum"] & ((x / 6) ** 2 + ((y - 34) / 6) ** 2 <= 1)] = -900.0  # gas in the lumen
    hu[masks["Femur_Head_L"] | masks["Femur_Head_R"]] = 400.0
    info = SeriesInfo(
        patient={"PatientName": "Demo^Synthetic", "PatientID": "CERVSEG-DEMO", "PatientSex": "M"},
        study={"StudyDescription": "cervseg synthetic demo", "StudyID": "1"},
    )
    volume = write_ct_series(Volume(hu, geometry, info), out_dir, series_description="cervseg demo CT")
    labels = LabelMap(volume.geometry, masks)
    write_rtstruct(
        labels, volume, out_dir / "RS_demo.dcm", label="demo", roi_generation_algorithm="MANUAL",
        series_description="cervseg demo structures", description="Synthetic ground truth",
    )
    return out_dir


def log_structures(labels: LabelMap) -> None:
    """Volume and centroid (LPS mm; +x is patient left) of every structure."""
    geometry = labels.geometry
    log.info("%d structures; centroids in patient LPS mm (+x = patient left, +y = posterior)", len(labels))
    for name in labels:
        mask = labels[name]
        if not mask.any():
            log.info("%-14s empty", name)
            continue
        centroid = geometry.index_to_lps(np.argwhere(mask).mean(axis=0))[0]
        log.info(
            "%-14s %8.1f ml  centroid (%.1f, %.1f, %.1f)",
            name, labels.voxel_volume_ml(name), *centroid,
        )


@command("demo", help=HELP, epilog=EXAMPLE)
def demo(out: Path = typer.Option(..., "--out", help="Output folder (replaced if it holds a previous demo).")) -> None:
    """The demo job (see HELP)."""
    check_replaceable(out, allowed=("nifti", "dicom"))
    source = real_case_folder()
    with atomic_dir(out) as tmp:
        if source is None:
            log.info("real case not found (set %s to the shared data folder): using a synthetic patient",
                     ENV_SHARED_DATA)
            source = synthetic_patient(tmp / "dicom")
        else:
            log.info("real case: %s", source)
        patient = read_patient(source, "prostate")
        log_structures(patient.labels)
        write_case(patient.volume, patient.labels, tmp / "nifti")
    log.info("wrote %s", out / "nifti")
