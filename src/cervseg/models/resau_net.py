"""ResAU-Net: the CTV/OAR model of paper 001 (Liu X. et al., J Biotech Res 2024).

A ResNet34 encoder (7x7 stride-2 stem, 3x3 max pool, four residual stages of
[3, 4, 6, 3] basic blocks; cervseg.models.resnet, layer for layer monai's ResNet), never
pretrained (no download), four U-Net upsampling stages whose skip connections pass through additive attention
gates (Oktay et al.; paper 001 eq. 3-5: alpha = sigmoid(psi^T relu(Wg^T g + Wx^T x)),
output = alpha * x), and one last upsampling to the input size.

Shapes for an H x W input with width w (paper: w = 64, ResNet34's own widths;
24.6 M parameters for 1 input and 6 output channels, of which 21.3 M in the encoder; 0.39 M at w = 8):
  stem  w   @ H/2   -> layer1 w @ H/4 -> layer2 2w @ H/8 -> layer3 4w @ H/16 -> layer4 8w @ H/32
  up1   4w  @ H/16 (gate on layer3)   up2 2w @ H/8 (gate on layer2)
  up3   w   @ H/4  (gate on layer1)   up4 w  @ H/2 (gate on the stem)
  final transposed conv to H, conv-BN-ReLU, 1x1 head.
Where the paper is silent: transposed 2x2 convolutions upsample, each up stage applies
two 3x3 conv-BN-ReLU after concatenating the gated skip, gate hidden width = skip/2.
Input H, W are padded to a multiple of 32 and cropped back (see SegmentationNet).
"""

from __future__ import annotations

import torch
from torch import nn

from cervseg.models.blocks import ConvBNReLU, SegmentationNet
from cervseg.models.resnet import AttentionGate, ResNetEncoder
from cervseg.models.registry import register_model


class AttentionUpStage(nn.Module):
    """Upsample the decoder map, gate the encoder skip with it, concatenate, two convs."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.gate = AttentionGate(f_int=max(1, skip_channels // 2), f_g=out_channels, f_l=skip_channels)
        self.conv = nn.Sequential(
            ConvBNReLU(skip_channels + out_channels, out_channels), ConvBNReLU(out_channels, out_channels)
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        g = self.up(x)
        return self.conv(torch.cat([self.gate(g=g, x=skip), g], dim=1))


@register_model(
    "resau_net",
    default_width=64,
    min_width=2,
    reference="Liu X. et al., Journal of Biotech Research 17 (2024) 166-179 (paper 001)",
)
class ResAUNet(SegmentationNet):
    """ResNet34 encoder + attention-gated U-Net decoder + final upsampling."""

    size_divisor = 32

    def __init__(self, in_channels: int, out_channels: int, base_width: int = 64) -> None:
        super().__init__(in_channels, out_channels)
        w = base_width
        self.encoder = ResNetEncoder(in_channels, (w, 2 * w, 4 * w, 8 * w), layers=(3, 4, 6, 3))
        self.up1 = AttentionUpStage(8 * w, 4 * w, 4 * w)
        self.up2 = AttentionUpStage(4 * w, 2 * w, 2 * w)
        self.up3 = AttentionUpStage(2 * w, w, w)
        self.up4 = AttentionUpStage(w, w, w)
        self.final_up = nn.ConvTranspose2d(w, w, 2, stride=2)
        self.final_conv = ConvBNReLU(w, w)
        self.head = nn.Conv2d(w, out_channels, 1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        e = self.encoder
        s0 = e.act(e.bn1(e.conv1(x)))  # H/2
        s1 = e.layer1(e.maxpool(s0))  # H/4
        s2 = e.layer2(s1)  # H/8
        s3 = e.layer3(s2)  # H/16
        s4 = e.layer4(s3)  # H/32
        d = self.up1(s4, s3)
        d = self.up2(d, s2)
        d = self.up3(d, s1)
        d = self.up4(d, s0)
        return self.head(self.final_conv(self.final_up(d)))
