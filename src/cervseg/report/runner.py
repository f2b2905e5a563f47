"""Evaluate prediction folders against a reference folder and write the result folder.

One engine for `cervseg evaluate` (one prediction set) and `cervseg compare` (several):
patients are read one at a time (the reference once per patient, however many models),
scored, and only the numbers and a few small overlay patches are kept. The output folder
appears as a whole or not at all (cervseg.outputs.atomic_dir).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Sequence

import numpy as np

from cervseg.errors import InputError
from cervseg.metrics.cases import CaseFolder, CaseReader, evaluation_template, pair_cases
from cervseg.metrics.evaluate import (
    GRADES, CaseResult, evaluate_case, read_grades, write_metrics_csv, write_slices_csv,
)
from cervseg.metrics.slicewise import PAIRED
from cervseg.metrics.surface import DEFAULT_TOLERANCE_MM
from cervseg.outputs import atomic_dir, check_output_folder
from cervseg.progress import progress
from cervseg.report import overlays, plots
from cervseg.report.html import Report, images_section
from cervseg.report.tables import (
    COMPARE_METRICS, Cell, Table, compare_table, decimals, header, summarise, summary_table, write_summary_csv,
)
from cervseg.structures import Catalogue, load_template

log = logging.getLogger(__name__)

#: The review sheet whose grades a re-run carries over into the new output.
SHEET = "slices.csv"
SLICE_BOX_METRICS = ("dice_2d", "hd95_2d_mm")
PATIENT_BOX_METRICS = ("dice_3d", "hd95_3d_mm", "surface_dice_3d")
PAIRED_METRICS = ("dice_3d", "hd95_3d_mm", "dice_2d", "hd95_2d_mm")


@dataclass(frozen=True)
class PredictionSet:
    """One model's predictions: a case folder or a root of patient folders."""

    name: str
    folder: Path
    suffix: str = ""


@dataclass
class Settings:
    tolerance_mm: float = DEFAULT_TOLERANCE_MM
    template: str | None = None  # None: every catalogue structure but the body outline
    names_file: Path | None = None
    reference_suffix: str = ""
    patient: str | None = None  # name of a single patient (default: the reference folder's name)
    roi_numbers: dict[str, int] = field(default_factory=dict)  # --roi NAME=NUMBER where ROI names repeat


@dataclass
class ModelResult:
    name: str
    cases: list[CaseResult] = field(default_factory=list)
    patches: list[overlays.OverlayPatch] = field(default_factory=list)


def _package_version() -> str:
    try:
        return version("cervseg")
    except PackageNotFoundError:
        return "unknown"


def evaluate_sets(reference: Path, predictions: Sequence[PredictionSet], settings: Settings) -> dict[str, ModelResult]:
    """Score every prediction set against the reference, patient by patient."""
    catalogue = Catalogue.builtin(settings.names_file)
    template = load_template(settings.template, catalogue) if settings.template else evaluation_template(catalogue)
    pairs: dict[str, dict[str, tuple[CaseFolder, CaseFolder]]] = {}
    for pset in predictions:
        for ref_case, pred_case in pair_cases(
            reference, pset.folder, role=f"prediction '{pset.name}'", single_name=settings.patient
        ):
            pairs.setdefault(ref_case.patient, {})[pset.name] = (ref_case, pred_case)
    reader = CaseReader(catalogue, template, settings.roi_numbers)
    results = {p.name: ModelResult(p.name) for p in predictions}
    for patient in progress(list(pairs), "evaluating patients"):
        by_model = pairs[patient]
        ref_case = next(iter(by_model.values()))[0]
        ref = reader.reference(ref_case, settings.reference_suffix)
        for pset in predictions:
            if pset.name not in by_model:
                continue
            pred = reader.prediction(by_model[pset.name][1], ref, pset.suffix)
            case = evaluate_case(patient, ref.labels, pred.labels, settings.tolerance_mm,
                                 score_missing=settings.template is not None)
            results[pset.name].cases.append(case)
            for structure, slices in case.slices.items():
                for which, chosen in (("worst", overlays.worst_slice(slices)), ("median", overlays.median_slice(slices))):
                    if chosen is not None:
                        predicted = pred.labels[structure] if structure in pred.labels else np.zeros(
                            ref.labels.geometry.shape, bool)  # scored as a complete miss
                        results[pset.name].patches.append(overlays.extract_patch(
                            patient, structure, which, chosen, ref.labels[structure], predicted,
                            ref.labels.geometry, ref.image, model=pset.name if len(predictions) > 1 else "",
                        ))
            log.info("%s [%s]: %d structures scored", patient, pset.name, len(case.slices))
    return results


