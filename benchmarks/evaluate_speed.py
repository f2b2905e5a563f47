"""How long `cervseg evaluate` takes for 10 default-size patients with 9 structures.

Prints the wall-clock time of the whole evaluation (reading NIfTI folders, all metrics in
3D and per slice, CSVs, plots, overlays, HTML) and of the metrics alone. No assertion on
time: the figure goes into docs/evaluation.md.

Patients are synthetic: 512 x 512 x 100 voxels (1.15 x 1.15 x 5 mm), nine structures of
pelvic size and shape (ellipsoids, tubes, a bone-marrow shell, a bowel blob) for the
reference, and the same structures shifted and with a perturbed boundary for the
prediction (cervseg.phantom was not yet available when this was written).

    python benchmarks/evaluate_speed.py [--patients 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from cervseg.metrics.evaluate import evaluate_case
from cervseg.nifti import write_case
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


def make_cohort(folder: Path, n: int, seed: int = 0) -> tuple[list[tuple[str, LabelMap, LabelMap]], Path, Path]:
    rng = np.random.default_rng(seed)
    geometry = Geometry.axial(SHAPE, SPACING, (-294.0, -300.0, -250.0))
    cases = []
    for i in range(n):
        ref = LabelMap(geometry, reference_structures(geometry, rng))
        pred = LabelMap(geometry, {name: predicted(ref[name], rng) for name in ref})
        image = Volume((np.where(ref["BoneMarrow"], 400, 30) - 60 * ref["Bladder"]).astype(np.int16), geometry)
        name = f"patient{i + 1:02d}"
        write_case(image, ref, folder / "reference" / name)
        write_case(image, pred, folder / "prediction" / name)
        cases.append((name, ref, pred))
    return cases, folder / "reference", folder / "prediction"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="write the cohort and the output here instead of a temporary folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = args.keep or Path(tempfile.mkdtemp(prefix="cervseg_bench_"))
    try:
        t0 = time.perf_counter()
        cases, ref_root, pred_root = make_cohort(work, args.patients)
        print(f"generated {args.patients} patients {SHAPE} x 9 structures in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        for name, ref, pred in cases:
            evaluate_case(name, ref, pred)
        metrics_s = time.perf_counter() - t0
        del cases
        t0 = time.perf_counter()
        write_evaluation(ref_root, PredictionSet("synthetic", pred_root), work / "evaluation", Settings())
        total_s = time.perf_counter() - t0
        print(f"metrics only (3D + per slice, in memory): {metrics_s:.1f} s ({metrics_s / args.patients:.2f} s per patient)")
        print(f"cervseg evaluate end to end (read NIfTI, metrics, CSV, plots, HTML): {total_s:.1f} s "
              f"({total_s / args.patients:.2f} s per patient)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
