"""The hook reference stays complete: every hookspec is documented in code and in docs/hooks.md."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from harness import hookspecs

HOOKS_MD = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"
HOOKS = sorted(
    name
    for name, obj in vars(hookspecs).items()
    if name.startswith("harness_") and inspect.isfunction(obj) and obj.__module__ == hookspecs.__name__
)


def documented_hooks() -> list[str]:
    """Hook names of the ``## `harness_...` `` headings in docs/hooks.md."""
    return re.findall(r"^#{2,3} `(harness_\w+)`\s*$", HOOKS_MD.read_text(encoding="utf-8"), flags=re.MULTILINE)


def test_hookspecs_found() -> None:
    assert HOOKS, "no harness_* functions in harness/hookspecs.py"
    for name in HOOKS:
        assert hasattr(getattr(hookspecs, name), "harness_spec"), f"{name} is not marked @hookspec"


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_has_docstring(name: str) -> None:
    assert inspect.getdoc(getattr(hookspecs, name)), f"hookspec {name} has no docstring"


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_docstring_has_one_line_summary(name: str) -> None:
    lines = (inspect.getdoc(getattr(hookspecs, name)) or "").splitlines()
    assert lines and lines[0].strip(), f"hookspec {name}: docstring must start with a summary line"
    assert lines[0].rstrip().endswith("."), f"hookspec {name}: summary line must be a sentence ending with '.'"
    assert len(lines) == 1 or not lines[1].strip(), f"hookspec {name}: summary must fit on one line, then a blank line"


def test_every_hook_has_a_section_in_hooks_md() -> None:
    missing = sorted(set(HOOKS) - set(documented_hooks()))
    assert not missing, f"docs/hooks.md has no '## `name`' section for: {', '.join(missing)}"


def test_hooks_md_documents_only_existing_hooks_once() -> None:
    documented = documented_hooks()
    stale = sorted(set(documented) - set(HOOKS))
    assert not stale, f"docs/hooks.md documents hooks not in harness/hookspecs.py: {', '.join(stale)}"
    twice = sorted({name for name in documented if documented.count(name) > 1})
    assert not twice, f"docs/hooks.md has more than one section for: {', '.join(twice)}"


# -- README and the guides say what the code has --------------------------------------------

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a Markdown heading line) up to the next heading of any level."""
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(r"^#{1,6} ", text[start:], flags=re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


def first_column(table_text: str) -> set[str]:
    """The backticked names in the first column of the Markdown table rows of ``table_text``."""
    cells = [line.split("|")[1] for line in table_text.splitlines() if line.startswith("| `")]
    return {name for cell in cells for name in re.findall(r"`([^`]+)`", cell)}


def test_readme_lists_every_hook() -> None:
    named = {name for name in first_column(section(README, "## Plugins")) if name.startswith("harness_")}
    assert named == set(HOOKS)


def test_writing_a_plugin_lists_every_hook() -> None:
    guide = (REPO / "docs" / "writing-a-plugin.md").read_text(encoding="utf-8")
    assert first_column(section(guide, "## 2. The hooks")) == set(HOOKS)


def test_readme_builtins_table_lists_everything_the_builtin_plugins_provide() -> None:
    from harness.plugins import DEFAULT_PLUGINS, PluginHost

    host = PluginHost(autoload=False, modules=[])
    provided = {
        name for info in host.plugins() if info.name in DEFAULT_PLUGINS for names in info.provides.values()
        for name in names
    }  # fmt: skip
    assert first_column(section(README, "## Built-ins")) == provided


def test_readme_builtins_table_names_every_option_of_each_builtin_dataset() -> None:
    from harness.plugins import PluginHost

    rows = {line.split("|")[1].strip(" `"): line for line in section(README, "## Built-ins").splitlines()
            if line.startswith("| `")}  # fmt: skip
    for spec in PluginHost(autoload=False, modules=[]).datasets:
        missing = [option for option in spec.options if f"`{option}`" not in rows[spec.name]]
        assert not missing, f"README's built-ins row of {spec.name} does not name its options {missing}"


def test_the_to_torch_sentence_is_the_same_in_both_guides() -> None:
    def sentence(text: str) -> str:
        start = text.index("Batches and inputs hold NumPy arrays; `to_torch(device)`")
        return " ".join(text[start : text.index(".", text.index("previous_codes", start)) + 1].split())

    guides = [(REPO / "docs" / name).read_text(encoding="utf-8") for name in ("hooks.md", "writing-a-plugin.md")]
    assert sentence(guides[0]) == sentence(guides[1])


def test_torch_pin_admits_the_cpu_build_and_the_readme_says_where_it_comes_from() -> None:
    from packaging.specifiers import SpecifierSet

    pins = [line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("torch")]
    assert len(pins) == 1, "constraints.txt must pin torch once"
    pinned = SpecifierSet(pins[0].removeprefix("torch"))
    assert "2.13.0+cpu" in pinned, "the pin must admit the CPU index's build of that release"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in README
    assert "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" in README


def test_the_example_plugin_uses_the_current_license_field() -> None:
    from harness.config import tomllib

    project = tomllib.loads((REPO / "examples" / "harness-example-plugin" / "pyproject.toml").read_text())
    assert isinstance(project["project"]["license"], str), 'PEP 639: license = "MIT", an SPDX expression'
    assert "setuptools>=77" in project["build-system"]["requires"], "setuptools reads PEP 639 from 77 on"
