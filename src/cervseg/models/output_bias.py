"""Start a sigmoid network at its structures' prior probability instead of at 0.5.

Why: with one sigmoid per structure and rare foreground (an organ is 0.1-3 % of a slice),
a network whose logits start near 0 spends hundreds of Adam steps only pushing every pixel
to "absent" before any organ appears (paper 000's set-up predicted nothing in a short
budget). Setting the output layer's bias so that the mean logit is each structure's
log-odds (the "prior probability" initialisation of Lin et al. 2017, Focal Loss, sec. 4.1)
skips that phase; the weights are untouched.

The output layer is found by running the network once: the last convolution with one
output per channel whose output has the network's output shape. The bias is then shifted
by the measured difference, so an architecture whose output is a sum of layers (a residual
head) still ends at the requested mean.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from cervseg.errors import ConfigError

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def log_odds(fractions: Sequence[float], floor: float = 1e-4) -> torch.Tensor:
    """log(p / (1 - p)) of each foreground fraction, p kept within [floor, 0.5]."""
    return torch.tensor([math.log(p / (1 - p)) for p in (min(max(f, floor), 0.5) for f in fractions)])


def output_layer(model: nn.Module, sample: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """The convolution that makes the network's output, and that output (eval mode, no gradient)."""
    calls: list[tuple[nn.Module, torch.Size]] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out: calls.append((mod, out.shape)))
             for m in model.modules() if isinstance(m, CONVS) and m.bias is not None]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(sample)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    heads = [m for m, shape in calls if shape[1:] == out.shape[1:]]
    if not heads:
        raise ConfigError(f"{type(model).__name__}: no output convolution with a bias found; "
                          "model.output_bias: prior needs one")
    return heads[-1], out


def set_output_bias(model: nn.Module, sample: torch.Tensor, target: torch.Tensor) -> nn.Module:
    """Shift the output layer's bias so the mean logit of each channel over ``sample`` is ``target``."""
    head, out = output_layer(model, sample)
    mean = out.transpose(0, 1).reshape(out.shape[1], -1).mean(1)
    with torch.no_grad():
        head.bias += (target.to(mean) - mean).to(head.bias)
    return head
