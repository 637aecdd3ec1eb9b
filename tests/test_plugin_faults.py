"""A dataset or metric plugin that raises, exits or answers what the harness cannot use stops a run in one line.

The line names the dataset or metric and its plugin, like a failing model's (``test_model_errors``);
nothing is recorded. Records are strict JSON: a mean or interval that is not a finite number is ``null``.
"""

from __future__ import annotations

import json

import pytest
from conftest import harness_cli
from harness_test_plugins import faulty_dataset, faulty_metric

from harness import leaderboard, per_episode
from harness.config import build_config
from harness.errors import ConfigError, EpisodeCountError, HarnessError
from harness.guard import DatasetError, MetricError
from harness.plugins import PluginHost
from harness.runner import run

QUIET = {"log": lambda _: None}
DATASET = "dataset 'faulty' (plugin 'faulty-data')"
METRIC = "metric 'faulty_metric' (plugin 'faulty-metric')"
UNUSABLE = "; fix the dataset plugin"


def knn_config(**values):
    """Two batches of four few-shot test episodes for ``knn``, which has nothing to train."""
    return build_config({"model": "knn", "kind": "fewshot", "eval_episodes": 8, "batch_size": 4, **values}, "test")


def failure(host, config, tmp_path, error: type[HarnessError]) -> str:
    """The one-line message of the ``error`` a run of ``config`` stops with, having recorded nothing."""
    with pytest.raises(error) as err:
        run(config, host, tmp_path, name="r", **QUIET)
    assert "\n" not in str(err.value) and not (tmp_path / "r" / "record.json").exists()
    return str(err.value)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("factory", f"{DATASET} failed in its factory: ValueError: cannot open the archive"),
        ("factory_exit", f"{DATASET} failed in its factory: SystemExit: 3"),
        ("check", f"{DATASET} failed in check: KeyError: 'test'"),
        ("count_raise", f"{DATASET} failed in episode_count: RuntimeError: index file missing"),
        ("count_str", f"{DATASET}: episode_count('test') returned '12', not an int >= 0 or None{UNUSABLE}"),
        ("count_negative", f"{DATASET}: episode_count('test') returned -3, not an int >= 0 or None{UNUSABLE}"),
        ("count_float", f"{DATASET}: episode_count('test') returned 2.5, not an int >= 0 or None{UNUSABLE}"),
        ("fingerprint_raise", f"{DATASET} failed in fingerprint: RuntimeError: digest unavailable"),
        ("fingerprint_int", f"{DATASET}: fingerprint() returned 7, not a string of 1-200 characters or None"
                            f"{UNUSABLE}"),
        ("fingerprint_long", f"{DATASET}: fingerprint() returned '{'x' * 79}, not a string of 1-200 characters "
                             f"or None{UNUSABLE}"),
        ("shape", f"{DATASET}: input_shape() returned (28, 28), not (channels, height, width) as positive ints"
                  f"{UNUSABLE}"),
        ("sample_exit", f"{DATASET} failed in sample: SystemExit: 0"),
        ("fewer", f"{DATASET}: sample returned a batch of 3 test episodes for the 4 asked for; it must return one "
                  f"episode per index, in the order given{UNUSABLE}"),
        ("more", f"{DATASET}: sample returned a batch of 5 test episodes for the 4 asked for; it must return one "
                 f"episode per index, in the order given{UNUSABLE}"),
    ],
)  # fmt: skip
def test_a_faulty_dataset_is_one_line_naming_dataset_and_plugin(host, tmp_path, mode, message):
    with host.registered(faulty_dataset, "faulty-data"):
        config = knn_config(dataset="faulty", data={"mode": mode})
        assert failure(host, config, tmp_path, DatasetError) == message


def test_a_split_without_episodes_is_called_empty(host, tmp_path):
    with host.registered(faulty_dataset, "faulty-data"):
        config = knn_config(dataset="faulty", data={"mode": "count_zero"})
        assert failure(host, config, tmp_path, EpisodeCountError) == (
            "dataset 'faulty' holds no test episodes: its test split is empty; "
            "give that split episodes or use another dataset"
        )


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("raise", f"{METRIC} failed in per_episode: ZeroDivisionError: division by zero"),
        ("exit", f"{METRIC} failed in per_episode: SystemExit: 0"),
        ("none", f"{METRIC}: per_episode returned NoneType, not a dict of one value per episode under each key"),
        ("list", f"{METRIC}: per_episode returned list, not a dict of one value per episode under each key"),
        ("strings", f"{METRIC} returned values for key 'right' that are not numbers (list); return one float"),
        ("slash", f"{METRIC}: per_episode returned the key '../../x'; keys must be non-empty strings without '/'"),
        ("int_key", f"{METRIC}: per_episode returned the key 3; keys must be non-empty strings"),
        ("aggregate", f"{METRIC} failed in aggregate (key 'right'): RuntimeError: no values"),
        ("summary", f"{METRIC}: aggregate returned dict for key 'right', not a harness.specs.Summary"),
    ],
)
def test_a_faulty_metric_is_one_line_naming_metric_and_plugin(host, tmp_path, monkeypatch, mode, message):
    monkeypatch.setenv(faulty_metric.ENV, mode)
    with host.registered(faulty_metric, "faulty-metric"):
        assert failure(host, knn_config(metrics=["faulty_metric"]), tmp_path, MetricError).startswith(message)


