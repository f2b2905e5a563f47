"""Losses against hand-computed values and independent slow references.

The Lovasz losses are checked against the Choquet-integral form of the Lovasz extension,
f(m) = integral over t >= 0 of Jaccard-loss({i : m_i >= t}) dt, evaluated by brute force
on the level sets (a different formula from the sorted-cumsum gradient of Berman et al.),
and against 1 - IoU for hard 0/1 predictions, where the extension equals the set function.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from cervseg.errors import ConfigError
from cervseg.train.losses import (
    LOSSES,
    LovaszHinge,
    LovaszSoftmax,
    SymmetricCrossEntropy,
    WeightedBCE,
    WeightedCrossEntropy,
    class_weights,
    create_loss,
    lovasz_extension,
    lovasz_hinge_flat,
    lovasz_softmax_flat,
)

# ---------------------------------------------------------------- slow references


def jaccard_set_loss(mistakes: np.ndarray, gt: np.ndarray) -> float:
    """Jaccard loss of a set of mispredicted pixels: |M| / |G u M| (Berman eq. 3)."""
    m, g = mistakes.astype(bool), gt.astype(bool)
    union = np.count_nonzero(g | m)
    return np.count_nonzero(m) / union if union else 0.0


def lovasz_reference(errors: np.ndarray, gt: np.ndarray) -> float:
    """Choquet integral of the Jaccard set loss over the level sets of the errors."""
    total, previous = 0.0, 0.0
    for level in np.unique(errors[errors > 0]):
        total += (level - previous) * jaccard_set_loss(errors >= level, gt)
        previous = level
    return total


def lovasz_softmax_reference(probas: np.ndarray, labels: np.ndarray, classes) -> float:
    losses = []
    for c in classes:
        fg = (labels == c).astype(float)
        losses.append(lovasz_reference(np.abs(fg - probas[:, c]), fg))
    return float(np.mean(losses))


# ---------------------------------------------------------------- Lovasz


@pytest.mark.parametrize("seed", range(5))
def test_lovasz_extension_equals_the_choquet_integral(seed):
    rng = np.random.default_rng(seed)
    errors = np.round(rng.random(15), 1)  # rounding creates ties, the tricky case
    gt = rng.random(15) > 0.5
    value = lovasz_extension(torch.tensor(errors), torch.tensor(gt.astype(float)))
    assert value.item() == pytest.approx(lovasz_reference(errors, gt), abs=1e-12)


def test_lovasz_on_binary_errors_is_the_jaccard_loss_itself():
    rng = np.random.default_rng(7)
    for _ in range(20):
        gt = rng.random(12) > 0.5
        mistakes = rng.random(12) > 0.6
        value = lovasz_extension(torch.tensor(mistakes.astype(float)), torch.tensor(gt.astype(float)))
        assert value.item() == pytest.approx(jaccard_set_loss(mistakes, gt), abs=1e-12)


def test_lovasz_hand_computed_case():
    # gt = [1, 1, 0, 0], P(class 1) = [0.9, 0.4, 0.3, 0.0] -> errors [0.1, 0.6, 0.3, 0.0].
    # Sorted: 0.6 (fg), 0.3 (bg), 0.1 (fg), 0 (bg). Jaccard loss of the growing sets:
    # {px2} 1/2, {px2, px3} 2/3, {px2, px3, px1} 3/3, all 4/4 -> increments 1/2, 1/6, 1/3, 0.
    # Loss = 0.6 / 2 + 0.3 / 6 + 0.1 / 3 = 0.38333...
    probas = torch.tensor([[0.1, 0.9], [0.6, 0.4], [0.7, 0.3], [1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([1, 1, 0, 0])
    assert lovasz_softmax_flat(probas, labels, classes=[1]).item() == pytest.approx(0.6 / 2 + 0.3 / 6 + 0.1 / 3)


def test_lovasz_softmax_is_one_minus_iou_for_hard_predictions():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=(2, 6, 5))
    labels[labels == 3] = 2  # class 3 absent from the target: skipped ("present")
    predicted = rng.integers(0, 4, size=(2, 6, 5))
    logits = 100.0 * F.one_hot(torch.tensor(predicted), 4).movedim(-1, 1).double()
    loss = LovaszSoftmax()(logits, torch.tensor(labels)).item()
    ious = [np.count_nonzero((predicted == c) & (labels == c)) / np.count_nonzero((predicted == c) | (labels == c))
            for c in np.unique(labels)]
    assert loss == pytest.approx(1.0 - np.mean(ious), abs=1e-9)


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_softmax_matches_the_reference_on_soft_probabilities(per_image):
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 4, 5))
    loss = LovaszSoftmax(per_image=per_image)(logits, labels).item()
    probas = torch.softmax(logits, 1).movedim(1, -1).numpy()
    y = labels.numpy()
    if per_image:
        expected = np.mean([lovasz_softmax_reference(p.reshape(-1, 3), t.ravel(), np.unique(t)) for p, t in zip(probas, y)])
    else:
        expected = lovasz_softmax_reference(probas.reshape(-1, 3), y.ravel(), np.unique(y))
    assert loss == pytest.approx(expected, abs=1e-12)


def test_lovasz_softmax_all_classes_penalises_an_absent_class_by_its_top_probability():
    probas = torch.tensor([[0.7, 0.1, 0.2], [0.6, 0.0, 0.4], [0.9, 0.05, 0.05]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0])
    # class 1 and 2 are absent: any mistake set M gives |M| / |M| = 1, so the extension is max(error)
    present = lovasz_softmax_flat(probas, labels, "present").item()
    everything = lovasz_softmax_flat(probas, labels, "all").item()
    assert everything == pytest.approx((present + 0.1 + 0.4) / 3)


def test_lovasz_hinge_matches_the_reference():
    torch.manual_seed(1)
    logits = torch.randn(3, 2, 4, 4, dtype=torch.float64) * 2
    target = (torch.rand(3, 2, 4, 4) > 0.6).double()
    loss = LovaszHinge()(logits, target).item()
    per_channel = []
    for c in range(2):
        lg, t = logits[:, c].numpy().ravel(), target[:, c].numpy().ravel()
        per_channel.append(lovasz_reference(np.maximum(1 - lg * (2 * t - 1), 0), t))
    assert loss == pytest.approx(np.mean(per_channel), abs=1e-12)
    per_image = LovaszHinge(per_image=True)(logits, target).item()
    expected = np.mean([
        lovasz_reference(np.maximum(1 - lg * (2 * t - 1), 0), t)
        for c in range(2) for lg, t in zip(logits[:, c].numpy().reshape(3, -1), target[:, c].numpy().reshape(3, -1))
    ])
    assert per_image == pytest.approx(expected, abs=1e-12)


def test_lovasz_hinge_is_zero_only_with_a_margin():
    labels = torch.tensor([1.0, 0.0, 1.0])
    assert lovasz_hinge_flat(torch.tensor([2.0, -2.0, 1.5]), labels).item() == 0.0
    assert lovasz_hinge_flat(torch.tensor([0.5, -2.0, 1.5]), labels).item() > 0.0


def test_lovasz_gradients_match_finite_differences():
    torch.manual_seed(2)
    logits = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (1, 3, 3))
    assert torch.autograd.gradcheck(lambda x: LovaszSoftmax()(x, labels), (logits,))
    binary = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(2, 2, 3, 3) > 0.5).double()
    assert torch.autograd.gradcheck(lambda x: LovaszHinge()(x, target), (binary,))


# ---------------------------------------------------------------- cross-entropies


def test_weighted_ce_equals_the_weighted_mean_of_log_losses():
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 2, 2))
    w = [0.2, 1.0, 3.0]
    loss = WeightedCrossEntropy(w)(logits, labels).item()
    logp = torch.log_softmax(logits, 1).movedim(1, -1).reshape(-1, 3).numpy()
    y = labels.numpy().ravel()
    expected = sum(-w[c] * logp[i, c] for i, c in enumerate(y)) / sum(w[c] for c in y)
    assert loss == pytest.approx(expected, abs=1e-12)
    # (N, 1, H, W) targets are the same thing
    assert WeightedCrossEntropy(w)(logits, labels[:, None]).item() == pytest.approx(loss)


def test_weighted_bce_is_paper_000_equation_2():
    assert WeightedBCE([1.0, 3.0])(torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)).item() == pytest.approx(
        2 * math.log(2)  # (1 * ln 2 + 3 * ln 2) / 2 classes
    )
    torch.manual_seed(4)
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    y = (torch.rand(2, 3, 4, 4) > 0.5).double()
    w = [0.5, 1.0, 2.0]
    x = torch.sigmoid(logits).numpy()
    yn = y.numpy()
    per_class = [w[c] * np.mean(-(yn[:, c] * np.log(x[:, c]) + (1 - yn[:, c]) * np.log(1 - x[:, c]))) for c in range(3)]
    assert WeightedBCE(w)(logits, y).item() == pytest.approx(np.mean(per_class), abs=1e-12)


def test_symmetric_ce_known_value():
    # uniform softmax over 4 classes: CE = ln 4, RCE = -A * (1 - 1/4) = 3 with A = -4
    loss = SymmetricCrossEntropy("multiclass", alpha=0.1, beta=1.0)(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2).long())
    assert loss.item() == pytest.approx(0.1 * math.log(4) + 3.0)


def test_symmetric_ce_matches_the_clamped_one_hot_formulation():
    """Wang et al.'s code: RCE = -sum p * log(clamp(one_hot, exp(A))) (log 0 := A)."""
    torch.manual_seed(5)
    a = -4.0
    logits = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 3, 3))
    p = torch.softmax(logits, 1)
    onehot = F.one_hot(labels, 3).movedim(-1, 1).double().clamp(min=math.exp(a))
    rce = -(p * torch.log(onehot)).sum(1).mean()
    expected = 0.3 * F.cross_entropy(logits, labels) + 0.7 * rce
    got = SymmetricCrossEntropy("multiclass", alpha=0.3, beta=0.7, log_zero=a)(logits, labels)
    torch.testing.assert_close(got, expected)
    # multilabel: the same per channel with two classes (y, 1 - y)
    y = (torch.rand(2, 3, 3, 3) > 0.5).double()
    q = torch.sigmoid(logits)
    rce_bin = -(q * torch.log(y.clamp(min=math.exp(a))) + (1 - q) * torch.log((1 - y).clamp(min=math.exp(a)))).mean()
    expected_bin = 0.3 * F.binary_cross_entropy_with_logits(logits, y) + 0.7 * rce_bin
    got_bin = SymmetricCrossEntropy("multilabel", alpha=0.3, beta=0.7, log_zero=a)(logits, y)
    torch.testing.assert_close(got_bin, expected_bin)


