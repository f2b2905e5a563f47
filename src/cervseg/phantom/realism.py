"""Image statistics that say how much a CT looks like a patient: HU per tissue and noise texture.

Why a module of its own: the same measurements are made on real CT (pelvic-ref-002,
totalseg-example) and on phantoms (benchmarks/phantom_realism.py), and the tests check the
phantom's noise against its configuration with them, so one implementation serves all three.

The noise power spectrum (NPS) is measured in an irregular uniform region (the urine of a
bladder is only a few centimetres across) through the autocovariance: the residual after
removing each slice's plane fit inside the region, correlated with itself over the region's
overlap at each lag, tapered, and Fourier-transformed (Wiener-Khinchin); the 2D NPS is then
averaged over rings of radial frequency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from cervseg.phantom.generator import PhantomCase


@dataclass(frozen=True)
class RadialNps:
    """Radially averaged in-plane noise power spectrum (HU^2 mm^2) at ``freq`` (cycles/mm)."""

    freq: np.ndarray
    power: np.ndarray
    variance: float  # HU^2 of the residual (the integral of the 2D NPS)

    @property
    def peak_freq(self) -> float:
        """Frequency of the NPS maximum (cycles/mm)."""
        return float(self.freq[int(np.argmax(self.power))])

    @property
    def mean_freq(self) -> float:
        """Power-weighted mean radial frequency (cycles/mm): one number for the NPS shape."""
        w = self.power * self.freq  # ring area grows with f
        return float((w * self.freq).sum() / w.sum())

    def normalised(self) -> np.ndarray:
        """Power divided by its maximum: the NPS shape without its level."""
        return self.power / max(float(self.power.max()), 1e-12)


def _plane_residual(plane: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Values inside ``mask`` minus their least-squares plane (a+bx+cy); zero outside."""
    yy, xx = np.nonzero(mask)
    v = plane[yy, xx].astype(np.float64)
    a = np.stack([np.ones_like(v), yy, xx], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, v, rcond=None)
    out = np.zeros(plane.shape, np.float64)
    out[yy, xx] = v - a @ coef
    return out


def radial_nps(image: np.ndarray, mask: np.ndarray, pixel_mm: float, max_lag_mm: float = 24.0,
               min_pixels: int = 200, bin_width: float = 0.02) -> RadialNps:
    """NPS of ``image`` (z, y, x HU) inside ``mask`` (same shape), pooled over slices.

    Slices with fewer than ``min_pixels`` mask pixels are skipped. The autocovariance is used
    up to ``max_lag_mm`` with a Hann taper, so the frequency resolution is about 1/max_lag;
    the result is averaged over rings ``bin_width`` cycles/mm wide.
    """
    lag = max(2, int(round(max_lag_mm / pixel_mm)))
    num = np.zeros((2 * lag + 1, 2 * lag + 1))
    den = np.zeros_like(num)
    sq, count = 0.0, 0
    for k in range(image.shape[0]):
        m = mask[k]
        if m.sum() < min_pixels:
            continue
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        mk = m[y0:y1, x0:x1].astype(np.float64)
        d = _plane_residual(image[k, y0:y1, x0:x1], m[y0:y1, x0:x1])
        sq += float((d ** 2).sum())
        count += int(mk.sum())
        shape = (mk.shape[0] + 2 * lag + 1, mk.shape[1] + 2 * lag + 1)
        fd, fm = np.fft.rfft2(d, shape), np.fft.rfft2(mk, shape)
        acf = np.fft.irfft2(np.abs(fd) ** 2, shape)
        pairs = np.fft.irfft2(np.abs(fm) ** 2, shape)
        num += _centred(acf, lag)
        den += _centred(pairs, lag)
    if count == 0:
        raise ValueError("no slice has enough pixels in the mask to measure noise")
    cov = np.where(den > 0.05 * den.max(), num / np.maximum(den, 1e-9), 0.0)
    taper = np.hanning(2 * lag + 3)[1:-1]
    cov *= taper[:, None] * taper[None, :]
    n = 4 * (2 * lag + 1)
    spec = np.real(np.fft.fft2(np.fft.ifftshift(_pad_centre(cov, n)))) * pixel_mm ** 2
    f = np.fft.fftfreq(n, pixel_mm)
    fr = np.hypot(f[:, None], f[None, :])
    step = bin_width
    edges = np.arange(0.0, 0.5 / pixel_mm + 1e-9, step)
    idx = np.digitize(fr.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    sums = np.bincount(idx[ok], spec.ravel()[ok], minlength=len(edges) - 1)
    cnt = np.bincount(idx[ok], minlength=len(edges) - 1)
    keep = cnt > 0
    centres = (edges[:-1] + step / 2)[keep]
    return RadialNps(centres, sums[keep] / cnt[keep], sq / count)


def _centred(a: np.ndarray, lag: int) -> np.ndarray:
    """The (2 lag + 1)^2 block of a circular correlation around lag 0, lag 0 in the middle."""
    rows = np.r_[-lag: lag + 1]
    return a[np.ix_(rows % a.shape[0], rows % a.shape[1])]


def _pad_centre(a: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, n))
    c = n // 2
    h = a.shape[0] // 2
    out[c - h: c + h + 1, c - h: c + h + 1] = a
    return out


