"""One contract suite run over every registered model (segmentation_models_pytorch style).

Every architecture must: map (N, C, H, W) to (N, out_channels, H, W) for 2D (C=1) and
2.5D (C=3) input, for any H, W; give finite gradients to every parameter; be
deterministic and batch-independent in eval mode; survive a checkpoint round trip bit
for bit; reject malformed input with ValueError; scale its parameters with base_width;
and actually learn (the loss falls over a few Adam steps on a fixed tiny batch).
Tiny widths and 64x64 slices keep the whole file well under a minute on 2 cores.
"""

from __future__ import annotations

import math

import pytest
import torch

from cervseg.models.checkpoint import load_checkpoint, save_checkpoint
from cervseg.models.registry import available_models, create_model, model_spec, parameter_count
from cervseg.train.losses import create_loss

MODELS = available_models()
OUT = 3
SIZE = 64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions run faster on one thread than on two cores shared with other jobs."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny(name: str, in_channels: int = 1, width: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_channels, OUT, base_width=max(width, model_spec(name).min_width))


def shapes_batch(n: int = 4, in_channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Slices with a bright disc and a dark square; targets: disc, square, their union."""
    g = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")
    images, targets = [], []
    for i in range(n):
        disc = (((yy - 16 - 8 * i) ** 2 + (xx - 20 - 6 * i) ** 2) < 100).float()
        square = ((yy > 40 - 4 * i) & (yy < 56 - 4 * i) & (xx > 44) & (xx < 58)).float()
        image = disc - square + 0.3 * torch.randn(in_channels, SIZE, SIZE, generator=g)
        images.append(image)
        targets.append(torch.stack([disc, square, torch.clamp(disc + square, 0, 1)]))
    return torch.stack(images), torch.stack(targets)


def test_registry_has_the_papers_models():
    assert {"unet", "cab_se_unet", "resau_net", "attention_unet", "unet_pp"} <= set(MODELS)


@pytest.mark.parametrize("in_channels", [1, 3], ids=["2d", "2.5d"])
@pytest.mark.parametrize("name", MODELS)
def test_output_shape(name, in_channels):
    model = tiny(name, in_channels).eval()
    x = torch.randn(2, in_channels, SIZE, SIZE)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, OUT, SIZE, SIZE)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", MODELS)
def test_backward_gives_finite_gradients_to_every_parameter(name):
    model = tiny(name).train()
    x, target = shapes_batch(2)
    loss = create_loss("ce", "multilabel")(model(x), target)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad[:5]}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic_and_batch_independent(name):
    model = tiny(name)
    x, _ = shapes_batch(3)
    model.train()
    with torch.no_grad():
        model(x)  # move the BatchNorm running statistics away from their initial values
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
        alone = model(x[1:2])
    assert torch.equal(first, second)
    # in eval mode a slice's prediction must not depend on the other slices of its batch
    torch.testing.assert_close(alone, first[1:2], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_round_trip_predicts_identically(name, tmp_path):
    model = tiny(name, in_channels=3)
    x, target = shapes_batch(2, in_channels=3)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = create_loss("ce", "multilabel")(model(x), target)  # one step: weights and BN buffers move
    loss.backward()
    optimiser.step()
    model.eval()
    config = {"in_channels": 3, "out_channels": OUT, "base_width": max(4, model_spec(name).min_width)}
    save_checkpoint(
        tmp_path / "ckpt",
        model,
        model_name=name,
        model_config=config,
        structures=["Disc", "Square", "Union"],
        output_mode="multilabel",
        preprocess={"context_slices": 1},
        training_summary={"slices": 2},
    )
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert not loaded.model.training
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))


@pytest.mark.parametrize("hw", [(37, 53), (64, 45), (17, 100), (1, 1)])
@pytest.mark.parametrize("name", MODELS)
def test_any_slice_size_is_handled(name, hw):
    """Documented choice: sizes not divisible by the model's divisor are padded and cropped back."""
    model = tiny(name).eval()
    x = torch.randn(1, 1, *hw)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, OUT, *hw)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", MODELS)
def test_malformed_input_is_rejected(name):
    model = tiny(name).eval()
    with pytest.raises(ValueError, match="4-D"):
        model(torch.randn(1, SIZE, SIZE))
    with pytest.raises(ValueError, match="input channel"):
        model(torch.randn(1, 3, SIZE, SIZE))


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_scales_with_width(name, record_property):
    """Doubling base_width roughly quadruples the parameters (conv weights ~ width^2)."""
    spec = model_spec(name)
    small = parameter_count(tiny(name, width=4))
    double = parameter_count(tiny(name, width=8))
    paper = parameter_count(create_model(name, 1, OUT))
    record_property("parameters_width4", small)
    record_property(f"parameters_paper_width{spec.default_width}", paper)
    print(f"{name}: {small} parameters at width 4, {paper} at the paper width {spec.default_width}")
    assert 3.0 < double / small < 4.05
    expected = (spec.default_width / 8) ** 2
    assert 0.7 * expected < paper / double < 1.05 * expected


@pytest.mark.parametrize("name", MODELS)
def test_loss_decreases_on_a_fixed_tiny_batch(name):
    model = tiny(name).train()
    x, target = shapes_batch(4)
    loss_fn = create_loss("ce", "multilabel")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.999))
    losses = []
    for _ in range(8):
        optimiser.zero_grad()
        loss = loss_fn(model(x), target)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.95 * losses[0], losses


@pytest.mark.parametrize("size", [SIZE, 80], ids=["64px", "80px-padded"])
@pytest.mark.parametrize("name", MODELS)
def test_output_bias_puts_the_mean_logit_where_asked(name, size):
    from cervseg.models.output_bias import set_output_bias

    model = tiny(name)
    x = torch.nn.functional.interpolate(shapes_batch()[0], size=(size, size))
    target = torch.tensor([-4.0, -2.5, 1.0])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head = set_output_bias(model, x, target)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == [f"{head}.bias"]  # only the output bias moved: no weight, no batch-norm statistic
    model.train()  # the statistics the first training steps use
    with torch.no_grad():
        mean = model(x).transpose(0, 1).reshape(OUT, -1).mean(1)
    assert torch.allclose(mean, target, atol=1e-4), (name, mean)