# ---------------------------------------------------------------- Dice and Dice + CE


def test_soft_dice_hand_computed():
    # 2 classes, target [1, 0, 0, 0], uniform softmax: class-1 Dice = 2 * 0.5 / (2 + 1) = 1/3,
    # background Dice = 2 * 1.5 / (2 + 3) = 0.6
    logits = torch.zeros(1, 2, 1, 4)
    target = torch.tensor([[[1, 0, 0, 0]]])
    assert create_loss("dice", "multiclass")(logits, target).item() == pytest.approx(2 / 3, abs=1e-5)
    with_bg = create_loss("dice", "multiclass", include_background=True)(logits, target).item()
    assert with_bg == pytest.approx(((1 - 1 / 3) + (1 - 0.6)) / 2, abs=1e-5)
    # multilabel: sigmoid(0) = 0.5 everywhere, half the pixels set -> Dice 0.5
    half = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    assert create_loss("dice", "multilabel")(torch.zeros(1, 1, 1, 4), half).item() == pytest.approx(0.5, abs=1e-5)


def test_dice_ce_is_the_sum_of_its_terms():
    torch.manual_seed(6)
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    w = [0.5, 1.0, 2.0]
    combined = create_loss("dice_ce", "multiclass", weights=w, lambda_dice=0.7, lambda_ce=1.3)(logits, labels)
    dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, batch=True, weight=w[1:])(
        logits, labels[:, None]
    )
    ce = F.cross_entropy(logits, labels, weight=torch.tensor(w))
    torch.testing.assert_close(combined, 0.7 * dice + 1.3 * ce)
    y = (torch.rand(2, 3, 4, 4) > 0.5).float()
    combined_ml = create_loss("dice_ce", "multilabel", weights=w)(logits, y)
    expected_ml = create_loss("dice", "multilabel")(logits, y) + WeightedBCE(w)(logits, y)
    torch.testing.assert_close(combined_ml, expected_ml)


