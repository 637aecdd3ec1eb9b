"""A plugin module that fails at import."""

import harness_no_such_dependency  # noqa: F401
