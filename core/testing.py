"""pytest fixtures for Motorcade and its plugins (installed as a ``pytest11`` plugin).

- ``motorcade_pm``: a fresh plugin manager with the built-ins only (tests never auto-load whatever
  happens to be installed), installed as the process-wide manager for the test.
- ``register_plugin``: ``register_plugin(obj, name=...)`` registers an in-memory plugin object into
  ``motorcade_pm`` and unregisters it after the test.
- ``motorcade_project``: a fresh project (``motorcade init``) in a temporary directory, using
  ``motorcade_pm``.

And :func:`dump_database`, to compare two stores row by row (an ingest path against another, a killed
and re-run load against one clean run).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Iterator

import pytest

# Columns holding the wall-clock time of a write: they differ between two otherwise equal runs.
WALL_CLOCK_COLUMNS = frozenset({"created_at", "updated_at", "first_seen", "last_seen", "merged_at", "applied_at",
                                "retried_at"})
# Tables recording how a state came about (who ran which command, when), not the state: a killed and re-run
# load has a longer history than one clean run of the same data.
HISTORY_TABLES = frozenset({"audit_log"})


def dump_database(path, *, indexes: bool = False) -> dict[str, list[str]]:
    """Every table of the SQLite file at ``path`` (but :data:`HISTORY_TABLES`) as sorted row reprs, without
    :data:`WALL_CLOCK_COLUMNS`
    (``indexes``: also the index definitions, under ``"indexes"``)."""
    conn = sqlite3.connect(path)
    try:
        out = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
            if table in HISTORY_TABLES:
                continue
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in WALL_CLOCK_COLUMNS]
            out[table] = sorted(map(repr, conn.execute(f"SELECT {', '.join(cols)} FROM {table}")))
        if indexes:
            out["indexes"] = sorted(r[0] for r in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
        return out
    finally:
        conn.close()


@pytest.fixture
def motorcade_pm() -> Iterator[Any]:
    from motorcade.plugins import get_plugin_manager, load_plugins, set_plugin_manager

    previous = get_plugin_manager.__globals__["_default"]
    pm = load_plugins(entry_points=False)
    set_plugin_manager(pm)
    try:
        yield pm
    finally:
        set_plugin_manager(previous)


@pytest.fixture
def register_plugin(motorcade_pm) -> Iterator[Callable[..., Any]]:
    registered: list[str] = []

    def register(obj: Any, name: str | None = None) -> str:
        plugin_name = motorcade_pm.register(obj, name=name)
        registered.append(plugin_name)
        return plugin_name

    try:
        yield register
    finally:
        for name in registered:
            if motorcade_pm.get_plugin(name) is not None:
                motorcade_pm.unregister(name=name)


@pytest.fixture
def motorcade_project(tmp_path, motorcade_pm) -> Iterator[Any]:
    from motorcade.project import init_project

    project = init_project(tmp_path / "project", name="test")
    project._pm = motorcade_pm
    try:
        yield project
    finally:
        project.close()


def plugin_manager_limited_to(modules: set[str]):
    """A plugin manager with the built-ins and the installed plugins whose top-level module is in
    ``modules`` (e.g. the bundled ones), so a test does not depend on whatever else is installed."""
    from motorcade.plugins import load_plugins

    pm = load_plugins()
    registry = pm.registry()
    for table in (registry.sources, registry.channels, registry.tag_calculators):
        for name in [n for n, r in table.items()
                     if r.obj.__module__.split(".")[0] not in modules
                     and not r.obj.__module__.startswith("motorcade.")]:
            del table[name]
    return pm
