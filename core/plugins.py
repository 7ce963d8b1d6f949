"""The one place that builds Motorcade's plugin manager and collects what plugins register.

Plugins come from two places: the built-in default plugins listed in :data:`BUILTIN_PLUGINS`, and
installed distributions' entry points in the group ``motorcade``. Environment switches:

- ``MOTORCADE_LOAD_PLUGINS=a,b`` loads only these entry points (by entry-point or distribution name);
  an empty value loads none (built-ins still load).
- ``MOTORCADE_BLOCK_PLUGINS=a,b`` skips these.
- ``MOTORCADE_TRACE_PLUGINS=1`` prints every hook call and result to stderr (pluggy's tracing).

One-off plugins can also be plain ``.py`` files in a directory (as ``datasette --plugins-dir`` does):
:meth:`MotorcadePluginManager.load_plugins_dir`, used by ``motorcade --plugins-dir DIR``,
``MOTORCADE_PLUGINS_DIR`` and a project's ``[project] plugins_dir``.

A plugin that fails to import is reported by name with its error and skipped; it never breaks
commands that do not need it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import attrs
import click
import pluggy

from . import hookspecs
from .errors import PluginError, PluginNotLoaded

ENTRY_POINT_GROUP = "motorcade"

# Built-in default plugins: registered through the same manager, so the hooks are used for real.
BUILTIN_PLUGINS: tuple[str, ...] = ()

KIND_BY_HOOK = {
    "register_sources": "source",
    "register_tag_calculators": "tag",
    "register_channels": "channel",
    "register_commands": "command",
}


@attrs.frozen
class PluginLoadError:
    """A plugin that could not be loaded."""

    name: str  # entry point name
    distribution: str | None  # the distribution that declared it
    error: str  # one-line error
    traceback: str  # the full traceback, for --verbose
    module: str = ""  # what the entry point points at (``motorcade_channels_foo``)

    def could_provide(self, name: str) -> bool:
        """Whether this plugin is the likely source of ``name`` (a channel, source type or tag calculator).

        A plugin that failed to import cannot say what it registers; by convention (and in every bundled
        plugin) the entry point is named after what it provides, and the distribution and module end with it.
        """
        wanted = name.replace("-", "_").lower()
        candidates = [self.name, self.distribution or "", self.module.split(":")[0].split(".")[0]]
        for candidate in candidates:
            normalised = candidate.replace("-", "_").lower()
            if normalised == wanted or normalised.endswith("_" + wanted):
                return True
        return False

    def describe(self) -> str:
        """``plugin 'foo' (distribution motorcade-channel-foo) failed to load: ImportError: ...``"""
        return f"plugin {self.name!r} ({self.origin()}) failed to load: {self.error}"

    def origin(self) -> str:
        if self.distribution is None and self.module.endswith(".py"):
            return f"file {self.module}"
        return _distribution_label(self.distribution)


def _distribution_label(distribution: str | None, version: str | None = None) -> str:
    if distribution is None:
        return "not from an installed distribution"
    return f"distribution {distribution}" + (f" {version}" if version else "")


@attrs.frozen
class PluginInfo:
    """What `motorcade plugins` shows about one plugin."""

    name: str  # plugin name as registered with the manager
    distribution: str | None  # distribution name, None for in-memory plugins
    version: str | None  # distribution version
    hooks: tuple[str, ...]  # hook names it implements
    kinds: tuple[str, ...]  # source / tag / channel / command
    provides: tuple[str, ...]  # names of the things it registered (source types, tags, channels)
    path: str | None = None  # the .py file of a plugin loaded from a plugins directory


@attrs.define
class Registered:
    """One registered object and which plugin supplied it."""

    name: str
    obj: Any
    plugin: str


@attrs.define
class Registry:
    """Everything plugins registered, by kind and name."""

    sources: dict[str, Registered] = attrs.field(factory=dict)
    tag_calculators: dict[str, Registered] = attrs.field(factory=dict)
    channels: dict[str, Registered] = attrs.field(factory=dict)
    load_errors: tuple[PluginLoadError, ...] = ()  # plugins that failed to load (they registered nothing)

    def load_failure_for(self, name: str) -> PluginLoadError | None:
        """The failed plugin that would have provided ``name``, if any (see :meth:`PluginLoadError.could_provide`)."""
        return next((e for e in self.load_errors if e.could_provide(name)), None)

    def source_class(self, type_name: str):
        return self._get(self.sources, type_name, "source type", "sources").obj

    def channel_class(self, name: str):
        return self._get(self.channels, name, "channel", "channels").obj

    def tag_calculator(self, name: str):
        return self._get(self.tag_calculators, name, "tag calculator", "tags").obj

    def _get(self, table: dict[str, Registered], name: str, what: str, kind: str) -> Registered:
        try:
            return table[name]
        except KeyError:
            pass
        failure = self.load_failure_for(name)
        if failure is not None:
            raise PluginNotLoaded(
                f"{what} {name!r} is not available: {failure.describe()}", failure,
                hint="install what the error names (or reinstall the plugin); "
                     "`motorcade plugins --verbose` shows the traceback",
            )
        from motorcade.dsl.errors import did_you_mean

        hint = did_you_mean(name, table) or (
            f"installed: {', '.join(sorted(table)) or 'none'}; install a plugin under plugins/{kind}/"
        )
        if self.load_errors:
            hint += "; plugins that failed to load: " + "; ".join(
                f"{e.name} ({e.origin()}): {e.error}" for e in self.load_errors)
        raise PluginError(f"no {what} named {name!r} is installed", hint=hint)


def _split_env(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class MotorcadePluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers load errors and each plugin's distribution."""

    def __init__(self) -> None:
        super().__init__("motorcade")
        self.add_hookspecs(hookspecs)
        self.load_errors: list[PluginLoadError] = []
        self.distributions: dict[str, tuple[str, str]] = {}  # plugin name -> (dist name, version)
        self.command_warnings: list[str] = []  # plugin commands skipped by the last add_plugin_commands()
        self.plugin_files: dict[str, Path] = {}  # plugin name -> .py file, for plugins from a plugins directory
        self._registry: Registry | None = None

    # -- loading ----------------------------------------------------------------------------------

    def load_builtins(self) -> None:
        for module_name in BUILTIN_PLUGINS:
            if self.has_plugin(module_name):
                continue
            module = importlib.import_module(module_name)
            self.register(module, name=module_name)

    def load_entry_points(self) -> None:
        allow = _split_env("MOTORCADE_LOAD_PLUGINS")
        block = _split_env("MOTORCADE_BLOCK_PLUGINS") or set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist_name = ep.dist.name if ep.dist is not None else None
            names = {ep.name, dist_name}
            if allow is not None and not (names & allow):
                continue
            if names & block:
                continue
            if self.has_plugin(ep.name) or self.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name)
                self._check_pending_of(ep.name)
            except Exception as exc:  # a broken plugin must not break the CLI
                self.load_errors.append(
                    PluginLoadError(
                        name=ep.name,
                        distribution=dist_name,
                        error=f"{type(exc).__name__}: {exc}",
                        traceback=traceback.format_exc(),
                        module=ep.value,
                    )
                )
                continue
            if ep.dist is not None:
                self.distributions[ep.name] = (ep.dist.name, ep.dist.version)
        self.check_pending()

    def load_plugins_dir(self, directory: str | Path) -> list[str]:
        """Register every ``*.py`` file in ``directory`` as a plugin named after the file (``pigeon.py``:
        ``pigeon``), for one-off plugins that are not worth a package. Loading a directory again is a no-op
        for files already loaded. A file that fails to import (or clashes with a plugin's name) is a load
        failure like a broken installed plugin. Returns the names newly registered."""
        directory = Path(directory).expanduser().resolve()
        if not directory.is_dir():
            from .errors import UsageError

            raise UsageError(f"plugins directory {directory} does not exist",
                             hint="create it, or fix --plugins-dir / MOTORCADE_PLUGINS_DIR / [project] plugins_dir")
        loaded = []
        for path in sorted(directory.glob("*.py")):
            name = path.stem
            if path.name.startswith("_") or self.plugin_files.get(name) == path:
                continue
            if any(e.module == str(path) for e in self.load_errors):
                continue  # already reported
            module_name = f"motorcade_plugins_dir.{name}"
            try:
                if self.get_plugin(name) is not None:
                    raise ValueError(f"a plugin named {name!r} is already loaded; rename the file")
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module  # so the file's classes can be pickled and introspected
                spec.loader.exec_module(module)
                self.register(module, name=name)
                self._check_pending_of(name)
            except Exception as exc:  # a broken file must not break the CLI
                sys.modules.pop(module_name, None)
                self.load_errors.append(PluginLoadError(name=name, distribution=None,
                                                        error=f"{type(exc).__name__}: {exc}",
                                                        traceback=traceback.format_exc(), module=str(path)))
                continue
            self.plugin_files[name] = path
            loaded.append(name)
        self._registry = None  # a new failure changes what lookups report, even when nothing registered
        return loaded

    def _check_pending_of(self, name: str) -> None:
        """Unregister plugin ``name`` and raise if it implements a hook that does not exist (a misspelling)."""
        try:
            self.check_pending()
        except pluggy.PluginValidationError:
            if self.get_plugin(name) is not None:
                self.unregister(name=name)
            raise

    def enable_tracing(self) -> None:
        """Print every hook call (with the plugins it reaches) and its outcome to stderr."""

        def before(hook_name: str, impls: list, kwargs: dict) -> None:
            print(f"[motorcade] call {hook_name} -> {[i.plugin_name for i in impls]}", file=sys.stderr)

        def after(outcome: Any, hook_name: str, impls: list, kwargs: dict) -> None:
            error = outcome.exception
            print(f"[motorcade] {hook_name} {'raised ' + repr(error) if error else 'done'}", file=sys.stderr)

        self.add_hookcall_monitoring(before, after)

    # -- registration -----------------------------------------------------------------------------

    def registry(self) -> Registry:
        """Call the register_* hooks once and return what they registered (validated, no duplicates)."""
        if self._registry is None:
            self._registry = self._collect()
        return self._registry

    def register(self, plugin, name=None):  # type: ignore[override]
        result = super().register(plugin, name=name)
        self._registry = None
        return result

    def unregister(self, plugin=None, name=None):  # type: ignore[override]
        result = super().unregister(plugin=plugin, name=name)
        self._registry = None
        return result

    def _collect(self) -> Registry:
        from .activation.channel import Channel
        from .sources.base import Source
        from .tags.base import TagCalculator

        registry = Registry(load_errors=tuple(self.load_errors))
        self._call_register(
            "register_sources", registry.sources, "source type",
            lambda obj: isinstance(obj, type) and issubclass(obj, Source) and obj.type_name,
            lambda obj: obj.type_name,
            "a subclass of motorcade.sources.base.Source with a type_name",
        )
        self._call_register(
            "register_tag_calculators", registry.tag_calculators, "tag calculator",
            lambda obj: isinstance(obj, TagCalculator) and obj.name,
            lambda obj: obj.name,
            "an instance of motorcade.tags.base.TagCalculator with a name",
        )
        self._call_register(
            "register_channels", registry.channels, "channel",
            lambda obj: isinstance(obj, type) and issubclass(obj, Channel) and obj.name,
            lambda obj: obj.name,
            "a subclass of motorcade.activation.channel.Channel with a name",
        )
        return registry

    def _call_register(self, hook_name: str, table: dict[str, Registered], what: str,
                       valid: Callable[[Any], bool], name_of: Callable[[Any], str], expected: str) -> None:
        hook = getattr(self.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # pluggy's call order (the last registered first)
            plugin_name = impl.plugin_name

            def register(obj: Any, _plugin: str = plugin_name) -> None:
                if not valid(obj):
                    raise PluginError(f"plugin {_plugin!r} registered {obj!r} as a {what}; expected {expected}")
                name = name_of(obj)
                if name in table:
                    raise PluginError(
                        f"{what} {name!r} is registered twice: by plugin {table[name].plugin!r} and by {_plugin!r}",
                        hint="uninstall one of them or block it with MOTORCADE_BLOCK_PLUGINS",
                    )
                table[name] = Registered(name=name, obj=obj, plugin=_plugin)

            # Call through pluggy (so tracing and monitoring see it), restricted to this one plugin.
            others = [p for p in self.get_plugins() if p is not impl.plugin]
            self.subset_hook_caller(hook_name, remove_plugins=others)(register=register)

    def add_plugin_commands(self, cli: click.Group) -> list[str]:
        """Call ``register_commands`` plugin by plugin and keep every command whose name is free.

        A command named like a built-in (or like one an earlier plugin added) is skipped, as is every command
        of a plugin whose hook raises; the returned warnings (also kept in :attr:`command_warnings`) name the
        plugin and its distribution. Every other command keeps working.
        """
        owner: dict[str, str | None] = {name: None for name in cli.commands}  # None: built-in
        warnings: list[str] = []
        for impl in self.hook.register_commands.get_hookimpls():  # registration order: the first plugin keeps a name
            before = dict(cli.commands)
            others = [p for p in self.get_plugins() if p is not impl.plugin]
            try:
                self.subset_hook_caller("register_commands", remove_plugins=others)(cli=cli)
            except Exception as exc:  # a broken plugin must not break the CLI
                cli.commands = before
                warnings.append(f"{self.describe_plugin(impl.plugin_name)} could not add its commands "
                                f"({type(exc).__name__}: {exc}); they are skipped")
                continue
            for name, command in list(cli.commands.items()):
                if name not in before:
                    owner[name] = impl.plugin_name
                elif before[name] is not command:
                    cli.commands[name] = before[name]
                    taken = ("a built-in command" if owner.get(name) is None
                             else f"added by {self.describe_plugin(owner[name])}")
                    warnings.append(f"{self.describe_plugin(impl.plugin_name)} adds a command {name!r}, which is "
                                    f"{taken}; the plugin's command is skipped (rename it in the plugin)")
        self.command_warnings = warnings
        return warnings

    def describe_plugin(self, name: str) -> str:
        """``plugin 'foo' (distribution motorcade-foo 1.0)``, for messages about a plugin."""
        if name in self.plugin_files:
            return f"plugin {name!r} (file {self.plugin_files[name]})"
        dist, version = self.distributions.get(name, (None, None))
        return f"plugin {name!r} ({_distribution_label(dist, version)})"

    # -- introspection ----------------------------------------------------------------------------

    def plugin_infos(self) -> list[PluginInfo]:
        registry = self.registry()
        provided: dict[str, list[str]] = {}
        for table in (registry.sources, registry.tag_calculators, registry.channels):
            for entry in table.values():
                provided.setdefault(entry.plugin, []).append(entry.name)
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(sorted(h.name for h in self.get_hookcallers(plugin) or ()))
            dist, version = self.distributions.get(name, (None, None))
            if dist is None and name in BUILTIN_PLUGINS:
                from . import __version__

                dist, version = "motorcade", __version__
            infos.append(
                PluginInfo(
                    name=name,
                    distribution=dist,
                    version=version,
                    hooks=hooks,
                    kinds=tuple(sorted({KIND_BY_HOOK[h] for h in hooks if h in KIND_BY_HOOK})),
                    provides=tuple(sorted(provided.get(name, ()))),
                    path=str(self.plugin_files[name]) if name in self.plugin_files else None,
                )
            )
        return sorted(infos, key=lambda i: i.name)


def load_plugins(*, entry_points: bool = True, builtins: bool = True) -> MotorcadePluginManager:
    """Build a plugin manager with the built-ins and (unless disabled) the installed entry points and the
    ``.py`` files of the directories in ``MOTORCADE_PLUGINS_DIR`` (separated like PATH)."""
    pm = MotorcadePluginManager()
    if builtins:
        pm.load_builtins()
    if entry_points:
        pm.load_entry_points()
    if entry_points and os.environ.get("MOTORCADE_PLUGINS_DIR"):
        for directory in os.environ["MOTORCADE_PLUGINS_DIR"].split(os.pathsep):
            if directory:
                pm.load_plugins_dir(directory)
    if os.environ.get("MOTORCADE_TRACE_PLUGINS", "") in ("1", "true", "yes"):
        pm.enable_tracing()
    return pm


_default: MotorcadePluginManager | None = None


def get_plugin_manager() -> MotorcadePluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _default
    if _default is None:
        _default = load_plugins()
    return _default


def plugin_load_failures(pm: MotorcadePluginManager | None = None) -> list[PluginLoadError]:
    """The plugins that failed to load and why (entry point, distribution, one-line error, traceback).

    ``pm``: the manager to ask (default: the process-wide one). What such a plugin would have provided is
    unknown; :meth:`PluginLoadError.could_provide` tells whether a name is likely its.
    """
    return list((pm or get_plugin_manager()).load_errors)


def set_plugin_manager(pm: MotorcadePluginManager | None) -> None:
    """Replace the process-wide manager (tests, embedding applications)."""
    global _default
    _default = pm
