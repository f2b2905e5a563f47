"""What a training run returns, and the per-epoch hook: shared by the loop and the grid search."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

EpochHook = Callable[[int, dict], None]

# below this validation Dice at the best epoch a channel is taken as not learnt: a collapsed
# output (all background) scores 0, and any network that found the structure at all scores
# far above it
NOT_LEARNT_DICE = 0.05


def channels_not_learnt(val_dice: Mapping[str, float | None], floor: float = NOT_LEARNT_DICE) -> list[str]:
    """The channels whose best-epoch validation Dice is below ``floor``.

    Why: a channel can collapse to background for a whole run (a small structure, an unlucky
    seed) while the loss still falls, and the checkpoint then writes empty or wrong contours
    for it with nothing said. None or NaN (the structure is in no validation slice) is not
    judged.
    """
    return [name for name, value in val_dice.items()
            if value is not None and not math.isnan(value) and value < floor]


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
