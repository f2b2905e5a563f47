"""Contact sheet of phantom patients: axial, coronal and sagittal slices with contours.

Display conventions are the radiological ones: axial slices seen from the feet (patient left
on the image right, anterior up), coronal slices seen from the front (patient left on the
right, superior up), sagittal slices with anterior on the left and superior up; pixel aspect
from the voxel spacing. Run ``python -m cervseg.phantom.preview --help``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from cervseg.outputs import atomic_file
from cervseg.structures import Catalogue
from cervseg.volume import LabelMap, Volume

log = logging.getLogger(__name__)


def _axes_mm(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = volume.geometry
    nz, ny, nx = g.shape
    x = g.origin[0] + np.arange(nx) * g.spacing[2]
    y = g.origin[1] + np.arange(ny) * g.spacing[1]
    z = g.origin[2] + np.arange(nz) * g.spacing[0]
    return x, y, z


def _pick(labels: LabelMap, name: str, axis: int) -> int:
    """Index through the centre of mass of a structure along one array axis."""
    m = labels[name]
    other = tuple(a for a in range(3) if a != axis)
    prof = m.sum(axis=other)
    if prof.sum() == 0:
        return m.shape[axis] // 2
    return int(round(float(np.sum(np.arange(len(prof)) * prof) / prof.sum())))


def _crop(ax, kind: str, vol: Volume, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
    """Zoom to the patient: voxels above -400 HU, after an opening that removes the thin couch."""
    from scipy import ndimage

    body = vol.array > -400
    body = ndimage.binary_opening(body, structure=np.ones((1, 9, 9), bool))
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    rows = np.flatnonzero(body.any(axis=(0, 2)))
    if cols.size == 0 or rows.size == 0:
        return
    x0, x1 = x[cols[0]] - 10, x[cols[-1]] + 10
    y0, y1 = y[rows[0]] - 10, y[rows[-1]] + 10
    if kind == "axial":
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
    elif kind == "coronal":
        ax.set_xlim(x0, x1)
    else:
        ax.set_xlim(y0, y1)


def contact_sheet(cases: Sequence[tuple[str, Volume, LabelMap]], out_png: Path, window: tuple[float, float] = (-160, 240)) -> Path:
    """Write a PNG: one row per case with three axial levels, a coronal and a sagittal slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    for _, vol, _ in cases:
        if not np.allclose(vol.geometry.axes_matrix, np.eye(3)[::-1]):
            raise ValueError("contact sheet expects an HFS axial volume (rows along +y, columns along +x)")
    cat = Catalogue.builtin()
    ncol = 5
    fig, axes = plt.subplots(len(cases), ncol, figsize=(4.2 * ncol, 4.4 * len(cases)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1, 0.9]})
    for row, (title, vol, labels) in zip(axes, cases):
        g = vol.geometry
        x, y, z = _axes_mm(vol)
        a = vol.array
        colours = {n: np.asarray(cat.structures[n].colour) / 255.0 for n in labels}
        # the femoral head centre: about 22 mm below the top of the proximal femur
        top = int(np.flatnonzero(labels["Femur_Head_L"].any(axis=(1, 2)))[-1])
        head = max(top - int(round(22.0 / g.spacing[0])), 0)
        levels = [_pick(labels, "CTV_N", 0), _pick(labels, "CTV_UV", 0), head]
        if len(set(levels)) < 3:
            levels[1] = min(levels[1] + 2, a.shape[0] - 1)
        views = [("axial", k) for k in levels] + [("coronal", _pick(labels, "Femur_Head_L", 1)),
                                                  ("sagittal", _pick(labels, "CTV_UV", 2))]
        for ax, (kind, k) in zip(row, views):
            if kind == "axial":
                img, ext = a[k], (x[0], x[-1], y[-1], y[0])
                cut = {n: m[k] for n, m in labels.items()}
                label = f"axial z={z[k]:.0f} mm"
                X, Y = np.meshgrid(x, y)
            elif kind == "coronal":
                img, ext = a[:, k, :][::-1], (x[0], x[-1], z[0], z[-1])
                cut = {n: m[:, k, :][::-1] for n, m in labels.items()}
                label = f"coronal y={y[k]:.0f} mm"
                X, Y = np.meshgrid(x, z[::-1])
            else:
                img, ext = a[:, :, k][::-1], (y[0], y[-1], z[0], z[-1])
                cut = {n: m[:, :, k][::-1] for n, m in labels.items()}
                label = f"sagittal x={x[k]:.0f} mm"
                X, Y = np.meshgrid(y, z[::-1])
            ax.imshow(img, cmap="gray", vmin=window[0], vmax=window[1], extent=ext, interpolation="bilinear")
            _crop(ax, kind, vol, x, y, z)
            for n, m in cut.items():
                if m.any():
                    ax.contour(X, Y, m.astype(float), levels=[0.5], colors=[colours[n]], linewidths=0.9)
            ax.set_title(f"{title}: {label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if kind == "axial":
                ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="w", fontsize=9, va="center")
                ax.text(0.95, 0.5, "L", transform=ax.transAxes, color="w", fontsize=9, va="center")
                ax.text(0.5, 0.93, "A", transform=ax.transAxes, color="w", fontsize=9, ha="center")
            elif kind == "coronal":
                ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="w", fontsize=9, va="center")
                ax.text(0.95, 0.5, "L", transform=ax.transAxes, color="w", fontsize=9, va="center")
            else:
                ax.text(0.02, 0.5, "A", transform=ax.transAxes, color="w", fontsize=9, va="center")
                ax.text(0.95, 0.5, "P", transform=ax.transAxes, color="w", fontsize=9, va="center")
    names = list(cases[0][2])
    handles = [Line2D([0], [0], color=np.asarray(cat.structures[n].colour) / 255.0, lw=2) for n in names]
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out_png = Path(out_png)
    with atomic_file(out_png) as tmp:
        fig.savefig(tmp, dpi=90, format="png", facecolor="white")
    plt.close(fig)
    return out_png


def main(argv: Sequence[str] | None = None) -> None:
    from cervseg.phantom.generator import generate_patient

    ap = argparse.ArgumentParser(description="Render a contact sheet of phantom patients.")
    ap.add_argument("--out", type=Path, required=True, help="PNG file to write")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--preset", default="default")
    args = ap.parse_args(argv)
    cases = []
    for seed in args.seeds:
        vol, labels = generate_patient(seed, args.preset)
        cases.append((f"seed {seed}", vol, labels))
    contact_sheet(cases, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
