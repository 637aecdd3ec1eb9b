"""The runner: determinism, checkpoints, resume after SIGKILL, divergence, records, evaluate."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from conftest import PROTONET, fewshot_config, killed_after, killed_and_whole

from harness import checkpoints, hookimpl
from harness.builtins.synthetic import OPTIONS, open_synthetic
from harness.checkpoint_eval import evaluate_checkpoint
from harness.checkpoints import load as load_checkpoint
from harness.episodes import EpisodeKind
from harness.errors import ConfigError, NonFiniteLossError
from harness.interrupts import Stopped
from harness.plugins import PluginHost
from harness.runner import STOPPING, run
from harness.specs import DatasetSpec

QUIET = {"log": lambda _: None}


def test_same_seed_same_numbers_other_seed_other_numbers(protonet_host, tmp_path):
    a = run(fewshot_config(), protonet_host, tmp_path / "a", **QUIET)
    b = run(fewshot_config(), protonet_host, tmp_path / "b", **QUIET)
    c = run(fewshot_config(seed=1), protonet_host, tmp_path / "c", **QUIET)
    assert a["metrics"] == b["metrics"] and a["loss_history"] == b["loss_history"]
    assert a["loss_history"] != c["loss_history"]


def test_record_has_provenance_and_nothing_half_written(protonet_host, tmp_path):
    record = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    on_disk = json.loads((tmp_path / "r" / "record.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["checkpoint.pkl", "episodes.npz", "record.json"]
    prov = record["provenance"]
    assert prov["git"].keys() == {"commit", "dirty"}
    assert prov["harness_version"] and prov["machine"]["cpu_count"] and prov["libraries"]["numpy"]
    assert prov["model_plugin"] == {"name": "weighted-protonet-plugin", "distribution": None, "version": "0.0.1"}
    assert record["config"]["params"] == {"lr": 0.05, "delay": 0.0, "nan_after": 0}
    assert (record["seed"], record["episodes_trained"], record["budget"]) == (0, 96, "custom")
    assert record["wall_time_s"] > 0 and record["resumes"] == 0
    assert [h[0] for h in record["loss_history"]] == [16, 32, 48, 64, 80, 96]


def test_evaluate_checkpoint_gives_the_recorded_numbers(protonet_host, tmp_path):
    record = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    result = evaluate_checkpoint(tmp_path / "r" / "checkpoint.pkl", protonet_host)
    assert result["metrics"] == record["metrics"]
    assert result["episodes_trained"] == 96


@pytest.mark.parametrize("tested_on", [{}, {"test_dataset": "synthetic", "test_data": {"test_classes": 12}}])
def test_evaluate_on_the_validation_split_gives_the_kept_models_validation_accuracy(protonet_host, tmp_path, tested_on):
    config = fewshot_config(val_every=24, val_episodes=16, keep="best", **tested_on)
    record = run(config, protonet_host, tmp_path, name="r", **QUIET)
    checkpoint = tmp_path / "r" / "checkpoint.pkl"
    val = evaluate_checkpoint(checkpoint, protonet_host, split="val", eval_episodes=16)
    assert val["split"] == "val" and record["kept"]["which"] == "best"
    assert val["metrics"]["accuracy"]["accuracy"]["mean"] == pytest.approx(record["kept"]["val_accuracy"])
    train = evaluate_checkpoint(checkpoint, protonet_host, split="train")
    test = evaluate_checkpoint(checkpoint, protonet_host)
    assert test["split"] == "test" and test["metrics"] == record["metrics"]
    assert train["split"] == "train" and train["metrics"] != test["metrics"], "other classes, other episodes"
    assert train == evaluate_checkpoint(checkpoint, protonet_host, split="train"), "fixed episodes"


def test_evaluate_refuses_a_split_the_dataset_lacks_in_one_line(protonet_host, tmp_path):
    run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    with pytest.raises(ConfigError) as caught:
        evaluate_checkpoint(tmp_path / "r" / "checkpoint.pkl", protonet_host, split="Train")
    has = "dataset 'synthetic' has the splits train, val, test"
    assert str(caught.value) == f"--split 'Train': {has}; did you mean 'train'?"
    with pytest.raises(ConfigError) as caught:  # the checkpoint fixes the ways: "lower ways" is no fix here
        evaluate_checkpoint(tmp_path / "r" / "checkpoint.pkl", protonet_host, split="val", data={"val_classes": 3})
    assert str(caught.value) == (
        "--split 'val' cannot give the checkpoint's 5-way 1-shot episodes: ways=5 is more than the 3 classes in "
        "synthetic split 'val'; evaluate on another split or dataset (--split, --dataset, --data)"
    )


def test_evaluate_without_the_checkpoints_model_plugin_says_to_install_it_not_another_model(protonet_host, tmp_path):
    run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    checkpoint = tmp_path / "r" / "checkpoint.pkl"
    knn = "harness.builtins.knn"
    for without in (PluginHost(autoload=False, modules=[]), PluginHost(autoload=False, modules=[], blocked=[knn])):
        with pytest.raises(ConfigError) as caught:
            evaluate_checkpoint(checkpoint, without)
        blocked = f" (blocked plugins: {knn})" if without.blocked else ""
        assert str(caught.value) == (
            f"{checkpoint} holds a model 'weighted-protonet' that no installed plugin registers{blocked}; install or "
            "unblock the plugin that provides it ('harness plugins' lists what is installed)"
        )


def test_a_validation_split_too_small_for_the_setting_names_not_validating_as_a_fix(protonet_host, tmp_path):
    data = {"train_classes": 30, "val_classes": 3, "test_classes": 10}
    with pytest.raises(ConfigError) as caught:
        run(fewshot_config(val_every=24, data=data), protonet_host, tmp_path, name="r", **QUIET)
    assert str(caught.value) == (
        "ways=5 is more than the 3 classes in synthetic split 'val'; lower ways, or drop val_every (validation draws "
        "from that split)"
    )
    assert not (tmp_path / "r").exists()


def test_completed_run_is_not_redone_and_a_changed_config_is_refused(protonet_host, tmp_path):
    first = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    messages: list[str] = []
    again = run(fewshot_config(), protonet_host, tmp_path, name="r", log=messages.append)
    assert again == json.loads(json.dumps(first)) and "already complete" in messages[0]
    with pytest.raises(ConfigError, match=r"another config \(ways: 5 -> 4\).*--restart"):
        run(fewshot_config(ways=4), protonet_host, tmp_path, name="r", **QUIET)
    redone = run(fewshot_config(ways=4), protonet_host, tmp_path, name="r", restart=True, **QUIET)
    assert redone["setting"] == "4-way 1-shot"


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(protonet_host, tmp_path):
    config = fewshot_config(params={"nan_after": 5})
    with pytest.raises(NonFiniteLossError) as err:
        run(config, protonet_host, tmp_path, name="r", **QUIET)
    message = str(err.value)
    assert "\n" not in message
    assert "training loss became nan at episode 48" in message
    assert f"last good checkpoint kept: {tmp_path / 'r' / 'checkpoint.pkl'} (episode 32)" in message
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pkl")["episodes_trained"] == 32
    assert not (tmp_path / "r" / "record.json").exists()
    assert message.endswith(
        "; lower the learning rate (--param lr=...) and pass --restart to start the run over (or --name for a new run)"
    )
    with pytest.raises(NonFiniteLossError) as err:  # nothing saved yet: a rerun starts afresh, --restart or not
        run(fewshot_config(params={"nan_after": 1}), protonet_host, tmp_path, name="first", **QUIET)
    assert str(err.value) == (
        "training loss became nan at episode 16; stopped, no checkpoint had been saved yet; lower the learning rate "
        "(--param lr=...)"
    )


def test_restart_that_fails_before_saving_keeps_the_run_it_was_to_replace(protonet_host, tmp_path):
    run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    directory = tmp_path / "r"
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    with pytest.raises(NonFiniteLossError) as err:
        run(fewshot_config(params={"nan_after": 1}), protonet_host, tmp_path, name="r", restart=True, **QUIET)
    assert str(err.value) == (
        f"training loss became nan at episode 16; stopped, no checkpoint had been saved yet, the run it was to "
        f"replace is kept in {directory}; lower the learning rate (--param lr=...) and pass --restart to start the "
        "run over (or --name for a new run)"
    )
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before
    with pytest.raises(NonFiniteLossError, match="last good checkpoint kept"):  # the new run saved its checkpoint
        run(fewshot_config(params={"nan_after": 5}), protonet_host, tmp_path, name="r", restart=True, **QUIET)
    assert load_checkpoint(directory / "checkpoint.pkl")["config"]["params"]["nan_after"] == 5
    with pytest.raises(NonFiniteLossError, match="at episode 48"):  # resumed: the old run's record no longer counts
        run(fewshot_config(params={"nan_after": 5}), protonet_host, tmp_path, name="r", **QUIET)


RUN_ARGS = [
    "run", "--model", "weighted-protonet", "--kind", "fewshot", "--queries", "2", "--episodes", "160",
    "--batch-size", "8", "--checkpoint-every", "8", "--eval-episodes", "64", "--param", "delay=0.05",
    "--data", "train_classes=30", "--data", "test_classes=10", "--name", "r", "--json", "--no-progress",
]  # fmt: skip


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_and_matches_uninterrupted(tmp_path):
    resumed_record, whole_record, killed_at = killed_and_whole(RUN_ARGS, tmp_path, PROTONET, min_step=4)
    assert 0 < killed_at < 160, "the run should have been killed part way"
    assert resumed_record["resumes"] == 1 and whole_record["resumes"] == 0
    assert resumed_record["episodes_trained"] == whole_record["episodes_trained"] == 160
    assert resumed_record["metrics"] == whole_record["metrics"]
    assert resumed_record["per_episode"] == whole_record["per_episode"], "same values, same file and SHA-256"
    assert resumed_record["loss_history"] == whole_record["loss_history"]
    final_a = load_checkpoint(tmp_path / "killed" / "r" / "checkpoint.pkl")["model_state"]
    final_b = load_checkpoint(tmp_path / "whole" / "r" / "checkpoint.pkl")["model_state"]
    assert (final_a["weights"] == final_b["weights"]).all() and final_a["rng"] == final_b["rng"]


class LocatedSynthetic:
    """The synthetic dataset with a ``root`` location option, as Omniglot and mini-ImageNet have."""

    @hookimpl
    def harness_datasets(self) -> list[DatasetSpec]:
        def factory(options):
            assert options["root"] is not None, "the location must reach the factory"
            return open_synthetic({k: v for k, v in options.items() if k != "root"})

        return [
            DatasetSpec(
                "located", "synthetic with a root", ("train", "val", "test"), (EpisodeKind.FEWSHOT,), factory,
                options={**OPTIONS, "root": None}, location_options=("root",),
            )
        ]  # fmt: skip


def test_location_options_stay_out_of_the_run_config(protonet_host, tmp_path):
    protonet_host.register(LocatedSynthetic(), "located")
    config = fewshot_config(dataset="located", data={"root": "/machine/a", "test_classes": 10})
    record = run(config, protonet_host, tmp_path, name="r", **QUIET)
    assert "root" not in record["config"]["data"]
    moved = fewshot_config(dataset="located", data={"root": "/machine/b", "test_classes": 10})
    assert run(moved, protonet_host, tmp_path, name="r", **QUIET)["metrics"] == record["metrics"]
    result = evaluate_checkpoint(tmp_path / "r" / "checkpoint.pkl", protonet_host, data={"root": "/machine/c"})
    assert result["metrics"] == record["metrics"]


def test_each_training_session_records_the_commit_it_ran_under(protonet_host, tmp_path, monkeypatch):
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    from harness import provenance

    code = {"commit": "a" * 40, "dirty": False}
    monkeypatch.setattr(provenance, "git_state", lambda start=None: dict(code))  # the git boundary
    killed_after(5, WeightedProtoNet, fewshot_config(), protonet_host, tmp_path / "r", monkeypatch)
    code.update(commit="b" * 40, dirty=True)  # a commit lands before the resume
    record = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    assert [(s["from_episode"], s["git"]["commit"], s["git"]["dirty"]) for s in record["sessions"]] == [
        (0, "a" * 40, False),
        (32, "b" * 40, True),
    ]
    assert record["provenance"]["git"]["commit"] == "b" * 40
    again = run(fewshot_config(eval_episodes=32), protonet_host, tmp_path, name="r", **QUIET)  # tested again only
    assert again["sessions"] == record["sessions"]


def test_a_parameter_the_plugin_added_since_the_checkpoint_resumes_at_its_default(protonet_host, tmp_path, monkeypatch):
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    killed_after(5, WeightedProtoNet, fewshot_config(), protonet_host, tmp_path / "r", monkeypatch)
    path = tmp_path / "r" / "checkpoint.pkl"
    state = checkpoints.load(path)
    del state["config"]["params"]["delay"]  # written by a plugin version without ``delay`` (default 0.0)
    checkpoints.save(path, state)
    with pytest.raises(ConfigError, match=r"another config \(params\.delay: 0\.0 -> 0\.5\)"):
        run(fewshot_config(params={"delay": 0.5}), protonet_host, tmp_path, name="r", **QUIET)
    record = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    assert record["resumes"] == 1 and record["config"]["params"]["delay"] == 0.0


def signalled_at(step: int, *signums: int):
    """A ``weighted-protonet`` train step that sends this process ``signums`` during step ``step``."""
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    train_step = WeightedProtoNet.train_step

    def step_then_signal(self, batch):
        loss = train_step(self, batch)
        if self.steps == step:
            for signum in signums:  # to this (the main) thread, each handled before the next is sent: two signals
                signal.pthread_kill(threading.main_thread().ident, signum)  # pending at once would count as one
                time.sleep(0.01)  # interrupted by the signal, whose handler runs before sleep returns
        return loss

    return step_then_signal


@pytest.fixture
def foreground():
    """SIGINT taken as by a terminal's foreground job (a suite started in the background inherits it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_checkpoint_at_its_step_and_the_resumed_run_matches_an_uninterrupted_one(
    protonet_host, tmp_path, monkeypatch, signum, foreground
):
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    config = fewshot_config(val_every=24, val_episodes=8)  # 8 episodes a step; checkpoints every 2 steps
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    with monkeypatch.context() as patch:
        patch.setattr(WeightedProtoNet, "train_step", signalled_at(5, signum))
        with pytest.raises(Stopped) as stopped:
            run(config, protonet_host, tmp_path, name="r", **QUIET)
    name = signal.Signals(signum).name
    assert stopped.value.code == 128 + signum
    assert stopped.value.message == (
        f"stopped by {name} at episode 40 of 96; checkpoint saved in {tmp_path / 'r' / 'checkpoint.pkl'}; "
        "rerun the same command to resume"
    )
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pkl")
    assert state["step"] == 5 and len(state["pending_losses"]) == 1  # step 5's loss, logged with step 6's
    assert state["stopped_by"] == name == checkpoints.progress(tmp_path / "r" / "checkpoint.pkl")["stopped_by"]
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers, "the run's went with it"
    resumed = run(config, protonet_host, tmp_path, name="r", **QUIET)
    whole = run(config, protonet_host, tmp_path, name="whole", **QUIET)
    assert resumed["resumes"] == 1 and resumed["sessions"][1]["from_episode"] == 40
    for key in ("metrics", "loss_history", "val_history", "episodes_trained", "per_episode"):
        assert resumed[key] == whole[key], key


