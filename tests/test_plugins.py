"""Plugin loading, broken plugins, strict mode, name clashes and "did you mean"."""

from __future__ import annotations

import json
import os
import re
import textwrap
import types

import pytest
from conftest import PROTONET, fewshot_config, harness_cli
from harness_test_plugins import broken, misbehaving, weighted_protonet

from harness import hookimpl
from harness.errors import DuplicateNameError, PluginError, UnknownNameError
from harness.plugins import DEFAULT_PLUGINS, PluginHost
from harness.runner import run

EXITS = "harness_test_plugins.exit_at_import"
DUPLICATE = "harness_test_plugins.duplicate_knn"


def test_builtins_are_plugins(host):
    names = [p.name for p in host.plugins()]
    assert names[: len(DEFAULT_PLUGINS)] == list(DEFAULT_PLUGINS)
    assert "knn" in host.models
    assert "synthetic" in host.datasets
    assert {"accuracy", "accuracy_per_instance", "nway_kshot_accuracy"} <= set(host.metrics.names())
    assert all(p.origin == "builtin" and p.version for p in host.plugins())


def test_plugin_registered_at_test_time_is_listed_and_runs(host, tmp_path):
    with host.registered(weighted_protonet, "my-plugin"):
        info = host.info("my-plugin")
        assert info.provides == {"models": ["weighted-protonet"]}
        assert info.version == weighted_protonet.__version__
        record = run(fewshot_config(), host, tmp_path, log=lambda _: None)
        assert record["episodes_trained"] == 96
        assert record["provenance"]["model_plugin"]["name"] == "my-plugin"
        assert 0.2 < record["metrics"]["accuracy"]["accuracy"]["mean"] <= 1.0
    assert "weighted-protonet" not in host.models
    assert "my-plugin" not in [p.name for p in host.plugins()]


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (broken.RaisingHook(), "failed in hook harness_models: RuntimeError: model table is corrupt"),
        (broken.WrongReturnType(), "must return a list of ModelSpec, got dict"),
        (broken.WrongItemType(), "got an item of type str"),
        (
            broken.ArrayDefaults(),
            "failed in hook harness_models: TypeError: ModelSpec 'arrays': defaults['weights'] is of type ndarray, "
            "not a plain JSON value",
        ),
        (
            broken.KindAsString(),
            "failed in hook harness_models: TypeError: model 'str-kind': episode_kinds must be a non-empty tuple of "
            "EpisodeKind, e.g. (EpisodeKind.FEWSHOT,), got 'fewshot'",
        ),
        (
            broken.NanOption(),
            "failed in hook harness_datasets: TypeError: DatasetSpec 'nan-data': options['noise'] is nan, "
            "not a plain JSON value",
        ),
    ],
)
def test_broken_hook_is_reported_and_the_rest_keeps_working(host, plugin, message):
    with host.registered(plugin, "bad"):
        problems = host.problems()
        assert len(problems) == 1 and problems[0].startswith("plugin 'bad' ") and message in problems[0]
        assert host.info("bad").provides == {}
        assert host.models.names() == ["knn"]
        assert "accuracy" in host.metrics


def test_strict_mode_makes_a_broken_hook_fatal():
    strict = PluginHost(autoload=False, modules=[], strict=True)
    strict.register(broken.RaisingHook(), "bad")
    with pytest.raises(PluginError, match="plugin 'bad' failed in hook harness_models"):
        strict.models  # noqa: B018


def test_strict_mode_makes_defaults_that_are_not_plain_values_fatal():
    strict = PluginHost(autoload=False, modules=[], strict=True)
    strict.register(broken.ArrayDefaults(), "arrays")
    with pytest.raises(PluginError, match=r"^plugin 'arrays' failed in hook harness_models: .*'weights'"):
        strict.models  # noqa: B018


def test_import_error_is_reported_and_strict_mode_fails():
    lenient = PluginHost(autoload=False, modules=["harness_test_plugins.import_error", PROTONET])
    assert lenient.problems() == [
        "plugin 'harness_test_plugins.import_error' failed to import: "
        "ModuleNotFoundError: No module named 'harness_no_such_dependency'"
    ]
    assert "weighted-protonet" in lenient.models
    with pytest.raises(PluginError, match="harness_no_such_dependency"):
        PluginHost(autoload=False, modules=["harness_test_plugins.import_error"], strict=True)


CONFLICT = (
    "model 'knn' is registered by both plugin 'harness.builtins.knn' and plugin 'other-knn'; "
    "kept the one from 'harness.builtins.knn', skipped the other; uninstall or disable one of them"
)


