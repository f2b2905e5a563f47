"""Study plan: a config expands into stable runs with merged train configs; config errors are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cervseg.errors import ConfigError
from cervseg.study.config import load_study_config
from cervseg.study.plan import deep_merge, expand, quick_config
from tests.study.support import study_config


def test_grid_expands_arms_then_seeds_with_stable_ids_and_merged_configs(tmp_path):
    cfg = load_study_config(study_config(tmp_path, seeds=[3, 1, 2]))
    runs = expand(cfg)
    assert [r.run_id for r in runs] == ["resau-s3", "resau-s1", "resau-s2", "unet-s3", "unet-s1", "unet-s2"]
    assert [r.run_id for r in expand(load_study_config(study_config(tmp_path, seeds=[3, 1, 2])))] == [r.run_id for r in runs]
    first = runs[0].train
    # base <- profile <- arm: every run shares the base's budget, the profile's set-up, its own model/loss/seed
    assert first.model.name == "resau_net" and first.loss.name == "lovasz" and first.seed == 3
    assert runs[3].train.model.name == "unet" and runs[3].train.seed == 3
    assert first.output_mode == "multiclass" and first.data.structures == ["Bladder", "Rectum"]
    assert first.epochs == 2 and first.preprocess.intensity == "window" and first.preprocess.spacing_mm == 5.6
    # paths relative to the config file; one shared cache; a folder per run
    assert first.data.cache == (tmp_path / "cache").resolve()
    assert {r.train.data.cache for r in runs} == {first.data.cache}
    assert runs[1].folder == (tmp_path / "study" / "runs" / "resau-s1").resolve()
    assert runs[1].train.out_dir == runs[1].folder / "train"


def test_width_axis_scales_every_arm_and_names_the_runs(tmp_path):
    runs = expand(load_study_config(study_config(tmp_path, seeds=[0], widths=[4, 8])))
    assert [r.run_id for r in runs] == ["resau-w4-s0", "resau-w8-s0", "unet-w4-s0", "unet-w8-s0"]
    assert [r.train.model.base_width for r in runs] == [4, 8, 4, 8]
    assert [r.label for r in runs] == ["resau-w4", "resau-w8", "unet-w4", "unet-w8"]


def test_quick_mode_is_one_step_in_a_folder_of_its_own(tmp_path):
    cfg = load_study_config(study_config(tmp_path))
    quick = expand(quick_config(cfg))
    assert all(r.train.epochs == 1 and r.train.max_steps_per_epoch == 1 for r in quick)
    assert all((tmp_path / "study" / "quick" / "runs").resolve() == r.folder.parent for r in quick)
    assert cfg.base["epochs"] == 2  # the loaded config is not changed


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert deep_merge(base, {"a": {"y": [3]}, "c": 2}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}


@pytest.mark.parametrize("over, message", [
    ({"seeds": [0, 0]}, "seeds must be different"),
    ({"sedes": [0]}, "sedes: unknown key"),
    ({"base": {"seed": 3}}, "base: seed is set per run by the study"),
    ({"base": {"epochs": 0}}, "arm resau: epochs: Input should be greater than or equal to 1"),
    ({"base": {"data": {"cache": "x"}}}, "data.cache is the study's `cache`"),
    ({"claims": [{"id": "c", "text": "t", "arm": "resau", "baselines": ["unet_pp"]}]}, "claim c: unknown arm(s) unet_pp"),
    ({"arms": [{"name": "a-b", "model": {"name": "unet"}}]}, "arms.0.name: String should match pattern"),
    ({"arms": [{"name": "a", "profile": "p000", "model": {"name": "unet"}}]}, "arm a: unknown profile 'p000'"),
    ({"base": {"grid_search": {"learning_rates": [0.1], "batch_sizes": [2]}}}, "grid_search is not for a study"),
])
def test_config_errors_name_the_file_and_the_field(tmp_path, over, message):
    path = study_config(tmp_path, **over)
    with pytest.raises(ConfigError) as err:
        expand(load_study_config(path), str(path))
    assert str(err.value).startswith(str(path)) and message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_study_config(tmp_path / "nope.yaml")


def test_the_committed_phantom_study_expands(tmp_path):
    path = Path(__file__).parents[2] / "configs" / "study_phantom.yaml"
    cfg = load_study_config(path)
    runs = expand(cfg)
    arms = {r.arm for r in runs}
    models = {r.train.model.name for r in runs}
    assert models == {"unet", "attention_unet", "unet_pp", "cab_se_unet", "resau_net"}
    resau_losses = {r.train.loss.name for r in runs if r.train.model.name == "resau_net"}
    assert resau_losses == {"ce", "sce", "dice", "lovasz", "dice_ce"}
    assert len(cfg.seeds) >= 3 and len(runs) == len(arms) * len(cfg.seeds)
    # equal budgets and equally scaled widths: every run has the same epochs, steps, batch size, lr and width
    for key in ("epochs", "max_steps_per_epoch", "batch_size", "early_stopping_patience"):
        assert len({getattr(r.train, key) for r in runs}) == 1, key
    assert len({r.train.optimizer.lr for r in runs}) == 1
    from cervseg.models.registry import model_spec

    assert len({r.train.model.base_width / model_spec(r.train.model.name).default_width for r in runs}) == 1
    assert {c.id for c in cfg.claims} == {"paper000_cab_se_unet", "paper001_resau_net", "paper001_lovasz"}
    for claim in cfg.claims:  # the networks of one claim start alike: the same initialisation and output bias
        compared = [r for r in runs if r.arm in (claim.arm, *claim.baselines)]
        assert len({(r.train.model.init, r.train.model.output_bias) for r in compared}) == 1, claim.id
    assert yaml.safe_load(path.read_text())  # plain YAML
