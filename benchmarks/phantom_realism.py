"""How much do the phantoms look like real pelvic CT? One table of statistics, real vs phantom.

    python benchmarks/phantom_realism.py [--patients 10] [--seed 1] [--preset default]
                                         [--picture docs/phantom_vs_real.png]

Measures the same statistics on pelvic-ref-002 (DICOM CT, manual contours, bone/muscle
labels), on totalseg-example (NIfTI CT + TotalSegmentator labels, 3 mm, left hip
prosthesis) and on a cohort of phantoms (mean +- SD over the patients): HU mean / SD /
p5-p95 per tissue, noise (SD, high-pass SD, noise power spectrum in the bladder urine and in
subcutaneous fat), body size, fat fraction, bladder volume, rectal gas, metal, grid. Prints a
Markdown table (the one in docs/phantom.md) and writes a side-by-side picture of a real and
a phantom slice through the femoral heads at the same windows. Needs ../shared/data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import zlib
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from cervseg.phantom.cohort import patient_seeds  # noqa: E402
from cervseg.phantom.generator import generate_case  # noqa: E402
from cervseg.phantom.realism import body_mask, ct_statistics, phantom_regions  # noqa: E402

log = logging.getLogger("phantom_realism")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

class Case:
    """One CT with its realism regions (see cervseg.phantom.realism.REGION_KEYS)."""

    def __init__(self, name: str, hu: np.ndarray, spacing: tuple[float, float, float], regions: dict[str, np.ndarray]):
        self.name, self.hu, self.spacing, self.regions = name, hu.astype(np.float32), spacing, regions

    def statistics(self) -> dict[str, float]:
        return ct_statistics(self.hu, self.spacing, self.regions)


def load_002() -> Case:
    from cervseg.dicom.rasterize import read_structures
    from cervseg.dicom.rtstruct_read import read_rtstruct
    from cervseg.dicom.series import read_ct_series

    folder = DATA / "pelvic-ref-002"
    vol = read_ct_series(folder / "dicom")
    labels, _ = read_structures(read_rtstruct(next((folder / "dicom").glob("RS*.dcm"))), vol, "prostate")
    raw = zlib.decompress((folder / "bone-labels" / "label.zraw").read_bytes())
    lab = np.frombuffer(raw, np.int16).reshape(vol.array.shape)  # same grid (README), z-y-x
    regions = {
        "bladder": labels["Bladder"], "pelvic_organ": labels["Prostate"], "rectum": labels["Rectum"],
        "femoral_heads": labels["Femur_Head_L"] | labels["Femur_Head_R"],
        "pelvis": lab == 1, "sacrum": lab == 3, "spine": lab == 4, "femur": lab == 2,
        "muscles": (lab >= 5) & (lab <= 28), "psoas": lab == 13,
        "small_bowel": np.zeros(lab.shape, bool),
    }
    return Case("pelvic-ref-002", vol.array, vol.geometry.spacing, regions)


def load_totalseg() -> Case:
    import nibabel as nib

    folder = DATA / "totalseg-example"
    ct = nib.as_closest_canonical(nib.load(str(folder / "example_ct.nii.gz")))
    seg = nib.as_closest_canonical(nib.load(str(folder / "example_seg.nii.gz")))
    # RAS (i, j, k) -> (z, y, x) with y posterior and x patient left, as on DICOM HFS
    to_zyx = lambda a: np.ascontiguousarray(np.transpose(np.asarray(a), (2, 1, 0))[:, ::-1, ::-1])  # noqa: E731
    hu, lab = to_zyx(ct.dataobj).astype(np.float32), to_zyx(seg.dataobj).astype(np.int16)
    sp = ct.header.get_zooms()
    regions = {
        "bladder": lab == 104, "pelvic_organ": np.zeros(lab.shape, bool), "rectum": np.zeros(lab.shape, bool),
        "femoral_heads": np.zeros(lab.shape, bool),
        "pelvis": (lab == 90) | (lab == 91), "sacrum": lab == 92, "spine": (lab >= 18) & (lab <= 22),
        "femur": lab == 89,  # right femur only: the left one holds the prosthesis
        "muscles": (lab >= 94) & (lab <= 103), "psoas": (lab == 102) | (lab == 103),
        "small_bowel": lab == 55,
    }
    return Case("totalseg-example", hu, (float(sp[2]), float(sp[1]), float(sp[0])), regions)


def _fmt(v: float) -> str:
    if np.isnan(v):
        return "-"
    a = abs(v)
    return f"{v:.3f}" if a < 1 else f"{v:.1f}" if a < 100 else f"{v:.0f}"


def _cohort_cell(cohort: list[dict[str, float]], key: str) -> str:
    if not cohort:
        return "-"
    if "|" in key:
        label = key.split("|")[0]
        m = {w: np.nanmean([c[f"{label}|{w}"] for c in cohort]) for w in ("mean", "sd", "p5", "p95")}
        if np.isnan(m["mean"]):
            return "-"
        sdm = np.nanstd([c[f"{label}|mean"] for c in cohort])
        return f"{_fmt(m['mean'])} (± {_fmt(sdm)}) ± {_fmt(m['sd'])} ({_fmt(m['p5'])} to {_fmt(m['p95'])})"
    vals = np.array([c[key] for c in cohort], float)
    return "-" if np.all(np.isnan(vals)) else f"{_fmt(np.nanmean(vals))} ± {_fmt(np.nanstd(vals))}"


def table(real: list[tuple[str, dict[str, float]]], cohort: list[dict[str, float]],
          plain: list[dict[str, float]]) -> str:
    """Markdown: one row per statistic; real cases, the whole cohort, its unenhanced metal-free part."""
    head = ("| statistic | " + " | ".join(n for n, _ in real) + f" | phantoms, all (n = {len(cohort)}) |"
            f" phantoms, no contrast, no metal (n = {len(plain)}) |")
    lines = [head, "| --- " * (len(real) + 3) + "|"]
    done = set()
    for k in cohort[0]:
        if "|" in k:
            label = k.split("|")[0]
            if label in done:
                continue
            done.add(label)
            cells = ["-" if np.isnan(r[f"{label}|mean"]) else
                     f"{_fmt(r[f'{label}|mean'])} ± {_fmt(r[f'{label}|sd'])} ({_fmt(r[f'{label}|p5'])} to {_fmt(r[f'{label}|p95'])})"
                     for _, r in real]
            lines.append(f"| HU {label}: mean ± SD (p5 to p95) | " + " | ".join(cells)
                         + f" | {_cohort_cell(cohort, k)} | {_cohort_cell(plain, k)} |")
        else:
            lines.append(f"| {k} | " + " | ".join(_fmt(r[k]) for _, r in real)
                         + f" | {_cohort_cell(cohort, k)} | {_cohort_cell(plain, k)} |")
    return "\n".join(lines)


def picture(real: Case, ph: Case, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def head_slice(c: Case) -> int:
        area = c.regions["femoral_heads"].sum(axis=(1, 2))
        if area.max() == 0:
            area = c.regions["femur"].sum(axis=(1, 2))
        return int(np.argmax(area))

    def crop(c: Case, k: int, half_mm: float = 260.0) -> np.ndarray:
        ys, xs = np.nonzero(body_mask(c.hu[k: k + 1])[0])
        cy, cx = int(ys.mean()), int(xs.mean())
        h = int(half_mm / c.spacing[1])
        pad = np.pad(c.hu[k], h, constant_values=-1024)
        return pad[cy: cy + 2 * h, cx: cx + 2 * h]

    fig, axes = plt.subplots(2, 2, figsize=(10, 10))
    for col, c in enumerate((real, ph)):
        k = head_slice(c)
        img = crop(c, k)
        for row, (level, width, name) in enumerate(((40, 400, "soft tissue W400 L40"), (300, 1500, "bone W1500 L300"))):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, interpolation="nearest")
            ax.set_title(f"{c.name}, {name}", fontsize=9)
            ax.axis("off")
    fig.suptitle("same physical crop (520 mm), femoral-head level; patient left on the image right", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--picture", type=Path, default=Path("docs/phantom_vs_real.png"))
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("cervseg").setLevel(logging.WARNING)
    if not (DATA / "pelvic-ref-002").is_dir():
        raise SystemExit(f"real data not found at {DATA}")
    real = [load_002(), load_totalseg()]
    real_stats = [(c.name, c.statistics()) for c in real]
    cohort, plain, first = [], [], None
    for s in patient_seeds(args.seed, args.patients):
        generated = generate_case(s, args.preset)
        c = Case(f"phantom ({args.preset}, seed {s})", generated.volume.array, generated.volume.geometry.spacing,
                 phantom_regions(generated))
        stats = c.statistics()
        cohort.append(stats)
        if not generated.anatomy.contrast.iv and not generated.realism.metal_side:
            plain.append(stats)
        log.info("%s: metal %d, IV contrast %s", c.name, generated.realism.metal_side, generated.anatomy.contrast.iv)
        if first is None:
            first = c
    print(table(real_stats, cohort, plain))
    if args.json:
        args.json.write_text(json.dumps({"real": dict(real_stats), "phantoms": cohort, "plain": plain}, indent=1))
    if args.picture and first is not None:
        picture(real[0], first, args.picture)
        print(f"\npicture: {args.picture}")


if __name__ == "__main__":
    main()