def test_two_plugins_with_one_name_keep_the_first_and_report_both(host):
    with host.registered(broken.DuplicateKnn(), "other-knn"):
        assert host.models.plugin_of("knn") == "harness.builtins.knn"
        assert host.problems() == [CONFLICT]
        other = host.info("other-knn")
        assert other.error is None and other.conflicts == [CONFLICT] and other.provides == {"models": []}
    assert host.problems() == []


def test_a_second_plugin_under_a_taken_plugin_name_leaves_the_first_working():
    host = PluginHost(autoload=False, modules=[PROTONET, PROTONET], strict=False)
    assert "weighted-protonet" in host.models
    (problem,) = host.problems()
    assert problem.startswith(f"plugin '{PROTONET}' could not be registered: ValueError: ")
    assert [p.error is None for p in host.plugins() if p.name == PROTONET] == [True, False]


def test_strict_mode_makes_two_plugins_with_one_name_an_error_naming_both():
    strict = PluginHost(autoload=False, modules=[], strict=True)
    strict.register(broken.DuplicateKnn(), "other-knn")
    with pytest.raises(DuplicateNameError) as err:
        strict.models  # noqa: B018
    assert str(err.value) == (
        "model 'knn' is registered by both plugin 'harness.builtins.knn' and plugin 'other-knn'; "
        "uninstall or disable one of them"
    )


def test_cli_keeps_working_when_a_plugin_duplicates_a_builtin_name(tmp_path):
    env = {"HARNESS_PLUGINS": DUPLICATE}
    listed = harness_cli("plugins", env=env)
    assert listed.returncode == 0, listed.stderr
    warning = f"model 'knn' is registered by both plugin 'harness.builtins.knn' and plugin '{DUPLICATE}'"
    assert listed.stderr.count("\n") == 1 and warning in listed.stderr
    assert f"    CONFLICT: {warning}" in listed.stdout and "    models: knn-copy" in listed.stdout
    ran = harness_cli(
        "run", "--model", "knn-copy", "--kind", "fewshot", "--eval-episodes", "8", "--out", str(tmp_path),
        "--no-progress", env=env,
    )  # fmt: skip
    assert ran.returncode == 0 and warning in ran.stderr, ran.stderr
    strict = harness_cli("plugins", env={**env, "HARNESS_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and strict.stderr.count("\n") == 1 and warning in strict.stderr


def test_sys_exit_at_import_or_in_a_hook_is_a_broken_plugin():
    lenient = PluginHost(autoload=False, modules=[EXITS, PROTONET], strict=False)
    lenient.register(misbehaving.ExitingHook(), "exiting")
    assert lenient.problems() == [
        f"plugin '{EXITS}' failed to import: SystemExit: 3",
        "plugin 'exiting' failed in hook harness_models: SystemExit: leaving now",
    ]
    assert "weighted-protonet" in lenient.models
    with pytest.raises(PluginError, match="SystemExit: 3"):
        PluginHost(autoload=False, modules=[EXITS], strict=True)
    strict = PluginHost(autoload=False, modules=[], strict=True)
    strict.register(misbehaving.ExitingHook(), "exiting")
    with pytest.raises(PluginError, match="failed in hook harness_models: SystemExit: leaving now"):
        strict.models  # noqa: B018


def test_cli_survives_a_plugin_that_exits_at_import():
    result = harness_cli("plugins", "--json", env={"HARNESS_PLUGINS": f"{EXITS},{PROTONET}"})
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed[EXITS]["error"] == "failed to import: SystemExit: 3"
    assert listed[PROTONET]["provides"] == {"models": ["weighted-protonet"]}


@pytest.mark.parametrize(
    ("registry", "typo", "suggestion"),
    [("models", "knnn", "knn"), ("datasets", "synthetik", "synthetic"), ("metrics", "acuracy", "accuracy")],
)
def test_unknown_name_suggests_the_closest(host, registry, typo, suggestion):
    with pytest.raises(UnknownNameError, match=f"did you mean '{suggestion}'"):
        getattr(host, registry).get(typo)


@pytest.fixture
def installed_plugins(tmp_path, monkeypatch):
    """Two distributions on sys.path declaring ``harness`` entry points: one works, one is broken."""
    (tmp_path / "good_plugin.py").write_text(
        "from harness_test_plugins.weighted_protonet import harness_models  # noqa: F401\n"
    )
    for dist, module in (("good_plugin", "good_plugin"), ("bad_plugin", "bad_plugin_missing_module")):
        info = tmp_path / f"{dist}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[harness]\n{dist.split('_')[0]} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_point_plugins_load_and_a_broken_one_is_reported(installed_plugins):
    host = PluginHost(modules=[])
    good, bad = host.info("good"), host.info("bad")
    assert (good.origin, good.distribution, good.version, good.error) == ("entry point", "good_plugin", "1.2.3", None)
    assert "weighted-protonet" in host.models
    assert bad.error == "failed to import: ModuleNotFoundError: No module named 'bad_plugin_missing_module'"


def test_blocking_a_distribution_blocks_its_entry_points_and_an_unknown_model_says_what_is_left_out(
    installed_plugins,
):
    host = PluginHost(modules=[], blocked=["good_plugin"])
    assert host.info("good").blocked and "weighted-protonet" not in host.models
    with pytest.raises(UnknownNameError) as caught:
        host.models.get("weighted-protonet")
    assert str(caught.value).endswith("; left out by HARNESS_BLOCK_PLUGINS: good")
    assert not PluginHost(modules=[], blocked=["harness"]).info("harness.builtins.knn").blocked, "built-ins stay"


def test_disable_env_skips_entry_points(installed_plugins, monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "1")
    host = PluginHost(modules=[])
    assert [p.origin for p in host.plugins()] == ["builtin"] * len(DEFAULT_PLUGINS)
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "off")
    assert PluginHost(modules=[]).autoload
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "maybe")
    with pytest.raises(PluginError, match=r"^HARNESS_DISABLE_PLUGINS='maybe' is neither on nor off; set it to 1"):
        PluginHost(modules=[])
    listing = harness_cli("plugins", env={"HARNESS_DISABLE_PLUGINS": "yes"})
    assert listing.stdout.startswith("entry-point plugins are left out (HARNESS_DISABLE_PLUGINS is on)")


