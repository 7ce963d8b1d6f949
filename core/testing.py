"""pytest fixtures for Motorcade and its plugins (installed as a ``pytest11`` plugin).

- ``motorcade_pm``: a fresh plugin manager with the built-ins only (tests never auto-load whatever
  happens to be installed), installed as the process-wide manager for the test.
- ``register_plugin``: ``register_plugin(obj, name=...)`` registers an in-memory plugin object into
  ``motorcade_pm`` and unregisters it after the test.
- ``motorcade_project``: a fresh project (``motorcade init``) in a temporary directory, using
  ``motorcade_pm``.

And :func:`dump_database`, to compare two stores row by row (an ingest path against another, a killed
and re-run load against one clean run), and :func:`store_conformance_problems`, which checks that a store
implementation offers every function of the store protocol with its exact signature.
"""

from __future__ import annotations

import inspect
import re
import sqlite3
from typing import Any, Callable, Iterator, Sequence

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
            columns = [d[0] for d in conn.execute(f"SELECT * FROM {table} LIMIT 0").description]
            cols = [c for c in columns if c not in WALL_CLOCK_COLUMNS]
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


# -- store conformance ------------------------------------------------------------------------------

_DOTTED_PREFIX = re.compile(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])")


def _annotation_text(annotation: Any) -> str:
    """An annotation as comparable text: module prefixes dropped (``dt.datetime`` -> ``datetime``),
    quotes and spaces removed, so ``from __future__`` strings and evaluated types compare alike."""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return _DOTTED_PREFIX.sub("", text).replace("'", "").replace('"', "").replace(" ", "")


def _annotation_matches(wanted: Any, actual: Any) -> bool:
    """Whether an implementation's annotation matches the protocol's (``Any`` there matches anything)."""
    if wanted is inspect.Parameter.empty:
        return True
    if actual is inspect.Parameter.empty:
        return False
    pattern = "".join(".+" if part == "Any" else re.escape(part)
                      for part in re.split(r"(\bAny\b)", _annotation_text(wanted)))
    return re.fullmatch(pattern, _annotation_text(actual)) is not None


def _protocol_members(protocol: type) -> dict[str, Any]:
    members: dict[str, Any] = {name: None for name in getattr(protocol, "__annotations__", {})}
    for name, value in vars(protocol).items():
        if name.startswith("_"):
            continue
        if callable(value) or isinstance(value, property):
            members[name] = value
    return members


def store_conformance_problems(implementation: Any, protocols: Sequence[type] | None = None) -> list[str]:
    """What ``implementation`` (a store class or instance) lacks to satisfy the store protocol, one line each
    (an empty list: it conforms). Every member of every stage protocol (:data:`motorcade.store.STAGE_PROTOCOLS`)
    is checked: attributes exist, properties are properties, context managers are context managers, and
    each method has the same parameters (names, kinds, defaults) and annotations, compared as text with
    module prefixes dropped; ``Any`` in the protocol matches any annotation. An implementation may add
    parameters only with defaults. A second store checks itself with ``assert not store_conformance_problems(
    PostgresStore)``."""
    from motorcade.store.protocol import STAGE_PROTOCOLS

    cls = implementation if isinstance(implementation, type) else type(implementation)
    problems: list[str] = []
    for protocol in protocols or STAGE_PROTOCOLS:
        for name, wanted in _protocol_members(protocol).items():
            where = f"{protocol.__name__}.{name}"
            if not hasattr(cls, name) and not (cls is not implementation and hasattr(implementation, name)):
                problems.append(f"{where}: missing")
                continue
            actual = inspect.getattr_static(cls, name, None)
            if wanted is None:  # a data attribute (``dialect``)
                continue
            if isinstance(wanted, property):
                if not isinstance(actual, property):
                    problems.append(f"{where}: should be a property")
                elif not _annotation_matches(inspect.signature(wanted.fget).return_annotation,
                                             inspect.signature(actual.fget).return_annotation):
                    problems.append(f"{where}: property type differs")
                continue
            if isinstance(actual, (staticmethod, classmethod, property)) or not callable(actual):
                problems.append(f"{where}: should be a plain method")
                continue
            if hasattr(wanted, "__wrapped__") and not hasattr(actual, "__wrapped__"):
                problems.append(f"{where}: should be a context manager (contextlib.contextmanager)")
            problems.extend(f"{where}: {p}" for p in _signature_problems(inspect.signature(wanted),
                                                                        inspect.signature(actual)))
    return problems


def _signature_problems(wanted: inspect.Signature, actual: inspect.Signature) -> list[str]:
    problems: list[str] = []
    have = dict(actual.parameters)
    for parameter in wanted.parameters.values():
        got = have.pop(parameter.name, None)
        if got is None:
            problems.append(f"parameter {parameter.name!r} missing")
            continue
        if got.kind != parameter.kind:
            problems.append(f"parameter {parameter.name!r} is {got.kind.description}, "
                            f"should be {parameter.kind.description}")
        if got.default != parameter.default:
            problems.append(f"parameter {parameter.name!r} defaults to "
                            f"{'nothing' if got.default is got.empty else repr(got.default)}, should default to "
                            f"{'nothing' if parameter.default is parameter.empty else repr(parameter.default)}")
        if not _annotation_matches(parameter.annotation, got.annotation):
            problems.append(f"parameter {parameter.name!r} is annotated {_annotation_text(got.annotation)!r}, "
                            f"should be {_annotation_text(parameter.annotation)!r}")
    for extra in have.values():
        if extra.default is extra.empty and extra.kind not in (extra.VAR_POSITIONAL, extra.VAR_KEYWORD):
            problems.append(f"extra parameter {extra.name!r} without a default")
    wanted_order = [p.name for p in wanted.parameters.values()
                    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    actual_order = [p.name for p in actual.parameters.values()
                    if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:len(wanted_order)]
    if wanted_order != actual_order and not problems:
        problems.append(f"positional parameters are {actual_order}, should be {wanted_order}")
    if not _annotation_matches(wanted.return_annotation, actual.return_annotation):
        problems.append(f"returns {_annotation_text(actual.return_annotation)!r}, "
                        f"should return {_annotation_text(wanted.return_annotation)!r}")
    return problems
