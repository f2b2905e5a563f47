"""Phantom presets: image matrix, pixel/slice spacing ranges, noise and observer levels.

Why presets: the same anatomy serves three purposes that need different grids. ``default``
looks like the planning CTs of the papers (512x512, about 1.15 mm pixels, 5 mm slices,
70-120 slices); ``small`` (256x256) is what a CPU can train on in minutes; ``tiny`` is for
unit tests, where a whole cohort must be generated in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cervseg.errors import InputError


@dataclass(frozen=True)
class Preset:
    """Acquisition settings from which each patient's own grid is drawn."""

    name: str
    matrix: int  # rows = columns
    fov_mm: tuple[float, float]  # reconstruction field of view, drawn per patient
    slice_mm: tuple[float, ...]  # slice thickness = spacing choices
    slice_p: tuple[float, ...]  # their probabilities
    coverage_mm: dict[float, tuple[float, float]]  # scan length range per slice thickness
    supersample_xy: int = 1  # anatomy drawn on a finer in-plane grid, then area-averaged
    noise_hu: tuple[float, float] = (9.0, 16.0)  # per-patient noise SD range (HU)
    observer_mm: float = 1.2  # SD of the observer's boundary perturbation
    contrast_p: float = 0.25  # probability of bladder / vessel contrast per patient
    max_slices: int = 120

    def with_overrides(self, **changes: object) -> "Preset":
        """A copy with some settings changed (e.g. ``noise_hu=(0, 0)`` for a clean image)."""
        return replace(self, **changes)


PRESETS: dict[str, Preset] = {
    "default": Preset(
        name="default",
        matrix=512,
        fov_mm=(540.0, 620.0),  # -> 1.05 .. 1.21 mm pixels
        slice_mm=(5.0, 3.0),
        slice_p=(0.75, 0.25),
        coverage_mm={5.0: (350.0, 460.0), 3.0: (300.0, 350.0)},  # -> 71-93 / 101-117 slices
    ),
    "small": Preset(
        name="small",
        matrix=256,
        fov_mm=(540.0, 620.0),  # -> 2.1 .. 2.4 mm pixels
        slice_mm=(5.0, 3.0),
        slice_p=(0.75, 0.25),
        coverage_mm={5.0: (350.0, 430.0), 3.0: (300.0, 355.0)},
        supersample_xy=2,
    ),
    "tiny": Preset(
        name="tiny",
        matrix=96,
        fov_mm=(520.0, 560.0),  # -> about 5.6 mm pixels
        slice_mm=(10.0,),
        slice_p=(1.0,),
        coverage_mm={10.0: (300.0, 320.0)},
    ),
}


def get_preset(name: str | Preset) -> Preset:
    """The preset called ``name`` (or the Preset itself)."""
    if isinstance(name, Preset):
        return name
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown phantom preset '{name}' (choose from {', '.join(PRESETS)})") from None
