"""Building blocks shared by the architectures, and the input contract every model obeys.

Why a common base class: the predictor and the trainer feed slices of whatever size a
clinic's CT has (512, 256 after cropping, odd sizes after resampling). Every network here
downsamples by a power of two, so each one pads its input to a multiple of its
``size_divisor`` and crops the logits back; callers never have to know the divisor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationNet(nn.Module):
    """Base class: checks the input and makes any H x W work by pad-then-crop.

    Subclasses set ``size_divisor`` (2 ** number of downsamplings) and implement
    :meth:`forward_padded`, which only ever sees H and W divisible by it. Padding
    replicates the edge rows/columns (air at the border of a CT slice), split evenly
    between both sides so the image is not shifted relative to the receptive fields.
    """

    size_divisor: int = 1

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> logits (N, out_channels, H, W) for any H, W >= 1."""
        if x.ndim != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4-D (N, C, H, W) batch of slices, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.in_channels} input channel(s), "
                f"got {x.shape[1]} (shape {tuple(x.shape)})"
            )
        h, w = int(x.shape[2]), int(x.shape[3])
        d = self.size_divisor
        pad_h, pad_w = (-h) % d, (-w) % d
        if pad_h or pad_w:
            top, left = pad_h // 2, pad_w // 2
            x = F.pad(x, (left, pad_w - left, top, pad_h - top), mode="replicate")
            out = self.forward_padded(x)
            return out[:, :, top : top + h, left : left + w]
        return self.forward_padded(x)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias, BN follows) -> BatchNorm2d -> ReLU; 'same' padding for any dilation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep the size, got {kernel_size}")
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SqueezeExcitation(nn.Module):
    """Channel re-weighting of Hu et al. (2018): global average pool, FC-ReLU-FC, sigmoid, scale.

    Written out (instead of monai's ChannelSELayer) because slim CPU models have fewer
    channels than the reduction ratio; the hidden width is floored at 1 here.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3))
        w = torch.sigmoid(self.fc2(torch.relu(self.fc1(w))))
        return x * w[:, :, None, None]


def xavier_uniform_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every conv / linear layer (paper 000)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

