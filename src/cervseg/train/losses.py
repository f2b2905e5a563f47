"""Training losses of the two papers, for both output modes.

Conventions: ``logits`` are (N, C, H, W) network outputs. In ``multiclass`` mode the
target is int64 class indices (N, H, W) (or (N, 1, H, W)), class 0 = background; in
``multilabel`` mode it is a 0/1 float tensor (N, C, H, W) (cervseg.models.output_modes builds both).

- ``ce``: class-weighted cross-entropy (multiclass) / weighted binary cross-entropy
  (multilabel; paper 000 eq. 1-2: L = mean_c w_c * BCE_c). Weights given, or derived
  from structure sizes with :func:`class_weights`.
- ``sce``: symmetric cross-entropy (Wang et al., ICCV 2019): alpha*CE + beta*RCE, where
  the reverse CE takes log 0 := A (default -4), so RCE = -A * (1 - p_true).
- ``dice``: soft Dice (monai DiceLoss), batch Dice by default (2D slices often lack a structure).
- ``lovasz``: Lovasz-softmax (multiclass) / Lovasz-hinge (multilabel) of Berman et al.
  (CVPR 2018), the convex surrogate of the Jaccard loss that paper 001 found best.
- ``dice_ce``: Dice + CE (monai DiceCELoss in multiclass; Dice + weighted BCE in
  multilabel, because DiceCELoss would apply a softmax CE to several sigmoid channels).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from torch import nn

from cervseg.errors import ConfigError

MODES = ("multilabel", "multiclass")
WEIGHTINGS = ("inverse", "inverse_sqrt", "none")


def class_weights(voxel_counts: Sequence[float], method: str = "inverse_sqrt") -> torch.Tensor:
    """Per-channel weights from structure sizes (voxels per channel over the training set).

    ``inverse``: w_c proportional to 1/n_c; ``inverse_sqrt``: to 1/sqrt(n_c) (gentler);
    ``none``: all ones. Normalised to mean 1 so the loss keeps its scale. Channels never
    seen (n_c = 0) get the weight of the rarest seen channel.
    """
    if method not in WEIGHTINGS:
        raise ConfigError(f"unknown class weighting '{method}' (choose from {', '.join(WEIGHTINGS)})")
    counts = torch.as_tensor(voxel_counts, dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0 or bool((counts < 0).any()):
        raise ConfigError(f"voxel counts must be a non-empty list of numbers >= 0, got {list(voxel_counts)}")
    if method == "none" or not bool((counts > 0).any()):
        return torch.ones(counts.numel(), dtype=torch.float32)
    seen = counts[counts > 0]
    counts = torch.where(counts > 0, counts, seen.min())
    w = 1.0 / counts if method == "inverse" else 1.0 / counts.sqrt()
    return (w / w.mean()).float()


def _check_logits(logits: torch.Tensor) -> None:
    if logits.ndim < 3:
        raise ValueError(f"logits must be (N, C, ...), got shape {tuple(logits.shape)}")


def _class_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """int64 (N, *spatial) class indices from (N, *spatial) or (N, 1, *spatial)."""
    _check_logits(logits)
    if target.ndim == logits.ndim and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"multiclass target must be (N, H, W) class indices matching logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if torch.is_floating_point(target):
        target = target.round()
    return target.long()


def _label_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """float 0/1 (N, C, *spatial) of the same shape as the logits."""
    _check_logits(logits)
    if target.shape != logits.shape:
        raise ValueError(
            f"multilabel target must have the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    return target.to(logits.dtype)


def _weight_vector(weights: Sequence[float] | torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    if weights is None:
        return None
    w = torch.as_tensor(weights, dtype=logits.dtype, device=logits.device)
    if w.shape != (logits.shape[1],):
        raise ValueError(f"{w.numel()} class weights given for {logits.shape[1]} output channels")
    return w


class WeightedCrossEntropy(nn.Module):
    """Softmax cross-entropy with optional class weights (PyTorch's weighted mean)."""

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.weights = None if weights is None else [float(x) for x in weights]

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _class_target(logits, target)
        return F.cross_entropy(logits, target, weight=_weight_vector(self.weights, logits))


class WeightedBCE(nn.Module):
    """Paper 000 eq. 1-2: l_c = w_c * BCE(sigmoid(logit_c), y_c); L = mean over channels (and voxels)."""

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.weights = None if weights is None else [float(x) for x in weights]

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _label_target(logits, target)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        w = _weight_vector(self.weights, logits)
        if w is not None:
            bce = bce * w.view(1, -1, *([1] * (logits.ndim - 2)))
        return bce.mean()


class SymmetricCrossEntropy(nn.Module):
    """alpha * CE + beta * reverse CE (Wang et al. 2019), robust to noisy contours.

    Reverse CE = -sum_k p_k log q_k with the one-hot target q and log 0 := ``log_zero`` (A),
    which is -A * (1 - p_true) per voxel; in multilabel mode the binary analogue -A * |y - p|
    per channel. Class weights, if any, apply to the CE term.
    """

    def __init__(
        self, mode: str, alpha: float = 0.1, beta: float = 1.0, log_zero: float = -4.0,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if log_zero >= 0:
            raise ConfigError(f"sce: log_zero (A) must be negative, got {log_zero}")
        self.mode, self.alpha, self.beta, self.log_zero = mode, float(alpha), float(beta), float(log_zero)
        self.ce = WeightedCrossEntropy(weights) if mode == "multiclass" else WeightedBCE(weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = self.ce(logits, target)
        if self.mode == "multiclass":
            cls = _class_target(logits, target)
            p_true = torch.softmax(logits, dim=1).gather(1, cls.unsqueeze(1)).squeeze(1)
            rce = (-self.log_zero * (1.0 - p_true)).mean()
        else:
            y = _label_target(logits, target)
            rce = (-self.log_zero * (y - torch.sigmoid(logits)).abs()).mean()
        return self.alpha * ce + self.beta * rce


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman eq. 9)."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_extension(errors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Lovasz extension of the Jaccard loss of foreground ``gt`` (0/1, flat) at error vector ``errors`` >= 0."""
    errors_sorted, perm = torch.sort(errors, descending=True)
    return torch.dot(errors_sorted, lovasz_grad(gt[perm].to(errors.dtype)))


def lovasz_softmax_flat(
    probas: torch.Tensor, labels: torch.Tensor, classes: str | Sequence[int] = "present"
) -> torch.Tensor:
    """Lovasz-softmax of (P, C) probabilities and (P,) labels, averaged over the chosen classes."""
    n_classes = probas.shape[1]
    if classes == "present":
        chosen = [int(c) for c in torch.unique(labels).tolist()]
    elif classes == "all":
        chosen = list(range(n_classes))
    else:
        chosen = [int(c) for c in classes]
    losses = []
    for c in chosen:
        fg = (labels == c).to(probas.dtype)
        losses.append(lovasz_extension((fg - probas[:, c]).abs(), fg))
    if not losses:
        return probas.sum() * 0.0
    return torch.stack(losses).mean()


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary Lovasz hinge of flat logits and 0/1 labels: extension at the hinge errors."""
    signs = 2.0 * labels.to(logits.dtype) - 1.0
    errors = F.relu(1.0 - logits * signs)
    return lovasz_extension(errors, labels)


class LovaszSoftmax(nn.Module):
    """Lovasz-softmax loss (multiclass). ``classes``: "present" (in the target), "all" or a list."""

    def __init__(self, classes: str | Sequence[int] = "present", per_image: bool = False) -> None:
        super().__init__()
        if isinstance(classes, str) and classes not in ("present", "all"):
            raise ConfigError(f"lovasz: classes must be 'present', 'all' or a list of indices, got '{classes}'")
        self.classes, self.per_image = classes, bool(per_image)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labels = _class_target(logits, target)
        probas = torch.softmax(logits, dim=1)
        c = probas.shape[1]
        flat_p = probas.movedim(1, -1)
        if self.per_image:
            return torch.stack(
                [lovasz_softmax_flat(p.reshape(-1, c), y.reshape(-1), self.classes) for p, y in zip(flat_p, labels)]
            ).mean()
        return lovasz_softmax_flat(flat_p.reshape(-1, c), labels.reshape(-1), self.classes)


class LovaszHinge(nn.Module):
    """Lovasz hinge per sigmoid channel (multilabel), averaged over channels (and images if per_image)."""

    def __init__(self, per_image: bool = False) -> None:
        super().__init__()
        self.per_image = bool(per_image)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        y = _label_target(logits, target)
        losses = []
        for c in range(logits.shape[1]):
            if self.per_image:
                losses += [lovasz_hinge_flat(lg.reshape(-1), t.reshape(-1)) for lg, t in zip(logits[:, c], y[:, c])]
            else:
                losses.append(lovasz_hinge_flat(logits[:, c].reshape(-1), y[:, c].reshape(-1)))
        return torch.stack(losses).mean()


class SoftDice(nn.Module):
    """monai DiceLoss with the activation and target encoding of the output mode."""

    def __init__(
        self, mode: str, include_background: bool | None = None, batch: bool = True, **monai_kwargs: Any
    ) -> None:
        super().__init__()
        self.mode = mode
        if mode == "multiclass":
            bg = False if include_background is None else bool(include_background)
            self.dice = DiceLoss(include_background=bg, to_onehot_y=True, softmax=True, batch=batch, **monai_kwargs)
        else:
            self.dice = DiceLoss(sigmoid=True, batch=batch, **monai_kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mode == "multiclass":
            return self.dice(logits, _class_target(logits, target).unsqueeze(1))
        return self.dice(logits, _label_target(logits, target))


class DiceCE(nn.Module):
    """Soft Dice + (weighted) cross-entropy, each with its own factor.

    Multiclass: monai DiceCELoss, which applies the class weights to both terms (the Dice
    term without the background weight when the background is excluded). Multilabel:
    SoftDice + WeightedBCE (weights on the BCE term, as in paper 000).
    """

    def __init__(
        self, mode: str, weights: Sequence[float] | None = None, lambda_dice: float = 1.0, lambda_ce: float = 1.0,
        include_background: bool | None = None, batch: bool = True,
    ) -> None:
        super().__init__()
        self.mode = mode
        if mode == "multiclass":
            w = None if weights is None else torch.as_tensor([float(x) for x in weights])
            bg = False if include_background is None else bool(include_background)
            self.loss: nn.Module = DiceCELoss(
                include_background=bg, to_onehot_y=True, softmax=True, batch=batch, weight=w,
                lambda_dice=lambda_dice, lambda_ce=lambda_ce,
            )
        else:
            self.dice = SoftDice(mode, batch=batch)
            self.bce = WeightedBCE(weights)
            self.lambda_dice, self.lambda_ce = float(lambda_dice), float(lambda_ce)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mode == "multiclass":
            return self.loss(logits, _class_target(logits, target).unsqueeze(1))
        return self.lambda_dice * self.dice(logits, target) + self.lambda_ce * self.bce(logits, target)


LOSSES = ("ce", "bce", "sce", "dice", "lovasz", "lovasz_softmax", "lovasz_hinge", "dice_ce")


def _resolve_weights(name: str, cfg: dict[str, Any]) -> list[float] | None:
    weights = cfg.pop("weights", None)
    counts = cfg.pop("voxel_counts", None)
    weighting = cfg.pop("weighting", "inverse_sqrt")
    if weights is not None and counts is not None:
        raise ConfigError(f"loss '{name}': give either weights or voxel_counts, not both")
    if counts is not None:
        return class_weights(counts, weighting).tolist()
    return None if weights is None else [float(x) for x in weights]


def create_loss(name: str, mode: str, **cfg: Any) -> nn.Module:
    """A loss module ``loss(logits, target) -> scalar`` by name for an output mode.

    Common options: ``weights`` (one per output channel, background first in multiclass)
    or ``voxel_counts`` (+ ``weighting``) for ce / bce / sce / dice_ce; ``alpha``, ``beta``,
    ``log_zero`` for sce; ``include_background``, ``batch`` for dice / dice_ce; ``per_image``
    (and ``classes`` in multiclass) for lovasz; ``lambda_dice``, ``lambda_ce`` for dice_ce.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown output mode '{mode}' (choose from {', '.join(MODES)})")
    if name not in LOSSES:
        raise ConfigError(f"unknown loss '{name}' (choose from {', '.join(LOSSES)})")
    only = {"bce": "multilabel", "lovasz_hinge": "multilabel", "lovasz_softmax": "multiclass"}
    if name in only and only[name] != mode:
        raise ConfigError(f"loss '{name}' is for the {only[name]} mode, the model is {mode}")
    cfg = dict(cfg)
    try:
        if name in ("ce", "bce"):
            weights = _resolve_weights(name, cfg)
            ce_class = WeightedCrossEntropy if mode == "multiclass" else WeightedBCE
            loss: nn.Module = ce_class(weights, **cfg)
        elif name == "sce":
            loss = SymmetricCrossEntropy(mode, weights=_resolve_weights(name, cfg), **cfg)
        elif name == "dice":
            loss = SoftDice(mode, **cfg)
        elif name == "dice_ce":
            loss = DiceCE(mode, weights=_resolve_weights(name, cfg), **cfg)
        elif mode == "multiclass":
            loss = LovaszSoftmax(**cfg)
        else:
            loss = LovaszHinge(**cfg)
    except TypeError as exc:
        raise ConfigError(f"loss '{name}': invalid option(s) {sorted(cfg)}: {exc}") from None
    return loss
