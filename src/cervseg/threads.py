"""How many CPU threads torch may use: one policy, two situations named apart.

Why two: training runs for hours beside whatever else the machine does, and a conv layer
split over more threads than there are idle cores waits for the slowest one, so training
takes the idle cores (docs/training.md has the figures). A contouring job is short and
the node exists for it, so inference takes every core the process may use.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def training_threads(world_size: int = 1) -> int:
    """Torch threads per training process: the cores we may use, less those other programs keep busy."""
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    idle = max(1.0, cores - busy)
    return max(1, min(cores // max(world_size, 1), round(idle / max(world_size, 1))))


def inference_threads() -> int:
    """Torch threads for a contouring job: every core the process may use."""
    return available_cores()