def _chosen_patches(result: ModelResult) -> list[overlays.OverlayPatch]:
    structures = list(dict.fromkeys(p.structure for p in result.patches))
    chosen = []
    for structure in structures:
        pooled = [s.dice for c in result.cases for s in c.slices.get(structure, []) if s.status == PAIRED]
        chosen.extend(overlays.choose([p for p in result.patches if p.structure == structure], pooled))
    return chosen


def _per_patient_table(cases: Sequence[CaseResult]) -> Table:
    metrics = ("dice_2d", "hd95_2d_mm", "dice_3d", "hd95_3d_mm", "surface_dice_3d", "slices_missed", "slices_false_positive")
    rows = []
    for case in cases:
        for structure in case.slices:
            cells = [Cell(case.patient), Cell(structure)]
            for m in metrics:
                v = case.value(structure, m)
                digits = 0 if m.startswith("slices_") else decimals(m)
                cells.append(Cell("–" if math.isnan(v) else f"{v:.{digits}f}"))
            rows.append(cells)
    return Table(["Patient", "Structure"] + [header(m) for m in metrics], rows)


def _not_evaluated(results: dict[str, ModelResult]) -> dict[str, dict[str, dict[str, str]]]:
    """{model: {patient: {structure: why}}} for structures on one side only."""
    return {
        name: {c.patient: dict(c.not_evaluated) for c in r.cases if c.not_evaluated}
        for name, r in results.items()
        if any(c.not_evaluated for c in r.cases)
    }


def _not_evaluated_note(report: Report, results: dict[str, ModelResult]) -> None:
    """Structures present on one side only are listed, not silently left out."""
    missing = _not_evaluated(results)
    if not missing:
        return
    report.heading("Structures not evaluated (present on one side only)")
    rows = [
        [Cell(model), Cell(patient), Cell(", ".join(f"{s} ({why})" for s, why in structures.items()))]
        for model, patients in missing.items()
        for patient, structures in patients.items()
    ]
    report.table(Table(["Prediction", "Patient", "Structures"], rows))


def _settings_record(reference: Path, predictions: Sequence[PredictionSet], settings: Settings, results: dict[str, ModelResult]) -> dict:
    return {
        "cervseg_version": _package_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "reference": str(reference),
        "reference_suffix": settings.reference_suffix,
        "predictions": [{"name": p.name, "folder": str(p.folder), "suffix": p.suffix} for p in predictions],
        "tolerance_mm": settings.tolerance_mm,
        "template": settings.template or "all catalogue structures except External",
        "names_file": str(settings.names_file) if settings.names_file else None,
        "patients": {name: [c.patient for c in r.cases] for name, r in results.items()},
        "not_evaluated": _not_evaluated(results),
        "conventions": {
            "hd95": "95th percentile of the pooled directed boundary distances (both directions), mm",
            "boundary": "mask voxels with a face neighbour outside the mask",
            "slices": "paired slices averaged; missed / false_positive slices counted apart",
            "summary_2d": "mean ± SD over all paired slices of all patients",
            "summary_other": "mean ± SD over patients (sample SD)",
        },
        "grades": list(GRADES),
    }