def test_a_restarted_run_stopped_by_a_signal_says_to_resume_without_restart(protonet_host, tmp_path, monkeypatch):
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    with monkeypatch.context() as patch:
        patch.setattr(WeightedProtoNet, "train_step", signalled_at(3, signal.SIGTERM))
        with pytest.raises(Stopped) as stopped:
            run(fewshot_config(), protonet_host, tmp_path, name="r", restart=True, **QUIET)
    assert stopped.value.message.endswith("; rerun the same command without --restart to resume")
    old_record = (tmp_path / "r" / "record.json").read_bytes()  # the old run's, beside the new run's checkpoint
    resumed = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)  # not "already complete"
    assert resumed["resumes"] == 1 and resumed["sessions"][1]["from_episode"] == 24
    assert (tmp_path / "r" / "record.json").read_bytes() != old_record


def test_a_restart_of_a_model_without_training_interrupted_while_testing_says_the_old_run_stands(
    tmp_path, monkeypatch, capsys
):
    from harness.cli import main

    args = ["run", "--model", "knn", "--dataset", "synthetic", "--kind", "fewshot", "--eval-episodes", "5"]
    assert main([*args, "--out", str(tmp_path), "--no-progress"]) == 0
    (directory,) = tmp_path.iterdir()
    before = {path.name: path.read_bytes() for path in directory.iterdir()}

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("harness.runner.score", interrupted)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path), "--no-progress", "--restart"]) == 128 + signal.SIGINT
    assert capsys.readouterr().err == (
        "harness: interrupted by SIGINT; the old run stands: rerun the same command to start over\n"
    )
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before


