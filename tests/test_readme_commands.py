"""Every ``harness`` command the READMEs and guides show is one the CLI accepts.

The commands are parsed, not run (they name data folders of the reader's machine): a flag
that was renamed or removed, or a value of the wrong type, fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from harness.arguments import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted(
    [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("examples/*/README.md"), *ROOT.glob("plugins/*/README.md")]
)
_BLOCK = re.compile(r"```(?:bash|sh|console)\n(.*?)```", re.S)
_ENV = re.compile(r"[A-Z_][A-Z0-9_]*=\S*")


def shown_commands() -> list[tuple[str, str]]:
    """``(document, command)`` for each ``harness ...`` command in a shell block of the documents."""
    found = []
    for document in DOCUMENTS:
        for block in _BLOCK.findall(document.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                words: list[str] = []
                for token in [*lexer, ";"]:
                    if token not in (";", "&&", "||", "|", "&"):
                        words.append(token)
                        continue
                    while words and _ENV.fullmatch(words[0]):
                        words.pop(0)
                    if words[:1] == ["harness"]:
                        found.append((str(document.relative_to(ROOT)), shlex.join(words)))
                    words = []
    return found


def test_the_documents_show_commands() -> None:
    assert len(shown_commands()) >= 20


@pytest.mark.parametrize(("document", "command"), shown_commands())
def test_a_shown_command_parses(document: str, command: str, capsys: pytest.CaptureFixture) -> None:
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as exc:
        if exc.code:
            pytest.fail(f"{document}: {command!r} does not parse: {capsys.readouterr().err.strip().splitlines()[-1]}")
