"""Box plots of a claim: per structure, one box per arm of its values over patients x seeds."""

from __future__ import annotations

from typing import Mapping, Sequence


def claim_box_plot(values: Mapping[str, Mapping[str, Sequence[float]]], metric: str, title: str = "") -> bytes:
    """``values[arm][structure]``: the values to box; PNG bytes (matplotlib Agg, no display)."""
    import numpy as np
    from matplotlib.figure import Figure

    from cervseg.report.plots import MODEL_COLOURS, to_png
    from cervseg.report.tables import header

    arms = list(values)
    structures = list(dict.fromkeys(s for per in values.values() for s in per))
    width = 0.8 / max(len(arms), 1)
    fig = Figure(figsize=(max(6.0, 1.0 + (0.5 + 0.45 * len(arms)) * len(structures)), 3.8))
    ax = fig.add_subplot(1, 1, 1)
    for k, arm in enumerate(arms):
        colour = MODEL_COLOURS[k % len(MODEL_COLOURS)]
        for j, structure in enumerate(structures):
            data = list(values[arm].get(structure, []))
            x = j + 1 - 0.4 + width * (k + 0.5)
            if data:
                ax.boxplot([data], positions=[x], widths=width * 0.8, showfliers=True, patch_artist=True,
                           boxprops={"facecolor": colour, "alpha": 0.35}, medianprops={"color": colour})
        ax.plot([], [], "s", color=colour, label=arm)
    ax.set_xticks(np.arange(1, len(structures) + 1))
    ax.set_xticklabels(structures, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(0.4, len(structures) + 0.6)
    ax.set_ylabel(f"{header(metric)}, per patient and seed", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return to_png(fig)
