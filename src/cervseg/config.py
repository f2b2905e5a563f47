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
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from cervseg.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a YAML key must not be silently ignored.

    Validators are built on first use (defer_build), so `cervseg segment`, which validates
    only the checkpoint's preprocessing, does not pay for building the training configs.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


MAX_CROP_PIXELS = 2048  # a larger network input is a config mistake, not a pelvis (and a MemoryError)


class PreprocessConfig(StrictModel):
    """The plan: how HU slices become network input; used identically by training and inference.

    Two kinds of plan. The **millimetre plan** (the default, nnU-Net's habit): every slice is
    resampled to ``spacing_mm`` pixels and cut to a ``crop_mm`` square centred on the body, so
    a model sees the same physical scale on a 0.8 mm and a 1.25 mm CT. The **pixel plan**
    (``spacing_mm: null``, the format of checkpoints before the plan): the CT's own pixels,
    cropped to ``crop_size`` pixels (or the whole slice when null). A config that gives
    ``crop_size`` and no ``spacing_mm`` keeps its old meaning, the pixel plan.
    """

    intensity: Literal["zscore", "window"] = Field(
        "zscore", description="zscore: clamp then (HU-mean)/std (paper 000); window: W/L -> [0, 1] (paper 001)"
    )
    clamp_hu: tuple[float, float] = (-1024.0, 2048.0)
    zscore_mean: float | None = Field(None, description="HU mean after clamping; None = from the training patients")
    zscore_std: float | None = Field(None, gt=0, description="HU std after clamping; None = from the training patients")
    window_width: float = Field(300.0, gt=0)
    window_level: float = 50.0
    spacing_mm: float | None = Field(
        1.0, gt=0, description="in-plane pixel size the network works at; null = the CT's own pixels (pixel plan)"
    )
    crop_mm: float | None = Field(
        512.0, gt=0, description="millimetre plan: side of the square crop centred on the body; null = the whole slice"
    )
    crop_size: int | None = Field(
        None, ge=8, le=MAX_CROP_PIXELS, description="pixel plan only: in-plane size after crop/pad centred on the body; null keeps the CT's size"
    )
    body_threshold_hu: float = Field(-500.0, description="HU above which a voxel counts as body when centring the crop")
    context_slices: int = Field(
        0, ge=0, le=8, description="2.5D: neighbouring slices (by index, not mm) on each side as channels"
    )

    @model_validator(mode="before")
    @classmethod
    def _pixel_plan_when_only_crop_size(cls, data: Any) -> Any:
        """``crop_size`` without ``spacing_mm`` is a pixel-plan config (or a checkpoint from before the plan)."""
        if isinstance(data, dict) and "crop_size" in data and "spacing_mm" not in data:
            data = {**data, "spacing_mm": None, "crop_mm": None}
        return data

    @model_validator(mode="after")
    def _check(self) -> "PreprocessConfig":
        lo, hi = self.clamp_hu
        if not lo < hi:
            raise ValueError(f"clamp_hu must be (low, high) with low < high, got {self.clamp_hu}")
        if (self.zscore_mean is None) != (self.zscore_std is None):
            raise ValueError("give both zscore_mean and zscore_std, or neither")
        if self.spacing_mm is not None and self.crop_size is not None:
            raise ValueError("crop_size (pixels) belongs to the pixel plan: with spacing_mm give crop_mm instead")
        if self.spacing_mm is None and self.crop_mm is not None:
            raise ValueError("crop_mm needs spacing_mm (the pixel plan crops with crop_size)")
        if self.crop_pixels is not None and not 8 <= self.crop_pixels <= MAX_CROP_PIXELS:
            raise ValueError(f"crop_mm / spacing_mm gives a {self.crop_pixels}-pixel crop; "
                             f"8 to {MAX_CROP_PIXELS} are possible")
        return self

    @property
    def millimetre_plan(self) -> bool:
        """True when slices are resampled to ``spacing_mm`` (False: the CT's own pixels)."""
        return self.spacing_mm is not None

    @property
    def crop_pixels(self) -> int | None:
        """Side of the network's input in pixels (None: the CT's own size, pixel plan without crop)."""
        if self.spacing_mm is None:
            return self.crop_size
        if self.crop_mm is None:
            return None
        return int(round(self.crop_mm / self.spacing_mm))

    @property
    def in_channels(self) -> int:
        """Network input channels: the slice itself plus its neighbours."""
        return 2 * self.context_slices + 1

    @property
    def needs_statistics(self) -> bool:
        """True when z-score statistics still have to be measured on training data."""
        return self.intensity == "zscore" and self.zscore_mean is None


