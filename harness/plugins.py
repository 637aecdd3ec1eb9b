"""Plugin loading and the typed wrapper over pluggy's plugin manager.

Callers use ``PluginHost`` (``get_host()``) and its registries; nothing outside this
module calls ``pm.hook``. Built-ins are registered from ``DEFAULT_PLUGINS``; third-party
plugins come from the ``harness`` entry-point group unless ``HARNESS_DISABLE_PLUGINS``
is set. A plugin that fails to import, raises in a hook or returns the wrong type is
reported and left out (``sys.exit`` in one included), and so is one implementing a hook that
does not exist (a misspelt ``harness_model``) or defining a hook without marking it; when two
plugins register one name, the first registered (a built-in before any other) keeps it and
both are reported. ``HARNESS_STRICT_PLUGINS=1`` (or ``--strict-plugins``) makes either fatal.
``HARNESS_BLOCK_PLUGINS`` names plugins to leave out (listed as blocked, never imported).
What a hook returns is checked by ``harness.spec_checks``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import enum
import functools
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from harness import __version__, hookspecs, spec_checks
from harness.config import did_you_mean
from harness.errors import DuplicateNameError, PluginError, describe, printable
from harness.registry import Registry
from harness.specs import DatasetSpec, MetricSpec, ModelSpec
from harness.tables import TableRow, TableSpec

ENTRY_POINT_GROUP = "harness"
DISABLE_ENV = "HARNESS_DISABLE_PLUGINS"
"""Set to 1 to skip third-party (entry-point) plugins; built-ins still load."""
STRICT_ENV = "HARNESS_STRICT_PLUGINS"
"""Set to 1 to make a broken plugin fatal instead of reported and skipped."""
MODULES_ENV = "HARNESS_PLUGINS"
"""Comma-separated importable modules to register as plugins, like ``pytest -p``."""
BLOCK_ENV = "HARNESS_BLOCK_PLUGINS"
"""Comma-separated plugin names to leave out (pluggy's ``set_blocked``); a blocked module is not imported."""

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
    "rows": ("harness_table_rows", TableRow),
}
"""Registry kind -> (hook name, spec type the hook must return)."""


