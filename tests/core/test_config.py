from pathlib import Path

import pytest

from medsent.core.config import RunConfig, build_config, load_yaml
from medsent.core.errors import ConfigError


def test_defaults_are_valid_and_visible() -> None:
    cfg = RunConfig()
    assert cfg.clean.min_words == 3 and cfg.clean.max_words == 2000
    assert cfg.split.val_frac == 0.1 and cfg.split.test_frac == 0.2


def test_later_layers_override_earlier_ones_key_by_key() -> None:
    cfg = build_config({"svm": {"C": 0.5, "min_df": 3}}, {"svm": {"C": 2.0}})
    assert cfg.svm.C == 2.0 and cfg.svm.min_df == 3


@pytest.mark.parametrize(
    "layer, field",
    [
        ({"svm": {"C": -1}}, "svm.C"),
        ({"clean": {"min_words": 10, "max_words": 5}}, "clean"),
        ({"split": {"val_frac": 0.5, "test_frac": 0.5}}, "split"),
        ({"data": {"rating": {"negative_max": 4, "positive_min": 3}}}, "data.rating"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"textcnn": {"kernel_sizes": "avg"}}, "textcnn.kernel_sizes"),
    ],
)
def test_impossible_values_are_one_line_config_errors(layer: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(layer)
    assert field in str(err.value) and "\n" not in str(err.value)


def test_yaml_is_read_safely_and_errors_are_clear(tmp_path: Path) -> None:
    good = tmp_path / "c.yaml"
    good.write_text("svm:\n  C: 0.3\n")
    assert build_config(load_yaml(good)).svm.C == 0.3
    evil = tmp_path / "evil.yaml"
    evil.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(evil)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(listy)
