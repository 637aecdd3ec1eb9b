"""What tables take from plugins and paper files: confined to their package, escaped on the way out, never lost."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import types

import pytest
from conftest import TESTS, harness_cli
from harness_test_plugins import toy_table

from harness import hookimpl, leaderboard
from harness.builtins.knn import NearestNeighbour
from harness.episodes import EpisodeKind
from harness.errors import ConfigError, DataError, PluginError
from harness.paper_tables import load_paper_table, paper_cells
from harness.params import SEED_MAX
from harness.plugins import PluginHost
from harness.reproduce import select, table_cells, table_rows
from harness.specs import ModelSpec
from harness.tables import TableRow, TableSetting, make_cell, slug

HEADER = "row,setting,metric,key,value,ci95,paper,table,source,checked,note\n"
TOY = "harness_test_plugins.toy_table"
FEWSHOT = toy_table.toy_table().settings[0].config


@pytest.fixture(autouse=True)
def no_papers_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the folders a test passes are searched for paper numbers."""
    monkeypatch.delenv("HARNESS_PAPERS_DIR", raising=False)


@pytest.fixture
def table(host):
    """The toy table (two settings on synthetic data)."""
    with host.registered(toy_table, "toy-plugin"):
        return host.tables.get("toy-table")


@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        ("harness_test_plugins:../../../../../../etc/passwd", "is not '<package>:<path>'"),
        ("harness_test_plugins:/etc/passwd", "is not '<package>:<path>'"),
        ("harness_test_plugins:papers/./toy-table.csv", "is not '<package>:<path>'"),
        ("../harness_test_plugins:papers/toy-table.csv", "is not '<package>:<path>'"),
        ("json:__init__.py", "names no .csv file"),
        ("harness_test_plugins:papers", "names no .csv file"),
        ("harness_test_plugins.toy_table:papers/toy-table.csv", "'harness_test_plugins.toy_table' of its numbers is a "
         "module, not a package"),
        ("boom_at_import:papers/toy-table.csv", "'boom_at_import' of its numbers failed to import (RuntimeError: boom"),
        ("needs_missing:papers/toy-table.csv", "'needs_missing' of its numbers failed to import (ModuleNotFoundError"),
    ],
)  # fmt: skip
def test_a_tables_numbers_stay_inside_its_package(table, tmp_path, monkeypatch, numbers, message):
    for name, code in (("boom_at_import", "raise RuntimeError('boom')"), ("needs_missing", "import nowhere_zz")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DataError) as caught:
        paper_cells(dataclasses.replace(table, numbers=numbers))
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("table 'toy-table': ")


def test_a_paper_csv_may_start_with_a_bom(table, tmp_path):
    path = tmp_path / "toy-table.csv"
    path.write_text("\ufeff" + toy_table.PAPER_CSV, encoding="utf-8")
    assert [cell.row for cell in load_paper_table(path, table)] == ["Toy ProtoNet", "Toy Human"]


def test_leaderboard_cells_cannot_run_as_formulas_or_break_the_markdown_table(table, tmp_path):
    papers, results = tmp_path / "papers", tmp_path / "results"
    papers.mkdir()
    results.mkdir()
    (papers / "toy-table.csv").write_text(
        HEADER
        + '"=HYPERLINK(""http://evil"")",5-way 1-shot,nway_kshot_accuracy,5-way 1-shot,90.0,1.5,@SUM(1+1),T1,paper,'
        "-2+3,=cmd|' /C calc'!A0\n"
        + "a|b|c,10-way 1-shot,nway_kshot_accuracy,10-way 1-shot,95.5,,Toy,T1,paper,a transcription,\n"
    )
    paths = leaderboard.write(table, results, tmp_path / "boards", [papers])
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert rows[0]["row"] == '\'=HYPERLINK("http://evil")' and rows[0]["citation"] == "'@SUM(1+1), T1"
    assert (rows[0]["checked"], rows[0]["note"]) == ("'-2+3", "'=cmd|' /C calc'!A0")
    assert (rows[0]["value"], rows[0]["ci95"]) == ("90.0", "1.5"), "numbers stay numbers"
    markdown = paths["md"].read_text()
    assert "| a\\|b\\|c | paper |" in markdown
    table_lines = [line for line in markdown.splitlines() if line.startswith("|")]
    assert {line.count("|") - line.count("\\|") for line in table_lines} == {5}, "every line has the header's cells"


