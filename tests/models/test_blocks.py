"""Shared blocks: the pad-and-crop input contract, conv-BN-ReLU, Squeeze-Excitation, Xavier init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cervseg.models.blocks import ConvBNReLU, SegmentationNet, SqueezeExcitation, xavier_uniform_init


class _Recorder(SegmentationNet):
    """Identity network that records the padded shape it was given."""

    size_divisor = 8

    def __init__(self) -> None:
        super().__init__(2, 2)
        self.seen: list[tuple[int, ...]] = []

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        return x * 1.0


@pytest.mark.parametrize("hw", [(16, 24), (13, 8), (1, 31), (17, 17)])
def test_pad_then_crop_returns_exactly_the_input_region(hw):
    net = _Recorder()
    x = torch.randn(3, 2, *hw)
    y = net(x)
    assert torch.equal(y, x)  # the crop undoes the (centred) pad exactly
    padded = net.seen[-1][2:]
    assert all(p % 8 == 0 and s <= p < s + 8 for p, s in zip(padded, hw))


def test_padding_replicates_the_border_and_is_centred():
    net = _Recorder()
    x = torch.arange(5.0).view(1, 1, 1, 5).repeat(1, 2, 1, 1)  # width 5 -> padded to 8: 1 left, 2 right
    captured = {}
    net.forward_padded = lambda t: captured.setdefault("x", t) * 1.0  # type: ignore[method-assign]
    net(x)
    row = captured["x"][0, 0, 0].tolist()
    assert row == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0]


def test_input_checks():
    net = _Recorder()
    with pytest.raises(ValueError, match="4-D"):
        net(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="2 input channel"):
        net(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError):
        SegmentationNet(0, 1)


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (3, 2), (3, 3), (5, 1), (7, 1)])
def test_conv_bn_relu_keeps_the_size(kernel, dilation):
    block = ConvBNReLU(2, 4, kernel, dilation)
    y = block(torch.randn(2, 2, 11, 9))
    assert y.shape == (2, 4, 11, 9)
    assert (y >= 0).all()
    conv = block[0]
    assert conv.bias is None and conv.dilation == (dilation, dilation)


def test_conv_bn_relu_refuses_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        ConvBNReLU(1, 1, 4)


def test_squeeze_excitation_matches_the_formula():
    torch.manual_seed(0)
    se = SqueezeExcitation(32, reduction=16)
    x = torch.randn(2, 32, 5, 6)
    z = x.mean(dim=(2, 3))
    s = torch.sigmoid(se.fc2.weight @ torch.relu(se.fc1.weight @ z.T + se.fc1.bias[:, None]) + se.fc2.bias[:, None])
    torch.testing.assert_close(se(x), x * s.T[:, :, None, None])
    assert se.fc1.out_features == 2


def test_squeeze_excitation_works_with_fewer_channels_than_the_ratio():
    se = SqueezeExcitation(4, reduction=16)
    assert se.fc1.out_features == 1
    assert se(torch.randn(1, 4, 3, 3)).shape == (1, 4, 3, 3)


def test_xavier_uniform_init_bounds_and_zero_bias():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5), nn.BatchNorm2d(8), nn.Linear(8, 4))
    nn.init.constant_(net[1].weight, 3.0)
    xavier_uniform_init(net)
    conv = net[0]
    fan_in, fan_out = 3 * 25, 8 * 25
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    assert conv.weight.abs().max() <= bound
    assert conv.weight.abs().max() > 0.8 * bound  # really uniform on the whole range
    assert torch.all(conv.bias == 0) and torch.all(net[2].bias == 0)
    assert torch.all(net[1].weight == 1)