# ---------------------------------------------------------------- weights and the factory


def test_class_weights_from_structure_sizes():
    torch.testing.assert_close(class_weights([1, 4], "inverse"), torch.tensor([1.6, 0.4]))
    torch.testing.assert_close(class_weights([1, 4], "inverse_sqrt"), torch.tensor([4 / 3, 2 / 3]))
    torch.testing.assert_close(class_weights([0, 1, 4], "inverse"), torch.tensor([4 / 3, 4 / 3, 1 / 3]))
    torch.testing.assert_close(class_weights([5, 9], "none"), torch.ones(2))
    with pytest.raises(ConfigError, match="weighting"):
        class_weights([1, 2], "median")
    with pytest.raises(ConfigError, match=">= 0"):
        class_weights([1, -2])


def test_voxel_counts_give_the_same_loss_as_the_derived_weights():
    torch.manual_seed(8)
    logits = torch.randn(1, 3, 4, 4)
    labels = torch.randint(0, 3, (1, 4, 4))
    counts = [1000, 10, 90]
    a = create_loss("ce", "multiclass", voxel_counts=counts, weighting="inverse")(logits, labels)
    b = create_loss("ce", "multiclass", weights=class_weights(counts, "inverse").tolist())(logits, labels)
    torch.testing.assert_close(a, b)