def test_a_papers_file_cannot_put_html_or_its_own_lines_into_the_markdown(table, tmp_path):
    papers, results = tmp_path / "papers", tmp_path / "results"
    papers.mkdir()
    results.mkdir()
    (papers / "toy-table.csv").write_text(
        HEADER + "<img src=x onerror=alert(1)>,5-way 1-shot,nway_kshot_accuracy,5-way 1-shot,90.0,,Toy,T1,paper,"
        '"a check\n# A heading of its own","a note\n\n<script>alert(2)</script>"\n'
    )
    markdown = leaderboard.write(table, results, tmp_path / "boards", [papers])["md"].read_text()
    assert "<" not in markdown and "&lt;img src=x onerror=alert(1)>" in markdown
    assert "# A heading" not in [line[: len("# A heading")] for line in markdown.splitlines()]
    assert "- &lt;img src=x onerror=alert(1)>, 5-way 1-shot: a note  &lt;script>alert(2)&lt;/script>." in markdown


def test_a_label_without_ascii_letters_keeps_its_folder_level(table):
    assert slug("日本") == slug("日本") != slug("中文")
    assert slug("日本").startswith("label-") and len(slug("日本")) == len("label-") + 8
    assert slug("MANN (LSTM)") == "mann-lstm"
    row = TableRow("toy-table", "日本")
    cell = make_cell(table, "knn", row, table.settings[0], 0, "quick")
    assert cell.name == f"toy-table/quick/{slug('日本')}/5-way-1-shot/seed0"


def _rows_plugin(*rows: TableRow) -> types.SimpleNamespace:
    return types.SimpleNamespace(harness_table_rows=hookimpl(lambda: list(rows)))


def test_a_row_for_a_table_nobody_registers_is_reported_and_fatal_when_strict():
    rows = _rows_plugin(TableRow("no-such-table", "kNN", model="knn"))
    warning = (
        "plugin 'rows' lists row 'kNN' for table 'no-such-table', which no plugin registers; install the plugin of "
        "that table, or fix the table name in its harness_table_rows"
    )
    host = PluginHost(autoload=False, modules=[], strict=False)
    host.register(rows, "rows")
    assert host.info("rows").warnings == [warning] and warning in host.problems()
    strict = PluginHost(autoload=False, modules=[], strict=True)
    strict.register(rows, "rows")
    with pytest.raises(PluginError, match=f"^{re.escape(warning)}$"):
        strict.plugins()


def test_a_model_row_for_a_misspelt_table_is_reported_with_the_name_meant(host):
    row = TableRow("snail-tabel1", "Typo")
    spec = ModelSpec("typo", "rows a misspelt table", (EpisodeKind.FEWSHOT,), NearestNeighbour, rows=(row,))
    host.register(types.SimpleNamespace(harness_models=hookimpl(lambda: [spec])), "typo-plugin")
    assert host.info("typo-plugin").warnings == [
        "plugin 'typo-plugin' lists row 'Typo' for table 'snail-tabel1', which no plugin registers; install the plugin "
        "of that table, or fix the table name in its ModelSpec.rows of model 'typo'; did you mean 'snail-table1'?"
    ]


def test_a_table_filled_from_a_misspelt_metric_is_reported_with_the_metric_meant(host):
    typo = dataclasses.replace(toy_table.toy_table(), name="typo-table", metric="nway_kshot_acuracy")
    host.register(types.SimpleNamespace(harness_tables=hookimpl(lambda: [typo])), "typo-tables")
    assert host.info("typo-tables").warnings == [
        "plugin 'typo-tables': table 'typo-table' is filled from metric 'nway_kshot_acuracy', which no plugin "
        "registers; fix TableSpec.metric, or install the plugin of that metric; did you mean 'nway_kshot_accuracy'?"
    ]