def test_a_restart_interrupted_once_its_checkpoint_is_saved_says_to_carry_on_without_restart(
    tmp_path, monkeypatch, capsys
):
    from harness import atomic
    from harness.cli import main

    args = ["run", "--model", "knn", "--dataset", "synthetic", "--kind", "fewshot", "--eval-episodes", "5"]
    assert main([*args, "--out", str(tmp_path), "--no-progress"]) == 0
    (directory,) = tmp_path.iterdir()
    write_json = atomic.write_json

    def interrupted_at_the_record(path, value, **kwargs):
        if path.name == "record.json":
            raise KeyboardInterrupt
        write_json(path, value, **kwargs)

    monkeypatch.setattr(atomic, "write_json", interrupted_at_the_record)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path), "--no-progress", "--restart"]) == 128 + signal.SIGINT
    assert capsys.readouterr().err == (
        "harness: interrupted by SIGINT; rerun it without --restart to carry on from its last checkpoint (with "
        "--restart, it starts over)\n"
    )
    monkeypatch.setattr(atomic, "write_json", write_json)
    assert main([*args, "--out", str(tmp_path), "--no-progress"]) == 0
    assert "testing the trained checkpoint of" in capsys.readouterr().err
    run_id = load_checkpoint(directory / "checkpoint.pkl")["run_id"]
    assert json.loads((directory / "record.json").read_text())["run_id"] == run_id != ""


