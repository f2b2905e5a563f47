"""Checkpoints: a folder holding everything needed to predict with nothing else.

Layout (format version 2)::

    CKPT/
      checkpoint.json   model name + config, output spec (structures, mode, channels),
                        preprocess (the plan: intensity, spacing_mm, crop_mm, 2.5D context;
                        the same keys as a training config's ``preprocess``), training-data
                        summary (with ``seen``: what the training CTs were like), versions,
                        created, extra, SHA-256 of the weights
      weights.pt        the state_dict (torch.save), loaded with weights_only=True

Version 1 (before the plan in millimetres) named the plan ``preprocessing`` and always
meant the CT's own pixels with a pixel crop (``crop_size``, 256 when absent); such
checkpoints are read as exactly that pixel plan, so they predict as they always did.

Why a folder of JSON + a plain state_dict: a clinic's contouring node must never unpickle
code from a file someone handed it, and a human must be able to read what a model was
trained on. The folder is written atomically (a failed save leaves no checkpoint), and
the model config is checked at save time to rebuild the very same network.
"""

from __future__ import annotations

import json
import logging
import math
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

import cervseg
from cervseg.errors import CervsegError, InputError
from cervseg.models.output_modes import OutputSpec
from cervseg.models.registry import create_model
from cervseg.outputs import atomic_dir, sha256_file

log = logging.getLogger(__name__)

FORMAT = "cervseg-checkpoint"
FORMAT_VERSION = 2
PIXEL_CROP_V1 = 256  # the crop_size a version-1 plan meant when it did not say
METADATA_FILE = "checkpoint.json"
WEIGHTS_FILE = "weights.pt"


@dataclass
class CheckpointMetadata:
    """Everything in checkpoint.json, typed."""

    model_name: str
    model_config: dict[str, Any]  # keyword arguments of create_model (in/out channels, base_width, ...)
    output: OutputSpec
    preprocess: dict[str, Any]  # the plan, as PreprocessConfig fields
    training_summary: dict[str, Any]
    versions: dict[str, str]
    created: str  # ISO 8601, UTC
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def structures(self) -> list[str]:
        return list(self.output.structures)

    @property
    def output_mode(self) -> str:
        return self.output.mode

    @property
    def channels(self) -> list[str]:
        return self.output.channels


@dataclass
class LoadedCheckpoint:
    """A model in eval mode and its metadata."""

    model: nn.Module
    metadata: CheckpointMetadata
    path: Path


def library_versions() -> dict[str, str]:
    """Versions recorded in every checkpoint (to explain a result months later)."""
    import monai

    return {
        "cervseg": cervseg.__version__,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _jsonable(value: Any, where: str) -> Any:
    """Plain JSON types from configs that may hold tuples, numpy scalars/arrays or paths."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise ValueError(f"{where}: {value} cannot be stored in checkpoint.json")
        return float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{where}: a {type(value).__name__} cannot be stored in checkpoint.json")


def _check_rebuilds(model: nn.Module, model_name: str, model_config: Mapping[str, Any]) -> None:
    """Fail at save time, not at a clinic, if the config does not rebuild this network."""
    config = dict(model_config)
    for key in ("in_channels", "out_channels"):
        if key not in config:
            raise ValueError(f"model_config must contain '{key}'")
    rebuilt = create_model(model_name, **config)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if ours != theirs:
        diff = sorted(set(ours.items()) ^ set(theirs.items()))[:3]
        raise ValueError(f"model_config {config} does not rebuild this '{model_name}' network (e.g. {diff})")


def save_checkpoint(
    directory: Path,
    model: nn.Module,
    *,
    model_name: str,
    model_config: Mapping[str, Any],
    structures: Sequence[str],
    output_mode: str,
    preprocess: Mapping[str, Any],
    training_summary: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    merge_femoral_heads: bool = False,
    priority: Sequence[str] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (replacing an existing one only on success)."""
    directory = Path(directory)
    order = None if priority is None else tuple(priority)
    output = OutputSpec(tuple(structures), output_mode, merge_femoral_heads, order)
    config = _jsonable(dict(model_config), "model_config")
    out_channels = config.get("out_channels")
    if out_channels != len(output.channels):
        raise ValueError(
            f"model_config out_channels={out_channels} but the {output_mode} output has "
            f"{len(output.channels)} channels {output.channels}"
        )
    _check_rebuilds(model, model_name, config)
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"name": model_name, "config": config},
        "output": output.to_dict(),
        "preprocess": _jsonable(dict(preprocess), "preprocess"),
        "training_summary": _jsonable(dict(training_summary), "training_summary"),
        "versions": library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": _jsonable(dict(extra or {}), "extra"),
    }
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_dir(directory) as tmp:
        torch.save(state, tmp / WEIGHTS_FILE)
        metadata["weights_sha256"] = sha256_file(tmp / WEIGHTS_FILE)
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    log.info("checkpoint written to %s (%s, %d channels)", directory, model_name, len(output.channels))
    return directory