def _prepare_output(out: Path, reference: Path, predictions: Sequence[PredictionSet]) -> dict[tuple[str, ...], str]:
    """Check the output folder (cervseg.outputs rule) and return the grades of a previous sheet."""
    inputs = {Path(reference): "reference folder"}
    for p in predictions:
        inputs.setdefault(Path(p.folder), f"prediction folder of '{p.name}'")
    check_output_folder(out, inputs, carried=(SHEET,))
    sheet = out / SHEET
    if not sheet.is_file():  # read even when unchanged: a sheet written by a re-run holds carried grades
        return {}
    grades = read_grades(sheet)
    if grades:
        log.info("%s: %d grades of the previous review sheet will be carried over", sheet, len(grades))
    return grades


def _check_grades_carried(out: Path, grades: dict[tuple[str, ...], str], used: set[tuple[str, ...]]) -> None:
    """Refuse to drop a reviewer's grade: every graded row must still exist with the same contours."""
    lost = [key for key in grades if key not in used]
    if lost:
        example = ", ".join(lost[0][:5])
        raise InputError(
            f"{out / SHEET}: {len(lost)} graded rows of the previous review sheet are not in this evaluation "
            f"(changed or missing contours, e.g. {example}); their grades would be lost: "
            "move the sheet away or choose a new --out"
        )


def _settings_lines(reference: Path, predictions: Sequence[PredictionSet], settings: Settings, results: dict[str, ModelResult]) -> dict[str, str]:
    lines = {"Reference": f"{reference}" + (f" (ROIs ending '{settings.reference_suffix}')" if settings.reference_suffix else "")}
    for p in predictions:
        lines[f"Prediction {p.name}"] = f"{p.folder}" + (f" (ROIs ending '{p.suffix}')" if p.suffix else "")
    patients = sorted({c.patient for r in results.values() for c in r.cases})
    lines["Patients"] = f"{len(patients)}: " + ", ".join(patients[:20]) + (" ..." if len(patients) > 20 else "")
    lines["Surface tolerance"] = f"{settings.tolerance_mm:g} mm (surface Dice, APL)"
    lines["cervseg"] = _package_version()
    return lines


