"""The store interface (motorcade.store.protocol): SQLite implements every member with its exact signature,
the conformance checker a second store reuses catches what it should, and open_store dispatches by URL."""

from __future__ import annotations

import contextlib
import inspect
import sys
import types
from typing import Any, Iterator

import pytest

from motorcade.errors import ConfigError
from motorcade.store import STAGE_PROTOCOLS, SQLiteStore, Store, open_store
from motorcade.testing import store_conformance_problems

# SQLite-only members outside the protocol: nothing outside motorcade.store may use them.
SQLITE_ONLY = {"conn", "db"}


def _protocol_member_names() -> set[str]:
    names: set[str] = set()
    for protocol in STAGE_PROTOCOLS:
        names |= set(getattr(protocol, "__annotations__", {}))
        names |= {n for n, v in vars(protocol).items()
                  if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    return names


def test_sqlite_store_satisfies_every_protocol_member():
    assert store_conformance_problems(SQLiteStore) == []


def test_an_open_sqlite_store_is_a_store(tmp_path):
    store = open_store(tmp_path / "p.db")
    try:
        assert isinstance(store, Store)
        assert store_conformance_problems(store) == []
        assert store.dialect == "sqlite"
        assert store.location == str(tmp_path / "p.db")
    finally:
        store.close()


def test_every_public_function_of_the_sqlite_store_is_in_the_protocol():
    """The protocol lists every named function: a function added to a mixin but not to the protocol would be
    one a second store does not know it has to offer."""
    public = {name for cls in SQLiteStore.__mro__ if cls.__module__.startswith("motorcade.store")
              for name in vars(cls) if not name.startswith("_")}
    assert public - _protocol_member_names() == SQLITE_ONLY


@pytest.mark.parametrize("protocol", STAGE_PROTOCOLS, ids=lambda p: p.__name__)
def test_every_protocol_member_states_its_contract(protocol):
    assert inspect.getdoc(protocol), f"{protocol.__name__} has no docstring"
    for name, member in vars(protocol).items():
        if name.startswith("_") or not (callable(member) or isinstance(member, property)):
            continue
        function = member.fget if isinstance(member, property) else member
        assert (inspect.getdoc(function) or "").strip(), f"{protocol.__name__}.{name} has no docstring"


class _WrongSignature(SQLiteStore):
    def due_sends(self, now, limit):  # limit should be keyword-only, both annotated
        return []


class _NotAContextManager(SQLiteStore):
    def transaction(self, *, immediate: bool = True) -> Iterator[Any]:
        return iter(())


class _PropertyAsMethod(SQLiteStore):
    def location(self) -> str:  # type: ignore[override]
        return ""


class _ExtraRequiredParameter(SQLiteStore):
    def get_send(self, key: str, shard: int) -> dict[str, Any] | None:
        return None


class _ExtraOptionalParameter(SQLiteStore):
    def get_send(self, key: str, shard: int = 0) -> dict[str, Any] | None:
        return None


class _WrongDefault(SQLiteStore):
    def list_sends(self, *, status: str | None = None, origin: str | None = None, person_id: int | None = None,
                   run_id: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        return []


class _WrongReturn(SQLiteStore):
    def people_count(self) -> str:
        return "0"


@pytest.mark.parametrize("implementation, expected", [
    (_WrongSignature, ["OutboxStore.due_sends: parameter 'now' is annotated",
                       "OutboxStore.due_sends: parameter 'limit' is positional or keyword, should be keyword-only",
                       "OutboxStore.due_sends: returns"]),
    (_NotAContextManager, ["StoreBase.transaction: should be a context manager"]),
    (_PropertyAsMethod, ["StoreBase.location: should be a property"]),
    (_ExtraRequiredParameter, ["OutboxStore.get_send: extra parameter 'shard' without a default"]),
    (_ExtraOptionalParameter, []),
    (_WrongDefault, ["OutboxStore.list_sends: parameter 'limit' defaults to 10, should default to 50"]),
    (_WrongReturn, ["TagsStore.people_count: returns 'str', should return 'int'"]),
    (type("Empty", (), {}), ["StoreBase.dialect: missing", "OutboxStore.due_sends: missing",
                             "InboxStore.inbox_purge: missing"]),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_the_conformance_checker_names_each_mismatch(implementation, expected):
    problems = store_conformance_problems(implementation)
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    if not expected:
        assert problems == []
    if implementation.__name__ != "Empty":  # one defect, one problem: the rest still conforms
        assert all(p.split(":")[0] == expected[0].split(":")[0] for p in problems), problems


# -- open_store picks the implementation by URL ------------------------------------------------------------

@pytest.mark.parametrize("database", ["plain.db", "sqlite:///plain.db"])
def test_a_path_or_sqlite_url_opens_sqlite(tmp_path, database):
    store = open_store(database, base_dir=tmp_path)
    try:
        assert isinstance(store, SQLiteStore) and store.dialect == "sqlite"
        assert store.location == str(tmp_path / "plain.db")
    finally:
        store.close()


@pytest.fixture
def no_postgres_store(monkeypatch):
    """Make ``import motorcade.store.postgres`` fail as it does when the module or its driver is absent."""
    monkeypatch.setitem(sys.modules, "motorcade.store.postgres", None)


@pytest.mark.parametrize("url", ["postgresql://ops:s3cret@db.example/motorcade", "postgres://ops@db/motorcade"])
def test_postgres_url_without_the_postgres_store_says_what_to_install(no_postgres_store, url):
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    message = str(caught.value) + " " + (caught.value.hint or "")
    assert "PostgreSQL store" in message and 'pip install "motorcade[postgres]"' in message
    assert "s3cret" not in message  # the password never reaches a message


def test_postgres_url_opens_the_postgres_store_when_importable(monkeypatch):
    opened = []

    class PostgresStore:
        def __init__(self, url: str, *, migrate: bool = True):
            opened.append((url, migrate))

    module = types.ModuleType("motorcade.store.postgres")
    module.PostgresStore = PostgresStore
    monkeypatch.setitem(sys.modules, "motorcade.store.postgres", module)
    store = open_store("postgresql://ops@db/motorcade", migrate=False)
    assert isinstance(store, PostgresStore)
    assert opened == [("postgresql://ops@db/motorcade", False)]


def test_an_unknown_scheme_names_the_ones_there_are():
    with pytest.raises(ConfigError, match="no store for 'mysql'") as caught:
        open_store("mysql://root:pw@h/db")
    assert "pw" not in str(caught.value) and "postgresql://" in caught.value.hint


def test_the_context_managers_of_the_protocol_are_context_managers_on_sqlite(tmp_path):
    store = open_store(tmp_path / "cm.db")
    try:
        for name in ("transaction", "read_snapshot", "unsynced_writes"):
            with contextlib.ExitStack() as stack:
                stack.enter_context(getattr(store, name)())
    finally:
        store.close()