def test_a_model_registered_twice_by_one_plugin_says_so(host):
    spec = ModelSpec("twice", "the same name twice", (EpisodeKind.FEWSHOT,), NearestNeighbour, trainable=False)
    host.register(types.SimpleNamespace(harness_models=hookimpl(lambda: [spec, spec])), "self")
    assert host.info("self").conflicts == ["plugin 'self' registers model 'twice' twice; keep one"]


def test_a_row_whose_fields_are_not_text_breaks_its_plugin(host):
    host.register(_rows_plugin(TableRow("toy-table", 7, model="knn")), "numbers")  # type: ignore[arg-type]
    assert host.info("numbers").error == (
        "failed in hook harness_table_rows: TypeError: row 7 of table 'toy-table': row must be str, got int 7"
    )


def _tables_plugin(**fields: object) -> types.SimpleNamespace:
    """A plugin registering the toy table (as ``evil-table``) with ``fields`` replaced."""
    table = dataclasses.replace(toy_table.toy_table(), **{"name": "evil-table", **fields})
    return types.SimpleNamespace(harness_tables=hookimpl(lambda: [table]))


def _only_broken(host: PluginHost, plugin: object) -> str:
    """The one problem of ``host`` with ``plugin`` registered as ``evil``, which must leave the built-ins working."""
    with host.registered(plugin, "evil"):
        (problem,) = host.problems()
        assert host.info("evil").provides == {} and "evil-table" not in host.tables
        assert "snail-table1" in host.tables and "knn" in host.models
        assert "snail-table1/Evil kNN" not in host.rows
    return problem


