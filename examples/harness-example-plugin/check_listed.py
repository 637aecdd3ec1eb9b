"""Check that an installed harness-example-plugin is found through its entry point.

Runs ``harness plugins --json`` in this process and checks that plugin ``example`` is
listed from distribution harness-example-plugin with the installed version, without an
error, providing ``example-protonet``, and that listing plugins did not import torch.
Exits non-zero with a message on the first problem. Used by ``tox -e plugin``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from importlib import metadata

from harness.cli import main

DISTRIBUTION = "harness-example-plugin"


def check() -> str | None:
    """The first problem found, or None."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["plugins", "--json"])
    if status != 0:
        return f"harness plugins --json exited with {status}"
    listed = {info["name"]: info for info in json.loads(out.getvalue())}
    info = listed.get("example")
    if info is None:
        return f"plugin 'example' not listed; listed: {', '.join(listed)}"
    expected = metadata.version(DISTRIBUTION)
    if (info["origin"], info["distribution"], info["version"]) != ("entry point", DISTRIBUTION, expected):
        return f"plugin 'example' listed as {info}, expected an entry point of {DISTRIBUTION} {expected}"
    if info["error"]:
        return f"plugin 'example' is broken: {info['error']}"
    if "example-protonet" not in info["provides"].get("models", []):
        return f"plugin 'example' does not provide model example-protonet: {info['provides']}"
    if "torch" in sys.modules:
        return "harness plugins imported torch; plugins must import it only when a model is built"
    return None


if __name__ == "__main__":
    problem = check()
    if problem:
        sys.exit(f"check_listed: {problem}")
    print(
        f"check_listed: {DISTRIBUTION} {metadata.version(DISTRIBUTION)} listed as plugin 'example'; no torch imported"
    )
