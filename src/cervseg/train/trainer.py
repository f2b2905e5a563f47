"""The training loop: Adam, per-epoch validation (loss + Dice per structure), early stopping,
best checkpoint by validation loss, resumable state, CSV curves; data-parallel under torchrun.

Output folder (``out_dir``)::

    config.yaml   the config as run (z-score statistics filled in)
    log.csv       epoch, train_loss, val_loss, dice_<channel>..., dice_mean, lr, seconds
    best/         the checkpoint with the lowest validation loss (cervseg.models.checkpoint)
    last/         state.pt: model, optimiser, epoch, RNG states, early stopping, curves

Reproducibility: weights, slice order (seed + epoch) and augmentation (seed, epoch, item)
are all derived from ``seed``, and the RNG states are saved each epoch, so a run resumed
after an interrupt ends with the same weights as one that was never interrupted.

Validation Dice is computed per patient in 3-D (all slices of the patient, the same
definition as cervseg.metrics.overlap.dice: 2|A&B| / (|A|+|B|), undefined when both are
empty) from per-batch voxel counts, then averaged over patients. It is reported per
output channel: with merged femoral heads, one ``Femur_Head`` channel.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from cervseg.config import TrainConfig, config_to_dict, save_config, saved_train_config
from cervseg.data.augment import Augmenter
from cervseg.data.cache import Cache
from cervseg.data.seen import describe_cache
from cervseg.data.slices import SliceDataset, resolve_preprocess
from cervseg.errors import ConfigError, InputError
from cervseg.models.checkpoint import load_checkpoint, save_checkpoint
from cervseg.models.output_modes import BACKGROUND, OutputSpec
from cervseg.models.registry import create_model, model_spec, parameter_count
from cervseg.progress import progress
from cervseg.threads import available_cores, training_threads
from cervseg.train import distributed as D
from cervseg.train.callbacks import (
    CSVLogger, EarlyStopping, load_state, rng_state, save_state,
    set_rng_state,
)
from cervseg.train.grid_search import run_grid_search
from cervseg.train.losses import create_loss
from cervseg.train.result import NOT_LEARNT_DICE, EpochHook, TrainResult, channels_not_learnt

log = logging.getLogger(__name__)

UNLABELLED_LOGIT = 30.0  # sigmoid(-30) ~ 1e-13: "absent", with no gradient through the network
PRIOR_SLICES = 512  # training slices the prior output bias is measured on (spread evenly over the set)
# Settings that may differ when resuming: they change how long or how fast, not what is learnt.
RESUMABLE_CHANGES = {"epochs", "num_workers", "threads", "device", "early_stopping_patience"}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_structures(cfg: TrainConfig, cache: Cache, source: str = "config") -> list[str]:
    """The structures to train: the template's, the listed ones, or all of the cache."""
    if cfg.data.template is not None:
        from cervseg.errors import StructureError
        from cervseg.structures import load_template

        try:
            names = list(load_template(cfg.data.template).structures)
        except StructureError as exc:
            raise ConfigError(f"{source}: data.template: {exc}") from None
        field_name = "data.template"
    elif cfg.data.structures is not None:
        names = list(cfg.data.structures)
        field_name = "data.structures"
    else:
        return list(cache.structures)
    missing = [n for n in names if n not in cache.structures]
    if missing:
        raise ConfigError(f"{source}: {field_name}: the cache {cache.folder} has no {', '.join(missing)} "
                          f"(it has {', '.join(cache.structures)})")
    return names


def _device(cfg: TrainConfig, ctx: D.DistContext) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device: cuda was asked for but no GPU is available")
        return torch.device("cuda", ctx.local_rank)
    return torch.device("cpu")


def _dice_counts(logits: torch.Tensor, target: torch.Tensor, mode: str) -> torch.Tensor:
    """(N, C, 3) intersection, predicted and reference voxels per sample and structure channel."""
    if mode == "multilabel":
        pred = logits > 0
        ref = target > 0.5
    else:
        c = logits.shape[1]
        pred = nn.functional.one_hot(logits.argmax(1), c).permute(0, 3, 1, 2)[:, 1:].bool()
        ref = nn.functional.one_hot(target.long(), c).permute(0, 3, 1, 2)[:, 1:].bool()
    inter = (pred & ref).sum((2, 3))
    return torch.stack([inter, pred.sum((2, 3)), ref.sum((2, 3))], dim=-1).double()


