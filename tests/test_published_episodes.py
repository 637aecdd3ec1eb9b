"""Third-party datasets: fixed episodes served by index, declared episode counts, test-only datasets."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import PROTONET, fewshot_config, harness_cli
from harness_test_plugins import published_episodes
from harness_test_plugins.published_episodes import PublishedEpisodes

from harness import hookimpl
from harness.builtins import synthetic
from harness.checkpoint_eval import evaluate_checkpoint
from harness.checkpoints import load as load_checkpoint
from harness.config import build_config
from harness.errors import ConfigError, DataError
from harness.evaluation import TEST, batches
from harness.prepare import prepare
from harness.runner import run
from harness.specs import DatasetSpec

QUIET = {"log": lambda _: None}
PUBLISHED = "published-oneshot"


@pytest.fixture
def host(protonet_host):
    """Built-ins, ``weighted-protonet`` and the published episodes."""
    protonet_host.register(published_episodes, "published")
    return protonet_host


def knn(**overrides):
    """``knn`` tested on the published episodes, nothing trained."""
    values = {"model": "knn", "dataset": PUBLISHED, "kind": "fewshot", "ways": 5, "shots": 1, "queries": 1}
    return build_config({**values, "eval_episodes": 40, "batch_size": 16, **overrides}, "test")


def protonet(**overrides):
    """``weighted-protonet`` trained on synthetic glyphs, tested on the published episodes."""
    return fewshot_config(**{"queries": 1, "episodes": 32, "test_dataset": PUBLISHED, "eval_episodes": 40, **overrides})


# -- fixed episodes: the dataset is told which episode it draws -----------------------------------------


def test_the_runner_asks_for_each_episode_by_its_index(host):
    prepared = prepare(knn(batch_size=16), host)
    served = [batch.support_images for batch in batches(prepared, "test", TEST, 0, 40)]
    published = PublishedEpisodes(published_episodes.OPTIONS)
    assert [len(images) for images in served] == [16, 16, 8]
    assert np.array_equal(np.concatenate(served), np.stack([published.episode(j)[0] for j in range(40)]))


def test_fixed_episodes_score_the_same_whatever_the_batch_size(host, tmp_path):
    by_16 = run(knn(batch_size=16), host, tmp_path, name="a", **QUIET)
    by_7 = run(knn(batch_size=7), host, tmp_path, name="b", **QUIET)
    assert by_16["metrics"] == by_7["metrics"] and by_16["metrics"]["accuracy"]["accuracy"]["n"] == 40


class ThreeArgumentSynthetic:
    """The synthetic dataset behind a ``sample(split, settings, rngs)`` of the older form."""

    class Source:
        def __init__(self, options):
            self.inner = synthetic.open_synthetic(options)
            self.check, self.input_shape = self.inner.check, self.inner.input_shape

        def sample(self, split, settings, rngs):
            return self.inner.sample(split, settings, rngs)

    @hookimpl
    def harness_datasets(self) -> list[DatasetSpec]:
        (spec,) = synthetic.harness_datasets()
        return [dataclasses.replace(spec, name="old-synthetic", factory=self.Source)]


def test_a_source_with_the_older_three_argument_sample_still_works(host, tmp_path):
    host.register(ThreeArgumentSynthetic(), "old")
    old = run(fewshot_config(dataset="old-synthetic"), host, tmp_path / "old", **QUIET)
    new = run(fewshot_config(), host, tmp_path / "new", **QUIET)
    assert old["metrics"] == new["metrics"] and old["loss_history"] == new["loss_history"]


class TwoArgumentSynthetic:
    """The synthetic dataset behind a ``sample(split, settings)``: no way to draw seeded episodes."""

    class Source(ThreeArgumentSynthetic.Source):
        def sample(self, split, settings):
            raise AssertionError("never called")

    @hookimpl
    def harness_datasets(self) -> list[DatasetSpec]:
        (spec,) = synthetic.harness_datasets()
        return [dataclasses.replace(spec, name="odd", factory=self.Source)]


def test_a_sample_of_another_signature_is_refused_in_one_line(host):
    host.register(TwoArgumentSynthetic(), "odd")
    with pytest.raises(ConfigError) as err:
        prepare(fewshot_config(dataset="odd"), host)
    assert str(err.value) == (
        "dataset 'odd': its source's sample takes (split, settings); give it sample(split, settings, rngs, indices)"
    )


# -- episode counts ---------------------------------------------------------------------------------


def test_more_test_episodes_than_published_are_refused_before_any_work(host, tmp_path):
    with pytest.raises(ConfigError) as err:
        run(protonet(eval_episodes=1000), host, tmp_path, name="r", **QUIET)
    assert str(err.value) == (
        "dataset 'published-oneshot' has 40 test episodes, fewer than the 1000 asked for; "
        "pass --eval-episodes 40 (or fewer)"
    )
    assert not (tmp_path / "r").exists()
    assert run(protonet(), host, tmp_path, name="r", **QUIET)["metrics"]["accuracy"]["accuracy"]["n"] == 40


class Undeclared:
    """The published episodes from a source that does not say how many there are."""

    class Source:
        def __init__(self, options):
            self.inner = PublishedEpisodes(options)
            self.check, self.input_shape, self.sample = self.inner.check, self.inner.input_shape, self.inner.sample

    @hookimpl
    def harness_datasets(self) -> list[DatasetSpec]:
        (spec,) = published_episodes.harness_datasets()
        return [dataclasses.replace(spec, name="undeclared", factory=self.Source)]


def test_a_test_that_fails_leaves_nothing_that_blocks_a_rerun(host, tmp_path):
    host.register(Undeclared(), "undeclared")
    with pytest.raises(DataError, match="only 40 published episodes"):
        run(knn(dataset="undeclared", eval_episodes=48), host, tmp_path, name="r", **QUIET)
    assert not (tmp_path / "r" / "checkpoint.pkl").exists()
    record = run(knn(dataset="undeclared", eval_episodes=40), host, tmp_path, name="r", **QUIET)
    assert record["eval_episodes"] == 40 and (tmp_path / "r" / "checkpoint.pkl").exists()


def test_test_settings_do_not_block_a_resume_and_a_complete_run_is_tested_again(host, tmp_path):
    first = run(protonet(), host, tmp_path, name="r", **QUIET)
    (tmp_path / "r" / "record.json").unlink()  # as if stopped while testing
    resumed = run(protonet(eval_episodes=24), host, tmp_path, name="r", **QUIET)
    assert resumed["loss_history"] == first["loss_history"] and resumed["resumes"] == 0  # trained: tested again
    assert resumed["metrics"]["accuracy"]["accuracy"]["n"] == 24
    messages: list[str] = []
    again = run(protonet(eval_episodes=40), host, tmp_path, name="r", log=messages.append)
    assert messages[0] == f"testing {tmp_path / 'r'} again (eval_episodes: 24 -> 40)"
    assert again["metrics"] == first["metrics"] and again["eval_episodes"] == 40
    with pytest.raises(ConfigError, match=r"another config \(eval_seed: 0 -> 3\)"):  # it picks validation episodes
        run(protonet(eval_seed=3), host, tmp_path, name="r", **QUIET)


# -- test-only datasets ------------------------------------------------------------------------------


def test_a_trainable_model_on_a_test_only_dataset_is_refused_naming_test_dataset(host, tmp_path):
    with pytest.raises(ConfigError) as err:
        run(fewshot_config(dataset=PUBLISHED, queries=1, data={}), host, tmp_path, **QUIET)
    assert str(err.value) == (
        "dataset 'published-oneshot' has no 'train' split to train model 'weighted-protonet' on (splits: test); "
        "train on another and test on this one: --dataset NAME --test-dataset published-oneshot"
    )
    assert run(knn(), host, tmp_path, **QUIET)["episodes_trained"] == 0  # nothing to train: fine


class TrainAndTestOnly:
    """The synthetic dataset declared with train and test splits only."""

    @hookimpl
    def harness_datasets(self) -> list[DatasetSpec]:
        (spec,) = synthetic.harness_datasets()
        return [dataclasses.replace(spec, name="no-val-split", splits=("train", "test"))]


def test_validation_is_refused_when_the_splits_have_none(host, tmp_path):
    host.register(TrainAndTestOnly(), "no-val-split")
    with pytest.raises(ConfigError, match=r"^dataset 'no-val-split' has no validation split; drop val_every$"):
        run(fewshot_config(dataset="no-val-split", val_every=16), host, tmp_path, **QUIET)


def test_train_on_one_dataset_and_test_on_another(host, tmp_path):
    record = run(protonet(test_data={"episodes": 30}, eval_episodes=30), host, tmp_path, **QUIET)
    assert record["name"] == "weighted-protonet-synthetic-test-published-oneshot-fewshot-5w1s-seed0"
    assert (record["dataset"], record["test_dataset"], record["episodes_trained"]) == ("synthetic", PUBLISHED, 32)
    assert record["config"]["test_dataset"] == PUBLISHED and record["config"]["test_data"]["episodes"] == 30
    assert record["provenance"]["test_dataset_plugin"]["name"] == "published"
    checkpoint = tmp_path / record["name"] / "checkpoint.pkl"
    assert evaluate_checkpoint(checkpoint, host)["metrics"] == record["metrics"]
    on_synthetic = run(protonet(test_dataset=None, eval_episodes=30), host, tmp_path, **QUIET)
    assert evaluate_checkpoint(checkpoint, host, dataset="synthetic")["metrics"] == on_synthetic["metrics"]


def test_a_model_trained_elsewhere_is_scored_on_published_episodes(host, tmp_path):
    trained = run(fewshot_config(queries=1, episodes=32), host, tmp_path, name="r", **QUIET)
    checkpoint = tmp_path / "r" / "checkpoint.pkl"
    assert load_checkpoint(checkpoint)["input_shape"] == [1, 28, 28]
    result = evaluate_checkpoint(checkpoint, host, dataset=PUBLISHED, data={"episodes": 24}, eval_episodes=24)
    assert (result["dataset"], result["test_dataset"], result["eval_episodes"]) == ("synthetic", PUBLISHED, 24)
    assert result["metrics"]["accuracy"]["accuracy"]["n"] == 24 and trained["test_dataset"] == "synthetic"


def test_the_two_datasets_must_give_images_of_one_shape(host, tmp_path):
    with pytest.raises(ConfigError) as err:
        run(protonet(test_data={"image_size": 20}), host, tmp_path, **QUIET)
    assert str(err.value) == (
        "test dataset 'published-oneshot' has images of shape (1, 20, 20), but model 'weighted-protonet' is "
        "trained on (1, 28, 28) (dataset 'synthetic'); pick options that make them agree (--test-data KEY=VALUE)"
    )
    run(fewshot_config(queries=1, episodes=16), host, tmp_path, name="r", **QUIET)
    with pytest.raises(ConfigError, match=r"shape \(1, 20, 20\).*\(--data KEY=VALUE\)$"):
        evaluate_checkpoint(
            tmp_path / "r" / "checkpoint.pkl", host, dataset=PUBLISHED, data={"image_size": 20}, eval_episodes=40
        )


def test_test_data_needs_a_test_dataset():
    with pytest.raises(ConfigError, match=r"^test_data in test needs a test dataset; pass --test-dataset NAME"):
        build_config({"model": "knn", "test_data": {"episodes": 3}}, "test")


def test_cli_trains_on_one_dataset_and_evaluates_on_another(tmp_path):
    env = {"HARNESS_PLUGINS": f"{PROTONET},harness_test_plugins.published_episodes"}
    common = ["--model", "weighted-protonet", "--kind", "fewshot", "--queries", "1", "--episodes", "16",
              "--batch-size", "8", "--out", str(tmp_path), "--name", "r", "--no-progress"]  # fmt: skip
    refused = harness_cli("run", *common, "--test-dataset", PUBLISHED, env=env)
    assert refused.returncode == 2 and refused.stderr.strip().endswith("pass --eval-episodes 40 (or fewer)")
    done = harness_cli("run", *common, "--test-dataset", PUBLISHED, "--test-data", "episodes=24",
                       "--eval-episodes", "24", "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["config"]["test_data"] == {"episodes": 24, "image_size": 28}
    scored = harness_cli("evaluate", "--checkpoint", str(tmp_path / "r" / "checkpoint.pkl"), "--dataset", "synthetic",
                         "--data", "test_classes=12", "--eval-episodes", "16", "--no-progress", env=env)  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    assert "weighted-protonet on synthetic (5-way 1-shot), test split, 16 episodes trained" in scored.stdout
