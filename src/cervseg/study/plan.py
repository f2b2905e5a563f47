"""Expand a study config into its runs: one ordinary TrainConfig per arm x width x seed.

Run ids are stable (``<arm>-s<seed>``, or ``<arm>-w<width>-s<seed>`` with a width axis), so
a rerun of the same config finds every run's folder again and a report can name runs.
Study folder layout::

    study.yaml                 the study config as run (absolute paths)
    runs/<run id>/train.yaml   the run's train config (also `cervseg train --config`-able)
    runs/<run id>/train/       the training output (config.yaml, log.csv, best/, last/)
    runs/<run id>/scores/      metrics.csv + slices.csv on the cache's test patients
    runs/<run id>/scores_<name>/  the same on each extra test set
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cervseg.config import TrainConfig, config_to_dict, validate_config
from cervseg.errors import ConfigError
from cervseg.study.config import StudyConfig

RUNS = "runs"
STUDY_FILE = "study.yaml"
QUICK_FOLDER = "quick"


@dataclass(frozen=True)
class Run:
    """One training run of the study and where it lives."""

    run_id: str
    arm: str
    seed: int
    width: int | None
    train: TrainConfig
    folder: Path

    @property
    def label(self) -> str:
        """What the report compares: the arm, at its width when the study has a width axis."""
        return self.arm if self.width is None else f"{self.arm}-w{self.width}"

    @property
    def train_dir(self) -> Path:
        return self.folder / "train"

    @property
    def scores_dir(self) -> Path:
        return self.folder / "scores"

    def extra_scores_dir(self, name: str) -> Path:
        """Scores on the extra test set ``name``."""
        return self.folder / f"scores_{name}"

    @property
    def config_file(self) -> Path:
        return self.folder / "train.yaml"


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` laid over it; nested mappings are merged, everything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def quick_config(cfg: StudyConfig) -> StudyConfig:
    """`--quick`: one epoch of one step per run, in the study folder's own ``quick/`` folder.

    Why a folder of its own: a quick run must never count as a finished run of the real study.
    """
    base = deep_merge(cfg.base, {"epochs": 1, "max_steps_per_epoch": 1})
    return cfg.model_copy(update={"base": base, "out_dir": cfg.out_dir / QUICK_FOLDER})


def run_id(arm: str, seed: int, width: int | None) -> str:
    return f"{arm}-s{seed}" if width is None else f"{arm}-w{width}-s{seed}"


def expand(cfg: StudyConfig, source: str = "study config") -> list[Run]:
    """Every run of the study in a stable order (arms as listed, then widths, then seeds).

    Each run's train config is validated here, so a mistake in ``base`` or a profile is one
    ConfigError line naming the arm before anything is trained.
    """
    runs = []
    root = Path(cfg.out_dir) / RUNS
    for arm in cfg.arms:
        profile = cfg.profiles.get(arm.profile, {}) if arm.profile else {}
        for width in cfg.widths or [None]:
            model = config_to_dict(arm.model)
            if width is not None:
                model["base_width"] = width
            for seed in cfg.seeds:
                rid = run_id(arm.name, seed, width)
                folder = root / rid
                raw = deep_merge(deep_merge(cfg.base, profile), {
                    "model": model, "loss": config_to_dict(arm.loss), "seed": seed,
                    "out_dir": str(folder / "train"),
                })
                raw["data"] = {**raw.get("data", {}), "cache": str(cfg.cache)}
                train = validate_config(raw, TrainConfig, f"{source}: arm {arm.name}")
                if train.grid_search is not None:
                    raise ConfigError(f"{source}: arm {arm.name}: grid_search is not for a study "
                                      "(every run gets the same budget; give optimizer.lr and batch_size)")
                runs.append(Run(rid, arm.name, seed, width, train, folder))
    return runs