def _env_flag(name: str) -> bool:
    """Whether the variable ``name`` is set on (1, true, yes, on) rather than off (unset, empty, 0, false, no,
    off); any other value is a one-line ``PluginError``."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise PluginError(f"{name}={os.environ[name]!r} is neither on nor off; set it to 1 (on) or 0 (off), or unset it")


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


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
    conflicts: list[str] = field(default_factory=list)
    """One line per name this plugin registers that an earlier plugin took (left out)."""
    blocked: bool = False
    """Left out because ``HARNESS_BLOCK_PLUGINS`` names it."""
    warnings: list[str] = field(default_factory=list)
    """One line per thing it provides that nothing can use, such as a row of a table no plugin registers."""

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
            "conflicts": self.conflicts,
            "blocked": self.blocked,
            "warnings": self.warnings,
        }


class PluginHost:
    """The harness's plugins and the registries built from their hooks."""

    def __init__(
        self,
        *,
        strict: bool | None = None,
        autoload: bool | None = None,
        modules: Sequence[str] | None = None,
        blocked: Sequence[str] | None = None,
    ) -> None:
        self.strict = _env_flag(STRICT_ENV) if strict is None else strict
        self.autoload = (not _env_flag(DISABLE_ENV)) if autoload is None else autoload
        self.modules = tuple(_env_list(MODULES_ENV) if modules is None else modules)
        self.blocked = tuple(_env_list(BLOCK_ENV) if blocked is None else blocked)
        self._pm = pluggy.PluginManager("harness")
        self._pm.add_hookspecs(hookspecs)
        self._hook_names = sorted(vars(self._pm.hook))
        for name in self.blocked:
            self._pm.set_blocked(name)
        self._infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry[Any]] | None = None
        for module_name in DEFAULT_PLUGINS:
            if not self._listed_blocked(module_name, "builtin", "harness", __version__):
                self._register(importlib.import_module(module_name), module_name, "builtin", "harness", __version__)
        for module_name in self.modules:
            self._load(module_name, "module", None, functools.partial(importlib.import_module, module_name))
        if self.autoload:
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._load(ep.name, "entry point", ep.dist, ep.load)

    # -- registration -------------------------------------------------------------------

    def register(self, plugin: object, name: str) -> None:
        """Register ``plugin`` (a module or object with hook implementations) under ``name``."""
        if name in self._infos:
            raise PluginError(f"a plugin named {name!r} is already registered; pick another name")
        version = _attribute(plugin, "__version__")
        if not self._listed_blocked(name, "registered", None, version):
            self._register(plugin, name, "registered", None, version)

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
        if self._listed_blocked(name, origin, dist_name, version):
            return
        try:
            plugin = load()
        except (Exception, SystemExit) as exc:  # a broken plugin must not take the harness down
            self._broken(PluginInfo(name, origin, dist_name, version), f"failed to import: {describe(exc)}")
            return
        if version is None:
            version = _attribute(plugin, "__version__")
        self._register(plugin, name, origin, dist_name, version)

    def _register(self, plugin: object, name: str, origin: str, dist_name: str | None, version: str | None) -> None:
        info = PluginInfo(name, origin, dist_name, version, _location(plugin))
        if plugin is None:  # pluggy would take it, then fail to let it go
            self._broken(info, "is None, not a module or object with hook functions; point it at the plugin module")
            return
        try:
            self._pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:  # its message's later lines say what is wrong
            reason = printable("; ".join(line.strip() for line in str(exc).strip().splitlines()))
            self._broken(info, f"could not be registered: {reason}; match the hook's arguments (docs/hooks.md)")
            return
        except Exception as exc:
            self._broken(info, f"could not be registered: {describe(exc)}")
            return
        problem = self._hook_problem(plugin)
        if problem is not None:
            self._pm.unregister(plugin)
            self._broken(info, problem)
            return
        self._infos[name] = info
        self._registries = None

    def _listed_blocked(self, name: str, origin: str, dist_name: str | None, version: str | None) -> bool:
        """Whether ``name`` (or, for an entry point, its distribution ``dist_name``) is blocked; if so, list it as
        blocked instead of loading it."""
        by_distribution = origin == "entry point" and dist_name is not None and dist_name in self.blocked
        if not (self._pm.is_blocked(name) or by_distribution):
            return False
        self._infos[name] = PluginInfo(name, origin, dist_name, version, blocked=True)
        self._registries = None
        return True

    def _hook_problem(self, plugin: object) -> str | None:
        """One line on a hook implementation that matches no hook, a hook function left unmarked, or no hook at all.

        A hook function imported under another name (``from x import harness_models as base``)
        is an alias, not a misspelling: pluggy files it under the new name, and it is left alone.
        """
        implemented = set()
        for caller in self._pm.get_hookcallers(plugin) or []:
            implemented.add(caller.name)
            names = [getattr(i.function, "__name__", "") for i in caller.get_hookimpls() if i.plugin is plugin]
            if not caller.has_spec() and any(name not in self._hook_names for name in names):
                close = difflib.get_close_matches(caller.name, self._hook_names, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"hooks: {', '.join(self._hook_names)}"
                return f"implements unknown hook {caller.name!r} ({hint})"
        for name in self._hook_names:
            if name not in implemented and callable(_attribute(plugin, name)):
                return f"defines {name!r} without @harness.hookimpl, so it is never called; decorate it"
        if not implemented & set(self._hook_names):  # an alias alone (``harness_models as base``) is never called
            return (
                f"implements no hook of the harness (hooks: {', '.join(self._hook_names)}), so it adds nothing; "
                "define one decorated with @harness.hookimpl, or leave the module out"
            )
        return None

    def _broken(self, info: PluginInfo, problem: str) -> None:
        info.error = problem
        if self.strict:
            raise PluginError(f"plugin {info.name!r} {problem}")
        key, n = info.name, 1
        while key in self._infos and self._infos[key] is not info:  # a working plugin of that name stays listed
            n += 1
            key = f"{info.name} #{n}"
        self._infos[key] = info
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

    @property
    def rows(self) -> Registry[TableRow]:
        """Table rows listed by ``harness_table_rows``, named ``<table>/<row>``."""
        return self._build()["rows"]

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of ``kind`` (a key of ``HOOKS``: ``models``, ``datasets`` ...)."""
        return self._build()[kind]

    def setup(self) -> HostSetup:
        """What rebuilds this host in a fresh process, such as a Ray worker.

        Raises ``PluginError`` for a plugin registered at run time that such a process cannot
        import by name: an object rather than a module, or a module not importable as itself.
        """
        registered = []
        for name, info in self._infos.items():
            plugin = self._pm.get_plugin(name)
            if info.origin == "registered" and plugin is not None:
                registered.append((name, _importable_name(name, plugin)))
        return HostSetup(self.strict, self.autoload, self.modules, tuple(registered), self.blocked)

    def plugins(self) -> list[PluginInfo]:
        """Every plugin, working, broken or blocked, with what it provides."""
        self._build()
        return list(self._infos.values())

    def info(self, name: str) -> PluginInfo:
        """The ``PluginInfo`` of plugin ``name``."""
        self._build()
        return self._infos[name]

    def problems(self) -> list[str]:
        """One line per broken plugin, then one per name two plugins register."""
        infos = self.plugins()
        return [f"plugin {i.name!r} {i.error}" for i in infos if i.error] + [
            line for i in infos for line in (*i.conflicts, *i.warnings)
        ]

    def _build(self) -> dict[str, Registry[Any]]:
        if self._registries is not None:
            return self._registries
        contributions: dict[str, dict[str, list[Any]]] = {}
        for each in self._infos.values():
            each.conflicts, each.warnings = [], []
        for kind, (hook_name, spec_type) in HOOKS.items():
            caller = getattr(self._pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                info = self._infos[impl.plugin_name]
                if info.error:
                    continue
                try:
                    specs: list[Any] = spec_checks.validated(impl.function(), spec_type, hook_name)
                    spec_checks.check_names(specs, hook_name)
                except (Exception, SystemExit) as exc:
                    self._broken(info, f"failed in hook {hook_name}: {describe(exc)}")
                    continue
                contributions.setdefault(impl.plugin_name, {})[kind] = specs
        left_out = tuple(name for name, info in self._infos.items() if info.blocked)
        registries: dict[str, Registry[Any]] = {kind: Registry(kind[:-1], left_out) for kind in HOOKS}
        order = [name for name in self._infos if name in contributions]  # the order plugins were registered
        ordered = sorted(order, key=lambda name: self._infos[name].origin != "builtin")  # built-ins first
        for plugin_name in ordered:
            info = self._infos[plugin_name]
            if info.error:  # broken in another hook: leave out everything it provides
                continue
            info.provides = {}
            for kind, specs in contributions[plugin_name].items():
                if kind != "rows":  # after every model, table and dataset, to be checked against them
                    info.provides[kind] = [s.name for s in specs if self._add(registries[kind], spec=s, info=info)]
        for plugin_name in ordered:
            info = self._infos[plugin_name]
            if not info.error and "rows" in contributions[plugin_name]:  # a row left out cannot take a good one's name
                rows = contributions[plugin_name]["rows"]
                specs = [row for row in rows if self._runs(plugin_name, row, row.model, registries)]
                info.provides["rows"] = [s.name for s in specs if self._add(registries["rows"], spec=s, info=info)]
        self._registries = registries
        self._leave_out_rows_that_cannot_run(registries, ordered)
        self._check_rows(registries)
        self._check_table_metrics(registries)
        return registries

    def _runs(self, plugin: str, row: TableRow, model: str | None, registries: dict[str, Registry[Any]]) -> bool:
        """Whether ``row`` (listed by ``plugin``) can run; if not, a note naming the fix (fatal if strict): its
        registered ``model`` cannot run it, it names a budget or setting its registered table lacks, or its settings'
        datasets cannot take its ``data`` (``harness.spec_checks``)."""
        models, tables = registries["models"], registries["tables"]
        problem = spec_checks.params_problem(row, models.get(model)) if model is not None and model in models else None
        if problem is None and row.table in tables:
            table = tables.get(row.table)
            datasets = registries["datasets"]
            problem = spec_checks.table_problem(row, table) or spec_checks.data_problem(row, table, datasets)
        if problem is not None:
            self._leave_out(plugin, problem)
        return problem is None

    def _leave_out(self, plugin: str, problem: str) -> None:
        """Note that a row ``plugin`` lists is left out for ``problem`` (fatal if strict)."""
        self._note(plugin, f"plugin {plugin!r} {problem}" + ("" if self.strict else "; the row is left out"))

    def _leave_out_rows_that_cannot_run(self, registries: dict[str, Registry[Any]], ordered: list[str]) -> None:
        """Leave out, with a note naming the fix (fatal if strict), each ``ModelSpec.rows`` row that cannot run
        (``_runs``; ``harness_table_rows`` rows were checked before they were registered), and each row whose cells
        would be those of a row listed before it (``spec_checks.folder_problem``; in the plugins' order, ``ordered``:
        the built-ins, then as registered); the plugin listing it keeps everything else it provides."""
        models, rows = registries["models"], registries["rows"]
        listed: list[tuple[str, str | None, TableRow, tuple[str, int] | None]] = [
            (models.plugin_of(m.name), row.model or m.name, row, (m.name, i))
            for m in models
            for i, row in enumerate(m.rows)
        ]
        listed += [(rows.plugin_of(row.name), row.model, row, None) for row in rows]
        listed.sort(key=lambda each: ordered.index(each[0]))
        kept: list[tuple[str, TableRow]] = []
        dropped: dict[str, set[int]] = {}
        for plugin, model, row, owner in listed:
            if model not in models:  # a row of a model not installed: left out when planning, takes no folder
                continue
            if owner is None or self._runs(plugin, row, model, registries):
                problem = spec_checks.folder_problem(row, kept)
                if problem is None:
                    kept.append((plugin, row))
                    continue
                self._leave_out(plugin, problem)
            if owner is None:
                rows.remove(row.name)
                self._infos[plugin].provides["rows"].remove(row.name)
            else:
                dropped.setdefault(owner[0], set()).add(owner[1])
        for name, indices in dropped.items():
            spec = models.get(name)
            models.replace(name, dataclasses.replace(spec, rows=tuple(r for i, r in enumerate(spec.rows)
                                                                      if i not in indices)))  # fmt: skip

    def _check_table_metrics(self, registries: dict[str, Registry[Any]]) -> None:
        """Note each table whose metric no plugin registers (fatal if strict): its cells could never be filled."""
        metrics = registries["metrics"]
        for table in registries["tables"]:
            if table.metric in metrics:
                continue
            plugin = registries["tables"].plugin_of(table.name)
            problem = (
                f"plugin {plugin!r}: table {table.name!r} is filled from metric {table.metric!r}, which no plugin "
                f"registers; fix TableSpec.metric, or install the plugin of that metric"
                f"{did_you_mean(table.metric, metrics.names())}"
            )
            self._note(plugin, problem)

    def _note(self, plugin: str, problem: str) -> None:
        """A problem that leaves ``plugin`` working: a warning of its own, or fatal if strict."""
        if self.strict:
            self._registries = None
            raise PluginError(problem)
        self._infos[plugin].warnings.append(problem)

    def _check_rows(self, registries: dict[str, Registry[Any]]) -> None:
        """Note each ``harness_table_rows`` row of a table no plugin registers, each ``ModelSpec.rows`` row of a
        table whose name is a near miss of a registered one, and each row of a model whose name is a near miss of a
        registered one (fatal if strict): a misspelt name would leave the row out of its table without a word. (A
        model may list rows for tables, and a plugin rows for models, of plugins not installed here.)"""
        tables, models = registries["tables"], registries["models"]
        listed = [(registries["rows"].plugin_of(row.name), row, "harness_table_rows") for row in registries["rows"]]
        for model in models:
            listed += [(models.plugin_of(model.name), row, f"ModelSpec.rows of model {model.name!r}")
                       for row in model.rows if spec_checks.near_miss(row.table, tables.names())]  # fmt: skip
        for plugin, row, where in listed:
            if row.table in tables:
                continue
            meant = did_you_mean(row.table, tables.names())
            problem = (
                f"plugin {plugin!r} lists row {row.row!r} for table {row.table!r}, which no plugin registers; install "
                f"the plugin of that table, or fix the table name in its {where}{meant}"
            )
            self._note(plugin, problem)
        by_model = [(registries["rows"].plugin_of(row.name), row) for row in registries["rows"]]
        by_model += [(models.plugin_of(model.name), row) for model in models for row in model.rows]
        for plugin, row in by_model:
            if row.model and spec_checks.near_miss(row.model, models.names()):
                self._note(
                    plugin,
                    f"plugin {plugin!r} lists row {row.row!r} of table {row.table!r} for model {row.model!r}, which no "
                    f"plugin registers, so the row is left out; install the plugin of that model, or fix the row's "
                    f"model{did_you_mean(row.model, models.names())}",
                )

    def _add(self, registry: Registry[Any], spec: Any, info: PluginInfo) -> bool:
        """Add ``spec``; on a name another plugin took, keep that one and note the clash (fatal if strict)."""
        try:
            registry.add(spec.name, spec, info.name)
        except DuplicateNameError as exc:
            if self.strict:
                raise
            first = registry.plugin_of(spec.name)
            if first == info.name:  # one plugin, the name twice
                info.conflicts.append(str(exc))
                return False
            info.conflicts.append(
                f"{registry.kind} {spec.name!r} is registered by both plugin {first!r} and plugin {info.name!r}; "
                f"kept the one from {first!r}, skipped the other; uninstall or disable one of them"
            )
            return False
        return True


@dataclass(frozen=True)
class HostSetup:
    """The settings and plugins of a ``PluginHost``, to build the same host in another process."""

    strict: bool
    autoload: bool
    modules: tuple[str, ...]
    registered: tuple[tuple[str, str], ...]
    """(plugin name, module name) of each module registered at run time, in order."""
    blocked: tuple[str, ...]

    def build(self) -> PluginHost:
        """A host with the same plugins, each registered under the same name."""
        host = PluginHost(strict=self.strict, autoload=self.autoload, modules=self.modules, blocked=self.blocked)
        for name, module_name in self.registered:
            host.register(importlib.import_module(module_name), name)
        return host


def _importable_name(name: str, plugin: object) -> str:
    """The module name another process imports ``plugin`` by, or ``PluginError`` saying why there is none."""
    module_name = plugin.__name__ if isinstance(plugin, ModuleType) else None
    if module_name is not None and module_name != "__main__" and sys.modules.get(module_name) is plugin:
        return module_name
    what = f"module {module_name!r}" if module_name else f"a {type(plugin).__name__} object"
    raise PluginError(
        f"plugin {name!r} is registered at run time as {what}, which a Ray worker cannot import by name; "
        "register an importable module instead (or list it in HARNESS_PLUGINS)"
    )


def spec_details(spec: object) -> dict[str, Any]:
    """A spec's fields as JSON-friendly values, leaving out its functions (factories, metric code)."""
    details: dict[str, Any] = _plain(spec)
    return details


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {key: _plain(v) for key, v in fields.items() if not callable(v)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _attribute(plugin: object, name: str) -> Any:
    """``plugin``'s attribute ``name``, or ``None`` where it has none (or its ``__getattr__`` raises anything)."""
    try:
        return getattr(plugin, name, None)
    except Exception:
        return None


def _location(plugin: object) -> str | None:
    if isinstance(plugin, ModuleType):
        return _attribute(plugin, "__file__") or plugin.__name__
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


_HOST: PluginHost | None = None


def get_host(*, strict: bool | None = None) -> PluginHost:
    """The process-wide ``PluginHost``, created on first use from the environment."""
    global _HOST
    if _HOST is None or (strict is not None and strict != _HOST.strict):
        _HOST = PluginHost(strict=strict)
    return _HOST
