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
