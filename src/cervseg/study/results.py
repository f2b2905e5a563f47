"""Read a study folder back: its config, its runs, and the scores each finished run wrote.

What is read per run (cervseg.study.scoring wrote it):
- per patient: every metric of metrics.csv (``dice_3d``, ``hd95_3d_mm``, and ``dice_2d`` /
  ``hd95_2d_mm``, the patient's mean over its paired slices);
- per slice: Dice and HD95 of every paired slice of slices.csv, pooled over the test
  patients, which is how the papers average their 2D figures.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cervseg.config import validate_config
from cervseg.errors import InputError
from cervseg.metrics.slicewise import PAIRED
from cervseg.study.config import StudyConfig
from cervseg.study.plan import STUDY_FILE, Run, expand
from cervseg.study.scoring import METRICS_FILE, SLICES_FILE, is_scored

#: Slice metrics (per patient in metrics.csv) and the slices.csv column they average.
SLICE_COLUMNS = {"dice_2d": "dice", "hd95_2d_mm": "hd95_mm"}


@dataclass
class RunScores:
    """The scores of one finished run."""

    run: Run
    per_patient: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (patient, structure, metric)
    per_slice: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (structure, slice metric)

    @property
    def patients(self) -> list[str]:
        return sorted({p for p, _, _ in self.per_patient})

    @property
    def structures(self) -> list[str]:
        return list(dict.fromkeys(s for _, s, _ in self.per_patient))

    def value(self, patient: str, structure: str, metric: str) -> float:
        return self.per_patient.get((patient, structure, metric), math.nan)


def _float(text: str) -> float:
    return math.nan if text in ("", None) else float(text)


def load_study(folder: Path) -> tuple[StudyConfig, list[Run]]:
    """The config saved in a study folder and its runs (located in ``folder``, wherever it now is)."""
    folder = Path(folder)
    path = folder / STUDY_FILE
    if not path.is_file():
        raise InputError(f"{folder}: not a study folder (no {STUDY_FILE}; `cervseg study` writes it)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the study config: {' '.join(str(exc).split())}") from None
    cfg = validate_config(raw, StudyConfig, str(path)).model_copy(update={"out_dir": folder.resolve()})
    return cfg, expand(cfg, str(path))


def read_scores(run: Run, folder: Path | None = None) -> RunScores | None:
    """The run's scores (on the cache's test split, or in ``folder``), or None when not scored (yet)."""
    folder = run.scores_dir if folder is None else Path(folder)
    if not is_scored(folder):
        return None
    scores = RunScores(run)
    try:
        with open(folder / METRICS_FILE, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["metric"] != "not_evaluated":
                    scores.per_patient[row["patient"], row["structure"], row["metric"]] = _float(row["value"])
        with open(folder / SLICES_FILE, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["status"] == PAIRED:
                    for metric, column in SLICE_COLUMNS.items():
                        scores.per_slice.setdefault((row["structure"], metric), []).append(_float(row[column]))
    except (KeyError, ValueError) as exc:
        raise InputError(f"{folder}: unreadable scores ({exc}); delete the folder and rerun the study") from None
    return scores
