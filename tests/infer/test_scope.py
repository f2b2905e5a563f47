"""Outside what the model saw: one warning line; a structure the scan does not reach: no ROI."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cervseg.infer.scope import REACH_FRACTION, drop_unreached
from cervseg.volume import Geometry, LabelMap

G = Geometry.axial((10, 20, 20), (5.0, 2.0, 2.0), (0.0, 0.0, 0.0))  # 0.02 ml voxels


def _labels(**slices) -> LabelMap:
    labels = LabelMap(G)
    for name, zs in slices.items():
        m = np.zeros(G.shape, bool)
        m[zs, 5:15, 5:15] = True  # 100 voxels per slice = 2 ml
        labels[name] = m
    return labels


def test_remnant_at_the_scan_end_is_emptied_and_named(caplog: pytest.LogCaptureFixture) -> None:
    seen = {"structure_ml": {"Femur_Head_L": [40.0, 80.0], "Bladder": [40.0, 400.0], "Rectum": [4.0, 80.0]}}
    labels = _labels(Femur_Head_L=slice(9, 10), Bladder=slice(4, 5), Rectum=slice(0, 1))
    with caplog.at_level(logging.WARNING, logger="cervseg.infer.scope"):
        out = drop_unreached(labels, seen)
    # 2 ml of femoral head on the last slice (< 25 % of 40 ml): not reached
    assert not out["Femur_Head_L"].any()
    assert "Femur_Head_L: only 2.0 ml, at the end of the scan (the model saw at least 40 ml)" in caplog.text
    # small but in the middle of the scan: the model's answer stands
    assert np.array_equal(out["Bladder"], labels["Bladder"])
    # at the end, but at least REACH_FRACTION of the smallest seen: cut by the scan, kept
    assert 2.0 >= REACH_FRACTION * 4.0 and np.array_equal(out["Rectum"], labels["Rectum"])
    assert caplog.text.count("no ROI written") == 1
    # a checkpoint that does not record volumes keeps everything
    assert all(np.array_equal(drop_unreached(labels, {})[n], labels[n]) for n in labels)


@pytest.mark.slow
def test_phantom_cut_above_the_femoral_heads_gets_no_femoral_head_roi(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The built-in model on a phantom whose scan stops above the hips: warnings, no invented heads."""
    import torch

    from cervseg.dicom.series_write import write_ct_series
    from cervseg.infer.segment import segment_series
    from cervseg.phantom.generator import generate_patient
    from cervseg.volume import Volume

    torch.set_num_threads(1)
    volume, truth = generate_patient(5, "default")
    heads = truth["Femur_Head_L"] | truth["Femur_Head_R"]
    zs = np.flatnonzero(heads.any(axis=(1, 2)))
    lps_z = volume.geometry.index_to_lps(np.array([[zs.min(), 0, 0], [zs.max(), 0, 0]], float))[:, 2]
    upper = int(zs.max()) + 2 if lps_z[1] > lps_z[0] else 0  # the slices above the heads (+z superior)
    keep = slice(upper, volume.geometry.shape[0]) if upper else slice(0, int(zs.min()) - 1)
    origin = volume.geometry.index_to_lps(np.array([[keep.start, 0, 0]], float))[0]
    geometry = Geometry((keep.stop - keep.start, *volume.geometry.shape[1:]), volume.geometry.spacing,
                        tuple(origin), volume.geometry.axes, volume.geometry.frame_of_reference_uid)
    series = dataclasses.replace(volume.series, sop_instance_uids=volume.series.sop_instance_uids[keep])
    cut = Volume(np.ascontiguousarray(volume.array[keep]), geometry, series)
    assert not (truth["Femur_Head_L"][keep].any() or truth["Femur_Head_R"][keep].any())
    write_ct_series(cut, tmp_path / "ct")
    with caplog.at_level(logging.WARNING):
        result = segment_series(tmp_path / "ct", tmp_path / "out", batch_size=4, threads=1)
    names = {r.ROIName for r in pydicom.dcmread(result.rtstruct).StructureSetROISequence}
    assert "Bladder" in names and not {"Femur_Head_L", "Femur_Head_R"} & names
    assert "Femur_Head_L" in caplog.text and "Femur_Head_R" in caplog.text


def test_ct_outside_what_the_model_saw_is_one_warning_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from cervseg.config import PreprocessConfig
    from cervseg.infer.predictor import Predictor
    from cervseg.infer.segment import contour_volume
    from cervseg.models.checkpoint import save_checkpoint
    from cervseg.models.registry import create_model
    from tests.tiny_data import tiny_patient

    torch.manual_seed(0)
    plan = PreprocessConfig(intensity="window", spacing_mm=2.5, crop_mm=160)
    model = create_model("unet", 1, 1, base_width=4).eval()
    seen = {"pixel_mm": [0.9, 1.2], "slice_mm": [2.5, 3.0], "metal_patients": 0}
    save_checkpoint(tmp_path / "m", model, model_name="unet",
                    model_config={"in_channels": 1, "out_channels": 1, "base_width": 4},
                    structures=["Bladder"], output_mode="multilabel", preprocess=plan.model_dump(),
                    training_summary={"seen": seen})
    predictor = Predictor.from_checkpoint(tmp_path / "m", threads=1)
    volume = tiny_patient(0)[0]  # 2.5 mm pixels, 3 mm slices
    with caplog.at_level(logging.WARNING, logger="cervseg.infer.scope"):
        contour_volume(predictor, volume, show_progress=False)
    lines = [r.getMessage() for r in caplog.records if "lies outside what model" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "pixel size 2.5 mm (model saw 0.9-1.2 mm)" in lines[0] and "slice spacing" not in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cervseg.infer.scope"):
        contour_volume(predictor, volume.__class__(volume.array, volume.geometry.__class__(
            volume.geometry.shape, (3.0, 1.0, 1.0), volume.geometry.origin, volume.geometry.axes)), show_progress=False)
    assert "lies outside" not in caplog.text
