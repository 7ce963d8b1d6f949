"""A project: one directory holding ``motorcade.toml``, the rule files and the database file."""

from __future__ import annotations

import datetime as dt
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from .config import CONFIG_FILENAME, INIT_TEMPLATE, ProjectConfig, load_config
from .errors import MotorcadeError, ProjectNotFound
from .plugins import MotorcadePluginManager, get_plugin_manager


class Project:
    """Everything a command needs about one project: config, store, plugins, rules."""

    def __init__(self, directory: Path, *, plugin_manager: MotorcadePluginManager | None = None):
        self.directory = Path(directory).resolve()
        self.config: ProjectConfig = load_config(self.directory / CONFIG_FILENAME)
        self._pm = plugin_manager
        self._plugins_dirs_loaded = False
        self._plugin_settings_checked = False
        self._access = None
        self.audit_affected: dict = {}  # what the running action affected, for its audit entry

    @property
    def plugins(self) -> MotorcadePluginManager:
        """The plugin manager, with the ``.py`` files of ``[project] plugins_dir`` loaded into it; the first
        use also checks the plugins' tables of motorcade.toml against the settings each installed plugin
        declares (a ConfigError naming every wrong key)."""
        if self._pm is None:
            self._pm = get_plugin_manager()
        if not self._plugins_dirs_loaded:
            self._plugins_dirs_loaded = True
            for directory in self.plugins_dirs():
                self._pm.load_plugins_dir(directory)
        if not self._plugin_settings_checked:
            from .config_schema import validate_plugin_settings

            validate_plugin_settings(self.config, self._pm.registry())
            self._plugin_settings_checked = True
        return self._pm

    def plugins_dirs(self) -> list[Path]:
        """``[project] plugins_dir``: a directory (or a list) of one-off plugins as plain .py files."""
        value = self.config.raw.get("project", {}).get("plugins_dir", [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise MotorcadeError(f"{self.config.path}: [project] plugins_dir must be a path or a list of paths, "
                                 f"not {value!r}", hint='e.g. plugins_dir = "plugins"')
        return [self.directory / v for v in value]

    @cached_property
    def store(self):
        from .store import open_store

        store = open_store(self.config.database, base_dir=self.directory)
        store.access = self._access
        return store

    @property
    def access(self):
        """The caller (``motorcade.access.Access``) every read and action of this project checks; the
        project's local owner (group_admin) unless the CLI or a console set another."""
        if self._access is None:
            from .access import Access

            self.access = Access.local_owner()
        return self._access

    @access.setter
    def access(self, caller) -> None:
        from .masking import permit_pii

        self._access = caller
        permit_pii(caller.may_see_pii)
        if "store" in self.__dict__:
            self.store.access = caller

    @cached_property
    def analytics(self):
        """The analytics engine of ``[project] analytics`` (None: segments run on the operational store)."""
        url = self.config.raw.get("project", {}).get("analytics") or ""
        if not url:
            return None
        from .analytics import open_engine

        return open_engine(url, base_dir=self.directory)

    @property
    def timezone(self):
        return self.config.tz

    def now(self) -> dt.datetime:
        """The current instant in the project's time zone."""
        return dt.datetime.now(self.config.tz)

    def rule_paths(self) -> list[Path]:
        return [self.directory / p for p in self.config.rules]

    def rules(self, *, checked: bool = False):
        """Load every rule file of the project into one RuleSet (raises DslError on syntax errors).

        ``checked``: also refuse rules that `motorcade check` reports errors for on their own (scope and
        type errors, cycles of segments or rule tags, missing clauses), so nothing computes or sends
        from a rule the checker rejects. Unknown names are not refused here (an event may simply not
        have happened yet); `motorcade check` reports them against the project's catalogue.
        """
        from motorcade.dsl import load_rules

        rule_set = load_rules(self.rule_paths())
        if checked:
            from motorcade.dsl.check import check
            from motorcade.dsl.errors import ERROR, DslError

            errors = [d for d in check(rule_set) if d.severity == ERROR]
            if errors:
                raise DslError(errors)
        return rule_set

    def catalogue(self):
        """What the rules may refer to: events, tags, attributes, channels seen in this project."""
        from .catalogue import build_catalogue

        return build_catalogue(self)

    def source_settings(self, name: str) -> dict[str, Any]:
        try:
            return self.config.sources[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, list(self.config.sources), n=1)
            raise MotorcadeError(
                f"no source named {name!r} in {self.config.path}",
                hint=f"did you mean {close[0]!r}?" if close else
                f"configured sources: {', '.join(self.config.sources) or 'none'}",
            ) from None

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        if self.__dict__.get("analytics") is not None:
            self.analytics.close()


def find_project(start: str | Path | None = None, *, plugin_manager: MotorcadePluginManager | None = None) -> Project:
    """The project in ``start`` (or $MOTORCADE_PROJECT, or the current directory and its parents)."""
    if start is None:
        start = os.environ.get("MOTORCADE_PROJECT") or Path.cwd()
        directory = Path(start).resolve()
        for candidate in (directory, *directory.parents):
            if (candidate / CONFIG_FILENAME).exists():
                return Project(candidate, plugin_manager=plugin_manager)
        raise ProjectNotFound(
            f"no {CONFIG_FILENAME} in {directory} or its parents",
            hint="pass --project DIR, set MOTORCADE_PROJECT, or create one with `motorcade init DIR`",
        )
    directory = Path(start).resolve()
    if not (directory / CONFIG_FILENAME).exists():
        raise ProjectNotFound(
            f"{directory} is not a Motorcade project (no {CONFIG_FILENAME})",
            hint="create one with `motorcade init DIR`",
        )
    return Project(directory, plugin_manager=plugin_manager)


def init_project(directory: str | Path, *, name: str | None = None) -> Project:
    """Create a project directory with a commented motorcade.toml, a rules folder and an empty store."""
    directory = Path(directory)
    config = directory / CONFIG_FILENAME
    if config.exists():
        raise MotorcadeError(f"{config} already exists", hint="choose an empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules").mkdir(exist_ok=True)
    import json

    # a JSON string is a valid TOML basic string: quotes and backslashes in the name stay legal
    config.write_text(INIT_TEMPLATE.format(name=json.dumps(name or directory.resolve().name, ensure_ascii=False)),
                      encoding="utf-8")
    project = Project(directory)
    project.store  # creates the database and applies every migration
    return project