class AugmentConfig(StrictModel):
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
    # sim-to-real (SynthSeg style, Billot et al. 2023): make a network learn shape, not a generator's
    # texture. All off by default (probability 0) and off in the paper configs.
    intensity_remap_prob: float = Field(
        0.0, ge=0, le=1, description="random piecewise-linear remap of the intensity scale (per HU band / tissue)"
    )
    intensity_remap_points: int = Field(8, ge=3, le=64, description="control points of the remap")
    bias_field_prob: float = Field(0.0, ge=0, le=1, description="smooth multiplicative bias field")
    bias_field_coeff: float = Field(0.3, ge=0, le=2, description="largest polynomial coefficient of the log field")
    blur_prob: float = Field(0.0, ge=0, le=1, description="Gaussian blur")
    blur_sigma_px: tuple[float, float] = Field((0.5, 1.5), description="blur sigma range in network pixels")
    low_resolution_prob: float = Field(0.0, ge=0, le=1, description="downsample then upsample (a coarser scan)")
    low_resolution_zoom: tuple[float, float] = Field((0.5, 1.0), description="downsampling factor range")
    noise_texture_prob: float = Field(0.0, ge=0, le=1, description="spatially correlated Gaussian noise")
    noise_texture_std: float = Field(0.05, ge=0, description="noise SD in normalised units")
    noise_texture_sigma_px: float = Field(1.0, ge=0, description="Gaussian correlation length (0 = white noise)")
    gamma_prob: float = Field(0.0, ge=0, le=1, description="gamma curve on the min-max normalised image")
    gamma_range: tuple[float, float] = Field((0.7, 1.5), description="gamma drawn uniformly from this range")

    @model_validator(mode="after")
    def _check_ranges(self) -> "AugmentConfig":
        for name in ("blur_sigma_px", "low_resolution_zoom", "gamma_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if self.low_resolution_zoom[1] > 1:
            raise ValueError("low_resolution_zoom must not exceed 1 (a zoom below 1 downsamples)")
        return self


class ModelConfig(StrictModel):
    """Which registered architecture to build and how wide."""

    name: str = Field(..., min_length=1)
    base_width: int | None = Field(None, ge=1, description="features at full resolution; None = the published width")
    options: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments for the model")
    init: Literal["model", "xavier_uniform"] = Field(
        "model", description="xavier_uniform re-initialises conv weights (paper 000); model keeps the model's own"
    )
    init_from: Path | None = Field(
        None, description="start from this checkpoint's weights (fine-tuning; same architecture, channels and plan)"
    )
    output_bias: Literal["model", "prior"] = Field(
        "model", description="prior: the output layer starts at each structure's log-odds in the training "
        "patients (sigmoid outputs begin near its true frequency, not 0.5); multilabel only"
    )


class LossConfig(StrictModel):
    """A loss of cervseg.train.losses by name, with its options (weights, alpha/beta, ...)."""

    name: str = Field("ce", min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    size_weighting: Literal["inverse", "inverse_sqrt"] | None = Field(
        None, description="class weights from the structures' voxel counts in the training patients (paper 000)"
    )


class OptimizerConfig(StrictModel):
    """Adam, as both papers used."""

    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)


class GridSearchConfig(StrictModel):
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


class ExtraTrainingCache(StrictModel):
    """Another cache whose patients all train (none validate): e.g. a few real cases beside phantoms."""

    cache: Path = Field(..., description="folder written by `cervseg dataset`")
    repeat: int = Field(1, ge=1, description="each of its slices counts this many times per pass")


class DataConfig(StrictModel):
    cache: Path = Field(..., description="folder written by `cervseg dataset`")
    extra_train: list[ExtraTrainingCache] = Field(
        default_factory=list, description="more caches whose patients are added to the training split only"
    )
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


class TrainConfig(StrictModel):
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

    @model_validator(mode="after")
    def _check_output_bias(self) -> "TrainConfig":
        if self.model.output_bias == "prior" and self.output_mode != "multilabel":
            raise ValueError("model.output_bias: prior is for multilabel (sigmoid) outputs")
        if self.model.output_bias == "prior" and self.model.init_from is not None:
            raise ValueError("model.output_bias: prior would overwrite the output bias of model.init_from; use one")
        return self

    def resolve_paths(self, base: Path) -> "TrainConfig":
        """A copy whose relative paths are taken relative to ``base`` (the config's folder)."""
        extra = [e.model_copy(update={"cache": resolve_under(base, e.cache)}) for e in self.data.extra_train]
        data = self.data.model_copy(update={"cache": resolve_under(base, self.data.cache), "extra_train": extra})
        model = self.model
        if model.init_from is not None:
            model = model.model_copy(update={"init_from": resolve_under(base, model.init_from)})
        return self.model_copy(update={"data": data, "out_dir": resolve_under(base, self.out_dir), "model": model})


def _check_ae_title(title: str) -> str:
    """DICOM AE titles: 1-16 characters of printable ASCII, no backslash, not only spaces."""
    if not title.strip() or len(title) > 16:
        raise ValueError(f"AE title {title!r} must be 1 to 16 characters")
    if any(not (32 <= ord(c) < 127) or c == "\\" for c in title):
        raise ValueError(f"AE title {title!r} may hold printable ASCII only, no backslash")
    return title


AETitle = Annotated[str, AfterValidator(_check_ae_title)]


class DestinationConfig(StrictModel):
    """A DICOM peer (planning system, PACS) the node sends its RTSTRUCTs to by C-STORE."""

    ae_title: AETitle = Field(..., description="the peer's AE title")
    host: str = Field(..., min_length=1)
    port: int = Field(..., ge=1, le=65535)

    def describe(self) -> str:
        """``TPS@127.0.0.1:11113``: how logs and job errors name a destination."""
        return f"{self.ae_title}@{self.host}:{self.port}"


class NodeConfig(StrictModel):
    """Everything `cervseg serve` needs: the DICOM node (C-STORE in, RTSTRUCT out)."""

    ae_title: AETitle = Field("CERVSEG", description="our AE title (1-16 characters)")
    host: str = Field("127.0.0.1", min_length=1, description="address to listen on; default: localhost only")
    port: int = Field(11112, ge=1, le=65535)
    allowed_calling_aets: list[AETitle] = Field(
        ..., min_length=1, description="calling AE titles accepted; any other is rejected at association"
    )
    spool: Path = Field(Path("spool"), description="received instances, results and the job queue")
    quiet_seconds: float = Field(5.0, gt=0, description="a series is complete this long after its last instance")
    model: str = Field("builtin", min_length=1, description="'builtin' or a checkpoint folder")
    threads: int | None = Field(None, ge=1, description="torch threads for the model; default: every core we may use")
    workers: int = Field(1, ge=1, le=16, description="jobs run at the same time (each shares the one loaded model)")
    batch_size: int = Field(8, ge=1, description="slices per forward pass")
    destinations: list[DestinationConfig] = Field(default_factory=list)
    output_folder: Path | None = Field(None, description="also write RS_<SeriesUID>.dcm here")
    retries: int = Field(3, ge=0, le=100, description="extra attempts per destination after a failed send")
    retry_backoff_seconds: float = Field(
        5.0, gt=0, description="wait before the first retry; doubled before each further one"
    )
    retry_backoff_max_seconds: float = Field(300.0, gt=0, description="the longest wait between two attempts")
    network_timeout_seconds: float = Field(30.0, gt=0, description="ACSE/DIMSE/network timeouts of our sends")
    max_job_attempts: int = Field(
        3, ge=1, description="a job interrupted this many times (node stopped while running it) is failed"
    )
    keep_finished_hours: float = Field(
        24.0, ge=0, description="spool data of done/failed jobs is removed after this many hours (0: at once)"
    )

    @property
    def model_path(self) -> Path | None:
        """The checkpoint folder, or None for the built-in model."""
        return None if self.model == "builtin" else Path(self.model)

    def resolve_paths(self, base: Path) -> "NodeConfig":
        """A copy whose relative paths (spool, output folder, model) are taken relative to ``base``."""
        update: dict[str, Any] = {"spool": resolve_under(base, self.spool)}
        if self.output_folder is not None:
            update["output_folder"] = resolve_under(base, self.output_folder)
        if self.model_path is not None:
            update["model"] = str(resolve_under(base, self.model_path))
        return self.model_copy(update=update)


def resolve_under(base: Path, path: Path) -> Path:
    """``path`` taken relative to ``base`` (a config file's folder) unless it is absolute."""
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
    """Read and validate a YAML config; its relative paths are taken relative to the file's folder."""
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
    if isinstance(cfg, (TrainConfig, NodeConfig)):
        cfg = cfg.resolve_paths(path.resolve().parent)  # type: ignore[assignment]
    return cfg


def saved_train_config(raw: Any, source: str) -> dict[str, Any]:
    """A train config saved by an earlier run, validated again and dumped: a field added to
    TrainConfig since takes its default, so it is no difference when the two are compared."""
    return config_to_dict(validate_config(raw, TrainConfig, source))


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """Plain JSON/YAML-safe dict of a config (paths as strings, tuples as lists)."""
    return cfg.model_dump(mode="json")


def save_config(cfg: BaseModel, path: Path) -> None:
    """Write a config as YAML (atomically) so a run's outputs say how they were made."""
    from cervseg.outputs import atomic_file

    with atomic_file(Path(path)) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
