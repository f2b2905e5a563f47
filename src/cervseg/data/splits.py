"""Patient-level train/validation/test split, reproducible from a seed.

Why patient level: slices of one patient are nearly identical neighbours; putting some in
training and others in validation would make validation Dice meaningless.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from cervseg.errors import InputError

SPLITS = ("train", "val", "test")


def split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) patient counts: rounded fractions, at least one of each asked-for split
    when there are enough patients, and at least one training patient."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(
            f"split fractions must be in [0, 1) and sum to less than 1 (val {val_fraction}, test {test_fraction})"
        )
    if n < 1:
        raise InputError("no patients to split")
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    if val_fraction > 0 and n_val == 0 and n >= 2:
        n_val = 1
    if test_fraction > 0 and n_test == 0 and n - n_val >= 2:
        n_test = 1
    while n_val + n_test > n - 1:  # keep one training patient
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


def split_patients(
    patient_ids: Iterable[str], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> dict[str, list[str]]:
    """Shuffle the sorted patient IDs with ``seed`` and cut them into train/val/test.

    The result depends only on the set of IDs, the fractions and the seed, not on the
    order the patients were found in.
    """
    ids = sorted(set(patient_ids))
    _, n_val, n_test = split_counts(len(ids), val_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    return {
        "test": sorted(shuffled[:n_test]),
        "val": sorted(shuffled[n_test: n_test + n_val]),
        "train": sorted(shuffled[n_test + n_val:]),
    }
