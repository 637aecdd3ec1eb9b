"""The model contract: what a model sees, what it may answer, validation, keep = best and patience."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import fewshot_config
from harness_test_plugins import contract_models

from harness import hookimpl
from harness.builtins import synthetic as builtin_synthetic
from harness.builtins.synthetic import OPTIONS, make_splits
from harness.config import build_config
from harness.episodes import EpisodeKind, EpisodeSettings, Prediction
from harness.errors import ConfigError, HarnessError
from harness.evaluation import as_prediction
from harness.runner import run
from harness.sampling import ArrayEpisodeSource
from harness.specs import DatasetSpec, ModelSpec

QUIET = {"log": lambda _: None}
SEQ = EpisodeSettings(EpisodeKind.SEQUENCE, ways=5, instances=10)
FEW = EpisodeSettings(EpisodeKind.FEWSHOT, ways=5, shots=1, queries=3)


@pytest.fixture
def host(host):
    host.register(contract_models, "contract-models")
    return host


def _accuracy(record: dict) -> float:
    return record["metrics"]["accuracy"]["accuracy"]["mean"]


def sequence_config(model: str, **overrides) -> object:
    values = {"model": model, "kind": "sequence", "ways": 5, "instances": 10, "eval_episodes": 200, "episodes": 0}
    return build_config({**values, **overrides}, "test")


def test_inputs_hold_nothing_of_the_targets():
    source = ArrayEpisodeSource(make_splits(OPTIONS))
    rngs = [np.random.default_rng(i) for i in range(2)]
    sequence, fewshot = source.sample("test", SEQ, rngs).inputs(), source.sample("test", FEW, rngs).inputs()
    for hidden in ("targets", "codes", "classes", "instance"):
        assert not hasattr(sequence, hidden)
    assert not hasattr(fewshot, "query_targets") and not hasattr(fewshot, "targets")
    assert {f.name for f in dataclasses.fields(sequence)} == {"settings", "images", "previous_codes"}


def test_a_model_copying_support_labels_scores_chance(host, tmp_path):
    record = run(fewshot_config(model="copy-support", eval_episodes=400, queries=3), host, tmp_path, **QUIET)
    assert abs(_accuracy(record) - 0.2) < 0.05


def test_a_model_repeating_the_shown_label_scores_no_better_than_chance(host, tmp_path):
    record = run(sequence_config("previous-label"), host, tmp_path, **QUIET)
    # The shown label is the previous step's: the same class again with chance 9/49 < 1/5.
    assert _accuracy(record) < 0.22


def test_a_model_reading_later_steps_is_refused(host, tmp_path):
    with pytest.raises(
        HarnessError,
        match=r"model 'lookahead' \(plugin 'contract-models'\) predicts step \d+ differently.*reads later steps",
    ):
        run(sequence_config("lookahead"), host, tmp_path, **QUIET)
    assert not (tmp_path / "lookahead-synthetic-sequence-5w10i-onehot-seed0" / "record.json").exists()


def test_knn_reads_earlier_labels_only_and_still_works(host, tmp_path):
    record = run(sequence_config("knn"), host, tmp_path, **QUIET)
    per_instance = record["metrics"]["accuracy_per_instance"]
    assert per_instance["1st"]["mean"] < 0.3 and per_instance["2nd"]["mean"] > 0.9


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (np.full((2, 3), 5), r"predicted label 5, outside 0..4"),
        (np.full((2, 3), -1), r"predicted label -1, outside 0..4"),
        (np.full((2, 3), np.nan), r"not integers"),
        (np.zeros((2, 4), dtype=np.int64), r"predicted shape \(2, 4\), expected \(2, 3\)"),
        (np.full((2, 3, 5), np.nan), r"predicted NaN scores, which would count as label 0"),
        (Prediction(np.zeros((2, 3), dtype=np.int64), np.full((2, 3, 5), np.nan)), r"predicted NaN scores"),
    ],
)
def test_bad_predictions_are_refused_in_one_line(output, message):
    with pytest.raises(HarnessError, match=message) as err:
        as_prediction(output, (2, 3), FEW, "m")
    assert "\n" not in str(err.value)


def test_scores_become_labels_and_are_kept():
    scores = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    prediction = as_prediction(scores, (2, 3), FEW, "m")
    np.testing.assert_array_equal(prediction.labels, scores.argmax(-1))
    assert prediction.scores is scores
    given = Prediction(np.ones((2, 3), dtype=np.int32), scores)
    assert as_prediction(given, (2, 3), FEW, "m").labels.dtype == np.int64


def test_keep_best_tests_the_model_of_the_best_validation(host, tmp_path):
    common = {"model": "scripted", "episodes": 48, "val_every": 8, "val_episodes": 40, "params": {"good_step": 3}}
    best = run(fewshot_config(**common, keep="best"), host, tmp_path, name="best", **QUIET)
    last = run(fewshot_config(**common), host, tmp_path, name="last", **QUIET)
    assert [episode for episode, _ in best["val_history"]] == [8, 16, 24, 32, 40, 48]
    accuracies = [accuracy for _, accuracy in best["val_history"]]
    assert int(np.argmax(accuracies)) == 2 and accuracies[2] > 0.8
    assert best["kept"] == {"which": "best", "episode": 24, "val_accuracy": accuracies[2]}
    assert last["kept"] == {"which": "last", "episode": 48}
    assert _accuracy(best) > 0.8 > 0.3 > _accuracy(last)
    from harness.checkpoint_eval import evaluate_checkpoint

    again = evaluate_checkpoint(tmp_path / "best" / "checkpoint.pkl", host)
    assert again["kept"] == "best" and again["kept_episode"] == 24 and again["metrics"] == best["metrics"]


def test_patience_stops_training_and_the_record_says_where(host, tmp_path):
    config = fewshot_config(model="scripted", episodes=96, val_every=8, val_episodes=40, patience=2, keep="best")
    record = run(config, host, tmp_path, name="r", **QUIET)
    assert record["stopped_early"] == {"at_episode": 40, "patience": 2}
    assert record["episodes_trained"] == 40 and record["val_history"][-1][0] == 40
    assert run(config, host, tmp_path, name="r", **QUIET)["episodes_trained"] == 40


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"keep": "best"},
            r"keep = 'best' \(keep in .*\) needs validation; set val_every in .* \(episodes between validations\)",
        ),
        ({"patience": 3}, r"patience in .* needs validation"),
        ({"keep": "first"}, r"keep in test must be one of last, best, got 'first'"),
        ({"precision": "fp16"}, r"precision in test must be one of fp32, bf16, got 'fp16'"),
        ({"device": "gpu"}, r"device in test must be auto, cpu, cuda, cuda:N \(N from 0 to 127\) or mps, got 'gpu'"),
        ({"device": "cpu:1"}, r"must be auto, cpu, cuda, cuda:N \(N from 0 to 127\) or mps"),
        ({"val_every": -8}, r"val_every in test must not be negative"),
    ],
)
def test_bad_run_options_are_one_line(values, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_config({"model": "knn", **values}, "test")
    assert "\n" not in str(err.value)


class NoValidation:
    """The synthetic dataset registered without a validation split."""

    @hookimpl
    def harness_datasets(self) -> list[DatasetSpec]:
        spec = dataclasses.replace(next(iter(builtin_synthetic.harness_datasets())), name="no-val", val_split=None)
        return [spec]


def test_validation_needs_a_validation_split(host, tmp_path):
    host.register(NoValidation(), "no-val")
    config = fewshot_config(model="scripted", dataset="no-val", val_every=8)
    with pytest.raises(ConfigError, match=r"dataset 'no-val' has no validation split; drop val_every"):
        run(config, host, tmp_path, **QUIET)
    missing = fewshot_config(model="scripted", val_every=8, data={"train_classes": 30, "val_classes": 2})
    with pytest.raises(ConfigError, match=r"ways=5 is more than the 2 classes in synthetic split 'val'"):
        run(missing, host, tmp_path, **QUIET)


class _RepeatLabel:
    """A trainable (if learning nothing) label-sequence model, so that runs of it validate."""

    @hookimpl
    def harness_models(self) -> list[ModelSpec]:
        """Register ``repeat-label``."""
        seq = (EpisodeKind.SEQUENCE,)
        return [ModelSpec("repeat-label", "Repeats the shown label (test).", seq, contract_models.PreviousLabel)]


def test_each_validation_records_its_training_time_and_sequence_accuracy_by_instance(host, tmp_path):
    host.register(_RepeatLabel(), "repeat-label")
    try:
        config = sequence_config("repeat-label", episodes=32, batch_size=8, val_every=16, val_episodes=24)
        record = run(config, host, tmp_path, name="seq", **QUIET)
    finally:
        host.unregister(name="repeat-label")
    detail = record["val_detail"]
    assert [entry["episode"] for entry in detail] == [episode for episode, _ in record["val_history"]] == [16, 32]
    assert 0 <= detail[0]["train_wall_time_s"] <= detail[1]["train_wall_time_s"] <= record["train_wall_time_s"]
    for entry, (_, accuracy) in zip(detail, record["val_history"], strict=True):
        assert len(entry["by_instance"]) == 10  # every class is shown 10 times, so the mean is the accuracy
        assert np.mean(entry["by_instance"]) == pytest.approx(accuracy)
        # A class's 1st presentation follows another class's label (right only at step 0, by luck); a later one
        # follows its own class with chance about 1/5 (simulated: 0.198-0.203 for each of the 2nd to 10th).
        assert entry["by_instance"][0] < 0.1 and all(0.08 < value < 0.35 for value in entry["by_instance"][1:])
    few = run(fewshot_config(model="scripted", episodes=16, val_every=8, val_episodes=8), host, tmp_path, **QUIET)
    assert [sorted(entry) for entry in few["val_detail"]] == [["episode", "train_wall_time_s"]] * 2