def test_cli_plugins_json_lists_builtins_and_reports_broken(tmp_path):
    result = harness_cli("plugins", "--json", env={"HARNESS_PLUGINS": f"harness_test_plugins.import_error,{PROTONET}"})
    assert result.returncode == 0, result.stderr
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["harness.builtins.knn"]["version"] and listed["harness.builtins.knn"]["provides"] == {
        "models": ["knn"]
    }
    assert listed[PROTONET]["version"] == "0.0.1"
    assert "ModuleNotFoundError" in listed["harness_test_plugins.import_error"]["error"]
    assert "warning: plugin 'harness_test_plugins.import_error' failed to import" in result.stderr
    strict = harness_cli("--strict-plugins", "plugins", env={"HARNESS_PLUGINS": "harness_test_plugins.import_error"})
    assert strict.returncode == 2
    assert strict.stderr.strip().count("\n") == 0 and "harness: error: plugin" in strict.stderr


def test_help_and_plugins_do_not_import_torch():
    script = textwrap.dedent(
        """
        import contextlib, io, sys
        from harness.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            main(["plugins"])
            try:
                main(["--help"])
            except SystemExit:
                pass
        heavy = sorted(m for m in ("torch", "tensorflow", "tensorflow_datasets", "PIL", "pandas") if m in sys.modules)
        print(",".join(heavy))
        """
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


MISSPELT = "harness_test_plugins.misspelt_hook"
MISSPELT_PROBLEM = f"plugin {MISSPELT!r} implements unknown hook 'harness_model' (did you mean 'harness_models'?)"


def test_a_misspelt_hook_is_reported_with_the_closest_hook_name_and_fatal_when_strict(host):
    lenient = PluginHost(autoload=False, modules=[MISSPELT, PROTONET], strict=False)
    assert lenient.problems() == [MISSPELT_PROBLEM]
    assert lenient.info(MISSPELT).error and "weighted-protonet" in lenient.models
    with pytest.raises(PluginError, match=rf"^{re.escape(MISSPELT_PROBLEM)}$"):
        PluginHost(autoload=False, modules=[MISSPELT], strict=True)
    result = harness_cli("plugins", env={"HARNESS_PLUGINS": MISSPELT})
    assert result.returncode == 0 and f"BROKEN: {MISSPELT_PROBLEM.split(' ', 2)[2]}" in result.stdout
    assert f"harness: warning: {MISSPELT_PROBLEM}; skipped (--strict-plugins makes this fatal)" in result.stderr
    strict = harness_cli("--strict-plugins", "plugins", env={"HARNESS_PLUGINS": MISSPELT})
    assert (strict.returncode, strict.stderr) == (2, f"harness: error: {MISSPELT_PROBLEM}\n")


def test_a_hook_with_an_argument_the_spec_lacks_is_reported_with_pluggys_reason(host):
    class ExtraArgument:
        @hookimpl
        def harness_models(self, config):
            return []

    host.register(ExtraArgument(), "extra")
    assert host.info("extra").error == (
        "could not be registered: Plugin 'extra' for hook 'harness_models'; hookimpl definition: "
        "harness_models(config); Argument(s) {'config'} are declared in the hookimpl but can not be found in the "
        "hookspec; match the hook's arguments (docs/hooks.md)"
    )
    assert host.models.names() == ["knn"]


def test_a_hook_function_left_unmarked_is_reported(host):
    class Unmarked:
        def harness_models(self) -> list:
            return weighted_protonet.harness_models()

    host.register(Unmarked(), "unmarked")
    assert host.problems() == [
        "plugin 'unmarked' defines 'harness_models' without @harness.hookimpl, so it is never called; decorate it"
    ]


def test_a_module_that_implements_no_hook_is_reported(host):
    host.register(os, "os")  # HARNESS_PLUGINS=os: importable, but no plugin
    assert host.problems() == [
        "plugin 'os' implements no hook of the harness (hooks: harness_datasets, harness_metrics, harness_models, "
        "harness_table_rows, harness_tables), so it adds nothing; define one decorated with @harness.hookimpl, or "
        "leave the module out"
    ]
    assert host.info("os").error.startswith("implements no hook") and host.models.names() == ["knn"]


def test_plugins_that_add_nothing_an_alias_none_or_a_raising_getattr_are_reported(host):
    alias_only = types.ModuleType("alias_only")
    alias_only.base_models = weighted_protonet.harness_models  # as ``import harness_models as base_models``
    host.register(alias_only, "alias-only")
    host.register(None, "nothing")  # an entry point naming a variable that is None
    touchy = types.ModuleType("touchy")  # a module whose __getattr__ raises for any name it lacks

    def refuse(name: str) -> None:
        raise ImportError(name)

    touchy.__getattr__ = refuse
    host.register(touchy, "touchy")
    assert host.info("touchy").error.startswith("implements no hook of the harness")
    assert host.info("alias-only").error.startswith("implements no hook of the harness")
    assert host.info("nothing").error == (
        "is None, not a module or object with hook functions; point it at the plugin module"
    )
    assert host.models.names() == ["knn"]


def test_blocked_plugins_are_listed_as_blocked_and_never_imported(monkeypatch):
    monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", "harness_test_plugins.import_error, harness.builtins.knn")
    host = PluginHost(autoload=False, modules=["harness_test_plugins.import_error", PROTONET])
    assert host.problems() == []
    blocked = {i.name: i.origin for i in host.plugins() if i.blocked}
    assert blocked == {"harness_test_plugins.import_error": "module", "harness.builtins.knn": "builtin"}
    assert host.models.names() == ["weighted-protonet"]
    env = {
        "HARNESS_PLUGINS": "harness_test_plugins.import_error",
        "HARNESS_BLOCK_PLUGINS": "harness_test_plugins.import_error,knnn",
    }
    result = harness_cli("plugins", env=env)
    assert result.returncode == 0, result.stderr
    assert (
        "harness_test_plugins.import_error - [module]\n    BLOCKED: left out by HARNESS_BLOCK_PLUGINS\n"
        in result.stdout
    )
    assert result.stderr == (
        "harness: warning: HARNESS_BLOCK_PLUGINS names 'knnn', which is no plugin here (see 'harness plugins')\n"
    )
    listed = {p["name"]: p for p in json.loads(harness_cli("plugins", "--json", env=env).stdout)}
    assert listed["harness_test_plugins.import_error"]["blocked"] is True


def test_plugins_verbose_shows_each_spec_with_its_defaults_options_and_scope():
    short = harness_cli("plugins")
    verbose = harness_cli("plugins", "-v")
    assert short.returncode == verbose.returncode == 0, short.stderr + verbose.stderr
    assert "defaults:" not in short.stdout and "Nearest neighbour" not in short.stdout
    for line in (
        "      knn: Nearest neighbour on raw pixels",
        "        defaults: k=1",
        "        options: train_classes=64, val_classes=16, test_classes=32,",
        "      nway_kshot_accuracy: Query accuracy of N-way K-shot episodes",
        "        episode_kinds: fewshot\n",
        "        title: MANN Table 1:",
    ):
        assert line in verbose.stdout
    listed = {p["name"]: p for p in json.loads(harness_cli("plugins", "--json", "-v").stdout)}
    (knn,) = listed["harness.builtins.knn"]["specs"]["models"]
    assert knn["defaults"] == {"k": 1} and knn["episode_kinds"] == ["sequence", "fewshot"] and "factory" not in knn
