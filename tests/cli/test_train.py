"""`cervseg train --config`: a checkpoint folder from a YAML config; bad configs are one line, exit 2."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cervseg.cli.main import app
from cervseg.models.checkpoint import load_checkpoint
from tests.tiny_data import PHANTOM_CROP, build_phantom_cache


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    build_phantom_cache(root / "cache", n=4, val_fraction=0.25)
    return root


def _config(project: Path, name: str = "train.yaml", **over) -> Path:
    cfg = {
        "data": {"cache": "cache", "structures": ["Bladder", "Rectum"]},  # relative to this file
        "out_dir": "runs/first",
        "model": {"name": "unet", "base_width": 4},
        "loss": {"name": "dice_ce"},
        "output_mode": "multiclass",
        "preprocess": {"intensity": "window", "crop_size": PHANTOM_CROP, "context_slices": 1},
        "augment": {"enabled": True, "elastic_prob": 0.0},
        "batch_size": 4, "epochs": 2, "max_steps_per_epoch": 3, "threads": 1,
        **over,
    }
    path = project / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_writes_a_checkpoint_that_stands_alone(project):
    config = _config(project)
    result = run("train", "--config", config)
    assert result.exit_code == 0, result.output
    out = project / "runs" / "first"
    assert sorted(p.name for p in out.iterdir()) == ["best", "config.yaml", "last", "log.csv"]
    ck = load_checkpoint(out / "best")
    meta = ck.metadata
    assert meta.structures == ["Bladder", "Rectum"] and meta.output_mode == "multiclass"
    assert meta.channels == ["background", "Bladder", "Rectum"]
    assert meta.preprocess["context_slices"] == 1 and meta.model_config["in_channels"] == 3
    assert meta.training_summary["train_patients"] and meta.training_summary["val_patients"]
    seen = meta.training_summary["seen"]  # what segment compares a new CT with
    assert seen["patients"] == len(meta.training_summary["train_patients"])
    assert seen["pixel_mm"][0] <= seen["pixel_mm"][1] and set(seen["structure_ml"]) == {"Bladder", "Rectum"}
    assert meta.extra["train_config"]["model"]["name"] == "unet"
    with open(out / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"dice_Bladder", "dice_Rectum", "val_loss", "train_loss", "lr", "seconds"} <= set(rows[0])
    assert "best epoch" in result.output

    again = run("train", "--config", config)  # never overwrite a run silently
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = run("train", "--config", config, "--resume")  # finished: nothing more to do
    assert resumed.exit_code == 0, resumed.output
    with open(out / "log.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    other = run("train", "--config", config, "--out", project / "runs" / "second")
    assert other.exit_code == 0 and (project / "runs" / "second" / "best" / "checkpoint.json").is_file()


@pytest.mark.parametrize("over, field", [
    ({"batch_size": "eight"}, "batch_size"),
    ({"loss": {"name": "focal"}}, "bad.yaml: loss: unknown loss 'focal'"),
    ({"model": {"name": "unet", "options": {"depth": 9}}}, "bad.yaml: model: model 'unet': invalid configuration"),
    ({"data": {"cache": "nowhere"}}, "not a training cache"),
    ({"learning_rate": 0.1}, "learning_rate: unknown key"),
])
def test_bad_config_is_exit_2_one_line(project, over, field):
    config = _config(project, "bad.yaml", out_dir="runs/bad", **over)
    result = run("train", "--config", config)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and field in errors[0], result.output
    assert not (project / "runs" / "bad" / "best").exists()


def test_the_fine_tuning_example_of_docs_training_starts_from_the_builtin_model(project):
    """docs/training.md's finetune.yaml, as printed, on a small cache: the plan it gives is the
    built-in model's (or init_from would refuse it) and training starts from its weights."""
    from cervseg.infer.builtin import builtin_model_path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text(encoding="utf-8")
    cfg = yaml.safe_load(doc.split("# finetune.yaml")[1].split("```")[0].split("\n", 1)[1])
    cfg["model"]["init_from"] = str(builtin_model_path())
    cfg.update(epochs=1, max_steps_per_epoch=1, threads=1, out_dir="runs/finetune")
    path = project / "finetune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = run("train", "--config", path)
    assert result.exit_code == 0, result.output
    tuned = load_checkpoint(project / "runs" / "finetune" / "best")
    builtin = load_checkpoint(builtin_model_path())
    assert tuned.metadata.preprocess == builtin.metadata.preprocess
    assert tuned.metadata.training_summary["init_from"] == str(builtin_model_path())
    start = dict(builtin.model.named_parameters())
    moved = [float((p - start[k]).abs().max()) for k, p in tuned.model.named_parameters()]
    assert max(moved) < 0.05, "one step at lr 5e-4 stays next to the built-in weights"
