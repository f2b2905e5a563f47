"""CAB-SE U-Net (paper 000): block structure, dilation really applied, Xavier init, 5 + 5 blocks."""

from __future__ import annotations

import math

import torch
from torch import nn

from cervseg.models.blocks import SqueezeExcitation
from cervseg.models.cab_se_unet import CabSeUNet, ContextAggregationBlock
from cervseg.models.registry import create_model


def test_block_has_dilated_and_large_kernel_branches_then_se():
    block = ContextAggregationBlock(3, 10)
    convs = [branch[0] for branch in block.branches]
    assert [(c.kernel_size[0], c.dilation[0]) for c in convs] == [(3, 2), (3, 3), (5, 1), (7, 1)]
    assert sum(c.out_channels for c in convs) == 10  # concatenation has the block's width
    assert [c.out_channels for c in convs] == [3, 3, 2, 2]
    for branch in block.branches:  # conv-BN-ReLU, as the paper says
        assert isinstance(branch[1], nn.BatchNorm2d) and isinstance(branch[2], nn.ReLU)
    assert isinstance(block.se, SqueezeExcitation)
    assert block(torch.randn(2, 3, 9, 9)).shape == (2, 10, 9, 9)


def test_dilated_branch_samples_every_third_pixel():
    block = ContextAggregationBlock(1, 4)
    conv = block.branches[1][0]  # 3x3, dilation 3
    with torch.no_grad():
        conv.weight.fill_(1.0)
        impulse = torch.zeros(1, 1, 13, 13)
        impulse[0, 0, 6, 6] = 1.0
        response = conv(impulse)[0, 0]
    hits = {(int(r) - 6, int(c) - 6) for r, c in torch.nonzero(response)}
    assert hits == {(dy, dx) for dy in (-3, 0, 3) for dx in (-3, 0, 3)}


def test_five_encoder_and_five_decoder_blocks():
    model = create_model("cab_se_unet", 1, 6, base_width=4)
    assert isinstance(model, CabSeUNet)
    assert len(model.encoder) == 5
    decoder_blocks = list(model.decoder) + [model.refine]
    assert len(decoder_blocks) == 5
    assert all(isinstance(b, ContextAggregationBlock) for b in [*model.encoder, *decoder_blocks])
    widths = [sum(br[0].out_channels for br in b.branches) for b in model.encoder]
    assert widths == [4, 8, 16, 32, 64]


def test_convolutions_are_xavier_uniform_initialised():
    torch.manual_seed(0)
    model = create_model("cab_se_unet", 1, 6, base_width=4)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            w = module.weight
            receptive = w[0, 0].numel()
            fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            assert w.abs().max() <= bound + 1e-7
            if module.bias is not None:
                assert torch.all(module.bias == 0)
