"""Checks of model parameters and dataset options against their defaults' types, and value bounds the core knows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from harness.errors import ConfigError

SEED_MAX = 2**32 - 1
"""Largest seed: what every generator takes (NumPy's legacy ``RandomState`` stops here, torch at 2**64 - 1)."""
DATA_BOUNDS: dict[str, tuple[int, int]] = {"image_size": (1, 512), "seed": (0, SEED_MAX)}
"""Smallest and largest value of a dataset option with this name, whatever the dataset (``image_size``: pixels
a side; ``seed``: what draws a generated dataset)."""


def check_type(key: str, value: Any, default: Any, owner: str, noun: str) -> None:
    """Raise ``ConfigError`` unless ``value`` fits the type of ``default`` (any value fits a ``None`` default).

    An int default takes integers only, a float default finite integers or floats (never NaN or infinity), a bool
    default ``true`` or ``false``, a string default a string; defaults of other types take anything.
    """
    if isinstance(default, bool):
        ok, expected = isinstance(value, bool), "a bool (true or false)"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an int"
    elif isinstance(default, float):
        ok, expected = _finite_number(value), "a finite float (or an int)"
    elif isinstance(default, str):
        ok, expected = isinstance(value, str), "a str"
    else:
        return
    if not ok:
        quote = isinstance(default, str) and isinstance(value, (int, float))  # TOML read it as a number (nan, 1e3)
        fix = f"; to give it as text, quote it: {key}='\"{value}\"'" if quote else ""
        raise ConfigError(f"{owner} {noun} {key} must be {expected} like its default {default!r}, got {value!r}{fix}")


def _finite_number(value: Any) -> bool:
    """Whether ``value`` is an int or float that a float holds, neither NaN nor infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past the largest float
        return False


def check_types(defaults: Mapping[str, Any], given: Mapping[str, Any], owner: str, noun: str) -> None:
    """``check_type`` for each key of ``given`` that ``defaults`` has."""
    for key, value in given.items():
        if key in defaults:
            check_type(key, value, defaults[key], owner, noun)


def check_bounds(options: Mapping[str, Any], bounds: Mapping[str, tuple[int, int]], owner: str, noun: str) -> None:
    """Raise ``ConfigError`` for a numeric value outside its (smallest, largest) in ``bounds``."""
    for key, (low, high) in bounds.items():
        value = options.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if value < low:
            raise ConfigError(f"{owner} {noun} {key} must be at least {low}, got {value!r}")
        if value > high:
            raise ConfigError(f"{owner} {noun} {key} must be at most {high}, got {value!r}")


def check_data(options: Mapping[str, Any], locations: tuple[str, ...], owner: str) -> None:
    """Raise ``ConfigError`` for a dataset option outside its ``DATA_BOUNDS``, or a location option (``locations``:
    ``DatasetSpec.location_options``) that is neither unset nor a path."""
    check_bounds(options, DATA_BOUNDS, owner, "option")
    for key in locations:
        value = options.get(key)
        if value is not None and not isinstance(value, str):  # "": unset, for the dataset to say what it needs
            raise ConfigError(f"{owner} option {key} must be a folder's path, got {value!r}; quote it as text")