def test_a_record_of_another_length_than_the_checkpoint_beside_it_is_not_taken_as_its_result(
    protonet_host, tmp_path, monkeypatch
):
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    whole = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    with monkeypatch.context() as patch:
        patch.setattr(WeightedProtoNet, "train_step", signalled_at(3, signal.SIGTERM))
        with pytest.raises(Stopped):
            run(fewshot_config(), protonet_host, tmp_path, name="part", **QUIET)
    state = load_checkpoint(tmp_path / "part" / "checkpoint.pkl")
    del state["run_id"]  # as a checkpoint from before run ids: nothing names its run
    checkpoints.save(tmp_path / "r" / "checkpoint.pkl", state)
    resumed = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)  # not "already complete"
    assert resumed["sessions"][1]["from_episode"] == 24 and resumed["metrics"] == whole["metrics"]


def test_a_second_ctrl_c_stops_at_once_keeping_the_last_checkpoint(protonet_host, tmp_path, monkeypatch, foreground):
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    with monkeypatch.context() as patch:
        patch.setattr(WeightedProtoNet, "train_step", signalled_at(5, signal.SIGINT, signal.SIGINT))
        with pytest.raises(KeyboardInterrupt) as interrupted:
            run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    assert not isinstance(interrupted.value, Stopped)
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pkl")["step"] == 4


