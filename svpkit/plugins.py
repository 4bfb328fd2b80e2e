"""The plugin manager: built-ins first, then every entry point of group ``svpkit``.

A plugin that fails to import, whose hook raises, or that registers a name another plugin
already holds is recorded with its error and skipped; every other plugin keeps working.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from svpkit import hookspecs
from svpkit.registry import ConflictError, Registry

if TYPE_CHECKING:  # importing this module must stay cheap (svpkit --help reads plugin metadata)
    import typer

    from svpkit.backbones.base import BackboneSpec
    from svpkit.data.base import DatasetSpec
    from svpkit.models.base import ModelSpec
    from svpkit.selectors.base import SelectorSpec

GROUP = "svpkit"
DEFAULT_PLUGINS = ("svpkit.builtin_plugin",)
_KINDS = {
    "register_models": "model",
    "register_selectors": "selector",
    "register_datasets": "dataset",
    "register_backbones": "backbone",
}
IN_PROCESS = "(in-process)"
"""The plugin and distribution of what a notebook registered with ``svpkit.register``."""
_IN_PROCESS: dict[str, dict[str, object]] = {"model": {}, "selector": {}, "dataset": {}, "backbone": {}}
"""kind → name → spec registered in this process; kept over :func:`get_plugins` refreshes."""


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    """The commands its ``register_commands`` hook added (not in :meth:`as_dict`)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "registered": self.registered,
            "errors": self.errors,
        }


class Plugins:
    """Loaded plugins and the registries they filled."""

    def __init__(self, load_entry_points: bool = True, extra: tuple[tuple[str, object], ...] = ()) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.models: Registry[ModelSpec] = Registry("model")
        self.selectors: Registry[SelectorSpec] = Registry("selector")
        self.datasets: Registry[DatasetSpec] = Registry("dataset")
        self.backbones: Registry[BackboneSpec] = Registry("backbone")
        self.info: dict[str, PluginInfo] = {}
        self._commands_added = False
        import svpkit

        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self._add(module, module_name, "svpkit", svpkit.__version__)
        for name, plugin in extra:
            self._add(plugin, name, "(in-process)", "")
        if load_entry_points:
            self._load_entry_points()
        self._collect()
        for kind, specs in _IN_PROCESS.items():
            for name, spec in specs.items():
                if name not in self.registry(kind):  # an entry point that came later keeps its name
                    self.registry(kind).put(name, spec, IN_PROCESS, IN_PROCESS)

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of ``kind`` (``model``, ``selector``, ``dataset``, ``backbone``)."""
        found: dict[str, Registry[Any]] = {
            "model": self.models,
            "selector": self.selectors,
            "dataset": self.datasets,
            "backbone": self.backbones,
        }
        return found[kind]

    # -- loading ------------------------------------------------------------------------------
    def _add(self, plugin: object, name: str, dist: str, version: str) -> None:
        info = PluginInfo(name=name, distribution=dist, version=version)
        self.info[name] = info
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validation: wrong hook signatures
            info.errors.append(f"register: {type(exc).__name__}: {exc}")
            return
        info.hooks = sorted(
            hook.name for hook in (self.pm.get_hookcallers(plugin) or []) if not hook.name.startswith("_")
        )

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=GROUP):
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else "?"
            if ep.name in self.info:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                info = PluginInfo(name=ep.name, distribution=dist, version=version)
                info.errors.append(f"import: {type(exc).__name__}: {exc}")
                self.info[ep.name] = info
                continue
            self._add(plugin, ep.name, dist, version)

    def _collect(self) -> None:
        registries = {hook: self.registry(kind) for hook, kind in _KINDS.items()}
        # Only a plugin that could not be loaded is skipped: one failing hook (or one conflicting
        # name) does not silence the plugin's other hooks.
        unloaded = {name for name, info in self.info.items() if info.errors}
        for hook_name, registry in registries.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                info = self.info[impl.plugin_name]
                if impl.plugin_name in unloaded:
                    continue
                staged: list[ModelSpec | SelectorSpec | DatasetSpec | BackboneSpec] = []
                try:
                    impl.function(register=staged.append)
                except Exception as exc:
                    info.errors.append(f"{hook_name}: {type(exc).__name__}: {exc}")
                    continue
                names = info.registered.setdefault(_KINDS[hook_name], [])
                for spec in staged:
                    try:
                        registry.add(spec.name, spec, info.name, info.distribution)
                    except ConflictError as exc:
                        info.errors.append(str(exc))
                    else:
                        names.append(spec.name)

    def register_commands(self, app: typer.Typer) -> None:
        """Let every plugin add its commands to the typer ``app`` (once; what each added is in ``commands``)."""
        if self._commands_added:
            return
        self._commands_added = True
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.info[impl.plugin_name]
            before = command_names(app)
            try:
                impl.function(app=app)
            except Exception as exc:
                info.errors.append(f"register_commands: {type(exc).__name__}: {exc}")
            info.commands = sorted(command_names(app) - before)

    def plugins(self) -> list[PluginInfo]:
        return list(self.info.values())


def command_names(app: typer.Typer) -> set[str]:
    """The names of a typer app's commands and command groups."""
    from typer.main import get_command_name

    names = {c.name or get_command_name(c.callback.__name__) for c in app.registered_commands if c.callback}
    return names | {g.name for g in app.registered_groups if g.name}


def distributions() -> list[str]:
    """The distributions that provide plugins, from their metadata (nothing is imported)."""
    return sorted({ep.dist.name for ep in importlib.metadata.entry_points(group=GROUP) if ep.dist is not None})


_CACHE: Plugins | None = None


def get_plugins(refresh: bool = False) -> Plugins:
    """The process-wide plugin set (loaded once)."""
    global _CACHE
    if _CACHE is None or refresh:
        _CACHE = Plugins()
    return _CACHE


def register_in_process(kind: str, name: str, spec: object) -> None:
    """Add ``spec`` as ``name`` to the ``kind`` registry of this process (``svpkit.register``); a
    ConflictError when an installed plugin holds the name."""
    get_plugins().registry(kind).put(name, spec, IN_PROCESS, IN_PROCESS)
    _IN_PROCESS[kind][name] = spec


Register = Callable[..., None]
