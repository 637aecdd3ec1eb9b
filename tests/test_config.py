"""Bad configuration values get one-line errors that name the fix."""

from __future__ import annotations

import pytest
from conftest import fewshot_config, harness_cli

from harness.config import build_config, load_toml
from harness.errors import ConfigError
from harness.runner import prepare


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model": "knn", "ways": -3}, "ways in test must be at least 2, got -3"),
        ({"model": "knn", "shots": 0}, "shots in test must be at least 1, got 0"),
        ({"model": "knn", "episodes": -1}, "episodes in test must not be negative"),
        ({"model": "knn", "wyas": 5}, "unknown key 'wyas' in test; did you mean 'ways'?"),
        ({"model": "knn", "ways": "5"}, "ways in test must be int, got '5'"),
        ({"model": "knn", "augment": 1}, "augment in test must be bool, got 1"),
        ({"model": "knn", "kind": "fewshoot"}, "did you mean 'fewshot'?"),
        ({"model": "knn", "labels": "strings"}, "did you mean 'string'?"),
        ({"model": "knn", "kind": "fewshot", "labels": "string"}, "string labels apply to sequence episodes only"),
        ({"ways": 5}, "no model given in test; pass --model NAME"),
        ({"model": "knn", "params": 3}, "params in test must be a table"),
    ],
)
def test_bad_values(values, message):
    with pytest.raises(ConfigError, match=None) as err:
        build_config(values, "test")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"shots": 25},
            "shots + queries = 27 per class, but synthetic has only 20 examples of each class; lower shots",
        ),
        ({"ways": 20}, "ways=20 is more than the 10 classes in synthetic split 'test'; lower ways"),
        ({"params": {"lrr": 0.1}}, "model 'weighted-protonet' has no parameter 'lrr'; did you mean 'lr'?"),
        ({"data": {"exampels": 5}}, "dataset 'synthetic' has no option 'exampels'; did you mean 'examples'?"),
        ({"kind": "sequence"}, "accepts only fewshot episodes, not sequence"),
        ({"metrics": ("accuracy_per_instance",)}, "metric 'accuracy_per_instance' does not apply to fewshot episodes"),
        ({"model": "knnn"}, "unknown model 'knnn'; did you mean 'knn'?"),
        ({"dataset": "omniglotx"}, "unknown dataset 'omniglotx'"),
        ({"metrics": ("acuracy",)}, "unknown metric 'acuracy'; did you mean 'accuracy'?"),
    ],
)
def test_values_checked_against_plugins_and_data(protonet_host, overrides, message):
    with pytest.raises(ConfigError) as err:
        prepare(fewshot_config(**overrides), protonet_host)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_kind_must_be_chosen_when_the_model_takes_both(host):
    with pytest.raises(ConfigError, match="accepts sequence and fewshot episodes; choose one with --kind"):
        prepare(build_config({"model": "knn"}), host)


def test_toml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("model = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_toml(bad)


def test_cli_errors_are_one_line_with_exit_status_2(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('model = "knn"\nkind = "fewshot"\nwyas = 5\n')
    for args, message in [
        (["run", "--config", str(config)], f"unknown key 'wyas' in {config}; did you mean 'ways'?"),
        (["run", "--model", "knn", "--kind", "fewshot", "--ways", "-2"], "ways in flags must be at least 2"),
        (["run", "--model", "knn", "--kind", "fewshot", "--shots", "30"], "lower shots"),
        (["evaluate", "--checkpoint", str(tmp_path / "nope.pkl")], "does not exist"),
    ]:
        result = harness_cli(*args, "--out", str(tmp_path)) if args[0] == "run" else harness_cli(*args)
        assert result.returncode == 2
        assert result.stderr.startswith("harness: error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1


def test_cli_run_from_toml_with_flag_overrides(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('model = "knn"\nkind = "sequence"\nways = 5\neval_episodes = 32\n[params]\nk = 1\n')
    result = harness_cli("run", "--config", str(config), "--labels", "string", "--out", str(tmp_path), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "knn on synthetic (5-way x10 string), 0 episodes trained" in result.stdout
    assert "accuracy_per_instance 10th" in result.stdout
    assert (tmp_path / "knn-synthetic-sequence-5w10i-string-seed0" / "record.json").exists()
