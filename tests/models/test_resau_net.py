"""ResAU-Net (paper 001): a real ResNet34 encoder, attention-gated skips, stage resolutions."""

from __future__ import annotations

import socket

import pytest
import torch

from cervseg.models.registry import create_model, parameter_count
from cervseg.models.resau_net import AttentionUpStage, ResAUNet
from cervseg.models.resnet import BasicBlock as ResNetBlock

# torchvision's resnet34 has 21,797,672 parameters, of which the 1000-class fc layer holds
# 512 * 1000 + 1000; the convolutional feature extractor therefore has 21,284,672.
RESNET34_FEATURES = 21_797_672 - (512 * 1000 + 1000)


def test_encoder_is_resnet34_at_paper_width():
    model = create_model("resau_net", 3, 4)
    assert parameter_count(model.encoder) == RESNET34_FEATURES
    enc = model.encoder
    assert enc.conv1.kernel_size == (7, 7) and enc.conv1.stride == (2, 2)
    assert [len(layer) for layer in (enc.layer1, enc.layer2, enc.layer3, enc.layer4)] == [3, 4, 6, 3]
    assert all(isinstance(b, ResNetBlock) for layer in (enc.layer1, enc.layer2, enc.layer3, enc.layer4) for b in layer)
    assert enc.fc is None


def test_stage_resolutions_and_four_gated_up_stages():
    model = create_model("resau_net", 1, 2, base_width=4).eval()
    sizes = {}
    hooks = [
        getattr(model.encoder, name).register_forward_hook(
            lambda _m, _i, out, name=name: sizes.__setitem__(name, tuple(out.shape[1:]))
        )
        for name in ("act", "layer1", "layer2", "layer3", "layer4")
    ]
    hooks += [
        getattr(model, name).register_forward_hook(lambda _m, _i, out, name=name: sizes.__setitem__(name, tuple(out.shape[1:])))
        for name in ("up1", "up2", "up3", "up4", "final_up")
    ]
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 2, 64, 64)
    for h in hooks:
        h.remove()
    assert sizes == {
        "act": (4, 32, 32), "layer1": (4, 16, 16), "layer2": (8, 8, 8), "layer3": (16, 4, 4), "layer4": (32, 2, 2),
        "up1": (16, 4, 4), "up2": (8, 8, 8), "up3": (4, 16, 16), "up4": (4, 32, 32), "final_up": (4, 64, 64),
    }
    assert sum(isinstance(m, AttentionUpStage) for m in model.modules()) == 4


def test_attention_gate_scales_the_skip_by_one_map_in_0_1():
    torch.manual_seed(0)
    stage = AttentionUpStage(8, 4, 4).eval()
    g = torch.randn(1, 4, 6, 6)
    skip = torch.rand(1, 4, 6, 6) + 0.5
    gated = stage.gate(g=g, x=skip)
    alpha = gated / skip
    assert torch.allclose(alpha, alpha[:, :1].expand_as(alpha), atol=1e-6)  # one weight per pixel
    assert (alpha > 0).all() and (alpha < 1).all()


def test_building_never_downloads_weights(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("network access while building ResAU-Net")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert isinstance(create_model("resau_net", 1, 2, base_width=2), ResAUNet)


def test_width_below_two_is_refused():
    from cervseg.errors import ConfigError

    with pytest.raises(ConfigError):
        create_model("resau_net", 1, 2, base_width=1)
