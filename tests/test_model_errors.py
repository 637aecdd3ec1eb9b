"""A model plugin that raises, exits or returns what the harness cannot use stops a run in one line naming it."""

from __future__ import annotations

import pytest
from conftest import harness_cli
from harness_test_plugins import misbehaving

from harness.config import build_config
from harness.errors import HarnessError
from harness.guard import ModelError
from harness.runner import run

PLUGIN = "harness_test_plugins.misbehaving"
PREFIX = "model 'failing' (plugin 'misbehaving-plugin')"


def failing_config(fail: str):
    """A short few-shot run of ``failing`` on synthetic data."""
    values = {"model": "failing", "kind": "fewshot", "episodes": 16, "batch_size": 8, "eval_episodes": 8}
    return build_config({**values, "params": {"fail": fail}}, "test")


@pytest.mark.parametrize(
    ("fail", "error", "message"),
    [
        ("factory", ModelError, f"{PREFIX} failed in its factory: RuntimeError: cannot build the network"),
        ("train_step", ModelError, f"{PREFIX} failed in train_step: ValueError: shapes do not match"),
        ("predict", ModelError, f"{PREFIX} failed in predict: RuntimeError: no prediction"),
        ("exit", ModelError, f"{PREFIX} failed in train_step: SystemExit: 3"),
        ("loss", HarnessError, "model 'failing': train_step returned str, not a float or a 0-d tensor"),
        ("state", ModelError, f"{PREFIX}: cannot save checkpoint "),
        (
            "runtime",
            ModelError,
            f"{PREFIX}: its runtime must be a dict of JSON values, not Object of type object is not JSON "
            "serializable; fix the model's runtime attribute",
        ),
        (
            "no_model",
            ModelError,
            f"{PREFIX}: its factory returned NoneType, which has no train_step, predict, "
            "state_dict, load_state_dict; return an object with the methods of harness.specs.Model",
        ),
        (
            "no_predict",
            ModelError,
            f"{PREFIX}: its factory returned NoPredict, which has no predict; return an "
            "object with the methods of harness.specs.Model",
        ),
    ],
)
def test_a_failing_model_is_one_line_naming_model_and_plugin(host, tmp_path, fail, error, message):
    with host.registered(misbehaving, "misbehaving-plugin"), pytest.raises(error) as err:
        run(failing_config(fail), host, tmp_path, name="r", log=lambda _: None)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert not (tmp_path / "r" / "record.json").exists()


@pytest.mark.parametrize("fail", ["state", "train_step", "predict"])
def test_a_restart_whose_model_fails_keeps_the_old_run_until_its_own_first_checkpoint(host, tmp_path, fail):
    with host.registered(misbehaving, "misbehaving-plugin"):
        run(failing_config("none"), host, tmp_path, name="r", log=lambda _: None)
        before = {path.name: path.read_bytes() for path in (tmp_path / "r").iterdir()}
        with pytest.raises(ModelError):  # "state": the first checkpoint itself cannot be saved
            run(failing_config(fail), host, tmp_path, name="r", restart=True, log=lambda _: None)
    after = {path.name: path.read_bytes() for path in (tmp_path / "r").iterdir()}
    if fail == "predict":  # after training saved the new run's checkpoint: the old record stays until replaced
        assert after["checkpoint.pkl"] != before["checkpoint.pkl"] and after["record.json"] == before["record.json"]
    else:
        assert after == before


def test_a_text_parameter_given_what_toml_reads_as_a_number_says_to_quote_it(host, tmp_path):
    with host.registered(misbehaving, "misbehaving-plugin"), pytest.raises(HarnessError) as err:
        run(failing_config(float("nan")), host, tmp_path, name="r", log=lambda _: None)  # --param fail=nan
    assert str(err.value) == (
        "model 'failing' parameter fail must be a str like its default 'none', got nan; to give it as text, quote "
        "it: fail='\"nan\"'"
    )


def test_cli_prints_one_line_with_status_2_and_the_traceback_on_request(tmp_path):
    args = ["run", "--model", "failing", "--kind", "fewshot", "--episodes", "16", "--batch-size", "8",
            "--eval-episodes", "8", "--param", "fail=train_step", "--out", str(tmp_path), "--no-progress"]  # fmt: skip
    result = harness_cli(*args, env={"HARNESS_PLUGINS": PLUGIN})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr == (
        f"harness: error: model 'failing' (plugin '{PLUGIN}') failed in train_step: "
        "ValueError: shapes do not match (--traceback shows where)\n"
    )
    traced = harness_cli(*args, "--traceback", env={"HARNESS_PLUGINS": PLUGIN})
    assert traced.returncode == 2 and "Traceback (most recent call last)" in traced.stderr
    assert 'raise ValueError("shapes do not match")' in traced.stderr
    assert traced.stderr.strip().splitlines()[-1].startswith("harness: error: model 'failing'")
