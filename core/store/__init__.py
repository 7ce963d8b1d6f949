"""The store seam: every stage reads and writes operational data through a Store's named functions.

The embedded default is :class:`~motorcade.store.sqlite.SQLiteStore`. A bigger engine (PostgreSQL,
DuckDB, ClickHouse) takes over by implementing the same named functions and a SQL dialect for the
segment compiler; :func:`open_store` picks the implementation from the database setting.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import ConfigError
from .sqlite import SQLiteStore

Store = SQLiteStore  # the interface every implementation offers (today: the SQLite one)


def open_store(database: str | Path, *, base_dir: Path | None = None, migrate: bool = True) -> Store:
    """Open the project's store. ``database`` is a file path, ``sqlite:///path`` or ``postgresql://user@host/db``."""
    text = str(database)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme in ("postgresql", "postgres"):
            from .postgres import PostgresStore

            return PostgresStore(text, migrate=migrate)
        if scheme != "sqlite":
            raise ConfigError(
                f"database {text!r}: no store for {scheme!r} is installed",
                hint="the embedded default is SQLite: database = \"motorcade.db\"; "
                     "PostgreSQL: database = \"postgresql://user@host/db\"",
            )
        text = rest[1:] if rest.startswith("/") else rest  # sqlite:///rel.db, sqlite:////abs.db
    path = Path(text)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return SQLiteStore(path, migrate=migrate)
    except (sqlite3.DatabaseError, OSError) as exc:
        raise ConfigError(f"database {str(path)!r} cannot be opened: {exc}",
                          hint="[project] database must name a writable SQLite file in an existing folder "
                               "(relative paths are read from the project folder)") from None


__all__ = ["Store", "SQLiteStore", "open_store"]
