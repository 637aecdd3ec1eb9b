"""harness: a plugin-based benchmarking harness for model-based meta-learning."""

import pluggy

__version__ = "0.2.0"

hookimpl = pluggy.HookimplMarker("harness")
"""Marker for functions that implement a harness hook."""

__all__ = ["__version__", "hookimpl"]