def test_a_run_started_with_sigint_ignored_leaves_it_ignored_and_still_stops_on_sigterm(
    protonet_host, tmp_path, monkeypatch
):
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job, or nohup
    try:
        with monkeypatch.context() as patch:
            patch.setattr(WeightedProtoNet, "train_step", signalled_at(5, signal.SIGINT))
            record = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
        assert record["episodes_trained"] == fewshot_config().episodes and record["resumes"] == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        with monkeypatch.context() as patch:
            patch.setattr(WeightedProtoNet, "train_step", signalled_at(5, signal.SIGTERM))
            with pytest.raises(Stopped, match="stopped by SIGTERM at episode 40"):
                run(fewshot_config(), protonet_host, tmp_path, name="t", **QUIET)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_cli_says_where_a_stopped_run_was_saved_and_exits_with_128_plus_the_signal(tmp_path, monkeypatch, capsys):
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    from harness import plugins
    from harness.cli import main

    monkeypatch.setenv(plugins.MODULES_ENV, PROTONET)
    monkeypatch.setattr(plugins, "_HOST", None)
    monkeypatch.setattr(WeightedProtoNet, "train_step", signalled_at(3, signal.SIGTERM))
    args = ["run", *RUN_ARGS[1:], "--out", str(tmp_path)]
    assert main(args) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"harness: SIGTERM: {STOPPING}",
        f"harness: stopped by SIGTERM at episode 24 of 160; checkpoint saved in {tmp_path / 'r' / 'checkpoint.pkl'}; "
        "rerun the same command to resume",
    ]


