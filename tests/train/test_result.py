"""channels_not_learnt: which best-epoch validation Dice say a channel collapsed."""

from __future__ import annotations

import math

from cervseg.train.result import NOT_LEARNT_DICE, channels_not_learnt


def test_a_collapsed_channel_is_named_and_a_learnt_or_unjudged_one_is_not() -> None:
    val_dice = {"Bladder": 0.81, "SpinalCord": 0.0, "CTV_N": 0.049, "CTV_UV": 0.05,
                "Bowel_Small": math.nan, "Rectum": None}
    # 0.0 and just under the floor are named; the floor itself, NaN and None (no validation slice) are not
    assert channels_not_learnt(val_dice) == ["SpinalCord", "CTV_N"]
    assert NOT_LEARNT_DICE == 0.05


def test_the_floor_is_a_parameter() -> None:
    assert channels_not_learnt({"Bladder": 0.3, "Rectum": 0.6}, floor=0.5) == ["Bladder"]
    assert channels_not_learnt({}) == []
