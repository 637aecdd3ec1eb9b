"""Bad configuration values get one-line errors that name the fix."""

from __future__ import annotations

import re

import pytest
from conftest import fewshot_config, harness_cli

from harness.config import build_config, did_you_mean, load_toml
from harness.errors import ConfigError
from harness.prepare import prepare


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
        ({"model": "knn", "metrics": 5}, "metrics in test must be a list of metric names"),
        ({"model": "knn", "metrics": "accuracy"}, "metrics in test must be a list of metric names"),
        ({"model": "knn", "metrics": {"accuracy": 1}}, "metrics in test must be a list of metric names"),
        ({"model": "knn", "init_from": 3}, "init_from in test must be str, got 3"),
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
            "shots + queries = 27 per class, but synthetic has only 20 examples of each class; lower shots or queries",
        ),
        ({"ways": 20}, "ways=20 is more than the 10 classes in synthetic split 'test'; lower ways"),
        ({"params": {"lrr": 0.1}}, "model 'weighted-protonet' has no parameter 'lrr'; did you mean 'lr'?"),
        ({"data": {"exampels": 5}}, "dataset 'synthetic' has no option 'exampels'; did you mean 'examples'?"),
        ({"kind": "sequence"}, "accepts only fewshot episodes, not sequence"),
        ({"metrics": ("accuracy_per_instance",)}, "metric 'accuracy_per_instance' does not apply to fewshot episodes"),
        ({"model": "knnn"}, "unknown model 'knnn'; did you mean 'knn'?"),
        ({"dataset": "omniglotx"}, "unknown dataset 'omniglotx'"),
        ({"metrics": ("acuracy",)}, "unknown metric 'acuracy'; did you mean 'accuracy'?"),
        ({"metrics": ("accuracy", "accuracy")}, "metric 'accuracy' is given more than once; give each --metric once"),
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
        (["run", "--model", "knn", "--kind", "fewshot", "--ways", "-2"], "--ways must be at least 2"),
        (["run", "--model", "knn", "--kind", "fewshot", "--shots", "30"], "lower shots"),
        (["evaluate", "--checkpoint", str(tmp_path / "nope.pkl")], "does not exist"),
    ]:
        result = harness_cli(*args, "--out", str(tmp_path)) if args[0] == "run" else harness_cli(*args)
        assert result.returncode == 2
        assert result.stderr.startswith("harness: error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1


def test_an_error_names_the_flag_or_the_file_the_value_came_from(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('model = "knn"\nkind = "fewshot"\nseed = -1\n')
    for flags, message in [
        ([], f"seed in {config} must not be negative, got -1"),
        (["--seed", "-2"], "--seed must not be negative, got -2"),
        (["--seed", "0", "--eval-episodes", "0"], "--eval-episodes must be at least 1, got 0"),
        (
            ["--seed", "0", "--device", "gpu"],
            "--device must be auto, cpu, cuda, cuda:N (N from 0 to 127) or mps, got 'gpu'; did you mean 'cuda'?",
        ),
    ]:
        result = harness_cli("run", "--config", str(config), *flags, "--out", str(tmp_path / "out"))
        assert (result.returncode, result.stderr) == (2, f"harness: error: {message}\n")
    assert not (tmp_path / "out").exists()


def test_cli_run_from_toml_with_flag_overrides(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('model = "knn"\nkind = "sequence"\nways = 5\neval_episodes = 32\n[params]\nk = 1\n')
    result = harness_cli("run", "--config", str(config), "--labels", "string", "--out", str(tmp_path), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "knn on synthetic (5-way x10 string), 0 episodes trained" in result.stdout
    assert "accuracy_per_instance 10th" in result.stdout
    assert (tmp_path / "knn-synthetic-sequence-5w10i-string-seed0" / "record.json").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"params": {"lr": "abc"}}, "model 'weighted-protonet' parameter lr must be a finite float (or an int) like "
                                    "its default 0.05, got 'abc'"),
        ({"params": {"nan_after": 1.5}}, "parameter nan_after must be an int like its default 0, got 1.5"),
        ({"params": {"nan_after": True}}, "parameter nan_after must be an int like its default 0, got True"),
        ({"params": {"nan_after": [1, 2]}}, "parameter nan_after must be an int like its default 0, got [1, 2]"),
        ({"data": {"noise": "abc"}}, "dataset 'synthetic' option noise must be a finite float (or an int) like its "
                                     "default 0.05, got 'abc'"),
        ({"data": {"noise": float("nan")}}, "option noise must be a finite float (or an int) like its default 0.05, "
                                            "got nan"),
        ({"data": {"noise": float("-inf")}}, "option noise must be a finite float (or an int) like its default 0.05, "
                                             "got -inf"),
        ({"params": {"lr": 10**400}}, f"parameter lr must be a finite float (or an int) like its default 0.05, got "
                                      f"{10**400}"),  # past the largest float
        ({"data": {"image_size": 100000}}, "dataset 'synthetic' option image_size must be at most 512, got 100000"),
        ({"data": {"seed": -1}}, "dataset 'synthetic' option seed must be at least 0, got -1"),
        ({"test_dataset": "synthetic", "test_data": {"seed": -3}},
         "dataset 'synthetic' option seed must be at least 0, got -3"),
    ],
)  # fmt: skip
def test_params_and_data_options_are_checked_against_their_defaults(protonet_host, overrides, message):
    with pytest.raises(ConfigError) as err:
        prepare(fewshot_config(**overrides), protonet_host)
    assert str(err.value).endswith(message) and str(err.value).startswith("model" if "params" in overrides else "data")