FOLDER = "cannot name a folder: it must be non-empty, without '/', '\\', '..' or control characters, and not start"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "/tmp/abs/pwn"}, f"table name '/tmp/abs/pwn' {FOLDER}"),
        ({"name": "../../escape"}, f"table name '../../escape' {FOLDER}"),
        ({"name": "a\\b"}, f"table name 'a\\\\b' {FOLDER}"),
        ({"name": ".hidden"}, f"table name '.hidden' {FOLDER}"),
        ({"name": "-rf"}, f"table name '-rf' {FOLDER}"),
        ({"name": "nul\0"}, "returned the name 'nul\\x00', which holds control characters"),
        ({"budgets": {"../up": {"episodes": 8}}}, f"table 'evil-table': budget name '../up' {FOLDER}"),
        ({"budgets": {"": {"episodes": 8}}}, f"table 'evil-table': budget name '' {FOLDER}"),
    ],
)
def test_a_table_or_budget_name_that_cannot_name_a_folder_breaks_its_plugin(host, fields, message):
    problem = _only_broken(host, _tables_plugin(**fields))
    assert problem.startswith("plugin 'evil' failed in hook harness_tables: ") and message in problem


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"budgets": ["quick"]}, "TypeError: table 'evil-table': budgets must be Mapping[str, Mapping[str, Any]], "
                                 "got list ['quick']"),
        ({"settings": None}, "TypeError: table 'evil-table': settings must be tuple[TableSetting, ...], got NoneType "
                             "None"),
        ({"settings": (TableSetting("x", "ways=5"),)}, "TypeError: table 'evil-table', setting 'x': config must be "
                                                       "Mapping[str, Any], got str 'ways=5'"),
        ({"keys": "5-way 1-shot"}, "TypeError: table 'evil-table': keys must be tuple[str, ...] | None, got str "
                                   "'5-way 1-shot'"),
        ({"seeds": (0, True)}, "TypeError: table 'evil-table': seeds must be tuple[int, ...], got tuple (0, True)"),
        ({"plot": "pie"}, "ValueError: table 'evil-table': plot must be one of curves, bars, got 'pie'"),
        ({"seeds": ()}, "ValueError: table 'evil-table': seeds is empty; give at least one"),
        ({"settings": (toy_table.toy_table().settings[0],) * 2},
         "ValueError: setting '5-way 1-shot' is listed twice in table 'evil-table'; list it once"),
        ({"seeds": (0, -1)}, f"ValueError: table 'evil-table': seed -1 is outside 0..{SEED_MAX}; give seeds in that "
                             "range"),
        ({"seeds": (SEED_MAX + 1,)}, f"ValueError: table 'evil-table': seed {SEED_MAX + 1} is outside 0..{SEED_MAX}; "
                                     "give seeds in that range"),
        ({"seeds": (3, 3)}, "ValueError: table 'evil-table': seed 3 is listed twice in seeds; list it once"),
        ({"settings": (TableSetting("5 way", FEWSHOT), TableSetting("5-way", FEWSHOT))},
         "ValueError: table 'evil-table': settings '5 way' and '5-way' share the folder '5-way'; give one of them a "
         "name that differs in letters or digits"),
        ({"budgets": {"quick": {"epsiodes": 8}}},
         "ValueError: table 'evil-table', budget 'quick': unknown run-config key 'epsiodes'; did you mean 'episodes'?"),
        ({"settings": (TableSetting("x", {**FEWSHOT, "zzz": 1}),)},
         "ValueError: table 'evil-table', setting 'x': unknown run-config key 'zzz'; use a field of RunConfig "
         "(harness/config.py)"),
        ({"budgets": {"quick": {"episodes": "8"}}},
         "ValueError: table 'evil-table': episodes in budget 'quick' with setting '5-way 1-shot' must be int, got '8'"),
        ({"settings": (TableSetting("x", {**FEWSHOT, "ways": 1}),)},
         "ValueError: table 'evil-table': ways in budget 'quick' with setting 'x' must be at least 2, got 1"),
        ({"settings": (TableSetting("x", {**FEWSHOT, "seed": 1}),)},
         "ValueError: table 'evil-table', setting 'x': sets 'seed', which each cell sets itself (from the table's "
         "seeds, budget and metric, the row's model and params, and reproduce's --device); drop it"),
        ({"budgets": {"quick": {"budget": "quick"}}},
         "ValueError: table 'evil-table', budget 'quick': sets 'budget', which each cell sets itself (from the "
         "table's seeds, budget and metric, the row's model and params, and reproduce's --device); drop it"),
        ({"settings": (TableSetting("x", {**FEWSHOT, "device": "cpu"}),)},
         "ValueError: table 'evil-table', setting 'x': sets 'device', which each cell sets itself (from the table's "
         "seeds, budget and metric, the row's model and params, and reproduce's --device); drop it"),
        ({"settings": (TableSetting("", FEWSHOT),)},
         "ValueError: table 'evil-table': setting name '' is empty or holds control characters; rename it"),
        ({"settings": (TableSetting("a\x1b[31m", FEWSHOT),)},
         "ValueError: table 'evil-table': setting name 'a\\x1b[31m' is empty or holds control characters; rename it"),
        ({"name": "x" * 101}, "ValueError: table name 'xxxxxxxxxxxxxxxxxxxx'... is 101 characters; shorten it to 100"),
        *(({"name": name}, f"ValueError: table name {name!r} is reserved ('all' names every table, 'leaderboards' is "
                           "the leaderboards' folder); rename it") for name in ("all", "leaderboards", "Leaderboards")),
    ],
)  # fmt: skip
def test_a_malformed_table_breaks_its_plugin_in_one_line_naming_table_and_field(host, fields, message):
    assert _only_broken(host, _tables_plugin(**fields)) == f"plugin 'evil' failed in hook harness_tables: {message}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"params": "k=3"}, "params must be Mapping[str, Any], got str 'k=3'"),
        ({"budget_params": ["quick"]}, "budget_params must be Mapping[str, Mapping[str, Any]], got list ['quick']"),
        ({"settings": "5-way 1-shot"}, "settings must be tuple[str, ...], got str '5-way 1-shot'"),
    ],
)
def test_a_malformed_row_breaks_its_plugin_in_one_line_naming_row_and_field(host, fields, message):
    plugin = _rows_plugin(TableRow("snail-table1", "Evil kNN", model="knn", **fields))  # type: ignore[arg-type]
    assert _only_broken(host, plugin) == (
        f"plugin 'evil' failed in hook harness_table_rows: TypeError: row 'Evil kNN' of table 'snail-table1': {message}"
    )
    row = TableRow("snail-table1", "Evil kNN", **fields)  # type: ignore[arg-type]
    spec = ModelSpec("evil-knn", "rows a malformed row", (EpisodeKind.FEWSHOT,), NearestNeighbour, rows=(row,))
    assert message in _only_broken(host, types.SimpleNamespace(harness_models=hookimpl(lambda: [spec])))


