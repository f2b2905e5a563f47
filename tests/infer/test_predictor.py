"""Predictor: the checkpoint's own preprocessing, crop undone, orientation kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cervseg.config import PreprocessConfig
from cervseg.data.preprocess import CropBox, Preprocessor, SliceGrid, body_bounding_box
from cervseg.infer.predictor import Predictor
from cervseg.structures import left_right_swap
from cervseg.volume import Geometry, LabelMap, Volume, flip_array
from tests.infer.conftest import STRUCTURES

HFS = Geometry.axial((5, 40, 48), (3.0, 1.2, 1.1), (-26.0, -20.0, -6.0))


def _volume(geometry: Geometry) -> Volume:
    rng = np.random.default_rng(0)
    hu = np.full(geometry.shape, -1000.0, np.float32)
    hu[:, 6:34, 4:44] = 30 + rng.normal(0, 40, size=(geometry.shape[0], 28, 40))
    hu[:, 12:20, 6:14] = 500.0  # a bright object at low columns (patient right on HFS)
    return Volume(hu, geometry)


def test_predict_matches_a_manual_forward_pass(checkpoint: Path) -> None:
    predictor = Predictor.from_checkpoint(checkpoint, batch_size=2)
    volume = _volume(HFS)
    labels = predictor.predict(volume, show_progress=False)
    assert list(labels) == STRUCTURES and labels.geometry == HFS

    pre = Preprocessor(PreprocessConfig.model_validate(predictor.metadata.preprocess))
    box = pre.crop_box(volume.array)
    x = torch.from_numpy(np.stack([pre.slice_input(volume.array, z, box) for z in range(5)]))
    with torch.no_grad():
        expected = (torch.sigmoid(predictor.model(x)) > 0.5).numpy()
    for c, name in enumerate(STRUCTURES):
        full = np.zeros(HFS.shape, bool)
        full[:, box.y0:box.y0 + 32, box.x0:box.x0 + 32] = expected[:, c]
        assert np.array_equal(labels[name], full), name
    assert any(labels[n].any() for n in STRUCTURES) and not all(labels[n].all() for n in STRUCTURES)


@pytest.mark.parametrize("rows", [40, 24])  # 24 rows: the 32-pixel crop runs past the image
def test_probabilities_are_the_forward_pass_on_the_crop_and_zero_outside(checkpoint: Path, rows: int) -> None:
    """Known answer for the QA probabilities: 1 + round(254 sigmoid) of a manual forward pass
    where the crop lies on the CT, 0 everywhere else (the model did not look there)."""
    predictor = Predictor.from_checkpoint(checkpoint, batch_size=2)
    geometry = Geometry.axial((5, rows, 48), HFS.spacing, HFS.origin)
    volume = Volume(np.ascontiguousarray(_volume(HFS).array[:, :rows]), geometry)
    probabilities: dict[str, np.ndarray] = {}
    predictor.predict(volume, show_progress=False, probabilities=probabilities)

    pre = Preprocessor(PreprocessConfig.model_validate(predictor.metadata.preprocess))
    box = pre.crop_box(volume.array)
    x = torch.from_numpy(np.stack([pre.slice_input(volume.array, z, box) for z in range(5)]))
    with torch.no_grad():
        p = torch.sigmoid(predictor.model(x)).numpy()
    y0, y1, x0 = max(box.y0, 0), min(box.y0 + 32, rows), box.x0
    assert (y1 - y0 < 32) == (rows == 24)
    for c, name in enumerate(STRUCTURES):
        expected = np.zeros(geometry.shape, np.uint8)
        expected[:, y0:y1, x0:x0 + 32] = (1 + np.clip(p[:, c, y0 - box.y0:y1 - box.y0], 0, 1) * 254).round()
        assert np.array_equal(probabilities[name], expected), name


def test_ffs_series_gets_the_same_masks_in_patient_space(checkpoint: Path) -> None:
    """The same patient stored FFS (mirrored array) must be contoured at the same LPS points."""
    predictor = Predictor.from_checkpoint(checkpoint)
    hfs = _volume(HFS)
    flips = (True, False, True)
    ffs_geometry = HFS.flipped(flips)
    ffs = Volume(np.ascontiguousarray(flip_array(hfs.array, flips)), ffs_geometry)
    a = predictor.predict(hfs, show_progress=False)
    b = predictor.predict(ffs, show_progress=False)
    for name in STRUCTURES:
        assert np.array_equal(flip_array(b[name], flips), a[name]), name


def test_flip_tta_runs_and_swaps_sides() -> None:
    assert left_right_swap(["Bladder", "Femur_Head_L", "Femur_Head_R"]) == [0, 2, 1]
    assert left_right_swap(["background", "Rectum"]) == [0, 1]


def test_flip_tta_prediction_is_mirror_consistent(checkpoint: Path) -> None:
    """With TTA, mirroring the patient mirrors the masks and swaps L/R exactly."""
    predictor = Predictor.from_checkpoint(checkpoint, flip_tta=True)
    volume = _volume(HFS)
    mirrored = Volume(np.ascontiguousarray(volume.array[:, :, ::-1]), HFS)
    a = predictor.predict(volume, show_progress=False)
    b = predictor.predict(mirrored, show_progress=False)
    # crop centring may move by one pixel on the mirrored body; compare inside the body box
    assert np.array_equal(a["Bladder"][:, :, 8:40], b["Bladder"][:, :, ::-1][:, :, 8:40])
    assert np.array_equal(a["Femur_Head_L"][:, :, 8:40], b["Femur_Head_R"][:, :, ::-1][:, :, 8:40])


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    from cervseg.errors import CervsegError

    with pytest.raises(CervsegError, match=str(tmp_path / "nope")):
        Predictor.from_checkpoint(tmp_path / "nope")


def test_body_wider_than_the_crop_is_reported(checkpoint: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The fixture model sees 32x32 pixels: a 40-column body loses its sides, and the user is told."""
    predictor = Predictor.from_checkpoint(checkpoint)
    with caplog.at_level("WARNING", logger="cervseg.infer.predictor"):
        predictor.predict(_volume(HFS), show_progress=False)
    # body columns 4..43, crop columns 8..39: 4 px x 1.1 mm outside on each side; rows fit
    assert "32 x 32 pixel crop (38 x 35 mm) leaves out up to 4 mm right, 4 mm left of the body" in caplog.text
    caplog.clear()
    # a crop shifted to the patient's left cuts only the right side: the side is named right
    shifted = CropBox(4, 12, 32, 32, HFS.shape[1:])
    with caplog.at_level("WARNING", logger="cervseg.infer.predictor"):
        predictor._warn_if_body_outside(body_bounding_box(_volume(HFS).array, -500), SliceGrid.from_box(shifted),
                                        HFS.spacing[1:])
    assert "leaves out up to 9 mm right of the body" in caplog.text
    caplog.clear()
    narrow = np.full(HFS.shape, -1000.0, np.float32)
    narrow[:, 8:30, 10:38] = 40.0
    with caplog.at_level("WARNING", logger="cervseg.infer.predictor"):
        predictor.predict(Volume(narrow, HFS), show_progress=False)
    assert "pixel crop" not in caplog.text


