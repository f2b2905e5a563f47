"""The study config: a grid of arms (architecture + loss) x seeds (x widths) over one cache.

Why a config of its own: a study is many ordinary training runs that must differ only in
what is compared. ``base`` holds the train-config keys every run shares (the equal
budget: epochs, steps, batch size, optimiser, preprocessing), a ``profile`` holds what
one paper's set-up adds (output mode, structures, intensity), and an arm names the model
and loss. Each run's train config is ``base`` <- profile <- arm, validated as an ordinary
TrainConfig (cervseg.study.plan). Relative paths are relative to the config's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from cervseg.config import LossConfig, ModelConfig, StrictModel, load_config, resolve_under

ARM_NAME = r"^[A-Za-z0-9_]+$"
#: Train-config keys a study sets for every run itself; a config that sets them is an error.
STUDY_OWNED = ("out_dir", "seed", "model", "loss")
#: Metrics a claim can be judged on (cervseg.metrics.evaluate.METRICS names).
CLAIM_METRICS = ("dice_2d", "dice_3d", "hd95_2d_mm", "hd95_3d_mm")


class ArmConfig(StrictModel):
    """One compared configuration: a model and a loss, on one profile's set-up."""

    name: str = Field(..., pattern=ARM_NAME, description="letters, digits and _ (it names run folders)")
    profile: str | None = Field(None, description="a key of `profiles`: the paper set-up this arm trains with")
    model: ModelConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    paper: str = Field("", description="where the arm comes from, for the report")


class ClaimConfig(StrictModel):
    """A paper's claim: ``arm`` beats every one of ``baselines`` on ``structures``.

    ``scope: each``: on every structure separately (one test per baseline and structure);
    ``mean``: on the per-patient mean over the structures (one test per baseline).
    """

    id: str = Field(..., pattern=ARM_NAME)
    text: str = Field(..., min_length=1)
    arm: str
    baselines: list[str] = Field(..., min_length=1)
    structures: list[str] | None = Field(None, description="default: every structure the arm and baselines score")
    metric: Literal["dice_2d", "dice_3d", "hd95_2d_mm", "hd95_3d_mm"] = "dice_2d"
    scope: Literal["each", "mean"] = "each"


class ExtraTestConfig(StrictModel):
    """A further test set scored by every run, e.g. a clinic's real CTs beside a phantom cohort.

    ``cases`` is read as `cervseg evaluate --reference` reads it (a DICOM CT + RTSTRUCT or a
    convert-style NIfTI folder with image.nii.gz, or one such folder per patient); only the
    structures both drawn there and predicted by a run are scored.
    """

    name: str = Field(..., pattern=ARM_NAME)
    cases: Path
    names: Path | None = Field(None, description="names file mapping structures to the cases' ROI names")
    optional: bool = Field(False, description="skip the set, with a warning, where its folder is absent")


class StudyConfig(StrictModel):
    """Everything `cervseg study` needs; saved as study.yaml in the study folder."""

    cache: Path = Field(..., description="folder written by `cervseg dataset`; its test split is the study's test set")
    out_dir: Path = Field(..., description="the study folder: runs/<run id>/ per run")
    seeds: list[int] = Field(..., min_length=1)
    widths: list[int] | None = Field(None, description="optional width axis: every arm at each base_width")
    base: dict[str, Any] = Field(default_factory=dict, description="train-config keys every run shares")
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict, description="named partial train configs")
    arms: list[ArmConfig] = Field(..., min_length=1)
    claims: list[ClaimConfig] = Field(default_factory=list)
    extra_tests: list[ExtraTestConfig] = Field(default_factory=list, description="further test sets (tables only)")
    alpha: float = Field(0.05, gt=0, lt=1, description="two-sided significance level of each test (no correction)")
    probe_steps: int = Field(3, ge=1, le=100, description="training steps per arm timed by --dry-run")

    @model_validator(mode="after")
    def _check(self) -> "StudyConfig":
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be different, got {self.seeds}")
        if self.widths is not None and (len(set(self.widths)) != len(self.widths) or min(self.widths) < 1):
            raise ValueError(f"widths must be different positive integers, got {self.widths}")
        names = [a.name for a in self.arms]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"arm name(s) given twice: {', '.join(twice)}")
        for where, partial in [("base", self.base), *((f"profiles.{k}", v) for k, v in self.profiles.items())]:
            owned = [k for k in STUDY_OWNED if k in partial]
            if owned:
                raise ValueError(f"{where}: {', '.join(owned)} is set per run by the study (arms give model and loss)")
            if "cache" in partial.get("data", {}):
                raise ValueError(f"{where}: data.cache is the study's `cache`")
        for arm in self.arms:
            if arm.profile is not None and arm.profile not in self.profiles:
                raise ValueError(f"arm {arm.name}: unknown profile '{arm.profile}' "
                                 f"(profiles: {', '.join(self.profiles) or 'none'})")
        extra = [e.name for e in self.extra_tests]
        if len(set(extra)) != len(extra):
            raise ValueError(f"extra_tests: a name is given twice: {extra}")
        for claim in self.claims:
            unknown = [n for n in (claim.arm, *claim.baselines) if n not in names]
            if unknown:
                raise ValueError(f"claim {claim.id}: unknown arm(s) {', '.join(unknown)} (arms: {', '.join(names)})")
            if claim.arm in claim.baselines:
                raise ValueError(f"claim {claim.id}: the arm {claim.arm} is also one of its baselines")
        return self

    def arm(self, name: str) -> ArmConfig:
        return next(a for a in self.arms if a.name == name)

    def active_extra_tests(self) -> list[ExtraTestConfig]:
        """The extra test sets to score: an optional one whose folder is absent is left out."""
        return [e for e in self.extra_tests if not (e.optional and not Path(e.cases).exists())]

    def resolve_paths(self, base: Path) -> "StudyConfig":
        """A copy whose cache and out_dir are taken relative to ``base`` (the config's folder)."""
        extra = [e.model_copy(update={"cases": resolve_under(base, e.cases),
                                      "names": None if e.names is None else resolve_under(base, e.names)})
                 for e in self.extra_tests]
        return self.model_copy(update={"cache": resolve_under(base, self.cache),
                                       "out_dir": resolve_under(base, self.out_dir), "extra_tests": extra})


def load_study_config(path: Path | str) -> StudyConfig:
    """Read and validate a study YAML (one ConfigError line naming the file and the field)."""
    path = Path(path)
    cfg = load_config(path, StudyConfig)
    return cfg.resolve_paths(path.resolve().parent)
