"""Early stopping, the CSV log, RNG state round trip."""

from __future__ import annotations

import csv
import math
import random

import numpy as np
import pytest
import torch

from cervseg.errors import InputError
from cervseg.train.callbacks import CSVLogger, EarlyStopping, load_state, rng_state, save_state, set_rng_state


def test_early_stopping_counts_epochs_without_improvement():
    es = EarlyStopping(patience=3, min_delta=0.01)
    seq = [1.0, 0.9, 0.895, 0.95, 0.89, 0.9]  # 0.895 and 0.89 are within min_delta of 0.9
    improved = [es.step(v, e) for e, v in enumerate(seq, start=1)]
    assert improved == [True, True, False, False, False, False]
    assert es.best == 0.9 and es.best_epoch == 2 and es.bad_epochs == 4 and es.should_stop
    again = EarlyStopping(3)
    again.load_state_dict(es.state_dict())
    assert again.state_dict() == es.state_dict()


def test_csv_log_rewrites_whole_rows(tmp_path):
    log = CSVLogger(tmp_path / "log.csv", ["epoch", "val_loss", "dice_Bladder"])
    log.log({"epoch": 1, "val_loss": 0.5, "dice_Bladder": math.nan, "ignored": 3})
    log.set_rows([{"epoch": 1, "val_loss": 0.25}])  # as after a resume
    log.log({"epoch": 2, "val_loss": 0.125, "dice_Bladder": 0.75})
    with open(tmp_path / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{"epoch": "1", "val_loss": "0.25", "dice_Bladder": ""},
                    {"epoch": "2", "val_loss": "0.125", "dice_Bladder": "0.75"}]


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_state(tmp_path / "last", {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_state(tmp_path / "last")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    with pytest.raises(InputError, match="no saved training state"):
        load_state(tmp_path / "nowhere")

