"""Patient-level splits: disjoint, complete, reproducible, independent of input order."""

from __future__ import annotations

import pytest

from cervseg.data.splits import split_counts, split_patients
from cervseg.errors import InputError

IDS = [f"P{i:03d}" for i in range(40)]


def test_disjoint_and_complete_with_expected_sizes():
    s = split_patients(IDS, val_fraction=0.15, test_fraction=0.1, seed=3)
    assert (len(s["train"]), len(s["val"]), len(s["test"])) == (30, 6, 4)
    assert set(s["train"]) | set(s["val"]) | set(s["test"]) == set(IDS)
    assert not (set(s["train"]) & set(s["val"]) or set(s["train"]) & set(s["test"]) or set(s["val"]) & set(s["test"]))


def test_reproducible_and_order_independent():
    a = split_patients(IDS, 0.2, 0.2, seed=7)
    b = split_patients(list(reversed(IDS)), 0.2, 0.2, seed=7)
    assert a == b
    c = split_patients(IDS, 0.2, 0.2, seed=8)
    assert c != a  # another seed gives another split


def test_small_cohorts_keep_a_training_patient():
    assert split_counts(1, 0.2, 0.2) == (1, 0, 0)
    assert split_counts(2, 0.2, 0.2) == (1, 1, 0)
    assert split_counts(3, 0.2, 0.2) == (1, 1, 1)
    assert split_counts(10, 0.0, 0.0) == (10, 0, 0)


@pytest.mark.parametrize("val, test", [(-0.1, 0.1), (0.6, 0.5), (1.0, 0.0)])
def test_bad_fractions_are_refused(val, test):
    with pytest.raises(InputError):
        split_patients(IDS, val, test)
