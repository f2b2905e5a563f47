"""Paired comparisons of an arm with its baseline, and the verdict on a paper's claim.

Test: two-sided Wilcoxon signed-rank (scipy.stats.wilcoxon; exact null distribution for
small samples without ties, normal approximation otherwise; zero differences dropped, the
``wilcox`` convention) over pairs (patient, seed): the arm's and the baseline's score of
the same test patient by runs of the same seed. Effect sizes: the median paired
difference (arm - baseline, in the metric's unit) and the matched-pairs rank-biserial
correlation r = (W+ - W-) / (W+ + W-), from -1 (baseline better on every pair) to +1.
No correction for multiple comparisons: every p-value is the raw one and the report says
how many tests were made, so a reader can apply the correction of their choice.

Verdict on a claim "arm beats its baselines": it *holds* when every one of its tests is
significant at ``alpha`` in the arm's favour; it *does not hold* when any test is
significant against the arm; otherwise it is *not resolved at this sample size*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
NOT_RESOLVED = "not resolved at this sample size"


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of arm and baseline scores (NaN pairs dropped)."""

    pairs: int  # pairs with both values defined
    nonzero: int  # pairs with a non-zero difference (those the test ranks)
    median_difference: float  # arm - baseline
    rank_biserial: float  # + favours higher arm values
    statistic: float  # scipy's two-sided statistic: min(W+, W-)
    p_value: float  # NaN when no pair differs

    def favours_arm(self, higher_is_better: bool) -> bool:
        return self.rank_biserial > 0 if higher_is_better else self.rank_biserial < 0

    def significant(self, alpha: float) -> bool:
        return not math.isnan(self.p_value) and self.p_value < alpha


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of non-zero differences (0 when there are none)."""
    from scipy.stats import rankdata

    d = differences[differences != 0]
    if d.size == 0:
        return 0.0
    ranks = rankdata(np.abs(d))
    plus, minus = float(ranks[d > 0].sum()), float(ranks[d < 0].sum())
    return (plus - minus) / (plus + minus)


def paired_wilcoxon(arm: Sequence[float], baseline: Sequence[float]) -> PairedTest:
    """Wilcoxon signed-rank test of ``arm`` vs ``baseline`` (same order: one pair per index)."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(arm, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    nonzero = int(np.count_nonzero(d))
    median = float(np.median(d)) if d.size else math.nan
    if nonzero == 0:  # no pair differs: no test; r is 0 for equal pairs, undefined for none
        return PairedTest(int(d.size), 0, median, 0.0 if d.size else math.nan, math.nan, math.nan)
    result = wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return PairedTest(int(d.size), nonzero, median, rank_biserial(d), float(result.statistic), float(result.pvalue))


def smallest_p(nonzero: int) -> float:
    """The smallest two-sided exact p-value ``nonzero`` untied pairs can give: 2 / 2^n."""
    return min(1.0, 2.0 / 2.0**nonzero)


def verdict(tests: Sequence[PairedTest], higher_is_better: bool, alpha: float) -> str:
    """holds / does not hold / not resolved at this sample size (see the module docstring)."""
    if not tests:
        return NOT_RESOLVED
    if any(t.significant(alpha) and not t.favours_arm(higher_is_better) for t in tests):
        return DOES_NOT_HOLD
    if all(t.significant(alpha) and t.favours_arm(higher_is_better) for t in tests):
        return HOLDS
    return NOT_RESOLVED