@pytest.mark.parametrize(
    ("plugin", "args", "message"),
    [
        ("faulty_metric", ["--metric", "faulty_metric"], "metric 'faulty_metric' (plugin "
                                                         "'harness_test_plugins.faulty_metric') failed in per_episode"),
        ("faulty_dataset", ["--dataset", "faulty", "--data", "mode=factory_exit"],
         "dataset 'faulty' (plugin 'harness_test_plugins.faulty_dataset') failed in its factory: SystemExit: 3"),
    ],
)  # fmt: skip
def test_cli_exits_2_with_one_line_when_a_plugin_calls_sys_exit(tmp_path, plugin, args, message):
    env = {"HARNESS_PLUGINS": f"harness_test_plugins.{plugin}", faulty_metric.ENV: "exit"}
    result = harness_cli("run", "--model", "knn", "--kind", "fewshot", "--eval-episodes", "4", *args,
                         "--out", str(tmp_path), "--name", "r", "--no-progress", env=env)  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"harness: error: {message}") and not (tmp_path / "r" / "record.json").exists()


def test_a_run_with_no_metric_to_score_it_is_refused_before_any_work(tmp_path):
    host = PluginHost(autoload=False, modules=[], strict=False, blocked=["harness.builtins.metrics"])
    assert failure(host, knn_config(), tmp_path, ConfigError) == (
        "no installed metric scores fewshot episodes of dataset 'synthetic', so the run would record no results; "
        "install or unblock a metric plugin ('harness plugins' lists them)"
    )


def _strict(text: str) -> dict:
    """``text`` parsed as strict JSON: ``NaN`` and ``Infinity`` refused."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in strict JSON"))


def test_infinite_values_are_null_in_a_strict_json_record_and_kept_per_episode(host, tmp_path, monkeypatch):
    monkeypatch.setenv(faulty_metric.ENV, "inf")
    with host.registered(faulty_metric, "faulty-metric"):
        record = run(knn_config(metrics=["faulty_metric"]), host, tmp_path, name="r", **QUIET)
    written = _strict((tmp_path / "r" / "record.json").read_text())
    assert written["metrics"] == record["metrics"] == {"faulty_metric": {"right": {"mean": None, "ci95": None, "n": 8}}}
    assert per_episode.load(tmp_path / "r").values["faulty_metric"]["right"].tolist() == [float("inf")] * 8


def test_one_test_episode_has_no_interval_and_says_so(tmp_path):
    result = harness_cli("run", "--model", "knn", "--kind", "fewshot", "--eval-episodes", "1", "--metric", "accuracy",
                         "--out", str(tmp_path), "--name", "one", "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    accuracy = _strict((tmp_path / "one" / "record.json").read_text())["metrics"]["accuracy"]["accuracy"]
    assert accuracy["ci95"] is None and accuracy["n"] == 1
    assert f"  accuracy: {100 * accuracy['mean']:.2f}% (n=1)\n" in result.stdout


def test_the_leaderboard_reads_a_run_without_an_interval(host, tmp_path):
    from harness_test_plugins import toy_table

    with host.registered(toy_table, "toy-plugin"):
        table = host.tables.get("toy-table")
    folder = tmp_path / "toy-table/quick/toy-protonet/5-way-1-shot/seed0"
    folder.mkdir(parents=True)
    cell = {"table": "toy-table", "row": "Toy ProtoNet", "setting": "5-way 1-shot", "seed": 0, "budget": "quick"}
    (folder / "cell.json").write_text(json.dumps(cell))
    record = {
        "status": "complete", "episodes_trained": 64, "provenance": {"git": {"commit": "abc", "dirty": False}},
        "config": {"model": "toy-protonet", "metrics": ["nway_kshot_accuracy"]},
        "metrics": {"nway_kshot_accuracy": {"5-way 1-shot": {"mean": 0.4, "ci95": None, "n": 1}}},
    }  # fmt: skip
    (folder / "record.json").write_text(json.dumps(record))
    (ours,) = leaderboard.our_results(table, tmp_path)
    assert ours["value"] == 40.0 and ours["text"] == "40.0"


def test_a_dataset_without_a_fingerprint_is_recorded_as_giving_none(host, tmp_path):
    with host.registered(faulty_dataset, "faulty-data"):
        record = run(knn_config(dataset="faulty", data={"mode": "ok"}), host, tmp_path, name="r", **QUIET)
    assert record["provenance"]["data"] == {"dataset": None, "test_dataset": None}
