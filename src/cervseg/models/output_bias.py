"""Start a sigmoid network at its structures' prior probability instead of at 0.5.

Why: with one sigmoid per structure and rare foreground (an organ is 0.1-3 % of a slice),
a network whose logits start near 0 spends hundreds of Adam steps only pushing every pixel
to "absent" before any organ appears (paper 000's set-up predicted nothing in a short
budget). Setting the output layer's bias so that the mean logit is each structure's
log-odds (the "prior probability" initialisation of Lin et al. 2017, Focal Loss, sec. 4.1)
skips that phase; the weights are untouched.

The output layer is found by running a copy of the network once, in training mode (batch
statistics, as the first steps will see them): the last convolution with one output per
channel whose output covers the network's output (a network that pads its input crops
only at the end). The bias is then shifted by the measured difference, so an architecture
whose output is a sum of layers (a residual head) still ends at the requested mean.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn

from cervseg.errors import ConfigError

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def log_odds(fractions: Sequence[float], floor: float = 1e-4) -> torch.Tensor:
    """log(p / (1 - p)) of each foreground fraction, p kept within [floor, 0.5]."""
    return torch.tensor([math.log(p / (1 - p)) for p in (min(max(f, floor), 0.5) for f in fractions)])


def output_layer(model: nn.Module, sample: torch.Tensor) -> tuple[str, torch.Tensor]:
    """The name of the convolution that makes the network's output, and the output of a
    training-mode copy on ``sample`` (the model itself, its batch-norm statistics included, is untouched)."""
    probe = copy.deepcopy(model).train()
    calls: list[tuple[str, torch.Size]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: calls.append((name, out.shape)))
             for name, m in probe.named_modules() if isinstance(m, CONVS) and m.bias is not None]
    try:
        with torch.no_grad():
            out = probe(sample)
    finally:
        for h in hooks:
            h.remove()
    heads = [name for name, shape in calls if shape[1] == out.shape[1]
             and len(shape) == out.ndim and all(a >= b for a, b in zip(shape[2:], out.shape[2:]))]
    if not heads:
        raise ConfigError(f"{type(model).__name__}: no output convolution with a bias found; "
                          "model.output_bias: prior needs one")
    return heads[-1], out


def set_output_bias(model: nn.Module, sample: torch.Tensor, target: torch.Tensor) -> str:
    """Shift the output layer's bias so the mean logit of each channel over ``sample`` is ``target``; its name."""
    name, out = output_layer(model, sample)
    mean = out.transpose(0, 1).reshape(out.shape[1], -1).mean(1)
    head = model.get_submodule(name)
    with torch.no_grad():
        head.bias += (target.to(mean) - mean).to(head.bias)
    return name
