"""Small pieces of the training loop that keep state: early stopping, the CSV log, resumable state.

Each has ``state_dict``/``load_state_dict`` (where it keeps state) so that an interrupted
run resumes exactly where it stopped.
"""

from __future__ import annotations

import csv
import logging
import math
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from cervseg.errors import InputError
from cervseg.outputs import atomic_dir

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"


class EarlyStopping:
    """Stop after ``patience`` epochs without the validation loss improving by more than ``min_delta``."""

    def __init__(self, patience: int = 3, min_delta: float = 0.0):
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record one epoch's validation loss; True when it is a new best."""
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = float(value), int(epoch), 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])


class CSVLogger:
    """One row per epoch; rewritten whole each time, so it never holds a half row or a stale epoch."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = list(columns)
        self.rows: list[dict[str, Any]] = []

    def log(self, row: dict[str, Any]) -> None:
        self.rows.append(dict(row))
        self.write()

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """The rows of a resumed run (the CSV is rewritten from them at the next epoch)."""
        self.rows = [dict(r) for r in rows]

    def write(self) -> None:
        from cervseg.outputs import atomic_file

        with atomic_file(self.path) as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore")
                writer.writeheader()
                for row in self.rows:
                    writer.writerow({k: _fmt(row.get(k)) for k in self.columns})


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in types that torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])


def save_state(folder: Path, state: dict[str, Any]) -> None:
    """Write the resumable state (atomically: an interrupt while saving keeps the previous one)."""
    with atomic_dir(Path(folder)) as tmp:
        torch.save(state, tmp / STATE_FILE)


def load_state(folder: Path) -> dict[str, Any]:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise InputError(f"{path}: no saved training state to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise InputError(f"{path}: cannot read the saved training state ({type(exc).__name__})") from None

