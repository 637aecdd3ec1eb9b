"""Metrics stay out of other runs: a resumed run keeps its metric list, a metric scores only its datasets."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fewshot_config, killed_after
from harness_test_plugins.weighted_protonet import WeightedProtoNet

from harness import hookimpl
from harness.builtins.synthetic import OPTIONS, open_synthetic
from harness.episodes import EpisodeBatch, EpisodeKind, Prediction
from harness.errors import ConfigError
from harness.runner import run
from harness.specs import DatasetSpec, MetricSpec

QUIET = {"log": lambda _: None}
BUILTIN_FEWSHOT = {"accuracy", "nway_kshot_accuracy"}


def errors(batch: EpisodeBatch, prediction: Prediction) -> dict[str, np.ndarray]:
    """Per episode, the number of wrong predictions."""
    return {"errors": (prediction.labels != batch.targets).sum(axis=1).astype(float)}


class ErrorsMetric:
    """A third-party metric plugin: ``errors``, on the datasets given (every one when empty)."""

    def __init__(self, datasets: tuple[str, ...] = ()) -> None:
        self.datasets = datasets

    @hookimpl
    def harness_metrics(self) -> list[MetricSpec]:
        return [
            MetricSpec("errors", "Wrong predictions.", False, (EpisodeKind.FEWSHOT,), errors, datasets=self.datasets)
        ]


class OtherSynthetic:
    """A second dataset: the synthetic one under another name."""

    @hookimpl
    def harness_datasets(self) -> list[DatasetSpec]:
        return [
            DatasetSpec(
                "other", "synthetic again", ("train", "val", "test"), (EpisodeKind.FEWSHOT,), open_synthetic, OPTIONS
            )
        ]


def interrupt_run(host, tmp_path, monkeypatch) -> None:
    """Start run ``r`` of ``fewshot_config()`` and stop it at episode 56, after its checkpoint at 48."""
    killed_after(7, WeightedProtoNet, fewshot_config(), host, tmp_path / "r", monkeypatch)
    assert not (tmp_path / "r" / "record.json").exists()


def test_installing_a_metric_plugin_leaves_existing_runs_resumable(protonet_host, tmp_path, monkeypatch):
    interrupt_run(protonet_host, tmp_path, monkeypatch)
    protonet_host.register(ErrorsMetric(), "errors-plugin")
    record = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    assert record["resumes"] == 1 and record["episodes_trained"] == 96
    assert set(record["metrics"]) == BUILTIN_FEWSHOT == set(record["config"]["metrics"])
    assert run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)["metrics"] == record["metrics"]
    fresh = run(fewshot_config(), protonet_host, tmp_path, name="fresh", **QUIET)
    assert set(fresh["metrics"]) == BUILTIN_FEWSHOT | {"errors"}
    asked = run(fewshot_config(metrics=["errors"]), protonet_host, tmp_path, name="r", **QUIET)
    assert set(asked["metrics"]) == {"errors"} and asked["loss_history"] == record["loss_history"], "tested again"
    assert run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)["metrics"] == asked["metrics"]


def test_a_run_whose_metric_plugin_is_gone_resumes_only_with_metrics_named(protonet_host, tmp_path, monkeypatch):
    with protonet_host.registered(ErrorsMetric(), "errors-plugin"):
        interrupt_run(protonet_host, tmp_path, monkeypatch)
    with pytest.raises(
        ConfigError, match=r"scored with metric 'errors', which no installed plugin provides; .*--metric NAME"
    ):
        run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    record = run(fewshot_config(metrics=["accuracy"]), protonet_host, tmp_path, name="r", **QUIET)
    assert record["resumes"] == 1 and set(record["metrics"]) == {"accuracy"}


def test_a_dataset_scoped_metric_stays_out_of_other_datasets_records(protonet_host, tmp_path):
    protonet_host.register(ErrorsMetric(datasets=("other",)), "errors-plugin")
    protonet_host.register(OtherSynthetic(), "other-plugin")
    small = {"train_classes": 30, "val_classes": 5, "test_classes": 10}
    synthetic = run(fewshot_config(episodes=16), protonet_host, tmp_path, **QUIET)
    other = run(fewshot_config(episodes=16, dataset="other", data=small), protonet_host, tmp_path, **QUIET)
    assert set(synthetic["metrics"]) == BUILTIN_FEWSHOT
    assert set(other["metrics"]) == BUILTIN_FEWSHOT | {"errors"} and other["metrics"]["errors"]["errors"]["n"] == 64
    tested_on_other = fewshot_config(episodes=16, test_dataset="other", test_data=small)
    assert set(run(tested_on_other, protonet_host, tmp_path, **QUIET)["metrics"]) == BUILTIN_FEWSHOT | {"errors"}
    run(fewshot_config(episodes=16), protonet_host, tmp_path, name="r", **QUIET)
    retested = run(tested_on_other, protonet_host, tmp_path, name="r", **QUIET)  # the same model, tested again
    assert retested["test_dataset"] == "other" and set(retested["metrics"]) == BUILTIN_FEWSHOT | {"errors"}
    with pytest.raises(
        ConfigError, match=r"^metric 'errors' scores only datasets other, not 'synthetic'; drop --metric"
    ):
        run(fewshot_config(metrics=["errors"]), protonet_host, tmp_path, **QUIET)


def test_a_metric_given_one_dataset_name_as_a_string_is_refused(host):
    host.register(ErrorsMetric(datasets="other"), "errors-plugin")  # type: ignore[arg-type]
    assert "errors" not in host.metrics
    assert host.problems() == [
        "plugin 'errors-plugin' failed in hook harness_metrics: "
        "TypeError: metric 'errors': datasets must be a tuple of names, e.g. ('other',)"
    ]