def test_sigterm_while_testing_ends_the_command_in_one_line_and_leaves_the_sigterm_handler_as_it_was(
    tmp_path, capsys, monkeypatch
):
    from harness import plugins
    from harness.cli import main
    from harness.evaluation import score

    def terminated_while_testing(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal's handler raises before this ends
        return score(*args, **kwargs)

    monkeypatch.setattr(plugins, "_HOST", None)
    monkeypatch.setattr("harness.runner.score", terminated_while_testing)
    earlier = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a fresh process (a test before may have set one)
    try:
        args = ["run", "--model", "knn", "--kind", "fewshot", "--eval-episodes", "8", "--no-progress"]
        assert main([*args, "--out", str(tmp_path)]) == 128 + signal.SIGTERM
        assert capsys.readouterr().err.splitlines()[-1] == (
            "harness: interrupted by SIGTERM; rerun the same command to carry on (it keeps finished runs and saved "
            "checkpoints)"
        )
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, earlier)


def test_a_signal_during_a_validation_leaves_it_to_the_rerun_which_ends_as_an_uninterrupted_run(
    protonet_host, tmp_path, monkeypatch
):
    from harness_test_plugins.weighted_protonet import WeightedProtoNet

    config = fewshot_config(val_every=24, val_episodes=16)  # validations of 2 batches, at steps 3, 6, 9 and 12
    predict = WeightedProtoNet.predict
    calls = 0

    def signalled_in_the_first_validation(self, batch):
        nonlocal calls
        calls += 1
        if calls == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return predict(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(WeightedProtoNet, "predict", signalled_in_the_first_validation)
        with pytest.raises(Stopped, match=r"at episode 24 of 96 \(its validation there left for the rerun\)"):
            run(config, protonet_host, tmp_path, name="r", **QUIET)
    assert calls == 1, "the validation's second batch was not run"
    state = load_checkpoint(tmp_path / "r" / "checkpoint.pkl")
    assert (state["step"], state["unvalidated"], state["val_history"]) == (3, True, [])
    assert state["stopped_by"] == "SIGTERM" and checkpoints.progress(tmp_path / "r" / "checkpoint.pkl")["unvalidated"]
    resumed = run(config, protonet_host, tmp_path, name="r", **QUIET)
    whole = run(config, protonet_host, tmp_path, name="whole", **QUIET)
    assert [episode for episode, _ in resumed["val_history"]] == [24, 48, 72, 96]
    for key in ("metrics", "loss_history", "val_history", "kept", "per_episode"):
        assert resumed[key] == whole[key], key


def test_a_finished_run_whose_checkpoint_is_gone_keeps_its_record_unless_restarted(protonet_host, tmp_path):
    first = run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)
    (tmp_path / "r" / "checkpoint.pkl").unlink()  # deleted to save space, say
    record = (tmp_path / "r" / "record.json").read_bytes()
    with pytest.raises(ConfigError, match=r"holds the record of a finished run but not its checkpoint; the record"):
        run(fewshot_config(), protonet_host, tmp_path, name="r", **QUIET)  # it trained again over the record
    assert (tmp_path / "r" / "record.json").read_bytes() == record
    again = run(fewshot_config(), protonet_host, tmp_path, name="r", restart=True, **QUIET)
    assert again["metrics"] == first["metrics"] and again["resumes"] == 0


def test_a_changed_config_is_named_key_by_key_inside_params_and_data():
    from harness.config_changes import differences

    saved = {"ways": 5, "params": {"lr": 1e-3, "gamma": float("nan")}, "data": {"image_size": 28}}
    wanted = {"ways": 5, "params": {"lr": 3e-3, "gamma": float("nan"), "new": 1}, "data": {"image_size": 28}}
    assert differences(saved, wanted, ["ways", "params", "data"]) == "params.lr: 0.001 -> 0.003, params.new: None -> 1"
    assert differences(saved, saved, ["ways", "params", "data"]) == ""
