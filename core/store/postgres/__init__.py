"""PostgreSQL as the shared store of several processes on several hosts (``database = "postgresql://..."``).

:class:`PostgresStore` offers the same named functions as the SQLite store: it is built from the same
mixins (one per pipeline stage), whose statements :mod:`.dialect` renders in PostgreSQL's spelling, and it
overrides (in :mod:`.overrides`) the functions whose SQL means something SQLite-specific (JSON and date
functions, bulk staging, ``INSERT OR REPLACE`` of typed tag values) and the outbox claim, which here
locks the rows it returns (``FOR UPDATE SKIP LOCKED``) so that workers never wait on each other's rows.

Transactions: one pooled connection per thread (psycopg 3, ``psycopg_pool``), autocommit between
transactions; :meth:`PostgresStore.transaction` nests by savepoint like the SQLite store's. A write
transaction (``immediate=True``, the default) also takes the store's writer lock, a transaction-level
advisory lock, because the identity stage allocates ids by reading the largest one under SQLite's single
writer lock (``BEGIN IMMEDIATE``); the lock gives it the same guarantee here. Outbox claims run in such a
transaction too, so two workers never plan or claim the same row, and renewals and results are single
statements guarded by ``claimed_by``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

from ...errors import ConfigError, MotorcadeError
from ...masking import without_password
from ..access import AccessMixin
from ..events import EventsMixin
from ..identity import IdentityMixin
from ..inbox import InboxMixin
from ..ingest import IngestMixin
from ..migrations import apply_pending, body_for
from ..outbox import OutboxMixin
from ..people import PeopleMixin
from ..quarantine import QuarantineMixin
from ..reports import ReportsMixin
from ..segments import SegmentsMixin
from ..stats import StatsMixin
from ..tags import TagsMixin
from ..journeys import JourneysMixin
from ..tracking import TrackingMixin
from .connection import Connection, configure, percent_escaped
from .functions import install as install_functions
from .overrides import PostgresOverrides

def _bytewise_text(ddl: str) -> str:
    """Text columns compare and sort by code point, as SQLite's do (``COLLATE "C"``), whatever the
    database's default collation: min(), ORDER BY and ranges give the same answers on both stores."""
    import re

    if not re.match(r"\s*(CREATE\s+TABLE|ALTER\s+TABLE)", ddl, re.IGNORECASE):
        return ddl
    return re.sub(r"\bTEXT\b(?!\s+COLLATE)", 'TEXT COLLATE "C"', ddl)


# pg_advisory_xact_lock key of the store's writer lock ("MOTORCADE" folded into a bigint).
WRITER_LOCK = 0x4D4F544F52434144

INSTALL_HINT = "install the PostgreSQL extra: pip install 'motorcade[postgres]'"


def _driver():
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise ConfigError("a postgresql:// database needs psycopg 3 and psycopg_pool, which are not installed",
                          hint=INSTALL_HINT) from None
    return psycopg, psycopg_pool


redact = without_password  # the URL without its password, for messages


