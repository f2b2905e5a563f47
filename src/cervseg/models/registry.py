"""Model registry: build any architecture by name from a plain config dict.

Why: a checkpoint stores ``(model name, config)`` rather than pickled code, so a clinic's
contouring node rebuilds the network with :func:`create_model` and loads only weights.
Each architecture module registers itself with :func:`register_model`; the registry is
filled once, by importing every module of ``cervseg.models`` on first use (no list of
modules to keep in step), and never changed afterwards. Each fact is declared once: the
decorator holds the name, widths and reference, the class its ``size_divisor``.

Contract of every registered model (tested in tests/models/test_contract.py):
input ``(N, in_channels, H, W)`` float, output logits ``(N, out_channels, H, W)`` for any
H, W (inputs are padded internally to a multiple of ``size_divisor`` and cropped back);
``in_channels`` is 1 for 2D or 2k+1 for 2.5D; a wrong rank or channel count raises ValueError.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from cervseg.errors import ConfigError

@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one architecture."""

    name: str
    factory: Callable[..., nn.Module]
    default_width: int  # the width of the published model (features at full resolution)
    min_width: int  # smallest base width that still builds
    reference: str  # where the architecture comes from

    @property
    def size_divisor(self) -> int:
        """2 ** number of downsamplings, as the architecture's class declares it."""
        return int(getattr(self.factory, "size_divisor", 1))


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, *, default_width: int, reference: str, min_width: int = 1
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: make an architecture available to :func:`create_model` as ``name``.

    The decorated callable is called as ``factory(in_channels, out_channels, base_width, **cfg)``.
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.factory is not factory:
            raise ValueError(f"model name '{name}' is already registered by {existing.factory!r}")
        _REGISTRY[name] = ModelSpec(name, factory, default_width, min_width, reference)
        return factory

    return decorator


def _load_builtin() -> None:
    """Import every module of this package, so each architecture's decorator has run."""
    package = importlib.import_module("cervseg.models")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"cervseg.models.{module.name}")


def available_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of one architecture; ConfigError naming the choices if unknown."""
    _load_builtin()
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ConfigError(f"unknown model '{name}' (available: {', '.join(sorted(_REGISTRY))})")
    return spec


def create_model(
    name: str, in_channels: int, out_channels: int, base_width: int | None = None, **cfg: Any
) -> nn.Module:
    """Build a freshly initialised network. ``base_width=None`` gives the published width."""
    spec = model_spec(name)
    width = spec.default_width if base_width is None else base_width
    if int(width) != width or width < spec.min_width:
        raise ConfigError(f"model '{name}': base_width must be an integer >= {spec.min_width}, got {width}")
    args = (int(in_channels), int(out_channels), int(width))
    try:
        inspect.signature(spec.factory).bind(*args, **cfg)
    except TypeError as exc:  # an unknown or duplicated keyword in a user's config
        raise ConfigError(f"model '{name}': invalid configuration {cfg}: {exc}") from None
    return spec.factory(*args, **cfg)


def parameter_count(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
