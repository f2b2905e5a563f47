"""Phantom presets: image matrix, pixel/slice spacing ranges, noise and observer levels.

Why presets: the same anatomy serves three purposes that need different grids. ``default``
looks like the planning CTs of the papers (512x512, about 1.15 mm pixels, 5 mm slices,
70-120 slices); ``small`` (256x256) is what a CPU can train on in minutes; ``tiny`` is for
unit tests, where a whole cohort must be generated in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cervseg.errors import InputError
from cervseg.phantom.tissues import Tissue


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
    # realism features (default preset; off for the coarse presets, whose images must stay cheap)
    noise_cutoff: tuple[float, float] | None = None  # NPS band cutoff range (1/mm); None: Gaussian noise
    noise_low_share: tuple[float, float] = (0.65, 0.75)  # variance share of low-frequency mottle
    metal_p: float = 0.0  # probability of a metal hip prosthesis (with streaks)
    recon_circle: bool = False  # -1024 HU outside the scanner's reconstruction circle
    marbling: tuple[float, float] = (0.0, 0.0)  # fraction of muscle that is intramuscular fat
    detailed_anatomy: bool = False  # muscle groups separated by fat planes; a curved couch underside
    arms_p: float = 0.0  # probability of arms along the body (else raised, outside the scan)
    bowel_gas: tuple[float, float, float] = (0.25, 0.15, 0.6)  # small-bowel loops: P(gas), gas level range
    hu_overrides: tuple[tuple[int, float, float], ...] = ()  # (Tissue, low, high) replacing HU_RANGE
    male_p: float = 0.0  # probability of a male pelvis (phantom/male.py); `cervseg phantom --male-fraction`

    def with_overrides(self, **changes: object) -> "Preset":
        """A copy with some settings changed (e.g. ``noise_hu=(0, 0)`` for a clean image)."""
        return replace(self, **changes)


PRESETS: dict[str, Preset] = {
    "default": Preset(
        name="default",
        matrix=512,
        fov_mm=(520.0, 620.0),  # -> 1.02 .. 1.21 mm pixels (at least the body width + 40 mm)
        slice_mm=(5.0, 3.0),
        slice_p=(0.6, 0.4),  # both real cases are 3 mm; the papers' cohorts mostly 5 mm
        coverage_mm={5.0: (350.0, 460.0), 3.0: (300.0, 350.0)},  # -> 71-93 / 101-117 slices
        noise_hu=(7.0, 12.0),  # pelvic-ref-002: 6.3 HU high-pass SD in urine
        noise_cutoff=(0.20, 0.26),  # -> NPS band peak 0.14-0.18 /mm; pelvic-ref-002 (kernel B): 0.16
        noise_low_share=(0.7, 0.8),
        metal_p=0.1,
        recon_circle=True,
        marbling=(0.0, 0.06),
        detailed_anatomy=True,
        arms_p=0.3,
        bowel_gas=(0.12, 0.1, 0.45),  # pelvic small bowel holds little gas (totalseg-example: p5 -63 HU)
        hu_overrides=((Tissue.URINE, 6.0, 20.0),  # urine; pelvic-ref-002: 14.5 +- 13.0 HU 5 mm inside
                      (Tissue.CORTICAL, 900.0, 1300.0)),  # cortical bone; pelvic-ref-002 femoral heads p95 945 HU
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
