"""Plugin loading and the typed wrapper over pluggy's plugin manager.

Callers use ``PluginHost`` (``get_host()``) and its registries; nothing outside this
module calls ``pm.hook``. Built-ins are registered from ``DEFAULT_PLUGINS``; third-party
plugins come from the ``harness`` entry-point group unless ``HARNESS_DISABLE_PLUGINS``
is set. A plugin that fails to import, raises in a hook or returns the wrong type is
reported and left out; ``HARNESS_STRICT_PLUGINS=1`` (or ``--strict-plugins``) makes
that fatal.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any, TypeVar

import pluggy

from harness import __version__, hookspecs
from harness.errors import PluginError, describe
from harness.registry import Registry
from harness.specs import DatasetSpec, MetricSpec, ModelSpec
from harness.tables import TableSpec

ENTRY_POINT_GROUP = "harness"
DISABLE_ENV = "HARNESS_DISABLE_PLUGINS"
"""Set to 1 to skip third-party (entry-point) plugins; built-ins still load."""
STRICT_ENV = "HARNESS_STRICT_PLUGINS"
"""Set to 1 to make a broken plugin fatal instead of reported and skipped."""
MODULES_ENV = "HARNESS_PLUGINS"
"""Comma-separated importable modules to register as plugins, like ``pytest -p``."""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "harness.builtins.synthetic",
    "harness.builtins.metrics",
    "harness.builtins.knn",
    "harness.builtins.tables",
    "harness.builtins.miniimagenet",
    "harness.builtins.omniglot",
)
"""The harness's own features, registered as plugins."""

HOOKS: dict[str, tuple[str, type]] = {
    "models": ("harness_models", ModelSpec),
    "datasets": ("harness_datasets", DatasetSpec),
    "metrics": ("harness_metrics", MetricSpec),
    "tables": ("harness_tables", TableSpec),
}
"""Registry kind -> (hook name, spec type the hook must return)."""

S = TypeVar("S")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


@dataclass
class PluginInfo:
    """One plugin as ``harness plugins`` shows it."""

    name: str
    origin: str
    """``builtin``, ``entry point``, ``module`` (HARNESS_PLUGINS) or ``registered`` (at run time)."""
    distribution: str | None = None
    version: str | None = None
    location: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return {
            "name": self.name,
            "origin": self.origin,
            "distribution": self.distribution,
            "version": self.version,
            "location": self.location,
            "provides": self.provides,
            "error": self.error,
        }


