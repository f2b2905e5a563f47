"""Checkpoint folders: metadata round trip, atomic writes, and clear errors on damaged checkpoints."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
import torch

from cervseg.errors import CervsegError, InputError
from cervseg.models import checkpoint as ckpt
from cervseg.models.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from cervseg.models.registry import create_model
from cervseg.outputs import WRITTEN_RECORD

STRUCTURES = ["Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R"]
CONFIG = {"in_channels": 3, "out_channels": 4, "base_width": 2}  # multiclass: background + 3 channels


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("unet", **CONFIG)


def _save(path, model=None, **overrides):
    kwargs = dict(
        model_name="unet",
        model_config=CONFIG,
        structures=STRUCTURES,
        output_mode="multiclass",
        merge_femoral_heads=True,
        priority=["Rectum"],
        preprocess={"window": (300, 50), "crop": np.int64(256), "context_slices": 1, "scale": np.float32(0.5)},
        training_summary={"patients": {"train": 3, "val": 1}, "source": "phantom tiny", "resumed": np.bool_(False)},
        extra={"epochs": 2, "best_val_loss": 0.25},
    )
    kwargs.update(overrides)
    return save_checkpoint(path, model if model is not None else _model(), **kwargs)


@pytest.fixture()
def saved(tmp_path):
    return _save(tmp_path / "ckpt")


def test_folder_layout_and_metadata_round_trip(saved):
    assert sorted(p.name for p in saved.iterdir()) == [WRITTEN_RECORD, "checkpoint.json", "weights.pt"]
    loaded = load_checkpoint(saved)
    meta = loaded.metadata
    assert meta.model_name == "unet" and meta.model_config == CONFIG
    assert meta.structures == STRUCTURES and meta.output_mode == "multiclass"
    assert meta.output.merge_femoral_heads and meta.output.priority == ("Rectum",)
    assert meta.channels == ["background", "Bladder", "Rectum", "Femur_Head"]
    assert meta.preprocess == {"window": [300, 50], "crop": 256, "context_slices": 1, "scale": 0.5}
    assert meta.training_summary == {"patients": {"train": 3, "val": 1}, "source": "phantom tiny", "resumed": False}
    assert meta.extra == {"epochs": 2, "best_val_loss": 0.25}
    assert meta.versions["torch"] == torch.__version__
    assert {"cervseg", "torch", "monai", "python"} <= set(meta.versions)
    assert datetime.fromisoformat(meta.created).tzinfo is not None
    assert not loaded.model.training
    assert read_metadata(saved) == meta


def test_loaded_weights_equal_the_saved_ones(tmp_path):
    model = _model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    path = _save(tmp_path / "ckpt", model)
    with torch.no_grad():
        for p in model.parameters():  # changing the model after saving must not change the checkpoint
            p.zero_()
    loaded = load_checkpoint(path).model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_saving_again_replaces_the_checkpoint(saved):
    _save(saved, extra={"epochs": 9})
    assert load_checkpoint(saved).metadata.extra == {"epochs": 9}
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]


def test_a_failed_save_leaves_the_old_checkpoint_untouched(saved, monkeypatch):
    before = (saved / "checkpoint.json").read_text()

    def broken_save(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _save(saved, extra={"epochs": 9})
    assert (saved / "checkpoint.json").read_text() == before
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt.torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        _save(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"model_config": {**CONFIG, "out_channels": 5}}, "out_channels=5"),
        ({"model_config": {**CONFIG, "base_width": 4}}, "does not rebuild"),
        ({"model_config": {"out_channels": 4}}, "in_channels"),
        ({"preprocess": {"fn": object()}}, "preprocess.fn"),
        ({"extra": {"loss": float("nan")}}, "extra.loss"),
    ],
)
def test_save_refuses_metadata_that_would_not_reload(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        _save(tmp_path / "ckpt", **overrides)
    assert not (tmp_path / "ckpt").exists()


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "nope")


def test_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(InputError, match="is a folder"):
        load_checkpoint(tmp_path / "model.pt")


def test_missing_metadata(saved):
    (saved / "checkpoint.json").unlink()
    with pytest.raises(InputError, match="checkpoint.json: missing"):
        load_checkpoint(saved)


def test_missing_weights(saved):
    (saved / "weights.pt").unlink()
    with pytest.raises(InputError, match="weights.pt: missing"):
        load_checkpoint(saved)


def test_corrupt_json(saved):
    (saved / "checkpoint.json").write_text("{not json")
    with pytest.raises(InputError, match="unreadable checkpoint metadata"):
        load_checkpoint(saved)


def _edit_metadata(path, edit):
    data = json.loads((path / "checkpoint.json").read_text())
    edit(data)
    (path / "checkpoint.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d.pop("format"), "not a cervseg checkpoint"),
        (lambda d: d.update(format_version=99), "format version 99"),
        (lambda d: d.pop("output"), "incomplete or invalid"),
        (lambda d: d["output"].update(mode="softmax"), "incomplete or invalid"),
        (lambda d: d["model"].update(name="vnet"), "cannot rebuild model 'vnet'"),
    ],
)
def test_invalid_metadata(saved, edit, match):
    _edit_metadata(saved, edit)
    with pytest.raises(InputError, match=match):
        load_checkpoint(saved)


def test_truncated_weights_fail_the_checksum(saved):
    data = (saved / "weights.pt").read_bytes()
    (saved / "weights.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="checksum"):
        load_checkpoint(saved)


def test_truncated_weights_without_checksum_still_give_a_clear_error(saved):
    data = (saved / "weights.pt").read_bytes()
    (saved / "weights.pt").write_bytes(data[: len(data) // 2])
    _edit_metadata(saved, lambda d: d.pop("weights_sha256"))
    with pytest.raises(InputError, match="cannot load weights"):
        load_checkpoint(saved)


class _NotWeights:
    """An arbitrary pickled object: weights_only loading must refuse to unpickle it."""


def test_pickled_code_is_refused(saved):
    torch.save({"payload": _NotWeights()}, saved / "weights.pt")
    _edit_metadata(saved, lambda d: d.pop("weights_sha256"))
    with pytest.raises(InputError, match="cannot load weights"):
        load_checkpoint(saved)


def test_weights_of_another_model_do_not_fit(saved):
    other = create_model("unet", 3, 4, base_width=4)
    torch.save(other.state_dict(), saved / "weights.pt")
    _edit_metadata(saved, lambda d: d.pop("weights_sha256"))
    with pytest.raises(InputError, match="do not fit"):
        load_checkpoint(saved)


def test_errors_are_cervseg_errors_naming_the_file(saved):
    (saved / "weights.pt").unlink()
    with pytest.raises(CervsegError) as info:
        load_checkpoint(saved)
    assert str(saved / "weights.pt") in str(info.value) and "\n" not in str(info.value)


def test_format_1_checkpoints_are_read_as_the_pixel_plan_they_were(tmp_path):
    """Before the plan in mm: key 'preprocessing', the CT's own pixels, crop_size 256 when absent."""
    import json

    from cervseg.config import PreprocessConfig

    path = _save(tmp_path / "ckpt", preprocess={"intensity": "window", "context_slices": 1})
    raw = json.loads((path / "checkpoint.json").read_text())
    assert raw["format_version"] == 2 and "preprocess" in raw and "preprocessing" not in raw
    raw["format_version"] = 1
    raw["preprocessing"] = raw.pop("preprocess")
    (path / "checkpoint.json").write_text(json.dumps(raw))
    plan = PreprocessConfig.model_validate(load_checkpoint(path).metadata.preprocess)
    assert (plan.spacing_mm, plan.crop_mm, plan.crop_size) == (None, None, 256)
