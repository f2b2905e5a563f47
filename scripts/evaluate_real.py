"""Score a checkpoint on the real CTs in ../shared/data, per structure, in 3D (docs/real-data.md).

Why a script and not `cervseg evaluate`: the two real cases have references of different
kinds (002: RayStation manual contours plus a bone label map; totalseg-example: a NIfTI label
map of 104 classes), and the references for BoneMarrow are unions of bone labels. This
script builds those references once, contours each case in-process with the same
`contour_case` that `cervseg segment` runs (post-processing, femoral-head siding and scope
checks included), and scores it with cervseg's metrics.

References: `real_cases.py` (the same module adds the cases to a training set).
A model scored here must not have seen the case: `--cases` picks the unseen ones.

Usage:
    python scripts/evaluate_real.py --model src/cervseg/weights/builtin --name builtin --out build/real/builtin.csv
    python scripts/evaluate_real.py --table build/real/old.csv build/real/new.csv    # markdown table
    python scripts/evaluate_real.py --clinical-system DL --name raystation-dl --out build/real/dl.csv
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from pathlib import Path

import numpy as np

from real_cases import CASES, CLINICAL_SYSTEM_002, DATA, clinical_system_002

FIELDS = ["model", "case", "structure", "reference", "dice_3d", "hd95_3d_mm", "volume_ref_ml",
          "volume_pred_ml", "slices_reference", "slices_missed", "slices_false_positive"]
log = logging.getLogger("evaluate_real")


def score(model: Path, name: str, cases: list[str]) -> list[dict[str, str]]:
    """Contour the real cases with the checkpoint and score each referenced structure."""
    from cervseg.infer.predictor import Predictor
    from cervseg.infer.segment import contour_case
    from cervseg.metrics.evaluate import format_value, structure_metrics

    predictor = Predictor.from_checkpoint(model)
    rows = []
    for case in cases:
        volume, references = CASES[case]()
        labels, _ = contour_case(predictor, volume, show_progress=False)
        for structure, (reference, source) in references.items():
            predicted = labels[structure] if structure in labels else np.zeros(reference.shape, bool)
            values, _ = structure_metrics(reference, predicted, labels)
            rows.append({"model": name, "case": case, "structure": structure, "reference": source,
                         **{k: format_value(values[k]) for k in FIELDS[4:]}})
            log.info("%s %s %s: Dice %s, HD95 %s mm", name, case, structure, rows[-1]["dice_3d"],
                     rows[-1]["hd95_3d_mm"])
    return rows


def score_clinical_system(kind: str, name: str) -> list[dict[str, str]]:
    """Score one of 002's RayStation automatic contour sets against its manual contours, as a model is."""
    from cervseg.metrics.evaluate import format_value, structure_metrics
    from cervseg.volume import LabelMap

    volume, references = CASES["pelvic-ref-002"]()
    labels = LabelMap(volume.geometry, clinical_system_002(kind, volume))
    rows = []
    for structure, predicted in labels.items():
        reference, source = references[structure]
        values, _ = structure_metrics(reference, predicted, labels)
        rows.append({"model": name, "case": "pelvic-ref-002", "structure": structure, "reference": source,
                     **{k: format_value(values[k]) for k in FIELDS[4:]}})
        log.info("%s %s: Dice %s, HD95 %s mm", name, structure, rows[-1]["dice_3d"], rows[-1]["hd95_3d_mm"])
    return rows


def markdown_table(paths: list[Path]) -> str:
    """One row per case and structure, a Dice / HD95 column pair per model (CSV order)."""
    rows = [r for p in paths for r in csv.DictReader(p.open(newline="", encoding="utf-8"))]
    models = list(dict.fromkeys(r["model"] for r in rows))
    keys = list(dict.fromkeys((r["case"], r["structure"]) for r in rows))
    by = {(r["model"], r["case"], r["structure"]): r for r in rows}
    head = "| case | structure | " + " | ".join(f"{m} Dice | {m} HD95 mm" for m in models) + " |"
    lines = [head, "|" + " --- |" * (2 + 2 * len(models))]
    for case, structure in keys:
        cells = []
        for m in models:
            r = by.get((m, case, structure))
            cells += [r["dice_3d"], r["hd95_3d_mm"]] if r else ["", ""]
        lines.append(f"| {case} | {structure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint folder")
    parser.add_argument("--name", help="label of the model in the CSV and table")
    parser.add_argument("--out", type=Path, help="CSV to write")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES),
                        help="the real cases to score (those the model did not see; default: both)")
    parser.add_argument("--table", type=Path, nargs="+", help="print a markdown table of these CSVs")
    parser.add_argument("--clinical-system", choices=sorted(CLINICAL_SYSTEM_002),
                        help="score pelvic-ref-002's RayStation automatic contours of this set instead of a model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.table:
        print(markdown_table(args.table))
        return 0
    if not ((args.model or args.clinical_system) and args.name and args.out):
        parser.error("--model (or --clinical-system), --name and --out are needed (or --table)")
    if not DATA.is_dir():
        log.error("%s: the real cases are not there (see ../shared/data/README.md)", DATA)
        return 2
    if args.clinical_system:
        rows = score_clinical_system(args.clinical_system, args.name)
    else:
        rows = score(args.model, args.name, args.cases)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
