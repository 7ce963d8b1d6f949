"""The store seam: every stage reads and writes operational data through a Store's named functions.

:class:`Store` (:mod:`motorcade.store.protocol`) is the interface: a typing Protocol listing every named
function, grouped per pipeline stage, each with its contract. The embedded default implementation is
:class:`~motorcade.store.sqlite.SQLiteStore`; PostgreSQL (``motorcade.store.postgres``) implements the same
protocol. :func:`open_store` picks the implementation from the database setting's URL scheme.
"""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path

from ..errors import ConfigError
from ..masking import without_password
from .protocol import (STAGE_PROTOCOLS, EventsStore, IdentityStore, InboxStore, IngestStore, OutboxStore, PeopleStore,
                       QuarantineStore, ReportsStore, SegmentsStore, StatsStore, Store, StoreBase, TagsStore)
from .sqlite import SQLiteStore

# URL schemes of the PostgreSQL store (libpq accepts both).
POSTGRES_SCHEMES = ("postgresql", "postgres")
# What to install when the PostgreSQL store cannot be imported.
POSTGRES_INSTALL_HINT = 'install PostgreSQL support: pip install "motorcade[postgres]" (psycopg 3 with its pool)'


def open_store(database: str | Path, *, base_dir: Path | None = None, migrate: bool = True) -> Store:
    """Open the project's store.

    ``database`` is a file path or ``sqlite:///path`` (SQLite; a relative path is read from ``base_dir``),
    or ``postgresql://user@host/db`` (PostgreSQL, :class:`motorcade.store.postgres.PostgresStore`).
    """
    text = str(database)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() in POSTGRES_SCHEMES:
            return _open_postgres(text, migrate=migrate)
        if scheme != "sqlite":
            raise ConfigError(
                f"database {without_password(text)!r}: no store for {scheme!r} is installed",
                hint="the embedded default is SQLite: database = \"motorcade.db\"; "
                     "PostgreSQL: database = \"postgresql://user@host/dbname\"",
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


def _open_postgres(url: str, *, migrate: bool) -> Store:
    try:
        module = importlib.import_module("motorcade.store.postgres")
    except ImportError as exc:
        missing = exc.name or "motorcade.store.postgres"
        raise ConfigError(
            f"database {without_password(url)!r} needs the PostgreSQL store, which cannot be imported "
            f"(missing module {missing!r})",
            hint=POSTGRES_INSTALL_HINT,
        ) from None
    return module.PostgresStore(url, migrate=migrate)


__all__ = ["Store", "StoreBase", "PeopleStore", "EventsStore", "QuarantineStore", "IdentityStore", "IngestStore",
           "TagsStore", "SegmentsStore", "OutboxStore", "ReportsStore", "StatsStore", "InboxStore", "STAGE_PROTOCOLS",
           "SQLiteStore", "open_store", "POSTGRES_INSTALL_HINT"]