def _check_config_compatible(saved: dict, current: dict, where: Path) -> None:
    diffs = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        elif a != b and path.split(".")[0] not in RESUMABLE_CHANGES:
            diffs.append(path)

    walk(saved, current, "")
    diffs = [d for d in diffs if d not in ("preprocess.zscore_mean", "preprocess.zscore_std")]
    if diffs:
        raise ConfigError(
            f"{where}: the config differs from the interrupted run in {', '.join(diffs[:4])}; "
            "resume needs the same config (only epochs, patience, workers, threads, device may change)"
        )


class Trainer:
    """One training run (one learning rate and batch size) of a TrainConfig."""

    def __init__(self, cfg: TrainConfig, ctx: D.DistContext | None = None, *,
                 on_epoch_end: EpochHook | None = None, source: str = "config"):
        self.cfg = cfg
        self.ctx = ctx or D.DistContext()
        self.on_epoch_end = on_epoch_end
        self.source = source
        self.out = Path(cfg.out_dir)

    # ------------------------------------------------------------ set-up

    def _check_out_dir(self, resume: bool) -> None:
        if resume:
            if not (self.out / "last").is_dir():
                raise InputError(f"{self.out}: nothing to resume (no last/ state); start without --resume")
        elif self.out.exists() and any(self.out.iterdir()):
            raise InputError(f"{self.out}: output folder exists and is not empty; "
                             "use --resume to continue that run or choose another out_dir")

    def _build(self, resume: bool) -> None:
        cfg, ctx = self.cfg, self.ctx
        threads = cfg.threads or training_threads(ctx.world_size)
        torch.set_num_threads(threads)
        log.info("%d torch thread(s) per process (%d cores available%s)", threads, available_cores(),
                 "" if cfg.threads else "; set `threads:` to override")
        self.device = _device(cfg, ctx)
        self.cache = Cache(cfg.data.cache)
        self.structures = resolve_structures(cfg, self.cache, self.source)
        self.train_ids, self.val_ids = self.cache.split("train"), self.cache.split("val")
        extra_caches = [(Cache(e.cache), e.repeat) for e in cfg.data.extra_train]
        self.extra = [(cache, pid, repeat) for cache, repeat in extra_caches for pid in cache.patients]
        self.train_sources = [(self.cache, p) for p in self.train_ids] + [(c, p) for c, p, _ in self.extra]
        if not self.val_ids:
            raise InputError(f"{self.cache.folder}: the cache has no validation patients "
                             "(rebuild it with `cervseg dataset --val-fraction` > 0)")
        self.state = load_state(self.out / "last") if resume else None
        if self.state is not None:
            saved = saved_train_config(self.state["config"], str(self.out / "last"))
            _check_config_compatible(saved, config_to_dict(cfg), self.out / "last")
            preprocess = type(cfg.preprocess).model_validate(self.state["config"]["preprocess"])
        else:
            preprocess = resolve_preprocess(self.cache, self.train_ids, cfg.preprocess)
        self.cfg = cfg = cfg.model_copy(update={"preprocess": preprocess})

        self.spec = OutputSpec(tuple(self.structures), cfg.output_mode, cfg.merge_femoral_heads,
                               None if cfg.overlap_priority is None else tuple(cfg.overlap_priority))
        self.channels = self.spec.channels
        self.dice_channels = [c for c in self.channels if c != BACKGROUND]

        seed_everything(cfg.seed)
        width = cfg.model.base_width or model_spec(cfg.model.name).default_width
        self.model_config = {"in_channels": preprocess.in_channels, "out_channels": len(self.channels),
                             "base_width": width, **cfg.model.options}
        try:
            model = create_model(cfg.model.name, **self.model_config)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: model: {exc}") from None
        if cfg.model.init == "xavier_uniform":
            from cervseg.models.blocks import xavier_uniform_init

            xavier_uniform_init(model)
        if cfg.model.init_from is not None and self.state is None:
            self._init_from(model, Path(cfg.model.init_from), preprocess)
        self.model = model.to(self.device)
        log.info("model %s, width %d: %d parameters, %d input channel(s), %d output channels %s",
                 cfg.model.name, width, parameter_count(model), preprocess.in_channels,
                 len(self.channels), self.channels)

        loss_options = dict(cfg.loss.options)
        if cfg.loss.size_weighting is not None:
            loss_options.update(voxel_counts=self._voxel_counts(), weighting=cfg.loss.size_weighting)
        try:
            self.loss_fn = create_loss(cfg.loss.name, cfg.output_mode, **loss_options)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: loss: {exc}") from None
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.optimizer.lr,
                                          betas=tuple(cfg.optimizer.betas), weight_decay=cfg.optimizer.weight_decay)

        augment = Augmenter(cfg.augment, self.structures) if cfg.augment.enabled else None
        self.train_ds = SliceDataset(self.cache, self.train_ids, self.structures, preprocess, augment=augment,
                                     empty_fraction=cfg.data.empty_slice_fraction, seed=cfg.seed, extra=self.extra)
        if cfg.output_mode != "multilabel" and not all(k.all() for k in self.train_ds.labelled):
            raise ConfigError(f"{self.source}: some training patients have only some structures contoured "
                              "(partial labels); train them with output_mode: multilabel")
        self.val_ds = SliceDataset(self.cache, self.val_ids, self.structures, preprocess, seed=cfg.seed)
        if cfg.model.output_bias == "prior" and self.state is None:
            self._prior_output_bias(preprocess)
        # what the training CTs were like, for `segment`'s out-of-range warning (main process writes it)
        self.seen = (describe_cache(self.train_sources, self.structures, preprocess.body_threshold_hu)
                     if ctx.is_main else {})
        local_bs = D.local_batch_size(cfg.batch_size, ctx)
        self.sampler = DistributedSampler(self.train_ds, num_replicas=ctx.world_size, rank=ctx.rank,
                                          shuffle=True, seed=cfg.seed, drop_last=False)
        self.train_loader = DataLoader(self.train_ds, batch_size=local_bs, sampler=self.sampler,
                                       num_workers=cfg.num_workers, drop_last=False)
        self.val_loader = DataLoader(Subset(self.val_ds, D.shard(len(self.val_ds), ctx)),
                                     batch_size=local_bs, shuffle=False, num_workers=cfg.num_workers)
        self.ddp_model = D.wrap_model(self.model, ctx, self.device)
        self.stopper = EarlyStopping(cfg.early_stopping_patience, cfg.early_stopping_min_delta)
        columns = ["epoch", "train_loss", "val_loss", *[f"dice_{c}" for c in self.dice_channels],
                   "dice_mean", "lr", "seconds"]
        self.csv = CSVLogger(self.out / "log.csv", columns)
        self.history: list[dict] = []
        self.start_epoch = 1
        self.elapsed = 0.0
        if self.state is not None:
            self._restore(self.state)

    def _init_from(self, model: nn.Module, checkpoint: Path, preprocess: Any) -> None:
        """Start from a trained checkpoint's weights; it must be the same network on the same plan."""
        loaded = load_checkpoint(checkpoint)
        meta = loaded.metadata
        differs = [what for what, same in (
            ("model", meta.model_name == self.cfg.model.name and meta.model_config == self.model_config),
            ("output channels", meta.channels == self.channels and meta.output_mode == self.cfg.output_mode),
            ("preprocess plan", meta.preprocess == config_to_dict(preprocess)),
        ) if not same]
        if differs:
            raise ConfigError(f"{self.source}: model.init_from {checkpoint}: its {', '.join(differs)} differ from "
                              "this config's; fine-tuning needs the same network, channels and plan")
        model.load_state_dict(loaded.model.state_dict())
        log.info("starting from the weights of %s", checkpoint)

    def _prior_output_bias(self, preprocess: Any) -> None:
        """Output bias at each channel's log-odds on the training slices (cervseg.models.output_bias).

        The frequency is measured where the network will see it: on the training slices as
        cropped and selected (empty-slice fraction), unaugmented, and for each channel only
        on the patients where it is contoured.
        """
        from cervseg.models.output_bias import log_odds, set_output_bias

        plain = SliceDataset(self.cache, self.train_ids, self.structures, preprocess,
                             empty_fraction=self.cfg.data.empty_slice_fraction, seed=self.cfg.seed)
        picks = np.unique(np.linspace(0, len(plain) - 1, min(len(plain), PRIOR_SLICES)).round().astype(int))
        fg = torch.zeros(len(self.channels), dtype=torch.float64)
        seen = torch.zeros(len(self.channels), dtype=torch.float64)
        for batch in DataLoader(Subset(plain, picks.tolist()), batch_size=64):
            target = self._targets(batch["label"]).cpu().double()
            known = self.spec.labelled_channels(batch["labelled"]).double()  # (N, C)
            fg += (target.sum((2, 3)) * known).sum(0)
            seen += known.sum(0) * target[0, 0].numel()
        target_logits = log_odds((fg / seen.clamp(min=1)).tolist())
        sample = torch.stack([plain[int(i)]["image"] for i in picks[:: max(1, len(picks) // 16)]]).to(self.device)
        head = set_output_bias(self.model, sample, target_logits.to(self.device))
        log.info("output bias of %s set to the training log-odds %s", head, ", ".join(
            f"{c} {t:.2f}" for c, t in zip(self.channels, target_logits.tolist())))

    def _voxel_counts(self) -> list[float]:
        """Voxels per output channel over the training patients (background: all the rest)."""
        per = {s: float(sum(c.entry(p)["voxels"][s] for c, p in self.train_sources)) for s in self.structures}
        if self.cfg.merge_femoral_heads:
            per["Femur_Head"] = per.pop("Femur_Head_L") + per.pop("Femur_Head_R")
        total = float(sum(np.prod(c.geometry(p).shape) for c, p in self.train_sources))
        per[BACKGROUND] = max(total - sum(per.values()), 1.0)
        return [per[c] for c in self.channels]

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.stopper.load_state_dict(state["early_stopping"])
        self.stopper.patience = self.cfg.early_stopping_patience
        self.history = [dict(r) for r in state["history"]]
        self.csv.set_rows(self.history)
        self.start_epoch = int(state["epoch"]) + 1
        self.elapsed = float(state.get("elapsed", 0.0))
        set_rng_state(state["rng"])
        log.info("resuming %s after epoch %d (best val loss %.4f at epoch %d)", self.out,
                 state["epoch"], self.stopper.best, self.stopper.best_epoch)

    # ------------------------------------------------------------ one epoch

    def _targets(self, label: torch.Tensor) -> torch.Tensor:
        target = self.spec.encode(label.transpose(0, 1))  # encode takes structures first
        if self.cfg.output_mode == "multilabel":
            target = target.transpose(0, 1)
        return target.contiguous().to(self.device)

    def _leave_out_unlabelled(self, logits: torch.Tensor, target: torch.Tensor,
                              labelled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channels nobody contoured on a slice's patient: a constant "certainly absent" logit
        and an empty target, so they add no gradient and no voxel to any Dice or CE term."""
        if self.cfg.output_mode != "multilabel" or bool(labelled.all()):
            return logits, target
        known = self.spec.labelled_channels(labelled).to(logits.device)
        known = known.view(*known.shape, *([1] * (logits.ndim - 2)))
        return torch.where(known, logits, torch.full_like(logits, -UNLABELLED_LOGIT)), target * known

    def _train_epoch(self, epoch: int) -> float:
        self.ddp_model.train()
        self.sampler.set_epoch(epoch)
        self.train_ds.set_epoch(epoch)
        sums = torch.zeros(2, dtype=torch.float64)
        limit = self.cfg.max_steps_per_epoch
        total = min(len(self.train_loader), limit) if limit else len(self.train_loader)
        for step, batch in enumerate(progress(self.train_loader, f"epoch {epoch} train", total=total)):
            if limit is not None and step >= limit:
                break
            x = batch["image"].to(self.device)
            y = self._targets(batch["label"])
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(*self._leave_out_unlabelled(self.ddp_model(x), y, batch["labelled"]))
            if not torch.isfinite(loss):
                raise ConfigError(f"{self.source}: the training loss became {loss.item()} at epoch {epoch}; "
                                  "lower optimizer.lr")
            loss.backward()
            self.optimizer.step()
            sums += torch.tensor([loss.item() * len(x), len(x)], dtype=torch.float64)
        D.all_reduce_sum(sums, self.ctx)
        return float(sums[0] / max(sums[1], 1))

    @torch.no_grad()
    def _validate(self, epoch: int) -> tuple[float, dict[str, float]]:
        self.ddp_model.eval()
        sums = torch.zeros(2, dtype=torch.float64)
        counts = torch.zeros(len(self.val_ids), len(self.dice_channels), 3, dtype=torch.float64)
        for batch in progress(self.val_loader, f"epoch {epoch} validation"):
            x = batch["image"].to(self.device)
            logits, y = self._leave_out_unlabelled(self.ddp_model(x), self._targets(batch["label"]), batch["labelled"])
            sums += torch.tensor([self.loss_fn(logits, y).item() * len(x), len(x)], dtype=torch.float64)
            counts.index_add_(0, batch["patient"], _dice_counts(logits, y, self.cfg.output_mode).cpu())
        D.all_reduce_sum(sums, self.ctx)
        D.all_reduce_sum(counts, self.ctx)
        denom = counts[..., 1] + counts[..., 2]
        dice = torch.where(denom > 0, 2 * counts[..., 0] / denom.clamp(min=1), torch.full_like(denom, math.nan))
        per_channel = {c: float(np.nanmean(dice[:, i].numpy())) if torch.isfinite(dice[:, i]).any() else math.nan
                       for i, c in enumerate(self.dice_channels)}
        return float(sums[0] / max(sums[1], 1)), per_channel

    # ------------------------------------------------------------ saving

    def _summary(self, *, final: bool) -> dict[str, Any]:
        val_dice = self._best_val_dice()
        return {
            "cache": str(self.cache.folder),
            "cache_created": self.cache.manifest.get("created", ""),
            "cache_template": self.cache.manifest.get("template", ""),
            "train_patients": self.train_ids,
            "extra_train_patients": {name: repeat for name, (_, _, repeat) in
                                     zip(self.train_ds.patients[len(self.train_ids):], self.extra)},
            "init_from": str(self.cfg.model.init_from) if self.cfg.model.init_from else None,
            "val_patients": self.val_ids,
            "train_slices": len(self.train_ds),
            "val_slices": len(self.val_ds),
            "epochs_run": len(self.history),
            "best_epoch": self.stopper.best_epoch,
            "best_val_loss": self.stopper.best,
            "val_dice": val_dice,
            "channels_not_learnt": channels_not_learnt(val_dice),
            "finished": final,
            "stopped_early": self.stopper.should_stop,
            "seed": self.cfg.seed,
            "lr": self.cfg.optimizer.lr,
            "batch_size": self.cfg.batch_size,
            "loss": self.cfg.loss.name,
            "processes": self.ctx.world_size,
            "threads_per_process": torch.get_num_threads(),
            "training_seconds": round(self.elapsed, 1),
            "crop_cut_fraction_max": max(
                [v for d in (self.train_ds.cut_fraction, self.val_ds.cut_fraction) for p in d.values() for v in p.values()],
                default=0.0,
            ),
            "seen": self.seen,
        }

    def _best_val_dice(self) -> dict[str, float | None]:
        best = next((r for r in self.history if r["epoch"] == self.stopper.best_epoch), {})
        return {c: best.get(f"dice_{c}") for c in self.dice_channels}

    def _warn_not_learnt(self) -> None:
        """One line naming the channels the saved model has not learnt (channels_not_learnt)."""
        dead = channels_not_learnt(self._best_val_dice())
        if dead:
            log.warning("%s: %s not learnt (validation Dice below %.2f at the best epoch, %d): its "
                        "contours will be empty or wrong; train longer, check those labels, or start "
                        "from a model that has them (model.init_from)", self.out / "best",
                        ", ".join(dead), NOT_LEARNT_DICE, self.stopper.best_epoch)

    def _save_best(self, final: bool, model: nn.Module | None = None) -> None:
        save_checkpoint(
            self.out / "best", model or self.model,
            model_name=self.cfg.model.name, model_config=self.model_config,
            structures=self.structures, output_mode=self.cfg.output_mode,
            merge_femoral_heads=self.cfg.merge_femoral_heads, priority=self.cfg.overlap_priority,
            preprocess=config_to_dict(self.cfg.preprocess),
            training_summary=self._summary(final=final),
            extra={"train_config": config_to_dict(self.cfg)},
        )

    def _save_last(self, epoch: int, finished: bool) -> None:
        save_state(self.out / "last", {
            "epoch": epoch,
            "finished": finished,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "early_stopping": self.stopper.state_dict(),
            "history": self.history,
            "rng": rng_state(),
            "config": config_to_dict(self.cfg),
            "elapsed": self.elapsed,
        })

    # ------------------------------------------------------------ probing

    def time_steps(self, steps: int) -> tuple[float, float, int]:
        """Seconds per optimiser step, seconds per validation pass, and steps per epoch.

        Measured on ``steps`` real training steps (after one untimed warm-up step) and
        ``steps`` validation batches (scaled to the whole pass) of this config, writing nothing (the ``cervseg study --dry-run`` time estimate).
        """
        self._build(resume=False)
        limit = self.cfg.max_steps_per_epoch
        per_epoch = min(len(self.train_loader), limit) if limit else len(self.train_loader)
        done = max(1, min(steps, len(self.train_loader)))
        self.cfg = self.cfg.model_copy(update={"max_steps_per_epoch": 1})
        self._train_epoch(1)  # warm-up: the first step pays for allocations and kernel choice
        self.cfg = self.cfg.model_copy(update={"max_steps_per_epoch": done})
        t0 = time.perf_counter()
        self._train_epoch(2)
        step_seconds = (time.perf_counter() - t0) / done
        self.ddp_model.eval()
        timed = max(1, min(steps, len(self.val_loader)))
        t0 = time.perf_counter()
        with torch.no_grad():
            for batch in itertools.islice(self.val_loader, timed):
                self.loss_fn(self.ddp_model(batch["image"].to(self.device)), self._targets(batch["label"]))
        validation_seconds = (time.perf_counter() - t0) / timed * len(self.val_loader)
        return step_seconds, validation_seconds, per_epoch

    # ------------------------------------------------------------ the loop

    def fit(self, resume: bool = False) -> TrainResult:
        self._check_out_dir(resume)
        D.barrier(self.ctx)
        self._build(resume)
        cfg, main = self.cfg, self.ctx.is_main
        if main and not resume:
            save_config(cfg, self.out / "config.yaml")
        log.info("training on %d slices of %d patients, validating on %d slices of %d patients",
                 len(self.train_ds), len(self.train_ids) + len(self.extra), len(self.val_ds), len(self.val_ids))
        epoch = self.start_epoch - 1
        for epoch in range(self.start_epoch, cfg.epochs + 1):
            if self.stopper.should_stop:
                epoch -= 1
                break
            t0 = time.perf_counter()
            train_loss = self._train_epoch(epoch)
            val_loss, dice = self._validate(epoch)
            seconds = time.perf_counter() - t0
            self.elapsed += seconds
            finite = [v for v in dice.values() if not math.isnan(v)]
            row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                   **{f"dice_{c}": v for c, v in dice.items()},
                   "dice_mean": float(np.mean(finite)) if finite else math.nan,
                   "lr": self.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 2)}
            self.history.append(row)
            improved = self.stopper.step(val_loss, epoch)
            if main:
                self.csv.log(row)
                if improved:
                    self._save_best(final=False)
                self._save_last(epoch, finished=False)
            D.barrier(self.ctx)
            log.info("epoch %d/%d: train loss %.4f, val loss %.4f%s, Dice %s (%.1f s)", epoch, cfg.epochs,
                     train_loss, val_loss, " (best)" if improved else "",
                     " ".join(f"{c}={v:.3f}" for c, v in dice.items()), seconds)
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch, row)
            if self.stopper.should_stop:
                log.info("early stopping: no validation-loss improvement for %d epochs", self.stopper.patience)
                break
        if main:
            if not self.history:
                raise InputError(f"{self.out}: no epoch was run")
            best = load_checkpoint(self.out / "best").model  # rewrite its summary with the final figures
            self._save_best(final=True, model=best)
            self._save_last(epoch, finished=True)
            self._warn_not_learnt()
        D.barrier(self.ctx)
        return TrainResult(self.out, self.out / "best", self.stopper.best_epoch, self.stopper.best,
                           len(self.history), self.stopper.should_stop, list(self.history))


def train(cfg: TrainConfig, *, resume: bool = False, ctx: D.DistContext | None = None,
          on_epoch_end: EpochHook | None = None, source: str = "config") -> TrainResult:
    """Train as the config says: one run, or a learning-rate x batch-size grid search."""
    def run(cell: TrainConfig, cell_resume: bool) -> TrainResult:
        return Trainer(cell, ctx, on_epoch_end=on_epoch_end, source=source).fit(resume=cell_resume)

    if cfg.grid_search is not None:
        return run_grid_search(cfg, run, resume=resume, ctx=ctx)
    return run(cfg, resume)