def test_threads_apply_to_the_network_pass_and_are_restored(checkpoint: Path) -> None:
    """A shared contouring node limits the model to its share of cores; others keep theirs."""
    predictor = Predictor.from_checkpoint(checkpoint, threads=1)
    seen: list[int] = []
    predictor.model.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        predictor.predict(_volume(HFS), show_progress=False)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- the plan in millimetres

class _BlurThreshold(torch.nn.Module):
    """A deterministic stand-in for a trained network: its output is a known function of the image.

    Logits = steep ramps of the 5x5-pixel mean of the windowed slice at two levels (bone at
    400 HU, body at -400 HU). The blur is 5 *network* pixels, so the masks depend on the CT's pixel size
    unless the predictor resamples every CT to the plan's pixel size.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blurred = torch.nn.functional.avg_pool2d(x[:, :1], 5, stride=1, padding=2, count_include_pad=False)
        return torch.cat([40.0 * (blurred - 0.7), 40.0 * (blurred - 0.3)], dim=1)  # 400 and -400 HU


def _blur_predictor(plan: PreprocessConfig) -> Predictor:
    from cervseg.models.checkpoint import CheckpointMetadata, LoadedCheckpoint
    from cervseg.models.output_modes import OutputSpec

    meta = CheckpointMetadata("blur", {}, OutputSpec(("Bone", "Body"), "multilabel"), plan.model_dump(), {}, {}, "")
    return Predictor(LoadedCheckpoint(_BlurThreshold(), meta, Path("blur")), threads=1)


def _phantom_at(pixel_mm: float) -> Volume:
    """The same phantom patient (anatomy in mm, no noise) written with ``pixel_mm`` pixels over 500 mm."""
    from cervseg.phantom.generator import generate_patient
    from cervseg.phantom.presets import get_preset

    preset = get_preset("default").with_overrides(
        matrix=int(round(500 / pixel_mm)), fov_mm=(500.0, 500.0), noise_hu=(0.0, 0.0),
        slice_mm=(20.0,), slice_p=(1.0,), coverage_mm={20.0: (60.0, 60.0)}, max_slices=4, supersample_xy=4,
    )
    return generate_patient(3, preset)[0]


def _boundary_mm(mask: np.ndarray, geometry: Geometry) -> list[np.ndarray]:
    """Per slice: LPS (x, y) of the mask's boundary pixel centres."""
    from scipy import ndimage

    out = []
    for z in range(mask.shape[0]):
        edge = mask[z] & ~ndimage.binary_erosion(mask[z])
        idx = np.argwhere(edge)
        pts = geometry.index_to_lps(np.column_stack([np.full(len(idx), z), idx]))
        out.append(pts[:, :2])
    return out


