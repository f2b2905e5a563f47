"""The MONAI-free ResNet encoder and attention gate against MONAI's own modules."""

from __future__ import annotations

import torch
from monai.networks.nets import ResNet
from monai.networks.nets.attentionunet import AttentionBlock

from cervseg.models.resnet import AttentionGate, ResNetEncoder


def _monai_encoder(in_channels: int, w: int) -> ResNet:
    return ResNet(block="basic", layers=[3, 4, 6, 3], block_inplanes=[w, 2 * w, 4 * w, 8 * w], spatial_dims=2,
                  n_input_channels=in_channels, conv1_t_size=7, conv1_t_stride=2, no_max_pool=False,
                  shortcut_type="B", feed_forward=False, bias_downsample=False)


def _stages(e: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    s0 = e.act(e.bn1(e.conv1(x)))
    s1 = e.layer1(e.maxpool(s0))
    s2 = e.layer2(s1)
    s3 = e.layer3(s2)
    return [s0, s1, s2, s3, e.layer4(s3)]


def test_encoder_has_monais_parameters_and_initialisation_on_the_same_seed() -> None:
    torch.manual_seed(3)
    theirs = _monai_encoder(3, 4).state_dict()
    torch.manual_seed(3)
    ours = ResNetEncoder(3, (4, 8, 16, 32)).state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_encoder_computes_what_monais_computes_with_the_same_weights() -> None:
    torch.manual_seed(0)
    theirs = _monai_encoder(1, 4)
    ours = ResNetEncoder(1, (4, 8, 16, 32))
    for m in theirs.modules():  # non-trivial BN statistics, so eval mode matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 1, 64, 48)
    for mode in ("train", "eval"):
        getattr(theirs, mode)(), getattr(ours, mode)()
        for a, b in zip(_stages(ours, x), _stages(theirs, x)):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5)


def test_attention_gate_matches_monais_attention_block() -> None:
    torch.manual_seed(5)
    theirs = AttentionBlock(spatial_dims=2, f_int=3, f_g=4, f_l=6)
    torch.manual_seed(5)
    ours = AttentionGate(f_int=3, f_g=4, f_l=6)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    g, x = torch.randn(2, 4, 10, 12), torch.randn(2, 6, 10, 12)
    assert torch.allclose(ours(g=g, x=x), theirs(g=g, x=x), atol=1e-6)
