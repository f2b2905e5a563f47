"""Output modes: how structure masks become training targets and logits become masks.

Two modes, one per paper:

- ``multilabel`` (paper 000): one sigmoid channel per structure; structures may overlap
  (a CTV may contain part of the bladder). Target: float (C, *spatial) of 0/1.
- ``multiclass`` (paper 001): softmax over ``background`` + one class per structure;
  each voxel gets exactly one class, so where structures overlap an explicit
  ``priority`` decides (first listed wins; default: the structure order).
  Target: int64 (*spatial) class indices, 0 = background.

Femoral heads may be trained as one channel ``Femur_Head`` (paper 000 merges them, since
the two heads look alike and only their side differs). The merged prediction is split
into Femur_Head_L / Femur_Head_R afterwards in patient space: each connected component
goes to the side of its centroid's LPS x (+x = patient left), so an FFS or prone scan,
whose array columns run the other way, cannot swap the sides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from scipy import ndimage

from cervseg.errors import StructureError
from cervseg.volume import Geometry

log = logging.getLogger(__name__)

MODES = ("multilabel", "multiclass")
BACKGROUND = "background"
FEMUR_LEFT, FEMUR_RIGHT, FEMUR_MERGED = "Femur_Head_L", "Femur_Head_R", "Femur_Head"
# The two largest femoral components are taken as the two heads (and their midpoint as the
# midline) only if at least this far apart in x; adult femoral-head centres are ~150-200 mm apart.
MIN_HEAD_SEPARATION_MM = 80.0


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown output mode '{mode}' (choose from {', '.join(MODES)})")


def structure_channels(structures: Sequence[str], merge_femoral_heads: bool = False) -> list[str]:
    """The structure channels (no background): L/R femoral heads become one merged channel."""
    names = [str(s) for s in structures]
    if len(set(names)) != len(names):
        raise StructureError(f"structure list has duplicates: {names}")
    if BACKGROUND in names:
        raise StructureError(f"'{BACKGROUND}' is reserved and cannot be a structure name")
    if not merge_femoral_heads:
        return names
    if FEMUR_MERGED in names:
        raise StructureError(f"'{FEMUR_MERGED}' is reserved for merged femoral heads")
    if FEMUR_LEFT not in names or FEMUR_RIGHT not in names:
        raise StructureError(
            f"merge_femoral_heads needs both {FEMUR_LEFT} and {FEMUR_RIGHT} in the structures, got {names}"
        )
    out: list[str] = []
    for name in names:
        if name in (FEMUR_LEFT, FEMUR_RIGHT):
            if FEMUR_MERGED not in out:
                out.append(FEMUR_MERGED)
        else:
            out.append(name)
    return out


def channels_for(structures: Sequence[str], mode: str, merge_femoral_heads: bool = False) -> list[str]:
    """Names of the network's output channels, in order (``background`` first in multiclass)."""
    _check_mode(mode)
    channels = structure_channels(structures, merge_femoral_heads)
    return [BACKGROUND, *channels] if mode == "multiclass" else channels


def _priority_order(channels: Sequence[str], priority: Sequence[str] | None) -> list[str]:
    """Full overlap order: the given names first (L/R heads map to the merged channel), then the rest."""
    order: list[str] = []
    for name in priority or ():
        if name in (FEMUR_LEFT, FEMUR_RIGHT) and name not in channels and FEMUR_MERGED in channels:
            name = FEMUR_MERGED
        if name not in channels:
            raise StructureError(f"priority names '{name}', which is not one of the channels {list(channels)}")
        if name not in order:
            order.append(name)
    return order + [c for c in channels if c not in order]


def _as_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _channel_masks(
    masks: Mapping[str, Any] | np.ndarray | torch.Tensor, structures: Sequence[str], merge: bool
) -> dict[str, np.ndarray]:
    """Boolean mask per structure channel, merging the femoral heads when asked."""
    if isinstance(masks, Mapping):
        by_name = {str(k): _as_numpy(v).astype(bool) for k, v in masks.items()}
    else:
        stack = _as_numpy(masks)
        if stack.shape[0] != len(structures):
            raise ValueError(f"mask array has {stack.shape[0]} entries on axis 0, expected {len(structures)}")
        by_name = {name: stack[i].astype(bool) for i, name in enumerate(structures)}
    out: dict[str, np.ndarray] = {}
    for channel in structure_channels(structures, merge):
        if channel == FEMUR_MERGED and FEMUR_MERGED not in by_name:
            missing = [n for n in (FEMUR_LEFT, FEMUR_RIGHT) if n not in by_name]
            if missing:
                raise StructureError(f"no mask for {', '.join(missing)} (needed for {FEMUR_MERGED})")
            out[channel] = by_name[FEMUR_LEFT] | by_name[FEMUR_RIGHT]
        elif channel not in by_name:
            raise StructureError(f"no mask for structure '{channel}' (have: {', '.join(by_name) or 'none'})")
        else:
            out[channel] = by_name[channel]
    shapes = {m.shape for m in out.values()}
    if len(shapes) > 1:
        raise ValueError(f"structure masks differ in shape: {sorted(shapes)}")
    return out


