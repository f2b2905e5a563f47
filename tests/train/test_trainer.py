"""The training loop on tiny data: every model and loss learns, the best checkpoint predicts alone,
validation Dice agrees with cervseg.metrics, resume equals an uninterrupted run, early stopping stops."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from cervseg.config import PreprocessConfig, TrainConfig, validate_config
from cervseg.data.cache import Cache
from cervseg.data.preprocess import Preprocessor
from cervseg.errors import ConfigError, InputError
from cervseg.metrics.overlap import dice
from cervseg.models.checkpoint import load_checkpoint
from cervseg.models.registry import available_models
from cervseg.train.losses import LOSSES
from cervseg.train.trainer import Trainer, train
from tests.tiny_data import PHANTOM_CROP, build_phantom_cache


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return build_phantom_cache(tmp_path_factory.mktemp("trainer") / "cache", n=4, val_fraction=0.25)


def make_cfg(cache_dir, out, **over) -> TrainConfig:
    base = {
        "data": {"cache": str(cache_dir), "empty_slice_fraction": 0.0},
        "out_dir": str(out),
        "model": {"name": "unet", "base_width": 4},
        "loss": {"name": "dice_ce"},
        "preprocess": {"intensity": "window", "crop_size": PHANTOM_CROP},
        "augment": {"enabled": False},
        "optimizer": {"lr": 0.01},
        "batch_size": 4,
        "epochs": 3,
        "max_steps_per_epoch": 4,
        "seed": 0,
        "threads": 1,
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return validate_config(base, TrainConfig, "test.yaml")


def _loss_combos():
    only = {"bce": "multilabel", "lovasz_hinge": "multilabel", "lovasz_softmax": "multiclass"}
    return [(loss, mode) for loss in LOSSES for mode in ("multilabel", "multiclass") if only.get(loss, mode) == mode]


@pytest.mark.parametrize("loss, mode", _loss_combos())
def test_every_loss_trains(cache_dir, tmp_path, loss, mode):
    cfg = make_cfg(cache_dir, tmp_path / "run", loss={"name": loss}, output_mode=mode)
    result = train(cfg)
    losses = [r["train_loss"] for r in result.history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", available_models())
def test_every_model_trains_and_its_checkpoint_predicts_identically(cache_dir, tmp_path, name):
    cfg = make_cfg(cache_dir, tmp_path / "run", model={"name": name, "base_width": 4},
                   preprocess={"crop_size": 64}, epochs=2, max_steps_per_epoch=3, merge_femoral_heads=True)
    x = torch.from_numpy(np.random.default_rng(0).normal(0.3, 0.2, size=(2, 1, 64, 64)).astype(np.float32))
    seen = {}
    trainer = Trainer(cfg, on_epoch_end=lambda epoch, row: seen.__setitem__(epoch, _predict(trainer.model, x)))
    result = trainer.fit()
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0], losses
    loaded = load_checkpoint(result.checkpoint)
    assert loaded.metadata.channels == ["Bladder", "Rectum", "Femur_Head", "BoneMarrow", "Bowel_Small",
                                        "SpinalCord", "CTV_N", "CTV_UV"]
    torch.testing.assert_close(_predict(loaded.model, x), seen[result.best_epoch], rtol=0, atol=0)


def _predict(model, x):
    model.eval()
    with torch.no_grad():
        return model(x).clone()


def test_checkpoint_alone_reproduces_validation_dice(cache_dir, tmp_path):
    """From the checkpoint folder only: preprocessing, model, output mode -> the Dice the log reported,
    recomputed per patient in 3-D with cervseg.metrics.overlap.dice on the CT's own grid.

    The Dice loss, not Dice+CE: with cross-entropy in the loss, ~100 steps can leave every
    foreground probability below 0.5 (all Dice 0, so the comparison says nothing); the Dice loss
    puts every structure above zero within the budget (margins in docs/testing.md)."""
    cfg = make_cfg(cache_dir, tmp_path / "run", epochs=5, max_steps_per_epoch=None,
                   model={"name": "unet", "base_width": 8}, early_stopping_patience=5, loss={"name": "dice"},
                   preprocess={"crop_size": PHANTOM_CROP, "context_slices": 1, "intensity": "zscore"},
                   data={"empty_slice_fraction": 0.3}, optimizer={"lr": 0.01})
    result = train(cfg)
    ck = load_checkpoint(result.checkpoint)
    meta = ck.metadata
    assert len(meta.training_summary["val_patients"]) == 1
    pre = Preprocessor(PreprocessConfig.model_validate(meta.preprocess))
    cache = Cache(cache_dir)
    pid = meta.training_summary["val_patients"][0]
    vol = cache.volume(pid)
    inputs, box = pre.volume_input(vol.array)
    with torch.no_grad():
        logits = ck.model(torch.from_numpy(inputs))
    masks = meta.output.decode(logits)
    reference = cache.labelmap(pid)
    row = result.best_row
    for name, mask in masks.items():
        full = pre.restore(mask, box)
        assert full.shape == vol.array.shape
        expected = dice(reference[name], full)
        assert row[f"dice_{name}"] == pytest.approx(expected, abs=1e-9), name
    assert all(row[f"dice_{n}"] > 0 for n in masks)  # no 0 == 0 comparison
    assert max(row[f"dice_{n}"] for n in masks) > 0.3  # it learnt something in ~100 steps
    # the log on disk holds the same curves
    with open(tmp_path / "run" / "log.csv") as fh:
        logged = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in logged] == [1, 2, 3, 4, 5]
    assert float(logged[-1]["val_loss"]) == pytest.approx(result.history[-1]["val_loss"], rel=1e-5)


def test_resume_after_interrupt_equals_an_uninterrupted_run(cache_dir, tmp_path):
    over = dict(epochs=3, max_steps_per_epoch=3, augment={"enabled": True, "elastic_prob": 0.3,
                                                          "elastic_sigma_px": 3, "elastic_strength_px": 2})
    full = train(make_cfg(cache_dir, tmp_path / "full", **over))

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    cfg = make_cfg(cache_dir, tmp_path / "cut", **over)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_epoch_end=interrupt)
    with pytest.raises(InputError, match="--resume"):
        train(cfg)  # a fresh start must not overwrite the interrupted run
    started = []
    resumed = train(cfg, resume=True, on_epoch_end=lambda e, r: started.append(e))
    assert started == [2, 3]
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    a = torch.load(tmp_path / "full" / "last" / "state.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "last" / "state.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="optimizer.lr"):
        train(make_cfg(cache_dir, tmp_path / "cut", **over, optimizer={"lr": 0.5}), resume=True)


def test_early_stopping_stops_and_keeps_the_best(cache_dir, tmp_path):
    cfg = make_cfg(cache_dir, tmp_path / "run", epochs=6, max_steps_per_epoch=1,
                   early_stopping_patience=2, early_stopping_min_delta=10.0)
    result = train(cfg)
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 1
    summary = load_checkpoint(result.checkpoint).metadata.training_summary
    assert summary["stopped_early"] and summary["best_epoch"] == 1 and summary["epochs_run"] == 3
    again = train(cfg, resume=True)  # a finished run stays finished
    assert again.epochs_run == 3


def test_grid_search_keeps_the_winner(cache_dir, tmp_path):
    cfg = make_cfg(cache_dir, tmp_path / "grid", epochs=1, max_steps_per_epoch=2,
                   grid_search={"learning_rates": [0.05, 1e-5], "batch_sizes": [2, 4]})
    result = train(cfg)
    with open(tmp_path / "grid" / "grid.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["lr"], r["batch_size"]) for r in rows] == [("0.05", "2"), ("0.05", "4"), ("1e-05", "2"), ("1e-05", "4")]
    winner = min(rows, key=lambda r: float(r["best_val_loss"]))
    assert result.best_val_loss == pytest.approx(float(winner["best_val_loss"]), rel=1e-5)
    won = load_checkpoint(tmp_path / "grid" / winner["folder"] / "best")
    best = load_checkpoint(result.checkpoint)
    assert best.metadata.training_summary["lr"] == float(winner["lr"])
    for k, v in won.model.state_dict().items():
        torch.testing.assert_close(best.model.state_dict()[k], v, rtol=0, atol=0)
    again = train(cfg, resume=True)  # every cell finished: nothing retrained, same winner
    assert again.best_val_loss == result.best_val_loss


def test_bad_inputs_are_one_line_errors(cache_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'vnet'"):
        train(make_cfg(cache_dir, tmp_path / "a", model={"name": "vnet"}))
    with pytest.raises(ConfigError, match="data.structures: the cache .* has no Prostate"):
        train(make_cfg(cache_dir, tmp_path / "b", data={"structures": ["Bladder", "Prostate"]}))
    with pytest.raises(InputError, match="nothing to resume"):
        train(make_cfg(cache_dir, tmp_path / "c"), resume=True)


@pytest.fixture(scope="module")
def partial_cache(cache_dir, tmp_path_factory):
    """One more phantom whose only contours are Bladder and the two femoral heads."""
    from cervseg.data.cache import PatientRecord, build_cache
    from cervseg.phantom.generator import generate_patient

    root = tmp_path_factory.mktemp("partial")
    (root / "src" / "RX01").mkdir(parents=True)

    def read(folder):
        vol, labels = generate_patient(977, "tiny")
        return PatientRecord(vol, labels.subset(["Bladder", "Femur_Head_L", "Femur_Head_R"]))

    build_cache(root / "cache", [root / "src" / "RX01"], read, Cache(cache_dir).structures, val_fraction=0.0,
                test_fraction=0.0, partial=True)
    return root / "cache"


def test_unlabelled_channels_add_no_gradient_and_no_loss(cache_dir, partial_cache, tmp_path):
    cfg = make_cfg(cache_dir, tmp_path / "run", merge_femoral_heads=True,
                   data={"extra_train": [{"cache": str(partial_cache), "repeat": 2}]})
    trainer = Trainer(cfg)
    trainer._build(resume=False)
    real = [i for i, (pi, _) in enumerate(trainer.train_ds.items) if pi == len(trainer.train_ids)]
    batch = torch.utils.data.default_collate([trainer.train_ds[i] for i in real[:2]] + [trainer.train_ds[0]])
    logits = torch.randn(3, len(trainer.channels), *batch["label"].shape[-2:], requires_grad=True)
    y = trainer._targets(batch["label"])
    trainer.loss_fn(*trainer._leave_out_unlabelled(logits, y, batch["labelled"])).backward()
    contoured = {"Bladder", "Femur_Head"}
    for c, name in enumerate(trainer.channels):
        assert bool(logits.grad[2, c].abs().sum() > 0), name  # the phantom slice: every channel learns
        assert bool(logits.grad[:2, c].abs().sum() > 0) == (name in contoured), name
    # the left-out channels neither add to nor dilute the Dice term: a perfect prediction of the
    # contoured channels on the partly labelled slices scores the same Dice loss as on a full label
    perfect = torch.where(y[:2] > 0, 30.0, -30.0)
    left_out = trainer._leave_out_unlabelled(perfect, y[:2], batch["labelled"][:2])
    assert trainer.loss_fn.dice(*left_out).item() < 1e-3


@pytest.fixture(scope="module")
def absent_cache(cache_dir, tmp_path_factory):
    """One more phantom that has no CTV_UV at all (as a man has none): labelled, all-zero."""
    from cervseg.data.cache import PatientRecord, build_cache
    from cervseg.phantom.generator import generate_patient

    root = tmp_path_factory.mktemp("absent")
    (root / "src" / "AB01").mkdir(parents=True)

    def read(folder):
        vol, labels = generate_patient(978, "tiny")
        labels["CTV_UV"] = np.zeros_like(labels["CTV_UV"])
        return PatientRecord(vol, labels, absent=["CTV_UV"])

    build_cache(root / "cache", [root / "src" / "AB01"], read, Cache(cache_dir).structures, val_fraction=0.0,
                test_fraction=0.0)
    return root / "cache"


def test_an_absent_structure_is_trained_as_empty_not_left_out(cache_dir, absent_cache, tmp_path):
    """Unlike a not-contoured channel (no gradient), an absent one is pushed down everywhere."""
    cfg = make_cfg(cache_dir, tmp_path / "run", data={"extra_train": [{"cache": str(absent_cache), "repeat": 2}]})
    trainer = Trainer(cfg)
    trainer._build(resume=False)
    extra = [i for i, (pi, _) in enumerate(trainer.train_ds.items) if pi == len(trainer.train_ids)]
    batch = torch.utils.data.default_collate([trainer.train_ds[i] for i in extra[:3]])
    assert bool(batch["labelled"].all())
    logits = torch.randn(3, len(trainer.channels), *batch["label"].shape[-2:], requires_grad=True)
    y = trainer._targets(batch["label"])
    c = trainer.channels.index("CTV_UV")
    assert not y[:, c].any()
    trainer.loss_fn(*trainer._leave_out_unlabelled(logits, y, batch["labelled"])).backward()
    assert bool((logits.grad[:, c] > 0).all())  # a descent step lowers every CTV_UV logit


def test_extra_training_cache_is_trained_on_and_recorded(cache_dir, partial_cache, tmp_path):
    cfg = make_cfg(cache_dir, tmp_path / "run", epochs=1, data={"extra_train": [{"cache": str(partial_cache)}]})
    meta = load_checkpoint(train(cfg).checkpoint).metadata
    summary = meta.training_summary
    assert summary["extra_train_patients"] == {"cache/RX01": 1}
    assert summary["seen"]["patients"] == len(Cache(cache_dir).split("train")) + 1
    with pytest.raises(ConfigError, match="partial labels"):
        train(make_cfg(cache_dir, tmp_path / "mc", output_mode="multiclass",
                       data={"extra_train": [{"cache": str(partial_cache)}]}))


def test_init_from_starts_at_the_checkpoints_weights_and_refuses_another_network(cache_dir, tmp_path):
    first = train(make_cfg(cache_dir, tmp_path / "first", epochs=1))
    tuned = train(make_cfg(cache_dir, tmp_path / "tuned", epochs=1, optimizer={"lr": 1e-12},
                           model={"init_from": str(first.checkpoint)}))
    a = dict(load_checkpoint(first.checkpoint).model.named_parameters())  # weights; BN statistics move
    b = dict(load_checkpoint(tuned.checkpoint).model.named_parameters())
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    assert load_checkpoint(tuned.checkpoint).metadata.training_summary["init_from"] == str(first.checkpoint)
    scratch = load_checkpoint(train(make_cfg(cache_dir, tmp_path / "scratch", epochs=1,
                                             optimizer={"lr": 1e-12, "betas": [0.9, 0.999]},
                                             seed=1)).checkpoint).model.named_parameters()
    assert any(not torch.allclose(p, a[k]) for k, p in scratch)  # a fresh start differs
    with pytest.raises(ConfigError, match="model.init_from .* its model differ"):
        train(make_cfg(cache_dir, tmp_path / "wide", model={"base_width": 8, "init_from": str(first.checkpoint)}))
    with pytest.raises(ConfigError, match="preprocess plan differ"):
        train(make_cfg(cache_dir, tmp_path / "plan", preprocess={"window_width": 500},
                       model={"init_from": str(first.checkpoint)}))


def test_prior_output_bias_starts_each_sigmoid_at_its_training_frequency(cache_dir, tmp_path):
    cfg = make_cfg(cache_dir, tmp_path / "prior", output_mode="multilabel", model={"output_bias": "prior"})
    trainer = Trainer(cfg)
    trainer._build(resume=False)
    # the frequency each channel has on the training slices the network is given (independently counted)
    batch = next(iter(torch.utils.data.DataLoader(trainer.train_ds.__class__(
        trainer.cache, trainer.train_ids, trainer.structures, trainer.cfg.preprocess, empty_fraction=0.0, seed=0), batch_size=10_000)))
    freq = trainer._targets(batch["label"]).double().mean((0, 2, 3))
    expected = torch.log(freq / (1 - freq)).float()
    trainer.model.train()  # the first steps see batch statistics
    with torch.no_grad():
        mean = trainer.model(batch["image"]).transpose(0, 1).reshape(len(expected), -1).mean(1)
    assert torch.allclose(mean, expected, atol=0.3), (mean, expected)
    assert (expected < -2).all()  # rare organs: far below the 0.5 a zero logit means

    with pytest.raises(ConfigError, match="output_bias: prior is for multilabel"):
        make_cfg(cache_dir, tmp_path / "mc", output_mode="multiclass", model={"output_bias": "prior"})
    with pytest.raises(ConfigError, match="output_bias: prior would overwrite"):
        make_cfg(cache_dir, tmp_path / "ft", model={"output_bias": "prior", "init_from": str(tmp_path)})


def test_a_state_saved_before_a_config_field_existed_resumes(cache_dir, tmp_path):
    from cervseg.train.callbacks import load_state, save_state

    cfg = make_cfg(cache_dir, tmp_path / "old", epochs=1, max_steps_per_epoch=1)
    train(cfg)
    state = load_state(tmp_path / "old" / "last")
    assert state["config"]["model"].pop("output_bias") == "model"  # as written before the field was added
    save_state(tmp_path / "old" / "last", state)
    started = []
    train(cfg.model_copy(update={"epochs": 2}), resume=True, on_epoch_end=lambda e, r: started.append(e))
    assert started == [2]


def test_a_run_that_learnt_nothing_says_so_in_one_line_and_in_its_checkpoint(cache_dir, tmp_path, caplog):
    """A collapsed channel writes empty contours; the run must name it, not stay silent."""
    # a learning rate too small to move any weight in 2 steps: every channel stays as initialised
    cfg = make_cfg(cache_dir, tmp_path / "run", epochs=1, max_steps_per_epoch=2, optimizer={"lr": 1e-12})
    with caplog.at_level("WARNING", logger="cervseg.train.trainer"):
        result = train(cfg)
    summary = load_checkpoint(result.checkpoint).metadata.training_summary
    judged = [c for c, v in summary["val_dice"].items() if v is not None and not math.isnan(v)]
    dead = [c for c in judged if summary["val_dice"][c] < 0.05]
    assert dead, summary["val_dice"]  # an untrained network finds (almost) nothing
    assert summary["channels_not_learnt"] == dead
    lines = [r.getMessage() for r in caplog.records if "not learnt" in r.getMessage()]
    assert len(lines) == 1 and all(c in lines[0] for c in dead) and str(result.checkpoint) in lines[0]


def test_an_absent_structure_does_not_set_the_smallest_volume_seen(cache_dir, absent_cache, tmp_path):
    """segment's unreached-structure check compares with the smallest volume seen: a man's empty
    CTV_UV must not make it 0 ml (which would switch that check off for CTV_UV)."""
    cfg = make_cfg(cache_dir, tmp_path / "run", data={"extra_train": [{"cache": str(absent_cache), "repeat": 2}]})
    trainer = Trainer(cfg)
    trainer._build(resume=False)
    cache = Cache(cache_dir)
    voxel_ml = {pid: float(np.prod(cache.geometry(pid).spacing)) / 1000.0 for pid in trainer.train_ids}
    present = [cache.entry(pid)["voxels"]["CTV_UV"] * voxel_ml[pid] for pid in trainer.train_ids]
    assert min(present) > 0
    assert trainer.seen["structure_ml"]["CTV_UV"] == [round(min(present), 4), round(max(present), 4)]
    assert trainer.seen["patients"] == len(trainer.train_ids) + 1  # the absent patient is still described