def test_factory_errors():
    with pytest.raises(ConfigError, match="unknown loss 'focal'"):
        create_loss("focal", "multiclass")
    with pytest.raises(ConfigError, match="unknown output mode"):
        create_loss("ce", "softmax")
    with pytest.raises(ConfigError, match="multilabel mode"):
        create_loss("lovasz_hinge", "multiclass")
    with pytest.raises(ConfigError, match="invalid option"):
        create_loss("lovasz", "multiclass", smooth=1.0)
    with pytest.raises(ConfigError, match="not both"):
        create_loss("ce", "multiclass", weights=[1, 1], voxel_counts=[1, 1])
    with pytest.raises(ValueError, match="2 class weights given for 3"):
        create_loss("ce", "multiclass", weights=[1, 1])(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2).long())
    with pytest.raises(ValueError, match="multilabel target"):
        create_loss("ce", "multilabel")(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2))


def _all_losses():
    for name in LOSSES:
        for mode in ("multiclass", "multilabel"):
            if (name, mode) in {("bce", "multiclass"), ("lovasz_hinge", "multiclass"), ("lovasz_softmax", "multilabel")}:
                continue
            yield name, mode


@pytest.mark.parametrize("name,mode", list(_all_losses()))
def test_every_loss_has_finite_gradients_and_descends(name, mode):
    """Gradient descent on free logits lowers every loss: the gradients point the right way."""
    torch.manual_seed(9)
    logits = torch.randn(2, 3, 6, 6, requires_grad=True)
    target = torch.randint(0, 3, (2, 6, 6)) if mode == "multiclass" else (torch.rand(2, 3, 6, 6) > 0.5).float()
    loss_fn = create_loss(name, mode)
    optimiser = torch.optim.Adam([logits], lr=0.1)
    values = []
    for _ in range(20):
        optimiser.zero_grad()
        loss = loss_fn(logits, target)
        loss.backward()
        assert torch.isfinite(logits.grad).all()
        optimiser.step()
        values.append(loss.item())
    assert loss.ndim == 0
    assert values[-1] < 0.8 * values[0], values
