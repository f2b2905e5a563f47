"""Print seconds and peak memory to read the real case (CT + RTSTRUCT) and write its RTSTRUCT.

Usage:  python benchmarks/io_speed.py [CASE_DICOM_DIR]
Default: ../shared/data/pelvic-ref-002/dicom (the real case). Figures, not assertions:
these machines are noisy, so nothing here fails on time.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

from cervseg.dicom.patient import read_patient
from cervseg.dicom.rtstruct_read import read_rtstruct
from cervseg.dicom.rtstruct_write import write_rtstruct
from cervseg.dicom.series import read_ct_series

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pelvic-ref-002" / "dicom"


def peak_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dicom", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--template", default="prostate")
    args = parser.parse_args()
    if not args.dicom.is_dir():
        print(f"{args.dicom}: not found (the real case lives in ../shared/data)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    rows = []

    t = time.perf_counter()
    volume = read_ct_series(args.dicom)
    rows.append(("read CT series", time.perf_counter() - t, peak_mb()))

    t = time.perf_counter()
    patient = read_patient(args.dicom, args.template)
    rows.append(("read CT + RTSTRUCT + rasterise (read_patient)", time.perf_counter() - t, peak_mb()))

    t = time.perf_counter()
    read_rtstruct(patient.rtstruct_path)
    rows.append(("parse RTSTRUCT only", time.perf_counter() - t, peak_mb()))

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out = write_rtstruct(patient.labels, patient.volume, Path(tmp) / "RS.dcm")
        rows.append((f"write RTSTRUCT ({len(patient.labels)} ROIs, {out.stat().st_size // 1024} kB)",
                     time.perf_counter() - t, peak_mb()))

    nz, ny, nx = volume.geometry.shape
    print(f"case: {args.dicom}  ({nz} slices of {ny}x{nx})")
    print(f"{'step':<52}{'seconds':>9}{'peak MB':>10}")
    for name, seconds, mb in rows:
        print(f"{name:<52}{seconds:>9.2f}{mb:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
