"""One wrapper for the U-Net baselines that MONAI provides (U-Net, Attention U-Net, U-Net++).

Why one: the three differ only in which MONAI network they build; the input contract
(pad to a multiple of 16, crop back, see SegmentationNet) and picking the full-resolution
output are the same. MONAI is imported when such a model is built, never when this module
is imported, so finding the registered models does not load MONAI (`cervseg segment` with
a ResAU-Net or CAB-SE U-Net checkpoint never imports it).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from cervseg.models.blocks import SegmentationNet


class MonaiNet(SegmentationNet):
    """A MONAI 2D network behind the SegmentationNet contract; four downsamplings."""

    size_divisor = 16

    def __init__(self, in_channels: int, out_channels: int, build: Callable[[], nn.Module]) -> None:
        super().__init__(in_channels, out_channels)  # checks the channel counts before building
        self.net = build()

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        # U-Net++ returns a list of outputs (the full-resolution one first), the others a tensor
        return out[0] if isinstance(out, (list, tuple)) else out