class PostgresStore(PostgresOverrides, PeopleMixin, EventsMixin, QuarantineMixin, IdentityMixin, IngestMixin,
                    TagsMixin, SegmentsMixin, OutboxMixin, ReportsMixin, StatsMixin, InboxMixin, AccessMixin,
                    TrackingMixin, JourneysMixin):
    """A project's operational data in one PostgreSQL database, shared by every process that names it."""

    dialect = "postgres"  # sqlglot's name

    def __init__(self, url: str, *, migrate: bool = True, pool_size: int = 8):
        psycopg, psycopg_pool = _driver()
        self.url = url
        self.path = redact(url)  # what messages name (the SQLite store names its file)
        self._local = threading.local()
        self._conns: list[Connection] = []
        self._conns_lock = threading.Lock()
        try:
            self.pool = psycopg_pool.ConnectionPool(url, min_size=1, max_size=pool_size, open=True, timeout=30,
                                                    kwargs={"autocommit": True}, configure=configure,
                                                    name="motorcade")
            self.pool.wait(timeout=30)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise ConfigError(f"database {self.path!r} cannot be reached: {exc}",
                              hint="check the host, port, user and database name in [project] database, and "
                                   "that the PostgreSQL server is running and accepts this user") from None
        if migrate:
            self.migrate()

    # -- connection -------------------------------------------------------------------------------

    @property
    def conn(self) -> Connection:
        """One pooled connection per thread, kept until :meth:`close`."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = Connection(self.pool.getconn())
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @property
    def location(self) -> str:
        """The database URL without its password (for messages to an operator)."""
        return self.path

    def external_change_mark(self) -> tuple[Any, ...]:
        """This thread's connection and the next transaction id PostgreSQL will assign: it moves whenever any
        session commits a write. This connection's own writes move it too, which only costs a cache its
        contents (a refresh), never a stale read."""
        conn = self.conn
        return conn, conn.execute_native("SELECT txid_snapshot_xmax(txid_current_snapshot())").fetchone()[0]

    @property
    def db(self):
        raise MotorcadeError("the PostgreSQL store has no sqlite-utils database",
                             hint="use the store's named functions")

    def close(self) -> None:
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                if conn.in_transaction:
                    conn.raw.execute("ROLLBACK")
                self.pool.putconn(conn.raw)
            except Exception:  # noqa: BLE001 - a broken connection is dropped with the pool
                pass
        self._local = threading.local()
        self.pool.close()

    @contextlib.contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[Connection]:
        """One transaction; nests by savepoint. ``immediate``: take the writer lock at its start."""
        conn = self.conn
        raw = conn.raw
        if conn.in_transaction:
            depth = getattr(self._local, "depth", 0)
            name = f"sp_{depth}"
            self._local.depth = depth + 1
            raw.execute(f"SAVEPOINT {name}")
            try:
                yield conn
            except BaseException:
                if not raw.closed:
                    raw.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    raw.execute(f"RELEASE SAVEPOINT {name}")
                raise
            else:
                raw.execute(f"RELEASE SAVEPOINT {name}")
            finally:
                self._local.depth -= 1
            return
        raw.execute("BEGIN")
        try:
            if immediate:
                raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
            yield conn
        except BaseException:
            if not raw.closed:
                raw.execute("ROLLBACK")
            raise
        else:
            raw.execute("COMMIT")

    # -- schema -----------------------------------------------------------------------------------

    def schema_version(self) -> int:
        exists = self.conn.execute_native("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()[0]
        if not exists:
            return 0
        return self.conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0

    def migrate(self, *, upto: int | None = None) -> list[str]:
        """Apply pending migrations in order (their PostgreSQL bodies); return the names applied."""
        conn = self.conn
        with self.transaction():  # the writer lock: processes opening a new store at once migrate it once
            conn.execute_native("CREATE TABLE IF NOT EXISTS schema_version "
                                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            install_functions(conn.execute_native)

        def apply(fn) -> None:
            body_for(fn, "postgresql")(lambda sql: sql.strip() and conn.execute_native(_bytewise_text(sql)))

        return apply_pending(self, apply, upto=upto)

    # -- reads for other stages -------------------------------------------------------------------

    def query(self, sql: str, params: tuple | dict = ()) -> list[Any]:
        """Run a read-only statement written in PostgreSQL (``%s`` / ``%(name)s`` placeholders, as sqlglot
        renders the ``postgres`` dialect) and return rows (readable by position and by name)."""
        if not sql.lstrip().upper().startswith(("SELECT", "WITH", "EXPLAIN")):
            raise ValueError("Store.query is for reads; use the store's named functions to write")
        return self.conn.execute_native(percent_escaped(sql) if params else sql, params or None).fetchall()

    def analyze(self) -> None:
        """Refresh the query planner's statistics (after bulk loads)."""
        self.conn.execute_native("ANALYZE")


__all__ = ["PostgresStore", "redact"]