def test_a_model_row_label_with_control_characters_breaks_its_plugin(host):
    row = TableRow("snail-table1", "Evil\x1b[2J kNN")
    spec = ModelSpec("evil-knn", "rows a malformed row", (EpisodeKind.FEWSHOT,), NearestNeighbour, rows=(row,))
    problem = _only_broken(host, types.SimpleNamespace(harness_models=hookimpl(lambda: [spec])))
    assert problem.endswith("row label 'Evil\\x1b[2J kNN' of table 'snail-table1' holds control characters; rename it")


def _only_left_out(host: PluginHost, plugin: object) -> str:
    """The one note of ``host`` with ``plugin`` registered as ``evil``: its row left out, everything else kept."""
    with host.registered(plugin, "evil"):
        (problem,) = host.problems()
        assert host.info("evil").error is None and host.info("evil").warnings == [problem]
        assert "snail-table1/Evil kNN" not in host.rows and "Evil kNN" not in _labels(host)
        return problem


def _labels(host: PluginHost) -> list[str]:
    """The row labels of table snail-table1 as planning finds them."""
    return [row.row for _, row in table_rows(host.tables.get("snail-table1"), host)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"params": {"nosuch": 1}}, "model 'knn' has no parameter 'nosuch' (valid: k); fix the row's params"),
        ({"budget_params": {"paper": {"k": "3"}}},
         "model 'knn' parameter k must be an int like its default 1, got '3'; fix the row's budget_params['paper']"),
    ],
)  # fmt: skip
def test_a_row_its_model_cannot_run_is_left_out_with_a_note_naming_the_row_and_fatal_when_strict(fields, message):
    problem = f"plugin 'evil' lists row 'Evil kNN' of table 'snail-table1' that its model cannot run: {message}"
    good = TableRow("snail-table1", "Good kNN", model="knn")
    plugin = _rows_plugin(TableRow("snail-table1", "Evil kNN", model="knn", **fields), good)
    host = PluginHost(autoload=False, modules=[], strict=False)
    assert _only_left_out(host, plugin) == f"{problem}; the row is left out"
    with host.registered(plugin, "evil"):
        assert host.info("evil").provides == {"rows": ["snail-table1/Good kNN"]}
        assert "Good kNN" in _labels(host)
    strict = PluginHost(autoload=False, modules=[], strict=True)
    strict.register(plugin, "evil")
    with pytest.raises(PluginError, match=f"^{re.escape(problem)}$"):  # fatal: nothing left out
        strict.plugins()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"budget_params": {"papr": {"k": 3}}}, "naming budget 'papr', which the table lacks; fix the row's "
         "budget_params (budgets: quick, paper, long, paper-lr-drop, long-lr-drop, long-lr-drop2); did you mean "
         "'paper'?"),
        ({"settings": ("5-way 1-shot", "5-way 2-shot")}, "naming setting '5-way 2-shot', which the table lacks; fix "
         "the row's settings (settings: 5-way 1-shot, 5-way 5-shot, 20-way 1-shot, 20-way 5-shot); did you mean "
         "'5-way 5-shot'?"),
    ],
)  # fmt: skip
def test_a_row_naming_a_budget_or_setting_its_table_lacks_is_left_out_and_its_model_kept(host, fields, message):
    plugin = _rows_plugin(TableRow("snail-table1", "Evil kNN", model="knn", **fields))
    expected = f"plugin 'evil' lists row 'Evil kNN' of table 'snail-table1' {message}; the row is left out"
    assert _only_left_out(host, plugin) == expected
    rows = (TableRow("snail-table1", "Evil kNN", **fields), TableRow("snail-table1", "Good kNN"))
    spec = dataclasses.replace(host.models.get("knn"), name="evil-knn", rows=rows)
    models = types.SimpleNamespace(harness_models=hookimpl(lambda: [spec]))
    assert message in _only_left_out(host, models)
    with host.registered(models, "evil"):  # the model stays, to run and to fill its other rows
        assert host.models.get("evil-knn").rows == rows[1:] and "Good kNN" in _labels(host)