def read_metadata(directory: Path) -> CheckpointMetadata:
    """Parse and validate checkpoint.json without loading weights."""
    directory = Path(directory)
    raw = _read_raw_metadata(directory)
    return _metadata_from_raw(raw, directory / METADATA_FILE)


def _read_raw_metadata(directory: Path) -> dict[str, Any]:
    if not directory.exists():
        raise InputError(f"{directory}: checkpoint folder not found")
    if not directory.is_dir():
        raise InputError(f"{directory}: a checkpoint is a folder (with {METADATA_FILE} and {WEIGHTS_FILE})")
    path = directory / METADATA_FILE
    if not path.is_file():
        raise InputError(f"{path}: missing; {directory} is not a cervseg checkpoint")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable checkpoint metadata ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InputError(f"{path}: not a cervseg checkpoint (no \"format\": \"{FORMAT}\")")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(
            f"{path}: checkpoint format version {version!r} is not supported by this cervseg "
            f"(reads up to {FORMAT_VERSION}); upgrade cervseg"
        )
    return raw


def _metadata_from_raw(raw: Mapping[str, Any], path: Path) -> CheckpointMetadata:
    try:
        return CheckpointMetadata(
            model_name=str(raw["model"]["name"]),
            model_config=dict(raw["model"]["config"]),
            output=OutputSpec.from_dict(raw["output"]),
            preprocess=_plan(raw),
            training_summary=dict(raw["training_summary"]),
            versions=dict(raw["versions"]),
            created=str(raw["created"]),
            extra=dict(raw.get("extra") or {}),
        )
    except (KeyError, TypeError, ValueError, CervsegError) as exc:
        raise InputError(f"{path}: incomplete or invalid checkpoint metadata ({type(exc).__name__}: {exc})") from None


def _plan(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The plan of any format version; a version-1 plan is the pixel plan it always was."""
    if raw.get("format_version") == 1:
        return {"crop_size": PIXEL_CROP_V1, **dict(raw["preprocessing"])}
    return dict(raw["preprocess"])


def load_checkpoint(directory: Path, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model from its config, load the weights (weights only), eval mode."""
    directory = Path(directory)
    raw = _read_raw_metadata(directory)
    metadata = _metadata_from_raw(raw, directory / METADATA_FILE)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(f"{weights}: missing; the checkpoint {directory} has no weights")
    expected = raw.get("weights_sha256")
    if expected is not None and sha256_file(weights) != expected:
        raise InputError(f"{weights}: checksum does not match {METADATA_FILE}; the weights are corrupt or replaced")
    try:
        state = torch.load(weights, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or non-weights file
        raise InputError(f"{weights}: cannot load weights ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict):
        raise InputError(f"{weights}: does not hold a state_dict")
    try:
        model = create_model(metadata.model_name, **metadata.model_config)
    except (TypeError, ValueError, CervsegError) as exc:
        raise InputError(f"{directory / METADATA_FILE}: cannot rebuild model '{metadata.model_name}': {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{weights}: weights do not fit model '{metadata.model_name}' ({first})") from None
    model.eval()
    return LoadedCheckpoint(model=model.to(map_location), metadata=metadata, path=directory)