class PluginHost:
    """The harness's plugins and the registries built from their hooks."""

    def __init__(
        self,
        *,
        strict: bool | None = None,
        autoload: bool | None = None,
        modules: Sequence[str] | None = None,
    ) -> None:
        self.strict = _env_flag(STRICT_ENV) if strict is None else strict
        self._pm = pluggy.PluginManager("harness")
        self._pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry[Any]] | None = None
        for module_name in DEFAULT_PLUGINS:
            self._register(importlib.import_module(module_name), module_name, "builtin", "harness", __version__)
        if modules is None:
            modules = [m.strip() for m in os.environ.get(MODULES_ENV, "").split(",") if m.strip()]
        for module_name in modules:
            self._load(module_name, "module", None, functools.partial(importlib.import_module, module_name))
        if (not _env_flag(DISABLE_ENV)) if autoload is None else autoload:
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._load(ep.name, "entry point", ep.dist, ep.load)

    # -- registration -------------------------------------------------------------------

    def register(self, plugin: object, name: str) -> None:
        """Register ``plugin`` (a module or object with hook implementations) under ``name``."""
        if name in self._infos:
            raise PluginError(f"a plugin named {name!r} is already registered; pick another name")
        self._register(plugin, name, "registered", None, getattr(plugin, "__version__", None))

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as ``name``."""
        if self._pm.get_plugin(name) is not None:
            self._pm.unregister(name=name)
        self._infos.pop(name, None)
        self._registries = None

    @contextlib.contextmanager
    def registered(self, plugin: object, name: str) -> Iterator[None]:
        """Register ``plugin`` for the duration of a ``with`` block (handy in tests)."""
        self.register(plugin, name)
        try:
            yield
        finally:
            self.unregister(name)

    def _load(self, name: str, origin: str, dist: metadata.Distribution | None, load: Callable[[], object]) -> None:
        dist_name = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else None
        try:
            plugin = load()
        except Exception as exc:  # a broken plugin must not take the harness down
            self._broken(PluginInfo(name, origin, dist_name, version), f"failed to import: {describe(exc)}")
            return
        if version is None:
            version = getattr(plugin, "__version__", None)
        self._register(plugin, name, origin, dist_name, version)

    def _register(self, plugin: object, name: str, origin: str, dist_name: str | None, version: str | None) -> None:
        info = PluginInfo(name, origin, dist_name, version, _location(plugin))
        try:
            self._pm.register(plugin, name=name)
        except Exception as exc:
            self._broken(info, f"could not be registered: {describe(exc)}")
            return
        self._infos[name] = info
        self._registries = None

    def _broken(self, info: PluginInfo, problem: str) -> None:
        info.error = problem
        if self.strict:
            raise PluginError(f"plugin {info.name!r} {problem}")
        self._infos[info.name] = info
        self._registries = None

    # -- queries ------------------------------------------------------------------------

    @property
    def models(self) -> Registry[ModelSpec]:
        """Registered models."""
        return self._build()["models"]

    @property
    def datasets(self) -> Registry[DatasetSpec]:
        """Registered episode datasets."""
        return self._build()["datasets"]

    @property
    def metrics(self) -> Registry[MetricSpec]:
        """Registered metrics."""
        return self._build()["metrics"]

    @property
    def tables(self) -> Registry[TableSpec]:
        """Registered paper tables."""
        return self._build()["tables"]

    def plugins(self) -> list[PluginInfo]:
        """Every plugin, working or broken, with what it provides."""
        self._build()
        return list(self._infos.values())

    def info(self, name: str) -> PluginInfo:
        """The ``PluginInfo`` of plugin ``name``."""
        self._build()
        return self._infos[name]

    def problems(self) -> list[str]:
        """One line per broken plugin."""
        return [f"plugin {i.name!r} {i.error}" for i in self.plugins() if i.error]

    def _build(self) -> dict[str, Registry[Any]]:
        if self._registries is not None:
            return self._registries
        contributions: dict[str, dict[str, list[Any]]] = {}
        for kind, (hook_name, spec_type) in HOOKS.items():
            caller = getattr(self._pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                info = self._infos[impl.plugin_name]
                if info.error:
                    continue
                try:
                    specs: list[Any] = _validated(impl.function(), spec_type, hook_name)
                except Exception as exc:
                    self._broken(info, f"failed in hook {hook_name}: {describe(exc)}")
                    continue
                contributions.setdefault(impl.plugin_name, {})[kind] = specs
        registries: dict[str, Registry[Any]] = {kind: Registry(kind[:-1]) for kind in HOOKS}
        for plugin_name, by_kind in contributions.items():
            info = self._infos[plugin_name]
            if info.error:  # broken in another hook: leave out everything it provides
                continue
            info.provides = {}
            for kind, specs in by_kind.items():
                for spec in specs:
                    registries[kind].add(spec.name, spec, plugin_name)
                info.provides[kind] = [s.name for s in specs]
        self._registries = registries
        return registries


def _validated(result: object, spec_type: type[S], hook_name: str) -> list[S]:
    if result is None:
        return []
    if not isinstance(result, (list, tuple)):
        raise TypeError(f"{hook_name} must return a list of {spec_type.__name__}, got {type(result).__name__}")
    for item in result:
        if not isinstance(item, spec_type):
            raise TypeError(
                f"{hook_name} must return a list of {spec_type.__name__}, got an item of type {type(item).__name__}"
            )
        if not isinstance(getattr(item, "name", None), str) or not item.name:  # type: ignore[attr-defined]
            raise TypeError(f"{hook_name} returned a {spec_type.__name__} without a name")
    return list(result)


def _location(plugin: object) -> str | None:
    if isinstance(plugin, ModuleType):
        return getattr(plugin, "__file__", None) or plugin.__name__
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


_HOST: PluginHost | None = None


def get_host(*, strict: bool | None = None) -> PluginHost:
    """The process-wide ``PluginHost``, created on first use from the environment."""
    global _HOST
    if _HOST is None or (strict is not None and strict != _HOST.strict):
        _HOST = PluginHost(strict=strict)
    return _HOST