def test_option_types_follow_the_default():
    from harness.config import merge_options

    defaults = {"n": 1, "rate": 0.5, "flag": False, "name": "a", "anything": None}
    given = {"n": 2, "rate": 1, "flag": True, "name": "b", "anything": [1, "x"]}
    assert merge_options(defaults, given, "model 'm'", "parameter") == given
    for key, value, expected in [("flag", "yes", "a bool (true or false)"), ("name", 3, "a str")]:
        with pytest.raises(ConfigError, match=rf"model 'm' parameter {key} must be {re.escape(expected)}"):
            merge_options(defaults, {key: value}, "model 'm'", "parameter")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_size": 5000}, "batch_size in test must be at most 4,096, got 5,000"),
        ({"eval_episodes": 2_000_000}, "eval_episodes in test must be at most 1,000,000, got 2,000,000"),
        ({"seed": 2**64}, "seed in test must be at most 4,294,967,295, got 18,446,744,073,709,551,616"),
        ({"eval_seed": 2**32}, "eval_seed in test must be at most 4,294,967,295, got 4,294,967,296"),
    ],
)
def test_sizes_above_their_bound_are_refused(values, message):
    with pytest.raises(ConfigError) as err:
        build_config({"model": "knn", **values}, "test")
    assert str(err.value) == message


def test_cli_refuses_a_mistyped_param_before_any_work(tmp_path):
    for args, message in [
        (["--param", "k=abc"], "model 'knn' parameter k must be an int like its default 1, got 'abc'"),
        (["--param", "k=[1,2]"], "got [1, 2]"),
        (["--data", "noise=abc"], "dataset 'synthetic' option noise must be a finite float (or an int)"),
        (["--data", "noise=nan"], "dataset 'synthetic' option noise must be a finite float (or an int)"),
        (["--param", "k=inf"], "model 'knn' parameter k must be an int like its default 1, got inf"),
        (["--batch-size", "100000"], "--batch-size must be at most 4,096"),
        (
            ["--dataset", "omniglot", "--data", "cache_dir=5"],
            "dataset 'omniglot' option cache_dir must be a folder's path, got 5; quote it as text",
        ),
        (["--dataset", "omniglot", "--data", "root=true"], "option root must be a folder's path, got True"),
        (
            ["--data", "train_classes=100000000"],
            "synthetic dataset options make 1,568,000,752,640 pixels, over the 268,435,456 it generates in memory; "
            "lower train_classes, val_classes, test_classes, examples or image_size",
        ),
    ]:
        result = harness_cli("run", "--model", "knn", "--kind", "fewshot", *args, "--out", str(tmp_path))
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("values", "most", "offered"),
    [
        ({"kind": "fewshot", "ways": 5, "shots": 2}, 10, "5-way 2-shot episodes (their support examples)"),
        ({"kind": "sequence", "instances": 10}, 49, "5-way x10 onehot episodes (their steps before the last one)"),
    ],
)
def test_knn_refuses_more_neighbours_than_an_episode_offers(host, values, most, offered):
    prepare(build_config({"model": "knn", **values, "params": {"k": most}}, "test"), host).build_model()
    with pytest.raises(ConfigError) as err:
        prepare(build_config({"model": "knn", **values, "params": {"k": most + 1}}, "test"), host).build_model()
    expected = f"knn parameter k must be at most {most} for {offered}, got {most + 1}; pass --param k={most} or less"
    assert str(err.value) == expected


MINUS = "\u2212"  # the sign in the paper's row label MetaNet\u2212, which keyboards do not have


@pytest.mark.parametrize(
    ("name", "choices", "suggested"),
    [
        ("MetaNet-", ["MetaNet", f"MetaNet{MINUS}"], f"; did you mean 'MetaNet{MINUS}' ('{MINUS}' is U+2212)?"),
        ("mann (lstm)", ["MANN (LSTM)", "LSTM"], "; did you mean 'MANN (LSTM)'?"),
        (
            "20way",
            ["5-way 1-shot", "20-way 1-shot (standard split)", "20-way 1-shot"],
            "; did you mean '20-way 1-shot'?",
        ),
        ("protnet", ["protonet", "knn"], "; did you mean 'protonet'?"),
        ("zzz", ["protonet", "knn"], ""),
        ("5", ["5-way 1-shot"], ""),
    ],
)
def test_did_you_mean_forgives_case_spaces_and_dash_signs_and_names_a_sign_hard_to_type(name, choices, suggested):
    assert did_you_mean(name, choices) == suggested
