"""Tiny training data for the data, training and CLI tests.

Two sources:
- ``tiny_patient``: ellipsoids on 24x64x64 whose structures are known exactly (used where a
  test needs exact answers: cache round trip, crop, left/right flips). Left/right follow
  patient x: with the HFS axial grid used here, array column index grows towards the
  patient's left, so Femur_Head_L sits at larger column indices.
- ``build_phantom_cache``: the project's phantom generator (``tiny`` preset, about
  33x96x96, all nine cervix structures), for training tests on realistic anatomy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cervseg.volume import Geometry, LabelMap, SeriesInfo, Volume

STRUCTURES = ("Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R", "SpinalCord")


def _ellipsoid(shape, centre, radii):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2) <= 1.0


def tiny_patient(seed: int, shape=(24, 64, 64), spacing=(3.0, 2.5, 2.5)) -> tuple[Volume, LabelMap]:
    """A body with bladder, rectum, two femoral heads and a spinal cord, jittered by seed."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    j = lambda s: rng.uniform(-s, s)  # noqa: E731
    cy, cx = ny / 2 + j(3), nx / 2 + j(3)
    hu = np.full(shape, -1000.0)
    body = _ellipsoid(shape, (nz / 2, cy, cx), (nz * 4, ny * 0.36, nx * 0.44))
    hu[body] = -90.0  # fat
    muscle = _ellipsoid(shape, (nz / 2, cy, cx), (nz * 4, ny * 0.3, nx * 0.38))
    hu[muscle] = 45.0
    masks = {
        "Bladder": _ellipsoid(shape, (nz * 0.45 + j(1), cy - ny * 0.12, cx + j(1)), (nz * 0.22, ny * 0.09, nx * 0.1)),
        "Rectum": _ellipsoid(shape, (nz * 0.5 + j(1), cy + ny * 0.1, cx + j(1)), (nz * 0.3, ny * 0.05, nx * 0.05)),
        "Femur_Head_L": _ellipsoid(shape, (nz * 0.3 + j(1), cy, cx + nx * 0.24), (nz * 0.15, ny * 0.07, nx * 0.07)),
        "Femur_Head_R": _ellipsoid(shape, (nz * 0.3 + j(1), cy, cx - nx * 0.24), (nz * 0.15, ny * 0.07, nx * 0.07)),
        "SpinalCord": _ellipsoid(shape, (nz * 0.8, cy + ny * 0.22, cx), (nz * 0.25, ny * 0.03, nx * 0.03)),
    }
    hu[masks["Bladder"]] = 10.0
    hu[masks["Rectum"]] = -400.0
    hu[masks["Femur_Head_L"] | masks["Femur_Head_R"]] = 700.0
    ring = _ellipsoid(shape, (nz * 0.8, cy + ny * 0.22, cx), (nz * 0.25, ny * 0.06, nx * 0.06)) & ~masks["SpinalCord"]
    hu[ring] = 600.0
    hu[masks["SpinalCord"]] = 30.0
    hu += rng.normal(0, 10, size=shape)
    geom = Geometry.axial(shape, spacing, (-nx * spacing[2] / 2, -ny * spacing[1] / 2, -100.0 + j(5)),
                          frame_of_reference_uid=f"1.2.826.0.1.3680043.10.9999.{seed + 1}")
    vol = Volume(np.rint(hu).astype(np.int16), geom,
                 SeriesInfo(patient={"PatientID": f"TINY{seed:03d}", "PatientName": f"Tiny^{seed}"}))
    return vol, LabelMap(geom, masks)


def write_tiny_dicom(folder: Path, seed: int, shape=(24, 64, 64), names: dict[str, str] | None = None,
                     drop: tuple[str, ...] = ()) -> Path:
    """Write one tiny patient as a CT series + RTSTRUCT in ``folder`` (ROIs renamed by ``names``)."""
    from cervseg.dicom.rtstruct_write import write_rtstruct
    from cervseg.dicom.series_write import write_ct_series

    vol, labels = tiny_patient(seed, shape)
    written = write_ct_series(vol, folder / "CT")
    names = names or {}
    renamed = LabelMap(labels.geometry, {names.get(k, k): v for k, v in labels.items() if k not in drop})
    write_rtstruct(renamed, written, folder / "RS.dcm")
    return folder


def build_tiny_cache(out: Path, n: int = 4, *, shape=(24, 64, 64), val_fraction: float = 0.25,
                     test_fraction: float = 0.0, seed: int = 0) -> Path:
    """A training cache of ``n`` tiny patients (P00, P01, ...) written with the real cache writer."""
    from cervseg.data.cache import PatientRecord, build_cache

    root = Path(out).parent / f".{Path(out).name}-sources"
    folders = []
    for i in range(n):
        folders.append(root / f"P{i:02d}")
        folders[-1].mkdir(parents=True, exist_ok=True)

    def read(folder: Path) -> PatientRecord:
        vol, labels = tiny_patient(int(folder.name[1:]), shape)
        return PatientRecord(vol, labels)

    build_cache(out, folders, read, STRUCTURES, seed=seed, val_fraction=val_fraction,
                test_fraction=test_fraction, extra={"template": "tiny-test"})
    return Path(out)


PHANTOM_CROP = 80  # the tiny phantoms' body is about 75 px wide at 5.6 mm pixels


def build_phantom_cache(out: Path, n: int = 4, *, val_fraction: float = 0.25, test_fraction: float = 0.0,
                        seed: int = 0) -> Path:
    """A training cache of ``n`` tiny phantoms (PH00, PH01, ...), straight from the generator."""
    from cervseg.data.cache import PatientRecord, build_cache
    from cervseg.phantom.generator import generate_patient
    from cervseg.phantom.truth import STRUCTURE_NAMES

    root = Path(out).parent / f".{Path(out).name}-sources"
    folders = [root / f"PH{i:02d}" for i in range(n)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)

    def read(folder: Path) -> PatientRecord:
        vol, labels = generate_patient(100 + int(folder.name[2:]), "tiny")
        return PatientRecord(vol, labels)

    build_cache(out, folders, read, list(STRUCTURE_NAMES), seed=seed,
                val_fraction=val_fraction, test_fraction=test_fraction, extra={"template": "cervix"})
    return Path(out)