def encode_targets(
    masks: Mapping[str, Any] | np.ndarray | torch.Tensor,
    structures: Sequence[str],
    mode: str,
    merge_femoral_heads: bool = False,
    priority: Sequence[str] | None = None,
) -> torch.Tensor:
    """Training target from masks (name -> bool array, or an array stacked in structure order).

    multilabel -> float32 (C, *spatial); multiclass -> int64 (*spatial), 0 = background,
    class k = ``channels_for(...)[k]``; overlaps resolved by ``priority`` (first wins).
    """
    _check_mode(mode)
    per_channel = _channel_masks(masks, structures, merge_femoral_heads)
    channels = list(per_channel)
    if mode == "multilabel":
        if priority is not None:
            raise ValueError("priority only applies to multiclass targets (multilabel keeps overlaps)")
        return torch.from_numpy(np.stack([per_channel[c] for c in channels]).astype(np.float32))
    all_channels = channels_for(structures, mode, merge_femoral_heads)
    shape = next(iter(per_channel.values())).shape
    target = np.zeros(shape, dtype=np.int64)
    for name in reversed(_priority_order(channels, priority)):  # highest priority written last
        target[per_channel[name]] = all_channels.index(name)
    return torch.from_numpy(target)


def to_probabilities(logits: torch.Tensor, mode: str, channel_dim: int = 1) -> torch.Tensor:
    """Sigmoid per channel (multilabel) or softmax over channels (multiclass)."""
    _check_mode(mode)
    return torch.sigmoid(logits) if mode == "multilabel" else torch.softmax(logits, dim=channel_dim)


def decode(
    logits: torch.Tensor | np.ndarray,
    structures: Sequence[str],
    mode: str,
    merge_femoral_heads: bool = False,
    *,
    threshold: float = 0.5,
    probabilities: bool = False,
    geometry: Geometry | None = None,
) -> dict[str, np.ndarray]:
    """Masks (name -> bool array) from network output (N, C, H, W) or (C, H, W).

    ``probabilities=True`` when the scores are already sigmoid/softmax outputs (e.g. averaged
    over test-time augmentation). multilabel: probability > threshold; multiclass: argmax.
    A merged ``Femur_Head`` channel is split into L/R when ``geometry`` describes the
    (N, H, W) stack (a volume's slices in order); without geometry it is returned merged.
    """
    _check_mode(mode)
    scores = torch.as_tensor(logits).detach().cpu()
    if scores.ndim not in (3, 4):
        raise ValueError(f"expected (N, C, H, W) or (C, H, W) scores, got shape {tuple(scores.shape)}")
    channel_dim = scores.ndim - 3
    all_channels = channels_for(structures, mode, merge_femoral_heads)
    if scores.shape[channel_dim] != len(all_channels):
        raise ValueError(
            f"scores have {scores.shape[channel_dim]} channels, the {mode} output for {list(structures)} "
            f"has {len(all_channels)}: {all_channels}"
        )
    if mode == "multilabel":
        probs = scores if probabilities else torch.sigmoid(scores.float())
        hard = (probs > threshold).numpy()
        out = {name: np.take(hard, i, axis=channel_dim) for i, name in enumerate(all_channels)}
    else:
        labels = scores.argmax(dim=channel_dim).numpy()
        out = {name: labels == i for i, name in enumerate(all_channels) if name != BACKGROUND}
    if FEMUR_MERGED in out and geometry is not None:
        merged = out.pop(FEMUR_MERGED)
        out.update(split_femoral_heads(merged, geometry))
        out = {name: out[name] for name in _output_order(structures, out)}
    return out


def _output_order(structures: Sequence[str], available: Mapping[str, np.ndarray]) -> list[str]:
    return [s for s in structures if s in available] + [s for s in available if s not in structures]


