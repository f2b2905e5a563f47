"""U-Net++ (Zhou et al. 2018), one of the baselines of paper 001.

monai's BasicUNetPlusPlus: the U-Net encoder with nested, densely connected skip
pathways, set to conv-BN-ReLU. Published width w = 32 (encoder widths w, 2w, 4w, 8w, 16w
as in Zhou et al.; 9.1 M parameters for 1 input and 6 output channels, 0.57 M at
w = 8). Deep supervision is off: the model returns the full-resolution output only, as
the contract requires. Input H, W are padded to a multiple of 16 and cropped back (see
MonaiNet).
"""

from __future__ import annotations

from torch import nn

from cervseg.models.monai_net import MonaiNet
from cervseg.models.registry import register_model


@register_model(
    "unet_pp",
    default_width=32,
    min_width=2,
    reference="Zhou et al., DLMIA 2018 (baseline in paper 001)",
)
class UNetPlusPlus(MonaiNet):
    """2D U-Net++ with four downsamplings, no deep supervision."""

    def __init__(self, in_channels: int, out_channels: int, base_width: int = 32, dropout: float = 0.0) -> None:
        def build():
            from monai.networks.nets import BasicUNetPlusPlus

            w = base_width
            net = BasicUNetPlusPlus(
                spatial_dims=2,
                in_channels=in_channels,
                out_channels=out_channels,
                features=(w, 2 * w, 4 * w, 8 * w, 16 * w, w),
                deep_supervision=False,
                act=("relu", {"inplace": True}),
                norm=("batch", {}),
                dropout=dropout,
                upsample="deconv",
            )
            # Without deep supervision monai still computes the three intermediate heads and
            # discards them; drop their weights so they neither train nor sit in checkpoints.
            for head in ("final_conv_0_1", "final_conv_0_2", "final_conv_0_3"):
                setattr(net, head, nn.Identity())
            return net

        super().__init__(in_channels, out_channels, build)
