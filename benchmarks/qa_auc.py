"""How well the QA score finds bad slices: ROC AUC for "slice Dice < 0.8 or HD95 > 5 mm".

For every patient folder (CT + reference RTSTRUCT, e.g. `cervseg phantom` output or the real
case), the built-in model contours the CT in-process (as `segment` does), the QA score of
every (slice, structure) with an automatic contour is set against that slice's Dice and HD95
against the reference, and the AUC (Mann-Whitney, ties counted half) is printed overall, per
structure and per QA component, with the QA time per slice.

    python benchmarks/qa_auc.py --patients /tmp/heldout/PH9100-* --template cervix
    python benchmarks/qa_auc.py --patients ../shared/data/pelvic-ref-002/dicom --template prostate \
        --names names.yaml   # the real case: reference ROIs in Italian

Slices where only the reference has the structure (missed by the model) are not scored:
there is no automatic contour there to grade or flag; the script prints how many there are.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from cervseg.dicom.patient import read_patient  # noqa: E402
from cervseg.infer.builtin import builtin_model_path  # noqa: E402
from cervseg.infer.predictor import Predictor  # noqa: E402
from cervseg.infer.segment import contour_case  # noqa: E402
from cervseg.metrics.slicewise import MISSED, slice_metrics  # noqa: E402
from cervseg.qa.scores import FEATURES, SliceQA, slice_qa  # noqa: E402
from cervseg.structures import Catalogue  # noqa: E402

BAD_DICE, BAD_HD95_MM = 0.8, 5.0


def auc(scores: np.ndarray, bad: np.ndarray) -> float:
    """P(score of a bad slice > score of a good one), ties counted half (Mann-Whitney U / n1 n0)."""
    scores, bad = np.asarray(scores, float), np.asarray(bad, bool)
    n1, n0 = int(bad.sum()), int((~bad).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[bad].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def score_patient(folder: Path, predictor: Predictor, catalogue: Catalogue, template: str, names: Path | None):
    patient = read_patient(folder, template, names)
    t = time.perf_counter()
    probabilities: dict[str, np.ndarray] = {}
    labels, raw = contour_case(predictor, patient.volume, show_progress=False, probabilities=probabilities)
    t_model = time.perf_counter() - t
    t = time.perf_counter()
    rows = slice_qa(patient.volume, labels, probabilities, catalogue, raw.midline_x)
    t_qa = time.perf_counter() - t
    truth: dict[tuple[int, str], bool] = {}
    missed = 0
    for name in labels:
        if name not in patient.labels:
            continue
        for r in slice_metrics(patient.labels[name], labels[name], patient.volume.geometry):
            if r.status == MISSED:
                missed += 1
                continue
            bad = not (r.dice >= BAD_DICE) or not (r.hd95_mm <= BAD_HD95_MM)
            truth[(r.slice_index, name)] = bad
    scored = [(row, truth[(row.slice_index, row.structure)]) for row in rows if (row.slice_index, row.structure) in truth]
    return scored, missed, t_model, t_qa, patient.volume.geometry.shape[0]


def fit_nonnegative(scored: list[tuple[SliceQA, bool]]) -> tuple[float, dict[str, float]]:
    """Logistic weights where every sign of trouble may only raise the score.

    A feature that gets a negative weight (collinear with another) is dropped and the rest
    refitted; log_area_mm2 may be negative (a small contour is the riskier one).
    """
    features = list(FEATURES)
    while True:
        bias, weights = fit_logistic(scored, features)
        negative = {f: w for f, w in weights.items() if w < 0 and f != "log_area_mm2"}
        if not negative:
            return bias, weights
        features.remove(min(negative, key=negative.get))


def fit_logistic(scored: list[tuple[SliceQA, bool]], features: list[str], l2: float = 1.0) -> tuple[float, dict[str, float]]:
    """Logistic-regression weights of the QA features (Newton steps, L2 on standardised features)."""
    x = np.array([[getattr(r, f) for f in features] for r, _ in scored], dtype=float)
    x = np.where(np.isfinite(x), x, 0.0)
    y = np.array([b for _, b in scored], dtype=float)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    xs = np.hstack([np.ones((len(x), 1)), (x - mean) / std])
    w = np.zeros(xs.shape[1])
    penalty = np.full(xs.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-xs @ w))
        grad = xs.T @ (p - y) + penalty * w
        hess = (xs * (p * (1 - p))[:, None]).T @ xs + np.diag(penalty)
        w -= np.linalg.solve(hess, grad)
    raw = w[1:] / std
    return float(w[0] - (raw * mean).sum()), {f: float(v) for f, v in zip(features, raw) if v != 0}


def report(scored: list[tuple[SliceQA, bool]], label: str) -> None:
    scores = np.array([r.score for r, _ in scored])
    bad = np.array([b for _, b in scored])
    print(f"{label}: {len(scored)} slices, {int(bad.sum())} bad ({100 * bad.mean():.1f} %), AUC {auc(scores, bad):.3f}")
    flagged = scores >= 0.5
    print(f"  score >= 0.5 flags {100 * flagged[bad].mean() if bad.any() else math.nan:.1f} % of bad slices and "
          f"{100 * flagged[~bad].mean() if (~bad).any() else math.nan:.1f} % of good ones; mean score bad "
          f"{scores[bad].mean() if bad.any() else math.nan:.2f}, good {scores[~bad].mean() if (~bad).any() else math.nan:.2f}")
    for name in sorted({r.structure for r, _ in scored}):
        sel = np.array([r.structure == name for r, _ in scored])
        print(f"  {name:14s} n={int(sel.sum()):4d} bad={int(bad[sel].sum()):4d} AUC {auc(scores[sel], bad[sel]):.3f}")
    for component in FEATURES:
        values = np.array([getattr(r, component) for r, _ in scored], dtype=float)
        values = np.where(np.isfinite(values), values, -1.0)
        print(f"  component {component:20s} AUC {auc(values, bad):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=Path, nargs="+", required=True, help="patient folders (CT + reference RTSTRUCT)")
    parser.add_argument("--template", default="cervix")
    parser.add_argument("--names", type=Path, default=None, help="names file for the reference ROI names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fit", action="store_true", help="also print logistic weights fitted on these patients")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    predictor = Predictor.from_checkpoint(builtin_model_path(), threads=args.threads)
    catalogue = Catalogue.builtin(args.names)
    everything: list[tuple[SliceQA, bool]] = []
    total_missed = total_slices = 0
    t_model_sum = t_qa_sum = 0.0
    for folder in args.patients:
        scored, missed, t_model, t_qa, n = score_patient(folder, predictor, catalogue, args.template, args.names)
        everything += scored
        total_missed += missed
        total_slices += n
        t_model_sum += t_model
        t_qa_sum += t_qa
        bad = np.array([b for _, b in scored])
        print(f"{folder.name}: {n} CT slices, {len(scored)} scored, AUC "
              f"{auc(np.array([r.score for r, _ in scored]), bad):.3f}, QA {1000 * t_qa / n:.1f} ms/CT slice")
    report(everything, f"all {len(args.patients)} patients")
    print(f"missed slices (reference only, not scored): {total_missed}")
    if args.fit:
        bias, weights = fit_nonnegative(everything)
        print(f"BIAS = {bias:.4g}")
        print("WEIGHTS = {" + ", ".join(f'"{k}": {v:.4g}' for k, v in weights.items()) + "}")
    print(f"QA time: {1000 * t_qa_sum / total_slices:.1f} ms per CT slice "
          f"({1000 * t_qa_sum / max(1, len(everything)):.2f} ms per scored structure-slice); "
          f"model {1000 * t_model_sum / total_slices:.1f} ms per CT slice")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
