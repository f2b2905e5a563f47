"""The model registry: names, default (paper) widths and clear configuration errors."""

from __future__ import annotations

import pytest
from torch import nn

from cervseg.errors import ConfigError
from cervseg.models.registry import available_models, create_model, model_spec, parameter_count, register_model


def test_unknown_model_names_the_choices():
    with pytest.raises(ConfigError, match="unknown model 'vnet'.*cab_se_unet"):
        create_model("vnet", 1, 2)


def test_default_width_is_the_paper_width():
    spec = model_spec("unet")
    assert spec.default_width == 64
    paper = create_model("unet", 1, 2)
    explicit = create_model("unet", 1, 2, base_width=64)
    assert parameter_count(paper) == parameter_count(explicit)


@pytest.mark.parametrize("width", [0, 2.5, -4])
def test_bad_width_is_a_config_error(width):
    with pytest.raises(ConfigError, match="base_width"):
        create_model("unet", 1, 2, base_width=width)


def test_width_below_the_architecture_minimum_is_refused():
    assert model_spec("cab_se_unet").min_width == 4  # four branches share the block's channels
    with pytest.raises(ConfigError, match=">= 4"):
        create_model("cab_se_unet", 1, 2, base_width=3)


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match="invalid configuration"):
        create_model("resau_net", 1, 2, base_width=4, pretrained=True)


def test_options_reach_the_architecture():
    default = create_model("cab_se_unet", 1, 2, base_width=4)
    fewer = create_model("cab_se_unet", 1, 2, base_width=4, kernels=[5])
    assert len(fewer.encoder[0].branches) == 3 == len(default.encoder[0].branches) - 1


def test_registering_a_different_factory_under_a_taken_name_fails():
    class Other(nn.Module):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_model("unet", default_width=1, reference="")(Other)
    assert model_spec("unet").factory is not Other


def test_every_model_declares_a_consistent_divisor():
    for name in available_models():
        spec = model_spec(name)
        model = create_model(name, 1, 2, base_width=max(4, spec.min_width))
        assert model.size_divisor == spec.size_divisor
        assert spec.reference