def _surface_distances(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    from scipy.spatial import cKDTree

    d = [np.concatenate([cKDTree(q).query(p)[0], cKDTree(p).query(q)[0]]) for p, q in zip(a, b) if len(p) and len(q)]
    return np.concatenate(d)


@pytest.mark.slow
def test_same_phantom_at_three_pixel_sizes_gives_the_same_contours_in_patient_space() -> None:
    """0.8, 1.0 and 1.25 mm pixels: the body outline agrees within one voxel of the coarser scan.

    The model is a deterministic stand-in (``_BlurThreshold``), not a trained network: its
    output is a known function of the image on the plan's 1 mm grid, so any disagreement
    comes from the resampling chain (CT -> plan grid -> probabilities -> CT grid -> decided).
    """
    torch.set_num_threads(1)
    plan = PreprocessConfig(intensity="window", window_width=2000, window_level=0, spacing_mm=1.0, crop_mm=512)
    predictor = _blur_predictor(plan)
    volumes = {px: _phantom_at(px) for px in (0.8, 1.0, 1.25)}
    assert [v.geometry.spacing[1] for v in volumes.values()] == pytest.approx([0.8, 1.0, 1.25])
    labels = {px: predictor.predict(v, show_progress=False) for px, v in volumes.items()}
    ref = labels[1.0]

    def ml(lab: LabelMap, name: str) -> float:
        return float(lab[name].sum() * np.prod(lab.geometry.spacing)) / 1000

    for px in (0.8, 1.25):
        voxel = max(px, 1.0)
        d = _surface_distances(_boundary_mm(ref["Body"], ref.geometry), _boundary_mm(labels[px]["Body"], labels[px].geometry))
        assert np.percentile(d, 95) <= voxel and np.median(d) <= voxel / 2, (px, np.percentile(d, [50, 95]))
        assert ml(labels[px], "Body") == pytest.approx(ml(ref, "Body"), rel=0.01)
        # thin cortical bone thresholded at 400 HU is partial-volume sensitive: its volume still agrees
        assert ml(labels[px], "Bone") == pytest.approx(ml(ref, "Bone"), rel=0.05)
