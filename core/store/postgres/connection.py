"""A psycopg connection that speaks to the store's mixins the way a ``sqlite3.Connection`` does.

The mixins call ``execute`` / ``executemany`` with SQLite-spelled statements and read ``rowcount``,
``lastrowid``, ``total_changes`` and ``in_transaction``; :class:`Connection` gives them the same, on one
pooled PostgreSQL connection in autocommit mode (``BEGIN`` / ``COMMIT`` come from the store's
``transaction``), with every statement rendered by :func:`motorcade.store.postgres.dialect.translate`.
"""

from __future__ import annotations

import functools
import json
import re
from decimal import Decimal
from typing import Any, Iterable, Iterator

from .dialect import arrange, explicit_id_table, translate


def _refuse_nul(exc: Exception, sql: str) -> None:
    """PostgreSQL text cannot hold NUL (SQLite's can): an operator error naming the statement's table."""
    if ("NUL" in str(exc) and "0x00" in str(exc)) or "\\u0000 cannot be converted to text" in str(exc):
        import re

        from ...errors import MotorcadeError

        table = re.search(r"(?:INTO|UPDATE)\s+(\w+)", sql, re.IGNORECASE)
        raise MotorcadeError(
            f"a value for {table.group(1) if table else 'the store'} contains the NUL character (\\x00), which "
            f"PostgreSQL text cannot hold", hint="remove NUL characters from the source data (SQLite stores them)"
        ) from None


class Row(tuple):
    """A result row readable by position and by column name (as ``sqlite3.Row``)."""

    _names: tuple[str, ...] = ()

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _plain(value: Any) -> Any:
    """numeric results (sums, averages) as SQLite gives them: int when whole, else float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class Cursor:
    """The result of one statement: rows fetched at once, ``rowcount`` and ``lastrowid``."""

    def __init__(self, rows: list[tuple], rowcount: int, lastrowid: int | None, names: tuple[str, ...] = ()):
        self._rows = rows
        self._pos = 0
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.description = [(n,) for n in names] if names else None
        self.row_factory = None

    def fetchone(self):
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return row

    def fetchall(self) -> list:
        rows = self._rows[self._pos:]
        self._pos = len(self._rows)
        return rows

    def fetchmany(self, size: int = 1) -> list:
        rows = self._rows[self._pos:self._pos + size]
        self._pos += len(rows)
        return rows

    def __iter__(self) -> Iterator:
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row


JSONB_OID = 3802
_LONE_PERCENT = re.compile(r"%(?!\(\w+\)s|s\b)")


def percent_escaped(sql: str) -> str:
    """PostgreSQL text with psycopg placeholders (``%s``, ``%(name)s``), every other ``%`` (the modulo
    operator sqlglot renders, a LIKE pattern) doubled, as psycopg requires when parameters are passed."""
    return _LONE_PERCENT.sub("%%", sql)



@functools.lru_cache(maxsize=512)
def _row_type(names: tuple[str, ...]) -> type:
    return type("Row", (Row,), {"_names": names})


def configure(raw) -> None:
    """Per-connection set-up (the pool calls it once per new connection): jsonb arrives as its text, and the
    session reads and writes times in UTC (a date or a time without an offset means UTC, as on SQLite)."""
    from psycopg.types.string import TextLoader

    raw.adapters.register_loader("jsonb", TextLoader)
    raw.execute("SET TimeZone TO 'UTC'")


class Connection:
    """One PostgreSQL connection, sqlite3-shaped. ``raw`` is the psycopg connection."""

    def __init__(self, raw):
        self.raw = raw
        self.total_changes = 0

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def _rows(self, cur) -> tuple[list, tuple[str, ...]]:
        if cur.description is None:
            return [], ()
        names = tuple(d.name for d in cur.description)
        row_type = _row_type(names)
        # jsonb arrives as text (the mixins decode documents themselves), except a tag's ``value``: that
        # is the value itself (a number, text or boolean), as SQLite's untyped column gives it
        values = [i for i, d in enumerate(cur.description) if d.type_code == JSONB_OID and d.name == "value"]
        rows = cur.fetchall()
        if values:
            rows = [[json.loads(v) if i in values and v is not None else v for i, v in enumerate(r)] for r in rows]
        return [row_type(_plain(v) for v in r) for r in rows], names

    def execute(self, sql: str, params: Iterable[Any] | dict = ()) -> Cursor:
        text, order, returning = translate(sql)
        if returning:
            text += " RETURNING id"
        args = arrange(params, order) if params else None
        with self.raw.cursor() as cur:
            try:
                cur.execute(text, args)
            except Exception as exc:  # noqa: BLE001 - re-raised unless it is the NUL case
                _refuse_nul(exc, text)
                raise
            rows, names = self._rows(cur)
            count = cur.rowcount
        lastrowid = rows[-1][0] if returning and rows else None
        if returning:
            rows, names = [], ()
        if count > 0 and not names:
            self.total_changes += count
        self._follow_ids(text)
        return Cursor(rows, count, lastrowid, names)

    def executemany(self, sql: str, seq: Iterable[Iterable[Any]]) -> Cursor:
        text, order, _returning = translate(sql)
        args = [arrange(p, order) for p in seq]
        if not args:
            return Cursor([], 0, None)
        with self.raw.cursor() as cur:
            try:
                cur.executemany(text, args)
            except Exception as exc:  # noqa: BLE001 - re-raised unless it is the NUL case
                _refuse_nul(exc, text)
                raise
            count = max(cur.rowcount, 0)
        self.total_changes += count
        self._follow_ids(text)
        return Cursor([], count, None)

    def _follow_ids(self, text: str) -> None:
        """After rows were inserted with explicit ids, move the table's id sequence past them (SQLite's
        next rowid is always past the largest)."""
        table = explicit_id_table(text)
        if table is not None:
            with self.raw.cursor() as cur:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"greatest((SELECT max(id) FROM {table}), 1))")

    def execute_native(self, sql: str, params: Any = None) -> Cursor:
        """Run PostgreSQL text as is (``%s`` placeholders): the store's own overrides use it."""
        with self.raw.cursor() as cur:
            cur.execute(sql, params)
            rows, names = self._rows(cur)
            count = cur.rowcount
        if count > 0 and not names:
            self.total_changes += count
        return Cursor(rows, count, None, names)

    def commit(self) -> None:
        if self.in_transaction:
            self.raw.execute("COMMIT")

    def close(self) -> None:
        self.raw.close()