@dataclass(frozen=True)
class HuStats:
    """HU distribution of a region."""

    mean: float
    sd: float
    p5: float
    p95: float
    voxels: int


def hu_stats(image: np.ndarray, mask: np.ndarray) -> HuStats | None:
    """Mean, SD and 5th/95th percentiles of ``image`` inside ``mask`` (None when empty)."""
    v = image[mask]
    if v.size == 0:
        return None
    p5, p95 = np.percentile(v, [5, 95])
    return HuStats(float(v.mean()), float(v.std()), float(p5), float(p95), int(v.size))


def erode_in_plane(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` shrunk by ``pixels`` in each axial slice (interior regions away from walls)."""
    if pixels <= 0:
        return mask
    return ndimage.binary_erosion(mask, structure=np.ones((1, 3, 3), bool), iterations=pixels)


def body_mask(image: np.ndarray, threshold: float = -300.0) -> np.ndarray:
    """The patient (no couch, no air): per slice the largest component above ``threshold``, holes filled."""
    out = np.zeros(image.shape, bool)
    for k in range(image.shape[0]):
        m = ndimage.binary_opening(image[k] > threshold, np.ones((5, 5), bool))
        lab, n = ndimage.label(m)
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())[1:]
        out[k] = ndimage.binary_fill_holes(lab == 1 + int(np.argmax(sizes)))
    return out


def high_pass_sd(image: np.ndarray, mask: np.ndarray, sigma_px: float = 3.0) -> float:
    """SD inside ``mask`` of the image minus its in-plane Gaussian blur (the fine-grained noise).

    The blur is normalised over the mask (blur of image x mask / blur of mask), so tissue
    outside the region (the bladder wall, fat) does not leak into it.
    """
    m = mask.astype(np.float32)
    sig = (0, sigma_px, sigma_px)
    num = ndimage.gaussian_filter(image.astype(np.float32) * m, sigma=sig)
    den = ndimage.gaussian_filter(m, sigma=sig)
    smooth = num / np.maximum(den, 1e-6)
    return float((image - smooth)[mask].std())


def air_in_front(image: np.ndarray, body: np.ndarray, pixel_mm: float, gap_mm: float = 10.0) -> np.ndarray:
    """Air anterior to the body (more than ``gap_mm`` in front of it), inside the reconstruction circle."""
    rows = np.arange(image.shape[1])[None, :, None]
    rows_hit = body.any(axis=2)
    top = np.where(rows_hit.any(axis=1), np.argmax(rows_hit, axis=1), 0)
    front = rows < (top - int(gap_mm / pixel_mm))[:, None, None]
    return front & (image > -1020)


#: frequencies (cycles/mm) at which the normalised NPS is reported
NPS_FREQS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)

#: (row label, region key, interior erosion in mm); the regions each data set provides
TISSUES = (
    ("bladder, whole contour", "bladder", 0.0),
    ("bladder urine, 5 mm inside", "bladder", 5.0),
    ("prostate (002) / uterus-cervix (phantom), 3 mm inside", "pelvic_organ", 3.0),
    ("rectum, whole contour", "rectum", 0.0),
    ("femoral heads", "femoral_heads", 0.0),
    ("pelvis (hip bones)", "pelvis", 0.0),
    ("sacrum", "sacrum", 0.0),
    ("lumbar spine", "spine", 0.0),
    ("femur", "femur", 0.0),
    ("muscles (all labelled)", "muscles", 0.0),
    ("iliopsoas / psoas", "psoas", 0.0),
    ("fat-range voxels (-190..-30) in the body", "fat", 0.0),
    ("small bowel", "small_bowel", 0.0),
)
REGION_KEYS = tuple(sorted({k for _, k, _ in TISSUES} - {"fat"}))


#: accepted ranges for an unenhanced, metal-free default phantom, set around the values of
#: pelvic-ref-002 and totalseg-example (docs/phantom.md, realism table); the tests hold the
#: generator to them
PHANTOM_RANGES: dict[str, tuple[float, float]] = {
    "bladder urine, 5 mm inside|mean": (0.0, 30.0),  # 002: 14.5, totalseg: 12.6
    "fat-range voxels (-190..-30) in the body|mean": (-110.0, -80.0),  # -91.2, -90.6
    "muscles (all labelled)|mean": (0.0, 50.0),  # 23.0, 21.1
    "femoral heads|mean": (180.0, 450.0),  # 286
    "pelvis (hip bones)|mean": (200.0, 450.0),  # 311, 228
    "sacrum|mean": (100.0, 320.0),  # 179, 139
    "rectum gas fraction (< -300 HU)": (0.0, 0.6),  # 0.19
    "noise: high-pass SD in urine (minus 3-px blur), HU": (3.0, 12.0),  # 6.3
    "fat fraction of the body at the pelvis, %": (25.0, 65.0),  # 49.4, 48.1
    "body width at the pelvis (max), mm": (300.0, 480.0),  # 382, 363
}


def ct_statistics(image: np.ndarray, spacing: tuple[float, float, float], regions: dict[str, np.ndarray]) -> dict[str, float]:
    """Every statistic of the realism table for one CT (NaN where it lacks the region).

    ``image``: HU (z, y, x axial slices, y posterior, x patient left); ``regions``: a bool mask
    per key of REGION_KEYS (empty where the data set has no such label). Fat is found here:
    body voxels of -190..-30 HU on the slices that hold hip bone.
    """
    hu = image.astype(np.float32, copy=False)
    px = float(spacing[1])
    body = body_mask(hu)
    pelvic = regions["pelvis"].any(axis=(1, 2))
    fat = body & (hu >= -190) & (hu <= -30) & pelvic[:, None, None]
    regions = dict(regions, fat=fat)
    out: dict[str, float] = {}
    for label, key, erode_mm in TISSUES:
        s = hu_stats(hu, erode_in_plane(regions[key], int(round(erode_mm / px))))
        for what in ("mean", "sd", "p5", "p95"):
            out[f"{label}|{what}"] = getattr(s, what) if s else np.nan
    rect = regions["rectum"]
    out["rectum gas fraction (< -300 HU)"] = float((hu[rect] < -300).mean()) if rect.any() else np.nan
    urine = erode_in_plane(regions["bladder"], int(round(5 / px)))
    out["noise: SD in urine (5 mm inside), HU"] = float(hu[urine].std()) if urine.any() else np.nan
    out["noise: high-pass SD in urine (minus 3-px blur), HU"] = high_pass_sd(hu, urine) if urine.any() else np.nan
    depth = ndimage.distance_transform_edt(body, sampling=(1e3, px, float(spacing[2])))
    subcutaneous = erode_in_plane(fat & (depth < 25), int(round(3 / px)))
    nps_regions = (("urine", erode_in_plane(regions["bladder"], int(round(4 / px)))), ("subcutaneous fat", subcutaneous))
    for where, m in nps_regions:
        try:
            n = radial_nps(hu, m, px, max_lag_mm=max(16.0, 5 * px), min_pixels=int(60 / px ** 2) + 10)
        except ValueError:
            n = None
        out[f"NPS {where}: peak frequency, 1/mm"] = n.peak_freq if n else np.nan
        out[f"NPS {where}: mean frequency, 1/mm"] = n.mean_freq if n else np.nan
        for f in NPS_FREQS:
            ok = n is not None and f <= n.freq.max()
            out[f"NPS {where}: at {f:.2f}/mm, share of peak"] = (
                float(np.interp(f, n.freq, n.normalised())) if ok else np.nan)
    air = air_in_front(hu, body, px)
    out["air in front of the body: SD, HU"] = float(hu[air].std()) if air.any() else np.nan
    out["pixels at -1024 (outside the reconstruction circle), %"] = float((hu <= -1023.5).mean() * 100)
    widths = [np.ptp(np.nonzero(body[k].any(axis=0))[0]) * float(spacing[2]) for k in np.flatnonzero(pelvic)
              if body[k].any()]
    out["body width at the pelvis (max), mm"] = float(max(widths)) if widths else np.nan
    body_pelvis = body & pelvic[:, None, None]
    out["fat fraction of the body at the pelvis, %"] = float(fat.sum() / max(int(body_pelvis.sum()), 1) * 100)
    out["bladder volume, ml"] = float(regions["bladder"].sum() * np.prod(spacing) / 1000)
    out["max HU"] = float(hu.max())
    out["metal (> 20 voxels > 2500 HU), yes = 1"] = float((hu > 2500).sum() > 20)
    out["pixel size, mm"] = px
    out["slice thickness, mm"] = float(spacing[0])
    return out


def phantom_regions(case: "PhantomCase") -> dict[str, np.ndarray]:
    """The realism regions of a generated patient (``generator.PhantomCase``), from its own labels."""
    from cervseg.phantom.tissues import Part, Tissue

    part, tissue, lab = case.part, case.tissue, case.labels
    isin = lambda *ps: np.isin(part, [int(p) for p in ps])  # noqa: E731
    return {
        "bladder": lab["Bladder"], "pelvic_organ": isin(Part.UTERUS, Part.CERVIX), "rectum": lab["Rectum"],
        "femoral_heads": lab["Femur_Head_L"] | lab["Femur_Head_R"],
        "pelvis": isin(Part.HIP_L, Part.HIP_R), "sacrum": isin(Part.SACRUM), "spine": isin(Part.VERTEBRA),
        "femur": isin(Part.FEMUR_L, Part.FEMUR_R),
        "muscles": np.isin(tissue, [int(Tissue.MUSCLE), int(Tissue.MUSCLE_FATTY)])
        & isin(Part.BODY, Part.PSOAS, Part.ILIACUS, Part.PELVIC_MUSCLE),
        "psoas": isin(Part.PSOAS), "small_bowel": lab["Bowel_Small"],
    }


def case_statistics(case: "PhantomCase") -> dict[str, float]:
    """ct_statistics of a generated patient."""
    return ct_statistics(case.volume.array, case.volume.geometry.spacing, phantom_regions(case))
