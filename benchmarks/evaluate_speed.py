"""How long `cervseg evaluate` takes for 10 default-size patients with 9 structures.

Prints the wall-clock time of the whole evaluation (reading the folders, all metrics in 3D
and per slice, CSVs, plots, overlays, HTML) and of the metrics alone. No assertion on time:
the figures go into docs/evaluation.md.

Patients: by default cervseg.phantom `default` patients (512 x 512, 70-118 slices, the nine
`cervix` structures drawn by a simulated observer); ``--source shapes`` uses simple synthetic
shapes of pelvic size instead (512 x 512 x 100, 1.15 x 1.15 x 5 mm). The prediction is the
reference shifted by a few voxels with a smoothly perturbed boundary. ``--format dicom``
writes CT series + RTSTRUCT (reference) and RTSTRUCT-only prediction folders instead of
NIfTI folders.

    python benchmarks/evaluate_speed.py [--patients 10] [--source phantom|shapes] [--format nifti|dicom] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from cervseg.metrics.evaluate import evaluate_case
from cervseg.nifti import write_case, write_labels
from cervseg.report.runner import PredictionSet, Settings, write_evaluation
from cervseg.volume import Geometry, LabelMap, Volume

SHAPE = (100, 512, 512)
SPACING = (5.0, 1.15, 1.15)


def _grid(geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y, x = (np.arange(n, dtype=np.float32) * s for n, s in zip(geometry.shape, geometry.spacing))
    return z[:, None, None], y[None, :, None], x[None, None, :]


def _ellipsoid(g, centre, radii) -> np.ndarray:
    z, y, x = g
    return ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2 <= 1.0


def _tube(g, z_range, centre_yx, radius) -> np.ndarray:
    z, y, x = g
    inside = (y - centre_yx[0]) ** 2 + (x - centre_yx[1]) ** 2 <= radius**2
    return inside & (z >= z_range[0]) & (z <= z_range[1])


def reference_structures(geometry: Geometry, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Nine structures with pelvic sizes (mm) in a 589 x 589 x 500 mm field."""
    g = _grid(geometry)
    j = lambda s: rng.normal(0.0, s)  # noqa: E731  (per-patient jitter, mm)
    c = (250.0 + j(10), 300.0 + j(8), 294.0 + j(8))  # pelvis centre (z, y, x)
    bones = _ellipsoid(g, c, (110, 110, 150)) & ~_ellipsoid(g, c, (95, 92, 132))
    bowel = ndimage.gaussian_filter(rng.random((25, 64, 64)).astype(np.float32), 2.0)
    bowel = ndimage.zoom(bowel > np.percentile(bowel, 45), (4, 8, 8), order=0)[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    bowel &= _ellipsoid(g, (c[0] + 90, c[1] - 30, c[2]), (70, 60, 110))
    return {
        "Bladder": _ellipsoid(g, (c[0] - 40, c[1] - 40, c[2]), (35 + j(3), 35 + j(3), 45 + j(3))),
        "Rectum": _tube(g, (c[0] - 90, c[0] + 10), (c[1] + 30, c[2]), 16 + j(1)),
        "Femur_Head_L": _ellipsoid(g, (c[0] - 60, c[1] - 10, c[2] + 90), (24, 24, 24)),
        "Femur_Head_R": _ellipsoid(g, (c[0] - 60, c[1] - 10, c[2] - 90), (24, 24, 24)),
        "BoneMarrow": bones,
        "Bowel_Small": bowel,
        "SpinalCord": _tube(g, (c[0] + 60, 500.0), (c[1] + 60, c[2]), 7.0),
        "CTV_N": (_tube(g, (c[0] - 20, c[0] + 120), (c[1] + 5, c[2] + 45), 18) | _tube(g, (c[0] - 20, c[0] + 120), (c[1] + 5, c[2] - 45), 18)),
        "CTV_UV": _ellipsoid(g, (c[0] - 10, c[1] - 5, c[2]), (45, 30, 35)),
    }


def predicted(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The reference shifted by a few voxels with a smoothly perturbed boundary."""
    shift = (int(rng.integers(-1, 2)), int(rng.integers(-3, 4)), int(rng.integers(-3, 4)))
    out = np.zeros_like(mask)
    if not mask.any():
        return out
    lo = [int(np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0]) for ax in range(3)]
    hi = [int(np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[-1]) + 1 for ax in range(3)]
    box = tuple(slice(max(lo[ax] - 6, 0), min(hi[ax] + 6, mask.shape[ax])) for ax in range(3))
    crop = np.roll(mask[box], shift, axis=(0, 1, 2))
    shape = crop.shape
    noise = ndimage.zoom(rng.normal(0, 1, (5, 9, 9)).astype(np.float32), [n / m for n, m in zip(shape, (5, 9, 9))], order=1)
    noise = noise[: shape[0], : shape[1], : shape[2]]
    noise = np.pad(noise, [(0, n - m) for n, m in zip(shape, noise.shape)], mode="edge")
    grown = ndimage.binary_dilation(crop, iterations=2)
    shrunk = ndimage.binary_erosion(crop, iterations=2)
    out[box] = np.where(noise > 0.5, grown, np.where(noise < -0.5, shrunk, crop))
    return out


def make_patient(source: str, index: int, rng: np.random.Generator) -> tuple[Volume, LabelMap]:
    if source == "phantom":
        from cervseg.phantom.generator import generate_patient

        return generate_patient(1000 + index, "default")
    geometry = Geometry.axial(SHAPE, SPACING, (-294.0, -300.0, -250.0))
    ref = LabelMap(geometry, reference_structures(geometry, rng))
    image = Volume((np.where(ref["BoneMarrow"], 400, 30) - 60 * ref["Bladder"]).astype(np.int16), geometry)
    return image, ref


def make_cohort(folder: Path, n: int, source: str, fmt: str, seed: int = 0):
    """Reference and prediction roots on disk, and the label maps (for the in-memory timing)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        image, ref = make_patient(source, i, rng)
        pred = LabelMap(ref.geometry, {name: predicted(ref[name], rng) for name in ref})
        name = f"patient{i + 1:02d}"
        if fmt == "dicom":
            from cervseg.dicom.rtstruct_write import write_rtstruct
            from cervseg.dicom.series_write import write_ct_series

            written = write_ct_series(image, folder / "reference" / name / "CT")
            write_rtstruct(ref, written, folder / "reference" / name / "RS.dcm")
            write_rtstruct(pred, written, folder / "prediction" / name / "RS.dcm")
        else:
            write_case(image, ref, folder / "reference" / name)
            (folder / "prediction" / name / "masks").mkdir(parents=True)
            write_labels(pred, folder / "prediction" / name / "masks")
        cases.append((name, ref, pred))
    return cases, folder / "reference", folder / "prediction"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--source", choices=("phantom", "shapes"), default="phantom")
    parser.add_argument("--format", choices=("nifti", "dicom"), default="nifti")
    parser.add_argument("--keep", type=Path, help="write the cohort and the output here instead of a temporary folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = args.keep or Path(tempfile.mkdtemp(prefix="cervseg_bench_"))
    try:
        t0 = time.perf_counter()
        cases, ref_root, pred_root = make_cohort(work, args.patients, args.source, args.format)
        shapes = sorted({ref.geometry.shape for _, ref, _ in cases})
        print(f"generated {args.patients} {args.source} patients ({args.format}), grids {shapes[0]}..{shapes[-1]}, "
              f"{len(cases[0][1])} structures, in {time.perf_counter() - t0:.0f} s")
        t0, c0 = time.perf_counter(), time.process_time()
        for name, ref, pred in cases:
            evaluate_case(name, ref, pred)
        metrics_s, metrics_cpu = time.perf_counter() - t0, time.process_time() - c0
        del cases
        t0, c0 = time.perf_counter(), time.process_time()
        write_evaluation(ref_root, PredictionSet("synthetic", pred_root), work / "evaluation", Settings())
        total_s, total_cpu = time.perf_counter() - t0, time.process_time() - c0
        n = args.patients
        print(f"metrics only (3D + per slice, in memory): {metrics_s:.1f} s wall, {metrics_cpu:.1f} s CPU "
              f"({metrics_s / n:.2f} s per patient)")
        print(f"cervseg evaluate end to end (read {args.format}, metrics, CSV, plots, HTML): {total_s:.1f} s wall, "
              f"{total_cpu:.1f} s CPU ({total_s / n:.2f} s per patient)")
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
