"""Seconds per synthetic patient for each phantom preset (generation only, and with DICOM writing).

    python benchmarks/phantom_speed.py [--patients 3] [--presets tiny small default]

Prints one line per preset: slices, matrix, mean and max seconds per patient to generate
(numpy only) and to generate + write the DICOM CT series and RTSTRUCT. Single process;
numpy's FFT and filters run on one core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from cervseg.phantom.cohort import patient_seeds, write_patient
from cervseg.phantom.generator import generate_patient


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=3)
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "default"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"{'preset':<8} {'slices':>7} {'matrix':>7} {'generate s/patient':>19} {'max':>6} {'+ DICOM s/patient':>18}")
    for preset in args.presets:
        seeds = patient_seeds(args.seed, args.patients)
        gen, full, slices, matrix = [], [], [], 0
        for s in seeds:
            t = time.perf_counter()
            vol, _ = generate_patient(s, preset)
            gen.append(time.perf_counter() - t)
            slices.append(vol.array.shape[0])
            matrix = vol.array.shape[1]
        with tempfile.TemporaryDirectory() as tmp:
            for i, s in enumerate(seeds):
                t = time.perf_counter()
                write_patient(Path(tmp) / f"p{i}", s, preset)
                full.append(time.perf_counter() - t)
        print(f"{preset:<8} {np.mean(slices):7.0f} {matrix:7d} {np.mean(gen):19.2f} {np.max(gen):6.2f} {np.mean(full):18.2f}",
              flush=True)


if __name__ == "__main__":
    main()
