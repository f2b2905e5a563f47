"""Run plastimatch's `dice` command (an independent Dice / Hausdorff implementation) and parse it.

Output lines look like ``DICE:      0.851903`` and
``Percent (0.95) Hausdorff distance (boundary) = 4.754135``. The "(boundary)" values are
computed from boundary voxels to the other mask's boundary (ITK signed Maurer distance map);
plastimatch's percent value is the MEAN of the two directed values, each the
floor(0.95 n - 1)-th smallest distance (src/plastimatch/util/hausdorff_distance.cxx).
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import numpy as np

from tests.conftest import require_tool

DICE = "DICE"
HD = "Hausdorff distance (boundary)"
HD95 = "Percent (0.95) Hausdorff distance (boundary)"
MEAN = "Avg average Hausdorff distance (boundary)"


def plastimatch_dice(ref: Path, pred: Path) -> dict[str, float]:
    """`plastimatch dice --all REF PRED` as {name: value}."""
    exe = require_tool("plastimatch")
    out = subprocess.run([exe, "dice", "--all", str(ref), str(pred)], capture_output=True, text=True, check=True).stdout
    values = {}
    for line in out.splitlines():
        m = re.match(r"\s*([^:=]+?)\s*[:=]\s*([-+0-9.eE]+)\s*$", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


def percent_rule(distances: np.ndarray) -> float:
    """plastimatch's directed 'percent' Hausdorff: the floor(0.95 n - 1)-th smallest distance."""
    x = np.sort(distances)
    return float(x[min(int(math.floor(0.95 * x.size - 1)), x.size - 1)])
