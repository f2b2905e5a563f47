"""Paired Wilcoxon tests, effect sizes and verdicts against answers computed independently here."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cervseg.study.stats import (
    DOES_NOT_HOLD, HOLDS, NOT_RESOLVED, PairedTest, paired_wilcoxon, rank_biserial, smallest_p, verdict,
)


def enumerated_p(differences: list[float]) -> float:
    """Exact two-sided p of the signed-rank statistic by direct enumeration of all 2^n sign patterns.

    Valid for untied, non-zero |differences| (ranks 1..n): the share of sign patterns whose
    W+ lies at least as far from its null mean n(n+1)/4 as the observed one.
    """
    d = [x for x in differences if x != 0]
    order = sorted(range(len(d)), key=lambda i: abs(d[i]))
    rank = {i: r + 1 for r, i in enumerate(order)}
    observed = sum(rank[i] for i in range(len(d)) if d[i] > 0)
    centre = len(d) * (len(d) + 1) / 4
    extreme = 0
    for signs in itertools.product((0, 1), repeat=len(d)):
        w = sum(rank[i] for i in range(len(d)) if signs[i])
        extreme += abs(w - centre) >= abs(observed - centre) - 1e-9
    return extreme / 2 ** len(d)


ARM = [0.85, 0.80, 0.83, 0.90, 0.82, 0.76, 0.88, 0.91]
DIFF = [0.05, -0.01, 0.03, 0.07, 0.02, -0.04, 0.06, 0.08]  # ranks 5, 1, 3, 7, 2, 4, 6, 8
BASE = [a - d for a, d in zip(ARM, DIFF)]


def test_wilcoxon_matches_direct_enumeration_and_hand_computed_effect_sizes():
    t = paired_wilcoxon(ARM, BASE)
    assert t.pairs == 8 and t.nonzero == 8
    assert t.p_value == pytest.approx(enumerated_p(DIFF), rel=1e-9)
    # W- = 5; rank subsets summing to <= 5: {}, 1, 2, 3, 4, 5, 12, 13, 14, 23 -> 10 of 256 per tail
    assert t.p_value == pytest.approx(2 * 10 / 256)
    assert t.statistic == pytest.approx(5.0)  # min(W+ = 31, W- = 5)
    assert t.rank_biserial == pytest.approx((31 - 5) / 36)
    assert t.median_difference == pytest.approx(0.04)
    assert t.favours_arm(higher_is_better=True) and not t.favours_arm(higher_is_better=False)


def test_swapping_arm_and_baseline_flips_the_effect_not_the_p_value():
    t, s = paired_wilcoxon(ARM, BASE), paired_wilcoxon(BASE, ARM)
    assert s.p_value == pytest.approx(t.p_value)
    assert s.rank_biserial == pytest.approx(-t.rank_biserial)
    assert s.median_difference == pytest.approx(-t.median_difference)


def test_zero_differences_are_dropped_and_undefined_pairs_left_out():
    d = [0.0, 0.0, 0.3, -0.1, 0.5, 0.2, 0.6, 0.4]
    base = [1.0] * 8
    arm = [1.0 + x for x in d] + [math.nan]
    t = paired_wilcoxon(arm, base + [0.5])
    assert t.pairs == 8 and t.nonzero == 6
    assert t.p_value == pytest.approx(enumerated_p(d), rel=1e-9)
    assert t.rank_biserial == pytest.approx(rank_biserial(np.asarray(d)))


def test_no_differing_pair_is_no_test():
    t = paired_wilcoxon([0.5, 0.7], [0.5, 0.7])
    assert t.nonzero == 0 and math.isnan(t.p_value) and t.rank_biserial == 0.0
    empty = paired_wilcoxon([], [])
    assert empty.pairs == 0 and math.isnan(empty.rank_biserial)
    assert verdict([t], True, 0.05) == NOT_RESOLVED


def test_smallest_possible_p():
    assert smallest_p(5) == pytest.approx(2 / 32) and smallest_p(6) == pytest.approx(2 / 64)
    # 5 pairs can never reach 0.05: the enumeration agrees (all 5 in favour)
    assert enumerated_p([1, 2, 3, 4, 5]) == pytest.approx(smallest_p(5))


def _t(p: float, r: float) -> PairedTest:
    return PairedTest(9, 9, r, r, 0.0, p)


@pytest.mark.parametrize("tests, higher, expected", [
    ([_t(0.01, 0.8), _t(0.02, 0.6)], True, HOLDS),  # every test significant for the arm
    ([_t(0.01, 0.8), _t(0.20, 0.3)], True, NOT_RESOLVED),  # one not significant
    ([_t(0.01, 0.8), _t(0.01, -0.7)], True, DOES_NOT_HOLD),  # one significant against
    ([_t(0.01, -0.8)], False, HOLDS),  # HD95: lower is better, a negative effect favours the arm
    ([_t(0.01, 0.8)], False, DOES_NOT_HOLD),
    ([_t(0.049, 0.8)], True, HOLDS),
    ([_t(0.05, 0.8)], True, NOT_RESOLVED),  # p < alpha, not <=
    ([], True, NOT_RESOLVED),
])
def test_verdict_logic(tests, higher, expected):
    assert verdict(tests, higher, 0.05) == expected
