"""Pydantic models for every YAML config; validated on load, saved beside the outputs.

Why one module: a training run, its checkpoint and a later inference must agree on the
same preprocessing and model description, so the config classes are shared by all of
them. This module imports neither torch nor the models, so inference code and the data
pipeline can use it freely. Names that only the model registry or the loss factory can
judge (``model.name``, ``loss.name``) are checked where those are built.

Relative paths inside a config file are resolved against the folder of that file, so a
config travels with its data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cervseg.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in a YAML key must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PreprocessConfig(_Strict):
    """How HU slices become network input; used identically by training and inference."""

    intensity: Literal["zscore", "window"] = Field(
        "zscore", description="zscore: clamp then (HU-mean)/std (paper 000); window: W/L -> [0, 1] (paper 001)"
    )
    clamp_hu: tuple[float, float] = (-1024.0, 2048.0)
    zscore_mean: float | None = Field(None, description="HU mean after clamping; None = from the training patients")
    zscore_std: float | None = Field(None, gt=0, description="HU std after clamping; None = from the training patients")
    window_width: float = Field(300.0, gt=0)
    window_level: float = 50.0
    crop_size: int | None = Field(
        256, ge=8, le=2048, description="in-plane size after crop/pad centred on the body; None keeps the CT's size"
    )
    body_threshold_hu: float = Field(-500.0, description="HU above which a voxel counts as body when centring the crop")
    context_slices: int = Field(0, ge=0, le=8, description="2.5D: neighbouring slices on each side as channels")

    @model_validator(mode="after")
    def _check(self) -> "PreprocessConfig":
        lo, hi = self.clamp_hu
        if not lo < hi:
            raise ValueError(f"clamp_hu must be (low, high) with low < high, got {self.clamp_hu}")
        if (self.zscore_mean is None) != (self.zscore_std is None):
            raise ValueError("give both zscore_mean and zscore_std, or neither")
        return self

    @property
    def in_channels(self) -> int:
        """Network input channels: the slice itself plus its neighbours."""
        return 2 * self.context_slices + 1

    @property
    def needs_statistics(self) -> bool:
        """True when z-score statistics still have to be measured on training data."""
        return self.intensity == "zscore" and self.zscore_mean is None


class AugmentConfig(_Strict):
    """Training-time augmentation (paper 001). Probabilities are per slice.

    A left-right flip mirrors the patient, so it also swaps every ``*_L``/``*_R`` pair of
    structures (Femur_Head_L <-> Femur_Head_R); the labels therefore stay anatomically right.
    """

    enabled: bool = True
    flip_lr_prob: float = Field(0.5, ge=0, le=1)
    flip_ap_prob: float = Field(0.0, ge=0, le=1)
    rotate_prob: float = Field(0.3, ge=0, le=1)
    rotate_degrees: float = Field(15.0, ge=0, le=180)
    scale_intensity_prob: float = Field(0.3, ge=0, le=1)
    scale_intensity_factor: float = Field(0.1, ge=0, lt=1, description="multiply by 1 + U(-f, f)")
    shift_intensity_prob: float = Field(0.3, ge=0, le=1)
    shift_intensity_offset: float = Field(0.1, ge=0, description="add U(-o, o) (in normalised units)")
    affine_prob: float = Field(0.3, ge=0, le=1)
    affine_scale: float = Field(0.1, ge=0, lt=1, description="zoom by 1 + U(-s, s)")
    affine_shear: float = Field(0.05, ge=0, lt=1)
    affine_translate_px: float = Field(10.0, ge=0)
    elastic_prob: float = Field(0.2, ge=0, le=1)
    elastic_sigma_px: float = Field(8.0, gt=0, description="Gaussian smoothing of the random displacement field")
    elastic_strength_px: float = Field(6.0, ge=0, description="largest displacement of the smoothed field")


class ModelConfig(_Strict):
    """Which registered architecture to build and how wide."""

    name: str = Field(..., min_length=1)
    base_width: int | None = Field(None, ge=1, description="features at full resolution; None = the published width")
    options: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for the model")
    init: Literal["model", "xavier_uniform"] = Field(
        "model", description="xavier_uniform re-initialises conv weights (paper 000); model keeps the model's own"
    )


class LossConfig(_Strict):
    """A loss of cervseg.train.losses by name, with its options (weights, alpha/beta, ...)."""

    name: str = Field("ce", min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    size_weighting: Literal["inverse", "inverse_sqrt"] | None = Field(
        None, description="class weights from the structures' voxel counts in the training patients (paper 000)"
    )


class OptimizerConfig(_Strict):
    """Adam, as both papers used."""

    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)


class GridSearchConfig(_Strict):
    """Learning rate x batch size grid (paper 001); the cell with the best validation loss wins."""

    learning_rates: list[float] = Field(..., min_length=1)
    batch_sizes: list[int] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "GridSearchConfig":
        if any(lr <= 0 for lr in self.learning_rates):
            raise ValueError("learning rates must be positive")
        if any(b < 1 for b in self.batch_sizes):
            raise ValueError("batch sizes must be >= 1")
        return self


class DataConfig(_Strict):
    cache: Path = Field(..., description="folder written by `cervseg dataset`")
    template: str | None = Field(None, description="train on this template's structures (default: all of the cache)")
    structures: list[str] | None = Field(None, description="or an explicit list of structure names")
    empty_slice_fraction: float = Field(
        1.0, ge=0, le=1, description="share of training slices without any structure to keep (1 = all)"
    )

    @model_validator(mode="after")
    def _check(self) -> "DataConfig":
        if self.template is not None and self.structures is not None:
            raise ValueError("give data.template or data.structures, not both")
        return self


class TrainConfig(_Strict):
    """Everything `cervseg train` needs; saved as config.yaml in the output folder."""

    data: DataConfig
    out_dir: Path
    output_mode: Literal["multilabel", "multiclass"] = "multilabel"
    merge_femoral_heads: bool = False
    overlap_priority: list[str] | None = Field(
        None, description="multiclass: which structure wins where structures overlap (first wins)"
    )
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    model: ModelConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    batch_size: int = Field(8, ge=1)
    epochs: int = Field(50, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap on optimiser steps per epoch")
    early_stopping_patience: int = Field(3, ge=1)
    early_stopping_min_delta: float = Field(0.0, ge=0)
    seed: int = 0
    grid_search: GridSearchConfig | None = None
    num_workers: int = Field(0, ge=0)
    threads: int | None = Field(None, ge=1, description="torch threads per process; default: the cores we may use")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def resolve_paths(self, base: Path) -> "TrainConfig":
        """A copy whose relative paths are taken relative to ``base`` (the config's folder)."""
        data = self.data.model_copy(update={"cache": _under(base, self.data.cache)})
        return self.model_copy(update={"data": data, "out_dir": _under(base, self.out_dir)})


def _under(base: Path, path: Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else (Path(base) / path).resolve()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    more = exc.error_count() - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {msg}{tail}"


def validate_config(data: Any, cls: type[M], source: str) -> M:
    """Validate a mapping as ``cls``; a failure is one ConfigError line naming source and field."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None


def load_config(path: Path | str, cls: type[M] = TrainConfig) -> M:  # type: ignore[assignment]
    """Read and validate a YAML config; TrainConfig paths become relative to the file's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML: {first}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    cfg = validate_config(raw, cls, str(path))
    if isinstance(cfg, TrainConfig):
        cfg = cfg.resolve_paths(path.resolve().parent)  # type: ignore[assignment]
    return cfg


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """Plain JSON/YAML-safe dict of a config (paths as strings, tuples as lists)."""
    return cfg.model_dump(mode="json")


def save_config(cfg: BaseModel, path: Path) -> None:
    """Write a config as YAML (atomically) so a run's outputs say how they were made."""
    from cervseg.outputs import atomic_file

    with atomic_file(Path(path)) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
