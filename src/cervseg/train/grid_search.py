"""Learning rate x batch size grid search (paper 001): train every cell, keep the best by validation loss.

Layout under ``out_dir``::

    config.yaml                 the grid config
    grid/lr0.001_bs8/           one ordinary training run per cell (its own best/, last/, log.csv)
    grid.csv                    lr, batch_size, best_val_loss, best_epoch, epochs_run, dice_mean
    best/                       a copy of the winning cell's best checkpoint

Every cell starts from the same seed, so cells differ only by their learning rate and
batch size. With ``--resume`` finished cells are read back and an interrupted cell continues.
"""

from __future__ import annotations

import csv
import logging
import math
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

from cervseg.config import TrainConfig, save_config
from cervseg.errors import InputError
from cervseg.outputs import atomic_dir, atomic_file
from cervseg.train import distributed as D
from cervseg.train.callbacks import load_state
from cervseg.train.result import TrainResult

#: Trains one cell's config (resuming it when the flag is set); the training loop passes its own.
RunCell = Callable[[TrainConfig, bool], TrainResult]

log = logging.getLogger(__name__)

COLUMNS = ["lr", "batch_size", "best_val_loss", "best_epoch", "epochs_run", "dice_mean", "folder"]


def cell_name(lr: float, batch_size: int) -> str:
    return f"lr{lr:g}_bs{batch_size}"


def _finished(folder: Path) -> bool:
    try:
        return bool(load_state(folder / "last").get("finished"))
    except InputError:
        return False


def run_grid_search(cfg: TrainConfig, run_cell: RunCell, *, resume: bool = False,
                    ctx: D.DistContext | None = None) -> TrainResult:
    """Train each (lr, batch size) cell; the winner's checkpoint becomes ``out_dir/best``."""
    assert cfg.grid_search is not None
    ctx = ctx or D.DistContext()
    out = Path(cfg.out_dir)
    if not resume and out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: output folder exists and is not empty; "
                         "use --resume to continue that grid search or choose another out_dir")
    D.barrier(ctx)
    if ctx.is_main and not resume:
        save_config(cfg, out / "config.yaml")
    results: list[tuple[float, int, TrainResult]] = []
    for lr in cfg.grid_search.learning_rates:
        for bs in cfg.grid_search.batch_sizes:
            folder = out / "grid" / cell_name(lr, bs)
            cell = cfg.model_copy(update={
                "optimizer": cfg.optimizer.model_copy(update={"lr": lr}),
                "batch_size": bs, "out_dir": folder, "grid_search": None,
            })
            cell_resume = resume and (folder / "last").is_dir()
            log.info("grid search: lr %g, batch size %d%s", lr, bs,
                     " (resuming)" if cell_resume and not _finished(folder) else "")
            result = run_cell(cell, cell_resume)
            results.append((lr, bs, result))
    finite = [r for r in results if math.isfinite(r[2].best_val_loss)]
    if not finite:
        raise InputError(f"{out}: no grid cell reached a finite validation loss")
    lr, bs, best = min(finite, key=lambda r: r[2].best_val_loss)
    if ctx.is_main:
        _write_csv(out / "grid.csv", results)
        with atomic_dir(out / "best") as tmp:
            shutil.copytree(best.checkpoint, tmp, dirs_exist_ok=True)
    D.barrier(ctx)
    log.info("grid search: best lr %g, batch size %d (val loss %.4f at epoch %d)", lr, bs,
             best.best_val_loss, best.best_epoch)
    return replace(best, out_dir=out, checkpoint=out / "best")


def _write_csv(path: Path, results: list[tuple[float, int, TrainResult]]) -> None:
    with atomic_file(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            for lr, bs, r in results:
                writer.writerow({
                    "lr": f"{lr:g}", "batch_size": bs, "best_val_loss": f"{r.best_val_loss:.6g}",
                    "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
                    "dice_mean": f"{r.best_row.get('dice_mean', math.nan):.4f}",
                    "folder": str(r.out_dir.relative_to(path.parent)),
                })
