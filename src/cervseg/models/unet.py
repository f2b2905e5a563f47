"""The classic U-Net (Ronneberger et al. 2015), the baseline both papers compare against.

Built from monai's BasicUNet set to the classic configuration: five levels of two
3x3 conv-BN-ReLU, widths w, 2w, 4w, 8w, 16w, 2x2 max pooling, transposed-conv upsampling,
skip concatenation, 1x1 head. Published width w = 64 (31.1 M parameters for 1 input and
6 output channels); ``base_width`` 8 gives a CPU-trainable 0.49 M-parameter version.
Input H, W are padded to a multiple of 16 and cropped back (see MonaiNet).
"""

from __future__ import annotations

from typing import Literal

from cervseg.errors import ConfigError
from cervseg.models.monai_net import MonaiNet
from cervseg.models.registry import register_model


@register_model(
    "unet",
    default_width=64,
    min_width=2,
    reference="Ronneberger et al., MICCAI 2015 (baseline in papers 000 and 001)",
)
class UNet(MonaiNet):
    """Classic 2D U-Net; ``dropout`` (default 0) is applied inside every conv block.

    ``norm``: "batch" (the classic network) or "instance" (nnU-Net's choice). Instance norm
    makes every slice's output independent of the others in its batch, so a data-parallel
    run computes exactly what one process computes on the whole batch.
    """

    def __init__(self, in_channels: int, out_channels: int, base_width: int = 64, dropout: float = 0.0,
                 norm: Literal["batch", "instance"] = "batch") -> None:
        if norm not in ("batch", "instance"):
            raise ConfigError(f"unet: norm must be 'batch' or 'instance', not {norm!r}")

        def build():
            from monai.networks.nets import BasicUNet

            w = base_width
            return BasicUNet(
                spatial_dims=2,
                in_channels=in_channels,
                out_channels=out_channels,
                features=(w, 2 * w, 4 * w, 8 * w, 16 * w, w),
                act=("relu", {"inplace": True}),
                norm=(norm, {"affine": True} if norm == "instance" else {}),
                dropout=dropout,
                upsample="deconv",
            )

        super().__init__(in_channels, out_channels, build)
