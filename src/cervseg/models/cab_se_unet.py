"""CAB-SE U-Net: the OAR model of paper 000 (Liu Z. et al., Physica Medica 2020).

A U-Net whose conv layers are replaced by Context Aggregation Blocks (CAB): parallel
3x3 convolutions dilated 2 and 3 plus plain convolutions with larger kernels, each
conv-BN-ReLU, concatenated, then a Squeeze-Excitation block that re-weights the
channels ("to reweight each organ mask importance"). Five CABs in the encoder, five in
the decoder; Xavier-uniform initialisation; one sigmoid channel per structure is the
paper's output mode (see cervseg.models.output_modes), the network itself returns logits.

Where the paper is silent (its figures are not in the text) the choices are:
- plain-kernel sizes 5x5 and 7x7 (``kernels``), dilation rates 2 and 3 (``dilations``);
  the block's output channels are split evenly between the branches so that the
  concatenation has the level's width;
- SE reduction ratio 16 (Hu et al.), hidden width floored at 1;
- widths w, 2w, 4w, 8w, 16w with w = 64 as in the U-Net it modifies (35.1 M parameters
  for 1 input and 6 output channels, 0.55 M at w = 8); ``base_width`` >= number of branches (4);
- encoder: CABs at H, H/2, H/4, H/8, H/16 with 2x2 max pooling between them;
  decoder: four CABs after 2x2 transposed-conv upsampling + skip concatenation
  (H/8 ... H) and a fifth CAB at full resolution before the 1x1 head.
Input H, W are padded to a multiple of 16 and cropped back (see SegmentationNet).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from cervseg.models.blocks import ConvBNReLU, SegmentationNet, SqueezeExcitation, xavier_uniform_init
from cervseg.models.registry import register_model


class ContextAggregationBlock(nn.Module):
    """Parallel dilated and large-kernel conv-BN-ReLU branches, concatenated, then SE."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: Sequence[int] = (2, 3),
        kernels: Sequence[int] = (5, 7),
        se_reduction: int = 16,
    ) -> None:
        super().__init__()
        specs = [(3, int(d)) for d in dilations] + [(int(k), 1) for k in kernels]
        if not specs:
            raise ValueError("a context aggregation block needs at least one branch")
        if out_channels < len(specs):
            raise ValueError(f"{out_channels} output channels cannot be split over {len(specs)} branches")
        share, extra = divmod(out_channels, len(specs))
        widths = [share + (1 if i < extra else 0) for i in range(len(specs))]
        self.branches = nn.ModuleList(
            ConvBNReLU(in_channels, width, kernel_size=k, dilation=d) for (k, d), width in zip(specs, widths)
        )
        self.se = SqueezeExcitation(out_channels, se_reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(torch.cat([branch(x) for branch in self.branches], dim=1))


@register_model(
    "cab_se_unet",
    default_width=64,
    min_width=4,
    reference="Liu Z. et al., Physica Medica 69 (2020) 184-191 (paper 000)",
)
class CabSeUNet(SegmentationNet):
    """U-Net with Context Aggregation + Squeeze-Excitation blocks (5 encoder, 5 decoder)."""

    size_divisor = 16

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_width: int = 64,
        dilations: Sequence[int] = (2, 3),
        kernels: Sequence[int] = (5, 7),
        se_reduction: int = 16,
    ) -> None:
        super().__init__(in_channels, out_channels)
        widths = [base_width * 2**i for i in range(5)]

        def cab(cin: int, cout: int) -> ContextAggregationBlock:
            return ContextAggregationBlock(cin, cout, dilations, kernels, se_reduction)

        self.encoder = nn.ModuleList()
        cin = in_channels
        for width in widths:
            self.encoder.append(cab(cin, width))
            cin = width
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(3, -1, -1))
        self.decoder = nn.ModuleList(cab(2 * widths[i], widths[i]) for i in range(3, -1, -1))
        self.refine = cab(widths[0], widths[0])
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        xavier_uniform_init(self)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.up, self.decoder):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(self.refine(x))