def write_evaluation(reference: Path, prediction: PredictionSet, out: Path, settings: Settings) -> Path:
    """`cervseg evaluate`: metrics.csv, summary.csv, slices.csv, report.html, evaluation.json, figures/."""
    out = Path(out)
    grades = _prepare_output(out, reference, [prediction])
    result = evaluate_sets(reference, [prediction], settings)[prediction.name]
    if not result.cases:
        raise InputError(f"{prediction.folder}: no patient could be evaluated")
    summaries = summarise(result.cases)
    slice_png = plots.box_plots(result.cases, SLICE_BOX_METRICS, "Per slice (paired slices of all patients)")
    patient_png = plots.box_plots(result.cases, PATIENT_BOX_METRICS, "Per patient (3D)", columns=3)
    overlay_png = overlays.render(_chosen_patches(result))
    report = Report(f"cervseg evaluation: {prediction.name} vs reference")
    report.key_values(_settings_lines(reference, [prediction], settings, {prediction.name: result}))
    report.heading("Summary per structure (mean ± SD)")
    report.table(summary_table(summaries))
    report.paragraph("*_2d columns: over all paired slices of all patients; other columns: over patients.", note=True)
    images_section(report, "Box plots", [("", slice_png), ("", patient_png)])
    images_section(report, "Worst and median slices (reference red, prediction green)", [("", overlay_png)])
    report.heading("Per patient")
    report.table(_per_patient_table(result.cases))
    _not_evaluated_note(report, {prediction.name: result})
    report.definitions(settings.tolerance_mm)
    with atomic_dir(out, carried=(SHEET,)) as tmp:
        write_metrics_csv(result.cases, tmp / "metrics.csv")
        write_summary_csv(summaries, tmp / "summary.csv")
        _check_grades_carried(out, grades, write_slices_csv(result.cases, tmp / SHEET, grades=grades))
        (tmp / "figures").mkdir()
        for name, png in (("boxplots_slices.png", slice_png), ("boxplots_patients.png", patient_png), ("overlays.png", overlay_png)):
            (tmp / "figures" / name).write_bytes(png)
        (tmp / "report.html").write_text(report.render(), encoding="utf-8")
        record = _settings_record(reference, [prediction], settings, {prediction.name: result})
        (tmp / "evaluation.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    log.info("wrote %s (%d patients, %d structures)", out, len(result.cases), len({s.structure for s in summaries}))
    return out


def write_comparison(reference: Path, predictions: Sequence[PredictionSet], out: Path, settings: Settings) -> Path:
    """`cervseg compare`: the evaluation files with a model column, compare.csv and a comparison report."""
    out = Path(out)
    names = [p.name for p in predictions]
    if len(set(names)) != len(names):
        raise InputError(f"prediction names must be unique, got {', '.join(names)}")
    grades = _prepare_output(out, reference, predictions)
    results = evaluate_sets(reference, predictions, settings)
    empty = [n for n, r in results.items() if not r.cases]
    if empty:
        raise InputError(f"no patient could be evaluated for prediction(s) {', '.join(empty)}")
    summaries = {name: summarise(r.cases) for name, r in results.items()}
    table = compare_table(summaries)
    paired_png = plots.paired_box_plots({n: r.cases for n, r in results.items()}, PAIRED_METRICS, "Per-patient values by model")
    overlay_pngs = [(f"{name}", overlays.render(_chosen_patches(r))) for name, r in results.items()]
    report = Report(f"cervseg comparison: {', '.join(names)} vs reference")
    report.key_values(_settings_lines(reference, predictions, settings, results))
    report.heading("Comparison (mean ± SD; best per structure in bold)")
    report.table(table)
    report.paragraph(
        "Best = highest Dice / surface Dice, lowest distance / APL. *_2d columns: over all paired slices of all "
        "patients; other columns: over patients.", note=True,
    )
    images_section(report, "Paired box plots", [("", paired_png)])
    for name in names:
        report.heading(f"Summary per structure: {name}")
        report.table(summary_table(summaries[name]))
    images_section(report, "Worst and median slices per model (reference red, prediction green)", overlay_pngs)
    _not_evaluated_note(report, results)
    report.definitions(settings.tolerance_mm)
    with atomic_dir(out, carried=(SHEET,)) as tmp:
        first = True
        for name, r in results.items():
            write_summary_csv(summaries[name], tmp / "summary.csv", model=name, append=not first)
            first = False
        _check_grades_carried(out, grades, _write_with_model(results, tmp, grades))
        table.write_csv(tmp / "compare.csv")
        (tmp / "figures").mkdir()
        (tmp / "figures" / "paired_boxplots.png").write_bytes(paired_png)
        for name, png in overlay_pngs:
            (tmp / "figures" / f"overlays_{_safe(name)}.png").write_bytes(png)
        (tmp / "report.html").write_text(report.render(), encoding="utf-8")
        record = _settings_record(reference, predictions, settings, results)
        record["compare_metrics"] = list(COMPARE_METRICS)
        (tmp / "evaluation.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    log.info("wrote %s (%d models)", out, len(results))
    return out


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _write_with_model(results: dict[str, ModelResult], folder: Path, grades: dict[tuple[str, ...], str]) -> set[tuple[str, ...]]:
    """metrics.csv and slices.csv of all models, one model column first; returns the grades used."""
    used: set[tuple[str, ...]] = set()
    for filename in ("metrics.csv", SHEET):
        chunks = []
        for name, r in results.items():
            part = folder / f".{filename}.{_safe(name)}"
            if filename == SHEET:
                used |= write_slices_csv(r.cases, part, model=name, grades=grades)
            else:
                write_metrics_csv(r.cases, part, model=name)
            lines = part.read_text(encoding="utf-8").splitlines(keepends=True)
            chunks.append(lines if not chunks else lines[1:])
            part.unlink()
        (folder / filename).write_text("".join(line for chunk in chunks for line in chunk), encoding="utf-8")
    return used
