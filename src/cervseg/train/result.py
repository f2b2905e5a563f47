"""What a training run returns, and the per-epoch hook: shared by the loop and the grid search."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

EpochHook = Callable[[int, dict], None]


@dataclass
class TrainResult:
    out_dir: Path
    checkpoint: Path
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    history: list[dict] = field(default_factory=list)

    @property
    def best_row(self) -> dict:
        return next(r for r in self.history if r["epoch"] == self.best_epoch)
