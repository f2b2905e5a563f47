"""The ResNet encoder and additive attention gate of ResAU-Net, without importing MONAI.

Why written out: ResAU-Net is the built-in model, and `cervseg segment` must not import
MONAI (its import loads all of MONAI's transforms and costs more than the contouring job's
model pass). These modules build the same layers in the same order as monai's
``ResNet(block="basic", shortcut_type="B", feed_forward=False, bias_downsample=False)`` and
``AttentionBlock``, with the same parameter names and the same initialisation, so weights
trained with either load into the other; tests/models/test_resnet.py checks both against
MONAI on the same seed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN with an identity (or 1x1 conv-BN) shortcut, ReLU after the sum."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        downsample = None
        if stride != 1 or in_planes != planes:  # built first, as monai does (same random stream)
            downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, padding=1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))
        residual = x if self.downsample is None else self.downsample(x)
        return self.act(out + residual)


class ResNetEncoder(nn.Module):
    """7x7 stride-2 stem, 3x3 max pool and four stages of basic blocks (ResNet34: [3, 4, 6, 3]).

    The stages are exposed (``conv1``, ``bn1``, ``act``, ``maxpool``, ``layer1`` ... ``layer4``)
    because a U-Net decoder taps the stem and every stage; there is no pooling head.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], layers: Sequence[int] = (3, 4, 6, 3)) -> None:
        super().__init__()
        planes = int(widths[0])
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for stage, (width, blocks) in enumerate(zip(widths, layers), start=1):
            stride = 1 if stage == 1 else 2
            stack = [BasicBlock(planes, int(width), stride)]
            planes = int(width)
            stack += [BasicBlock(planes, planes) for _ in range(1, int(blocks))]
            setattr(self, f"layer{stage}", nn.Sequential(*stack))
        self.fc = None  # no classification head (monai's feed_forward=False)
        for m in self.modules():  # monai's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def _conv1x1_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv (with bias) then BN, named as monai's Convolution(conv_only=True) + Norm."""
    return nn.Sequential(
        nn.Sequential(OrderedDict(conv=nn.Conv2d(in_channels, out_channels, kernel_size=1))),
        nn.BatchNorm2d(out_channels),
    )


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): ``x * sigmoid(psi(relu(Wg g + Wx x)))``."""

    def __init__(self, f_int: int, f_g: int, f_l: int) -> None:
        super().__init__()
        self.W_g = _conv1x1_bn(f_g, f_int)
        self.W_x = _conv1x1_bn(f_l, f_int)
        self.psi = nn.Sequential(*_conv1x1_bn(f_int, 1), nn.Sigmoid())
        self.relu = nn.ReLU()

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x * self.psi(self.relu(self.W_g(g) + self.W_x(x)))