def test_a_row_left_out_does_not_take_the_name_of_a_good_row_another_plugin_lists(host):
    bad = _rows_plugin(TableRow("snail-table1", "Evil kNN", {"kk": 1}, model="knn"))
    good = _rows_plugin(TableRow("snail-table1", "Evil kNN", {"k": 1}, model="knn"))
    with host.registered(bad, "bad"), host.registered(good, "good"):
        assert host.info("bad").warnings[0].endswith("fix the row's params; the row is left out")
        assert host.info("good").conflicts == [] and host.rows.plugin_of("snail-table1/Evil kNN") == "good"
        assert "Evil kNN" in _labels(host)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nope": 1}, "dataset 'omniglot' has no option 'nope'"),
        ({"image_size": 100_000}, "dataset 'omniglot' option image_size must be at most 512, got 100000"),
        ({"image_size": "big"}, "dataset 'omniglot' option image_size must be an int like its default 28, got 'big'"),
        ({"cache_dir": {"a": [1]}}, "dataset 'omniglot' option cache_dir must be a folder's path, got {'a': [1]}"),
    ],
)
def test_a_row_whose_data_its_settings_dataset_cannot_take_is_left_out(host, data, message):
    plugin = _rows_plugin(TableRow("snail-table1", "Evil kNN", model="knn", data=data))
    problem = _only_left_out(host, plugin)
    assert problem.startswith(
        f"plugin 'evil' lists row 'Evil kNN' of table 'snail-table1' whose data setting '5-way 1-shot' cannot take: "
        f"{message}"
    )
    assert problem.endswith("; fix the row's data; the row is left out")


def test_a_row_of_a_model_not_installed_takes_no_folder_and_a_row_listed_twice_keeps_one_copy(host):
    ghost = _rows_plugin(TableRow("snail-table1", "Evil kNN", model="not-installed"))
    twice = TableRow("snail-table1", "Evil kNN!")
    spec = dataclasses.replace(host.models.get("knn"), name="evil-knn", rows=(twice, twice))
    with (
        host.registered(ghost, "ghost"),
        host.registered(types.SimpleNamespace(harness_models=hookimpl(lambda: [spec])), "evil"),
    ):
        assert host.info("ghost").warnings == [] and host.models.get("evil-knn").rows == (twice,)
        assert host.info("evil").warnings == [
            "plugin 'evil' lists row 'Evil kNN!' of table 'snail-table1', but plugin 'evil' lists the row already; "
            "give it a label that differs in letters or digits; the row is left out"
        ]
        assert "Evil kNN!" in _labels(host)


def test_a_rows_data_is_checked_against_the_dataset_its_budget_names(host):
    setting = TableSetting("5-way 1-shot", {"kind": "fewshot", "ways": 5})
    table = dataclasses.replace(host.tables.get("snail-table1"), name="budget-data", settings=(setting,),
                                budgets={"quick": {"dataset": "omniglot", "episodes": 0}}, numbers="")  # fmt: skip
    lake = TableRow("budget-data", "kNN lake", model="knn", data={"scheme": "lake"})
    plugin = types.SimpleNamespace(
        harness_tables=hookimpl(lambda: [table]), harness_table_rows=hookimpl(lambda: [lake])
    )
    with host.registered(plugin, "budget-data"):
        assert host.problems() == [] and "budget-data/kNN lake" in host.rows


def test_a_row_of_a_model_not_installed_is_left_out_and_a_misspelt_model_is_reported(toy_host):
    rows = _rows_plugin(
        TableRow("toy-table", "Ghost", model="ghost-model"), TableRow("toy-table", "Typo", model="knnn")
    )
    toy_host.register(rows, "rows")
    assert toy_host.info("rows").warnings == [
        "plugin 'rows' lists row 'Typo' of table 'toy-table' for model 'knnn', which no plugin registers, so the row "
        "is left out; install the plugin of that model, or fix the row's model; did you mean 'knn'?"
    ]
    table = toy_host.tables.get("toy-table")
    assert [row.row for _, row in table_rows(table, toy_host)] == ["Toy ProtoNet"]
    assert {cell.row for cell in table_cells(table, toy_host, "quick")} == {"Toy ProtoNet"}


