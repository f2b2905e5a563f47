"""A whole-patient overlay: reference and predicted contours of every structure on a few
axial slices, in the radiological convention (patient right on the image left).

Why beside overlays.py: the report shows the worst/median slice of one structure; the
demo and a quick review want the whole pelvis at a glance, one colour per structure,
reference dashed and prediction solid.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from cervseg.report.overlays import WINDOW, display_flips
from cervseg.report.plots import to_png
from cervseg.volume import LabelMap, Volume


def representative_slices(labels: LabelMap, count: int = 3) -> list[int]:
    """Slices spread over the structures' extent, each holding as many structures as possible."""
    present = np.stack([labels[n].any(axis=(1, 2)) for n in labels]) if len(labels) else np.zeros((0, 0))
    if present.size == 0 or not present.any():
        return [labels.geometry.shape[0] // 2]
    counts = present.sum(axis=0)
    z = np.flatnonzero(counts)
    chunks = np.array_split(z, min(count, z.size))
    return [int(chunk[np.argmax(counts[chunk])]) for chunk in chunks if chunk.size]


def _display(image: np.ndarray, flips: tuple[bool, bool]) -> np.ndarray:
    out = image[::-1] if flips[0] else image
    return np.ascontiguousarray(out[:, ::-1] if flips[1] else out)


def render_case(
    volume: Volume,
    reference: LabelMap,
    prediction: LabelMap,
    colours: Mapping[str, tuple[int, int, int]],
    slices: Sequence[int] | None = None,
    title: str = "",
) -> bytes:
    """PNG bytes: one panel per slice; dashed = reference, solid = prediction."""
    geometry = volume.geometry
    slices = list(slices) if slices is not None else representative_slices(reference)
    flips = display_flips(geometry)
    dy, dx = geometry.spacing[1], geometry.spacing[2]
    fig = Figure(figsize=(4.6 * len(slices), 5.0), layout="constrained")
    for i, k in enumerate(slices):
        ax = fig.add_subplot(1, len(slices), i + 1)
        ax.imshow(_display(np.asarray(volume.array[k], np.float32), flips), cmap="gray",
                  vmin=WINDOW[0], vmax=WINDOW[1], aspect=dy / dx, interpolation="nearest")
        for labels, style in ((reference, "dashed"), (prediction, "solid")):
            for name in labels:
                mask = labels[name][k]
                if mask.any():
                    colour = np.asarray(colours.get(name, (128, 128, 128))) / 255.0
                    ax.contour(_display(mask.astype(np.float32), flips), levels=[0.5], colors=[colour],
                               linewidths=1.0, linestyles=style)
        z_mm = float(geometry.index_to_lps([[k, 0, 0]])[0, 2])
        ax.set_title(f"slice {k} (z {z_mm:.1f} mm)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.01, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=9, va="center")
        ax.text(0.99, 0.5, "L", transform=ax.transAxes, color="yellow", fontsize=9, va="center", ha="right")
    names = [n for n in prediction if prediction[n].any()] or list(reference)
    handles = [fig.axes[0].plot([], [], color=np.asarray(colours.get(n, (128, 128, 128))) / 255.0, label=n)[0]
               for n in names]
    handles.append(fig.axes[0].plot([], [], color="white", linestyle="dashed", label="dashed: reference")[0])
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return to_png(fig)
