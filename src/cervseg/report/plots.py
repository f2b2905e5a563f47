"""Box plots of the metrics per structure (paper 000 Fig. 4) and paired box plots between models.

Figures are drawn on matplotlib ``Figure`` objects with the Agg canvas (no pyplot global
state, no display needed) and returned as PNG bytes for the HTML report.
"""

from __future__ import annotations

import io
import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cervseg.metrics.evaluate import METRICS, CaseResult
from cervseg.report.tables import header, metric_values, structures_of

MODEL_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MAX_POINTS = 80  # draw the individual values over a box when there are at most this many


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _axis_label(metric: str) -> str:
    info = METRICS[metric]
    what = "per slice" if info.over == "slice" else "per patient"
    return f"{header(metric)}, {what}"


def box_plots(cases: Sequence[CaseResult], metrics: Sequence[str], title: str = "", columns: int = 2) -> bytes:
    """One panel per metric (``columns`` per row), one box per structure.

    Slice metrics are pooled over the paired slices of all patients, others are per patient.
    """
    structures = structures_of(cases)
    columns = max(1, min(columns, len(metrics)))
    rows = int(math.ceil(len(metrics) / columns))
    fig = Figure(figsize=(columns * max(5.0, 1.0 + 0.75 * len(structures)), 3.2 * rows), layout="constrained")
    rng = np.random.default_rng(0)  # jitter only; fixed so the report is reproducible
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(rows, columns, i + 1)
        data = [metric_values(cases, s, metric) for s in structures]
        positions = np.arange(1, len(structures) + 1)
        filled = [(p, d) for p, d in zip(positions, data) if d.size]
        if filled:
            ax.boxplot([d for _, d in filled], positions=[p for p, _ in filled], widths=0.6,
                       showfliers=False, medianprops={"color": "#d62728"})
        for p, d in filled:
            if d.size <= MAX_POINTS:
                ax.plot(p + rng.uniform(-0.15, 0.15, d.size), d, ".", color="#333333", alpha=0.6, ms=4)
        for p, d in zip(positions, data):
            ax.text(p, 1.0, f"n={d.size}", transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(positions)
        ax.set_xticklabels(structures, rotation=20, ha="right", fontsize=8)
        ax.set_xlim(0.4, len(structures) + 0.6)
        ax.set_ylabel(_axis_label(metric), fontsize=8)
        if METRICS[metric].unit == "" and METRICS[metric].better == "higher":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return to_png(fig)


def patient_values(cases: Sequence[CaseResult], structure: str, metric: str) -> dict[str, float]:
    """{patient: value} of one structure and metric (NaN kept out)."""
    return {
        r.patient: r.value
        for case in cases
        for r in case.rows
        if r.structure == structure and r.metric == metric and not math.isnan(r.value)
    }


def paired_box_plots(cases_by_model: Mapping[str, Sequence[CaseResult]], metrics: Sequence[str], title: str = "") -> bytes:
    """Per structure, one box per model of the per-patient values; grey lines join a patient's values."""
    models = list(cases_by_model)
    structures = list(dict.fromkeys(s for cases in cases_by_model.values() for s in structures_of(cases)))
    width = 0.8 / max(len(models), 1)
    fig = Figure(figsize=(max(6.0, 1.0 + (0.5 + 0.45 * len(models)) * len(structures)), 3.4 * len(metrics)))
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(len(metrics), 1, i + 1)
        for j, structure in enumerate(structures):
            per_model = {m: patient_values(cases_by_model[m], structure, metric) for m in models}
            xs = {m: j + 1 - 0.4 + width * (k + 0.5) for k, m in enumerate(models)}
            for k, m in enumerate(models):
                values = list(per_model[m].values())
                if values:
                    ax.boxplot([values], positions=[xs[m]], widths=width * 0.8, showfliers=False,
                               patch_artist=True, boxprops={"facecolor": MODEL_COLOURS[k % len(MODEL_COLOURS)], "alpha": 0.35},
                               medianprops={"color": MODEL_COLOURS[k % len(MODEL_COLOURS)]})
            patients = sorted(set.intersection(*(set(v) for v in per_model.values()))) if per_model else []
            for p in patients:
                ax.plot([xs[m] for m in models], [per_model[m][p] for m in models], "-", color="#777777", alpha=0.5, lw=0.8)
            for k, m in enumerate(models):
                values = list(per_model[m].values())
                ax.plot([xs[m]] * len(values), values, "o", ms=3, color=MODEL_COLOURS[k % len(MODEL_COLOURS)])
        ax.set_xticks(np.arange(1, len(structures) + 1))
        ax.set_xticklabels(structures, rotation=20, ha="right", fontsize=8)
        ax.set_xlim(0.4, len(structures) + 0.6)
        ax.set_ylabel(f"{header(metric)}, per patient", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        if i == 0:
            for k, m in enumerate(models):
                ax.plot([], [], "s", color=MODEL_COLOURS[k % len(MODEL_COLOURS)], label=m)
            ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png(fig)
