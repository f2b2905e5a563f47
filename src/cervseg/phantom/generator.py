"""generate_patient(seed, preset) -> (Volume, LabelMap): one synthetic planning CT with its contours.

Steps: draw the anatomy (anatomy.py), draw the acquisition (field of view, pixel spacing,
slice thickness, scan range, table position), paint the anatomy on a grid finer than the
image (half-slice planes, sub-pixels), turn tissues into HU with texture, average into the
image voxels (partial volume), blur, add correlated noise; and, from the same painting, the
nine structures as an observer would draw them. Everything comes from one numpy Generator
tree seeded by ``seed``: the same seed and preset give the same arrays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from pydicom.uid import generate_uid

from cervseg.phantom.anatomy import Anatomy
from cervseg.phantom.artefacts import metal_streaks, paint_prosthesis
from cervseg.phantom.body import ArmParams, paint_arms
from cervseg.phantom.imaging import CtNoise, render, xy_partial_volume
from cervseg.phantom.intensities import Intensities
from cervseg.phantom.observer import STYLES, draw_contour
from cervseg.phantom.presets import Preset, get_preset
from cervseg.phantom.shapes import Grid
from cervseg.phantom.tissues import Tissue
from cervseg.phantom.truth import STRUCTURE_NAMES, ObserverChoices, anatomical_masks
from cervseg.volume import Geometry, LabelMap, SeriesInfo, Volume

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Acquisition:
    """How this patient was scanned (drawn per patient from the preset)."""

    fov_mm: float
    slice_mm: float
    n_slices: int
    z_top: float  # local z of the most superior slice centre
    shift: tuple[float, float, float]  # LPS = local + shift
    noise_hu: float


@dataclass(frozen=True)
class Realism:
    """Per-patient draws of the realism features a preset enables (all off: coarse presets)."""

    ct_noise: CtNoise | None
    metal_side: int  # +1 left hip prosthesis, -1 right, 0 none
    circle_mm: float | None  # diameter of the reconstruction circle (None: no circle)
    marbling: float
    arms: ArmParams

    @classmethod
    def draw(cls, rng: np.random.Generator, preset: Preset, fov_mm: float, scale: float) -> "Realism":
        noise = None
        if preset.noise_cutoff is not None:
            noise = CtNoise(float(rng.uniform(*preset.noise_cutoff)), float(rng.uniform(*preset.noise_low_share)))
        has_metal, side = rng.random() < preset.metal_p, int(rng.choice((1, -1)))  # both drawn: same stream
        metal = side if has_metal else 0
        circle = float(fov_mm * rng.uniform(1.0, 1.2)) if preset.recon_circle else None
        marbling = float(rng.uniform(*preset.marbling)) if preset.marbling[1] > 0 else 0.0
        arms = ArmParams.draw(rng, scale, preset.arms_p)
        return cls(noise, metal, circle, marbling, arms)


def draw_acquisition(rng: np.random.Generator, preset: Preset, an: Anatomy) -> Acquisition:
    lo, hi = an.body.extent()
    width = float(max(hi[0] - lo[0], hi[1] - lo[1] + 60))
    fov_lo = max(preset.fov_mm[0], min(width + 40.0, preset.fov_mm[1]))
    fov = float(np.round(rng.uniform(fov_lo, max(fov_lo, preset.fov_mm[1])), 0))
    thick = float(rng.choice(preset.slice_mm, p=preset.slice_p))
    c_lo, c_hi = preset.coverage_mm[thick]
    coverage = float(rng.uniform(c_lo, c_hi))
    n = min(int(round(coverage / thick)) + 1, preset.max_slices)
    z_top = float(rng.uniform(175, 245) * an.scale)
    # the scan must reach below the ischial tuberosities (about -65 mm): extend it down, or
    # when that would exceed the slice limit, start it lower
    z_low = -110.0 * an.scale
    if z_top - (n - 1) * thick > z_low:
        n = min(int(np.ceil((z_top - z_low) / thick)) + 1, preset.max_slices)
        z_top = min(z_top, z_low + (n - 1) * thick)
    shift = (float(rng.normal(0, 8)), float(rng.normal(-15, 10)), float(rng.uniform(-900, -300)))
    noise = float(rng.uniform(*preset.noise_hu))
    return Acquisition(fov, thick, n, z_top, shift, noise)


def _geometry(preset: Preset, acq: Acquisition, frame_uid: str) -> tuple[Geometry, np.ndarray, np.ndarray, np.ndarray]:
    """Image geometry (HFS axial) and local-mm coordinates of its columns, rows and slices."""
    n = preset.matrix
    px = acq.fov_mm / n
    half = acq.fov_mm / 2 - px / 2
    z0 = acq.z_top - (acq.n_slices - 1) * acq.slice_mm
    # reconstruction centre at LPS (0, 0); the patient's local origin sits at ``shift``
    origin = (-half, -half + 40.0, round(z0 + acq.shift[2], 3))
    geom = Geometry.axial((acq.n_slices, n, n), (acq.slice_mm, px, px), origin, frame_uid)
    idx = np.arange(n, dtype=float)
    cols = geom.index_to_lps(np.stack([np.zeros(n), np.zeros(n), idx], 1))[:, 0] - acq.shift[0]
    rows = geom.index_to_lps(np.stack([np.zeros(n), idx, np.zeros(n)], 1))[:, 1] - acq.shift[1]
    k = np.arange(acq.n_slices, dtype=float)
    slices = geom.index_to_lps(np.stack([k, np.zeros_like(k), np.zeros_like(k)], 1))[:, 2] - acq.shift[2]
    return geom, cols, rows, slices


def _fine(coords: np.ndarray, factor: int) -> np.ndarray:
    """Sub-pixel centres: ``factor`` per pixel, in order."""
    if factor == 1:
        return coords
    step = coords[1] - coords[0]
    offs = (np.arange(factor) - (factor - 1) / 2) * step / factor
    return (coords[:, None] + offs[None, :]).ravel()


def _block_majority(mask: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return mask
    nz, ny, nx = mask.shape
    return mask.reshape(nz, ny // f, f, nx // f, f).mean(axis=(2, 4)) >= 0.5


@dataclass(frozen=True)
class PhantomCase:
    """A generated patient with what made it: the image, the contours, the painted labels."""

    volume: Volume
    labels: LabelMap
    tissue: np.ndarray  # Tissue per image voxel (z, y, x; the centre sub-pixel when supersampled)
    part: np.ndarray  # Part per image voxel
    anatomy: Anatomy
    acquisition: Acquisition
    realism: Realism


def generate_patient(seed: int, preset: str | Preset = "default") -> tuple[Volume, LabelMap]:
    """One synthetic patient: CT volume (HU, LPS geometry) and the nine `cervix` structures."""
    case = generate_case(seed, preset)
    return case.volume, case.labels


def generate_case(seed: int, preset: str | Preset = "default") -> PhantomCase:
    """generate_patient, keeping the tissue/part painting (for realism measurements and tests)."""
    preset = get_preset(preset)
    ss = np.random.SeedSequence([int(seed), 20240613])
    # a sixth child for the realism draws: the first five (and so the coarse presets) are unchanged
    s_anat, s_acq, s_int, s_img, s_obs, s_real = ss.spawn(6)
    an = Anatomy(s_anat, preset.contrast_p, preset.bowel_gas, preset.male_p)
    acq = draw_acquisition(np.random.default_rng(s_acq), preset, an)
    rng_real = np.random.default_rng(s_real)
    real = Realism.draw(rng_real, preset, acq.fov_mm, an.scale)
    if real.arms.beside:  # widen the field of view for the arms, up to the scanner's limit
        lo, hi = an.body.extent()
        need = float(hi[0] - lo[0]) + 2 * (real.arms.gap + 2.3 * real.arms.radius) + 20.0
        acq = replace(acq, fov_mm=float(np.round(min(max(acq.fov_mm, need), preset.fov_mm[1]), 0)))
    # deterministic UIDs under pydicom's root, hashed from the seed, preset and role
    uid = lambda what: generate_uid(entropy_srcs=["cervseg-phantom", str(seed), preset.name, what])  # noqa: E731
    geom, cols, rows, slices = _geometry(preset, acq, uid("frame"))
    f = preset.supersample_xy
    xs, ys = _fine(cols, f), _fine(rows, f)
    grid = Grid(xs, ys, slices)
    canvas = an.paint(grid, realistic=preset.detailed_anatomy)
    paint_arms(canvas, an.body, real.arms)
    if real.metal_side:
        paint_prosthesis(canvas, an.skeleton, real.metal_side)
    intens = Intensities.draw(np.random.default_rng(s_int), an.contrast.iv, preset.hu_overrides)
    px = acq.fov_mm / preset.matrix
    streaks = None
    if real.metal_side:
        metal = xy_partial_volume((canvas.tissue == Tissue.METAL).astype(np.float32), f)
        streaks = metal_streaks(metal, px, rng_real, strength=float(rng_real.uniform(0.6, 1.4)))
    hu = render(canvas.tissue, intens, np.random.default_rng(s_img), px, f, acq.noise_hu,
                ct_noise=real.ct_noise, marbling=real.marbling, artefact=streaks)
    del streaks
    if real.circle_mm is not None:
        r = np.hypot(*np.meshgrid(np.arange(preset.matrix) - (preset.matrix - 1) / 2,
                                  np.arange(preset.matrix) - (preset.matrix - 1) / 2, indexing="ij")) * px
        hu[:, r > real.circle_mm / 2] = -1024
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    part = canvas.part
    box = grid.full()
    rng_obs = np.random.default_rng(s_obs)
    obs = ObserverChoices.draw(rng_obs, an)
    exact = anatomical_masks(an, part, box, obs)
    labels = LabelMap(geom)
    spacing = geom.spacing
    for name in STRUCTURE_NAMES:
        m = _block_majority(exact[name], f)
        labels[name] = draw_contour(m, spacing, STYLES[name], preset.observer_mm, rng_obs)
    series = SeriesInfo(
        study_instance_uid=uid("study"), series_instance_uid=uid("series"),
        sop_instance_uids=tuple(uid(f"sop{k}") for k in range(acq.n_slices)),
        patient={"PatientName": f"PHANTOM^{seed:06d}", "PatientID": f"CERVSEG-{preset.name}-{seed:06d}",
                 "PatientSex": "M" if an.male else "F", "PatientBirthDate": ""},
        study={"StudyDescription": f"cervseg phantom ({preset.name})", "StudyID": f"{seed % 10**6}",
               "StudyDate": "20240101", "StudyTime": "120000", "AccessionNumber": "",
               "ReferringPhysicianName": ""},
        patient_position="HFS",
    )
    log.debug("patient %d: %s, %d slices of %.1f mm, FOV %.0f mm", seed, preset.name, acq.n_slices,
              acq.slice_mm, acq.fov_mm)
    sub = (slice(None), slice(f // 2, None, f), slice(f // 2, None, f))
    return PhantomCase(Volume(hu, geom, series), labels, canvas.tissue[sub], part[sub], an, acq, real)
