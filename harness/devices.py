"""Devices for torch models: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, resolved with one-line errors.

Imports torch only when a device is resolved, which only torch models do; ``set_threads`` never does.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from harness.config import check_device_name
from harness.errors import ConfigError


def resolve(name: str) -> Any:
    """The ``torch.device`` for ``name``; ``auto`` is CUDA when present, else the CPU."""
    import torch

    check_device_name(name, "device in the run config")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but this machine has no CUDA GPU; use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device {name!r} asked for, but this machine has {count} CUDA GPU(s): cuda:0..{count - 1}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but MPS is not available here; use --device cpu or auto")
    return device


def check_flag(name: str, here: bool) -> None:
    """Refuse a bad ``--device`` before any work: not a device name, or (``here``: cells run on this machine) a GPU
    this machine lacks. Imports torch only for a GPU name, and not at all where torch is not installed."""
    check_device_name(name, "--device")
    if here and name.partition(":")[0] in ("cuda", "mps") and importlib.util.find_spec("torch") is not None:
        resolve(name)


def set_threads(threads: int) -> None:
    """Give torch ``threads`` CPU threads, where torch is loaded (a NumPy model's run never imports it)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
