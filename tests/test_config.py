"""Config loading: defaults from the papers, one-line errors naming file and field, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cervseg.config import (
    PreprocessConfig, TrainConfig, load_config, save_config, validate_config,
)
from cervseg.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _minimal() -> dict:
    return {"data": {"cache": "cache"}, "out_dir": "runs/a", "model": {"name": "unet"}}


def test_defaults_follow_the_papers(tmp_path):
    cfg = load_config(_write(tmp_path / "t.yaml", _minimal()))
    assert cfg.optimizer.betas == (0.9, 0.999)
    assert cfg.early_stopping_patience == 3
    assert cfg.preprocess.clamp_hu == (-1024.0, 2048.0)
    assert (cfg.preprocess.window_width, cfg.preprocess.window_level) == (300.0, 50.0)
    # relative paths are taken relative to the config file's folder
    assert cfg.data.cache == (tmp_path / "cache").resolve()
    assert cfg.out_dir == (tmp_path / "runs" / "a").resolve()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"optimizer": {"lr": -1}}, "optimizer.lr"),
        ({"preprocess": {"clamp_hu": [100, -100]}}, "preprocess"),
        ({"model": {"name": "unet", "base_widht": 4}}, "model.base_widht"),
        ({"grid_search": {"learning_rates": [], "batch_sizes": [2]}}, "grid_search.learning_rates"),
        ({"output_mode": "softmax"}, "output_mode"),
    ],
)
def test_bad_field_is_one_line_naming_file_and_field(tmp_path, change, field):
    data = {**_minimal(), **change}
    path = _write(tmp_path / "bad.yaml", data)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {field}")


def test_missing_key_unreadable_and_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"out_dir: required key is missing"):
        load_config(_write(tmp_path / "a.yaml", {"data": {"cache": "c"}, "model": {"name": "unet"}}))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path / "b.yaml", "data: [unclosed"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(_write(tmp_path / "c.yaml", "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_save_then_load_round_trip(tmp_path):
    cfg = load_config(_write(tmp_path / "t.yaml", {**_minimal(), "preprocess": {"context_slices": 2}}))
    save_config(cfg, tmp_path / "out" / "config.yaml")
    again = load_config(tmp_path / "out" / "config.yaml")
    assert again == cfg
    assert again.preprocess.in_channels == 5


def test_zscore_statistics_both_or_neither():
    with pytest.raises(ConfigError, match="zscore_mean"):
        validate_config({"zscore_mean": 1.0}, PreprocessConfig, "x")
    assert validate_config({"zscore_mean": 1.0, "zscore_std": 2.0}, PreprocessConfig, "x").needs_statistics is False


def test_shipped_example_configs_validate():
    from cervseg.study.config import StudyConfig, load_study_config

    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert configs, "configs/ holds the example training configs"
    for path in configs:
        if path.name.startswith("study_"):  # `cervseg study` configs (tests/study/test_plan.py expands them)
            assert isinstance(load_study_config(path), StudyConfig)
        else:
            assert isinstance(load_config(path), TrainConfig)


def test_node_config_resolves_paths_and_refuses_bad_ae_titles(tmp_path):
    from cervseg.config import NodeConfig

    cfg = load_config(REPO / "configs" / "node" / "node.yaml", NodeConfig)
    assert cfg.spool == REPO / "configs" / "node" / "spool" and cfg.model_path is None
    assert [d.describe() for d in cfg.destinations] == ["TPS@127.0.0.1:11113"]
    custom = load_config(_write(tmp_path / "n.yaml", {"allowed_calling_aets": ["CT1"], "model": "ckpt"}), NodeConfig)
    assert custom.model_path == tmp_path / "ckpt" and custom.output_folder is None
    for change, field in [({"ae_title": "A_TITLE_TOO_LONG_"}, "1 to 16"), ({"allowed_calling_aets": []}, "allowed_calling_aets"),
                          ({"allowed_calling_aets": ["BAD\\AE"]}, "backslash"), ({"port": 0}, "port"),
                          ({"destinations": [{"ae_title": "TPS", "host": "h"}]}, "destinations.0.port"),
                          ({"quiet": 5}, "quiet: unknown key")]:
        data = {"allowed_calling_aets": ["CT1"], **change}
        with pytest.raises(ConfigError) as err:
            load_config(_write(tmp_path / "bad.yaml", data), NodeConfig)
        assert str(err.value).startswith(f"{tmp_path / 'bad.yaml'}: ") and field in str(err.value)
        assert "\n" not in str(err.value)


def test_new_configs_get_the_millimetre_plan_old_ones_keep_their_pixels():
    new = PreprocessConfig()
    assert new.millimetre_plan and (new.spacing_mm, new.crop_mm, new.crop_pixels) == (1.0, 512.0, 512)
    old = validate_config({"crop_size": 80}, PreprocessConfig, "x")  # a config from before the plan
    assert not old.millimetre_plan and old.crop_pixels == 80
    assert validate_config({"crop_size": None}, PreprocessConfig, "x").crop_pixels is None
    with pytest.raises(ConfigError, match="crop_size \\(pixels\\) belongs to the pixel plan"):
        validate_config({"crop_size": 80, "spacing_mm": 1.0}, PreprocessConfig, "x")
    with pytest.raises(ConfigError, match="crop_mm needs spacing_mm"):
        validate_config({"spacing_mm": None, "crop_mm": 300}, PreprocessConfig, "x")
    paper000 = load_config(REPO / "configs" / "cab_se_unet_paper000.yaml").preprocess
    paper001 = load_config(REPO / "configs" / "resau_net_paper001.yaml").preprocess
    assert paper000.crop_pixels == 512 and paper001.crop_pixels == 256