def test_planning_over_several_tables_leaves_out_a_table_no_installed_model_fills(toy_host, capsys):
    unfilled = dataclasses.replace(toy_table.toy_table(), name="unfilled-table")
    toy_host.register(types.SimpleNamespace(harness_tables=hookimpl(lambda: [unfilled])), "unfilled")
    toy_host.register(_rows_plugin(TableRow("toy-table", "Ghost", model="ghost-model")), "ghost")
    chosen = select(list(toy_host.tables), toy_host, "quick")
    assert "unfilled-table" not in [s.table.name for s in chosen] and "toy-table" in [s.table.name for s in chosen]
    assert capsys.readouterr().err == (
        "harness: note: no installed model fills table 'unfilled-table'; left out (install a model plugin that lists "
        "rows for it)\n"
    )
    assert [s.table.name for s in select([unfilled], toy_host, "quick")] == ["unfilled-table"]
    with pytest.raises(ConfigError, match=r"^no installed model fills table 'unfilled-table'; install"):
        table_cells(unfilled, toy_host, "quick")  # a single table named still says so


def test_leaderboard_all_writes_every_table_it_can_and_names_those_it_cannot(tmp_path):
    (tmp_path / "numberless.py").write_text(
        "import dataclasses\n"
        "from harness import hookimpl\n"
        "from harness_test_plugins.toy_table import toy_table\n\n\n"
        "@hookimpl\n"
        "def harness_tables():\n"
        "    return [dataclasses.replace(toy_table(), name='bare-table', numbers=''),\n"
        "            dataclasses.replace(toy_table(), name='nopkg-table', numbers='nopkg:x.csv')]\n"
    )
    results, out = tmp_path / "results", tmp_path / "boards"
    results.mkdir()
    env = {
        "HARNESS_PLUGINS": f"{TOY},numberless",
        "HARNESS_BLOCK_PLUGINS": "harness.builtins.tables",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(TESTS)]),
    }
    result = harness_cli("leaderboard", "all", "--results", str(results), "--out", str(out), env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "bare-table: not written: no paper numbers for table 'bare-table' (looked in: nothing); pass --papers DIR "
        "holding bare-table.csv, or ship it with the table (TableSpec.numbers)",
        "nopkg-table: not written: table 'nopkg-table': package 'nopkg' of its numbers is not installed; reinstall "
        "the plugin",
        "harness: error: the leaderboards of bare-table, nopkg-table were not written (see above); fix what their "
        "lines say and rerun",
    ]
    assert "toy-table.md" in {p.name for p in out.glob("*.md")}  # (and those of any example plugin installed)
    assert not (out / "bare-table.md").exists() and not (out / "nopkg-table.md").exists()
    single = harness_cli("leaderboard", "bare-table", "--results", str(results), "--out", str(out), env=env)
    assert single.returncode == 2 and single.stderr.startswith("harness: error: no paper numbers for table")


def test_commands_over_all_tables_keep_working_beside_a_malformed_table(tmp_path):
    (tmp_path / "evil_tables.py").write_text(
        "import dataclasses\n"
        "from harness import hookimpl\n"
        "from harness_test_plugins.toy_table import toy_table\n\n\n"
        "@hookimpl\n"
        "def harness_tables():\n"
        "    return [dataclasses.replace(toy_table(), budgets=['quick'])]\n"
    )
    (tmp_path / "results").mkdir()
    env = {"HARNESS_PLUGINS": "evil_tables", "PYTHONPATH": os.pathsep.join([str(tmp_path), str(TESTS)])}
    result = harness_cli("status", "all", "--results", str(tmp_path / "results"), "--budget", "quick", env=env)
    assert result.returncode == 0 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "harness: warning: plugin 'evil_tables' failed in hook harness_tables: TypeError: table 'toy-table': budgets "
        "must be Mapping[str, Mapping[str, Any]], got list ['quick']"
    )
    assert "snail-table1" in result.stdout and "toy-table" not in result.stdout
