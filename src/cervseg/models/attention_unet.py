"""Attention U-Net (Oktay et al. 2018), one of the baselines of paper 001.

monai's AttentionUnet: five levels of two 3x3 conv-BN-ReLU (stride-2 conv to go down),
transposed-conv upsampling, and an additive attention gate on every skip connection
that lets the decoder suppress encoder features outside the organ. Published width
w = 64 (widths w..16w; 31.7 M parameters for 1 input and 6 output channels, 0.5 M at
w = 8); the gate's hidden width is half the skip width, so ``base_width`` must be at
least 2. Input H, W are padded to a multiple of 16 and cropped back (see MonaiNet).
"""

from __future__ import annotations

from cervseg.models.monai_net import MonaiNet
from cervseg.models.registry import register_model


@register_model(
    "attention_unet",
    default_width=64,
    min_width=2,
    reference="Oktay et al., MIDL 2018 (baseline in paper 001)",
)
class AttentionUNet(MonaiNet):
    """2D Attention U-Net with four downsamplings."""

    def __init__(self, in_channels: int, out_channels: int, base_width: int = 64, dropout: float = 0.0) -> None:
        def build():
            from monai.networks.nets import AttentionUnet

            w = base_width
            return AttentionUnet(
                spatial_dims=2,
                in_channels=in_channels,
                out_channels=out_channels,
                channels=(w, 2 * w, 4 * w, 8 * w, 16 * w),
                strides=(2, 2, 2, 2),
                dropout=dropout,
            )

        super().__init__(in_channels, out_channels, build)