def split_femoral_heads(
    mask: np.ndarray, geometry: Geometry, midline_x: float | None = None
) -> dict[str, np.ndarray]:
    """Split a merged femoral-head mask (z, y, x) into Femur_Head_L and Femur_Head_R.

    Each voxel goes to the patient's left when its LPS x is greater than the midline (a
    femoral head never crosses the body's midline, so deciding per voxel also splits heads
    that a network fused into one component through a bridge of false positives). The
    midline is ``midline_x`` when given (e.g. from the body outline), else the midpoint of
    the two largest 26-connected components when they lie at least MIN_HEAD_SEPARATION_MM
    apart in x (both heads in the field), else the x of the image grid's centre.
    """
    mask = _as_numpy(mask).astype(bool)
    if mask.shape != geometry.shape:
        raise ValueError(f"femoral-head mask has shape {mask.shape}, the geometry {geometry.shape}")
    left = np.zeros_like(mask)
    if not mask.any():
        return {FEMUR_LEFT: left, FEMUR_RIGHT: left.copy()}
    if midline_x is None:
        labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
        index = np.arange(1, count + 1)
        centroids = np.asarray(ndimage.center_of_mass(mask, labels, index), dtype=float).reshape(count, 3)
        xs = geometry.index_to_lps(centroids)[:, 0]
        sizes = ndimage.sum_labels(mask, labels, index)
        big = np.argsort(-sizes, kind="stable")[:2]
        if count >= 2 and abs(xs[big[0]] - xs[big[1]]) >= MIN_HEAD_SEPARATION_MM:
            midline_x = float(xs[big].mean())
        else:
            centre = (np.asarray(geometry.shape, dtype=float) - 1.0) / 2.0
            midline_x = float(geometry.index_to_lps(centre)[0, 0])
            log.debug("femoral heads: one head found; midline taken at the grid centre x=%.1f mm", midline_x)
    voxels = np.argwhere(mask)
    left[tuple(voxels.T)] = geometry.index_to_lps(voxels)[:, 0] > midline_x
    return {FEMUR_LEFT: left, FEMUR_RIGHT: mask & ~left}


@dataclass(frozen=True)
class OutputSpec:
    """The output mode of a model, as stored in its checkpoint."""

    structures: tuple[str, ...]
    mode: str
    merge_femoral_heads: bool = False
    priority: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "structures", tuple(str(s) for s in self.structures))
        if self.priority is not None:
            object.__setattr__(self, "priority", tuple(str(s) for s in self.priority))
        _check_mode(self.mode)
        if self.mode == "multilabel" and self.priority is not None:
            raise ValueError("priority only applies to the multiclass mode")
        _priority_order(structure_channels(self.structures, self.merge_femoral_heads), self.priority)

    @property
    def channels(self) -> list[str]:
        return channels_for(self.structures, self.mode, self.merge_femoral_heads)

    def encode(self, masks: Mapping[str, Any] | np.ndarray | torch.Tensor) -> torch.Tensor:
        return encode_targets(masks, self.structures, self.mode, self.merge_femoral_heads, self.priority)

    def decode(self, logits: torch.Tensor | np.ndarray, **kwargs: Any) -> dict[str, np.ndarray]:
        return decode(logits, self.structures, self.mode, self.merge_femoral_heads, **kwargs)

    def labelled_channels(self, labelled: torch.Tensor) -> torch.Tensor:
        """(N, structures) bool "contoured on this patient" -> (N, structure channels) bool.

        A merged femoral-head channel is labelled only where both heads are. Multiclass has
        no such mask: one softmax cannot leave a class out of one voxel's loss.
        """
        if self.mode != "multilabel":
            raise ValueError("partial labels need the multilabel output mode")
        index = {s: i for i, s in enumerate(self.structures)}
        columns = []
        for channel in self.channels:
            parts = (FEMUR_LEFT, FEMUR_RIGHT) if channel == FEMUR_MERGED and FEMUR_MERGED not in index else (channel,)
            columns.append(torch.stack([labelled[:, index[p]] for p in parts]).all(dim=0))
        return torch.stack(columns, dim=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "structures": list(self.structures),
            "mode": self.mode,
            "merge_femoral_heads": self.merge_femoral_heads,
            "priority": None if self.priority is None else list(self.priority),
            "channels": self.channels,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "OutputSpec":
        priority = data.get("priority")
        return cls(
            structures=tuple(data["structures"]),
            mode=str(data["mode"]),
            merge_femoral_heads=bool(data.get("merge_femoral_heads", False)),
            priority=None if priority is None else tuple(priority),
        )
