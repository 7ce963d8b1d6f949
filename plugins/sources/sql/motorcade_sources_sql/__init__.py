"""Motorcade source ``sql``: rows of a SQL query or table, mapped like CSV rows.

Settings::

    [sources.dms_live]
    type = "sql"
    url = "sqlite:///exports/dms.db"   # or path = "exports/dms.db"; other URLs need SQLAlchemy installed
    table = "owners"                   # or query = "SELECT ... FROM ..."
    cursor_column = "updated_at"       # incremental: a re-run only reads rows with a larger value
    key_column = "id"                  # position of a row in quarantine ("row id 4411")
    batch_size = 5000
    [sources.dms_live.person]          # the same mapping tables as the csv source
    ...

The cursor column must grow for new and changed rows (an ``updated_at`` or an autoincrement id);
the cursor is saved only after a run read everything, so a failed run is simply read again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from motorcade.config_schema import PATH, TEXT, Setting, whole
import motorcade
from motorcade.errors import ConfigError
from motorcade.sources.base import Source, SourceRecord
from motorcade.sources.mapping import RowMapping

__all__ = ["SqlSource"]

_IDENT_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


def _identifier(name: str, what: str, source: str) -> str:
    if not name or not set(name) <= _IDENT_OK:
        raise ConfigError(f"[sources.{source}] {what} {name!r} is not a plain table/column name")
    return ".".join(f'"{part}"' for part in name.split("."))


class SqlSource(Source):
    type_name = "sql"
    description = "SQL database (SQLite file, DB-API/SQLAlchemy URL) with an incremental cursor column"
    settings_schema = (
        Setting("url", TEXT, "database URL (sqlite:///file.db or an SQLAlchemy URL)"),
        Setting("path", PATH, "an SQLite file (instead of url)"),
        Setting("table", TEXT, "read every row of this table (or give query)"),
        Setting("query", TEXT, "the SELECT to read (or give table)"),
        Setting("cursor_column", TEXT, "a column that only grows (id, updated_at): later runs read rows above "
                "the last value"),
        Setting("key_column", TEXT, "a unique column to order rows with equal cursor values"),
        Setting("batch_size", whole(1), "rows per transaction", 5000),
    )
    yields = ("people", "cars", "events", "stores", "advisors")

    def __init__(self, name, settings, project_dir):
        super().__init__(name, settings, project_dir)
        self.url = settings.get("url") or (f"sqlite:///{settings['path']}" if "path" in settings else None)
        if not self.url:
            raise ConfigError(f"[sources.{name}] needs url or path", hint='url = "sqlite:///exports/dms.db"')
        if "table" in settings:
            self.query = f"SELECT * FROM {_identifier(settings['table'], 'table', name)}"
        elif "query" in settings:
            self.query = settings["query"]
        else:
            raise ConfigError(f"[sources.{name}] needs table or query")
        self.cursor_column = settings.get("cursor_column")
        self._cursor_sql = _identifier(self.cursor_column, "cursor_column", name) if self.cursor_column else None
        self.key_column = settings.get("key_column")
        self.batch_size = int(settings.get("batch_size", 5000))
        self.mapping = RowMapping(name, settings)
        self._last: Any = None

    def _execute(self, sql: str, params: dict):
        """(cursor-like with fetchmany, column names, closer) for a SQLite file or a SQLAlchemy URL."""
        if self.url.startswith("sqlite:///"):
            import sqlite3

            path = Path(self.url[len("sqlite:///"):])
            path = path if path.is_absolute() else Path(self.project_dir) / path
            if not path.exists():
                raise ConfigError(f"[sources.{self.name}] database {path} does not exist")
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            cur = conn.execute(sql, params)  # sqlite3 takes :name parameters as SQLAlchemy's text() does
            return cur, [d[0] for d in cur.description], conn.close
        try:
            import sqlalchemy
        except ImportError:
            raise ConfigError(f"[sources.{self.name}] url {self.url.split('://')[0]}://... needs SQLAlchemy",
                              hint="pip install sqlalchemy and the database's driver") from None
        conn = sqlalchemy.create_engine(self.url).connect()
        result = conn.execution_options(stream_results=True).execute(sqlalchemy.text(sql), params)
        return result, list(result.keys()), conn.close

    def read(self, cursor: str | None = None) -> Iterator[list[SourceRecord]]:
        params: dict = {}
        sql = f"SELECT * FROM ({self.query}) AS q"
        if self._cursor_sql:
            if cursor is not None:
                sql += f" WHERE {self._cursor_sql} > :cursor"
                params["cursor"] = json.loads(cursor)
            sql += f" ORDER BY {self._cursor_sql}"
        cur, columns, close = self._execute(sql, params)
        try:
            self.mapping.check_columns(columns, f"[sources.{self.name}] query")
            self._last = None if cursor is None else json.loads(cursor)
            cursor_index = columns.index(self.cursor_column) if self.cursor_column else None
            key_index = columns.index(self.key_column) if self.key_column in columns else None
            n = 0
            while True:
                rows = cur.fetchmany(self.batch_size)
                if not rows:
                    break
                batch: list[SourceRecord] = []
                for row in rows:
                    n += 1
                    record = dict(zip(columns, row))
                    position = f"row {self.key_column} {row[key_index]}" if key_index is not None else f"row {n}"
                    raw = json.dumps(record, ensure_ascii=False, default=str)
                    batch.extend(self.mapping.records(record, position, raw))
                    if cursor_index is not None and row[cursor_index] is not None:
                        self._last = row[cursor_index]
                yield batch
        finally:
            close()

    def next_cursor(self) -> str | None:
        if not self.cursor_column or self._last is None:
            return None
        return json.dumps(self._last, default=str)

    def reparse(self, position: str, raw: str) -> list[SourceRecord]:
        return self.mapping.records(json.loads(raw), position, raw)


@motorcade.hookimpl
def register_sources(register):
    register(SqlSource)
