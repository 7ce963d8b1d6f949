"""Analytics engines: DuckDB (embedded) and ClickHouse (a server, or in-process through chdb).

An engine holds a mirror of the analytical tables (:mod:`motorcade.analytics.tables`), runs compiled
segment queries in its own SQL dialect (:mod:`motorcade.segments.dialects`) and returns person ids. It
never holds operational state: memberships, consents' history, the outbox and everything a trigger
needs stay in the operational store (docs/engines.md).

``open_engine(url)``: ``duckdb:///path/file.duckdb`` (``duckdb:///:memory:`` for a throwaway one),
``chdb:///path/folder`` (ClickHouse in-process; ``chdb://`` alone: a temporary session), or
``clickhouse://host:8123/database`` (a ClickHouse server, through ``clickhouse-connect``).
"""

from __future__ import annotations

import os
import re
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError
from ..masking import without_password
from ..store.functions import add_months
from .tables import TABLE_NAMES, TABLES, Column, Table, events_state, events_up_to, read_batches

STATE_TABLE = "motorcade_mirror"  # one row: the events mirrored so far and the identity fingerprint then
STATE = Table(STATE_TABLE, (Column("last_id", "int"), Column("events", "int"), Column("fingerprint", "text")),
              "", ("last_id",))
# the event property keys kept in typed columns of `events` (dialects.property_columns), one row each
PROPERTIES_TABLE = "motorcade_properties"
PROPERTIES = Table(PROPERTIES_TABLE, (Column("key", "text"),), "", ("key",))


class AnalyticsEngine:
    """What every engine offers; the subclasses implement the first four."""

    name = "engine"
    dialect = "sqlite"

    def _execute(self, sql: str, params: dict | None = None) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        """Rows of a read query (``params`` named, in the engine's placeholder style as rendered)."""
        raise NotImplementedError

    def _create(self, table: Table) -> None:
        raise NotImplementedError

    def _append(self, table: Table, batches: Iterable) -> int:
        """Append Arrow record batches to ``table`` with the engine's bulk path; the row count."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # -- shared --
    def create_tables(self) -> None:
        for table in TABLES:
            self._create(table)
        self._create(STATE)
        self._create(PROPERTIES)

    # -- typed columns for event properties --
    _property_keys: frozenset[str] | None = None  # read once per engine object; materialise() updates it

    def property_columns(self) -> frozenset[str]:
        """The event property keys whose typed columns ``events`` has (the compiler reads them instead of
        parsing each row's JSON)."""
        if self._property_keys is None:
            self._property_keys = frozenset(str(r[0]) for r in self.query(f"SELECT key FROM {PROPERTIES_TABLE}"))
        return self._property_keys

    def _add_property(self, key: str) -> None:
        """Add the typed columns of ``key`` to ``events``, filled for every row there and every row appended."""
        raise NotImplementedError

    def materialise(self, keys: Iterable[str]) -> list[str]:
        """Keep event properties ``keys`` (those matching dialects.PROPERTY_KEY_RE; others stay JSON) in typed
        columns of ``events``, filled for every event there and every one mirrored later; the keys added."""
        from ..segments.dialects import PROPERTY_KEY_RE

        have = self.property_columns()
        added = []
        for key in sorted(set(keys)):
            if key in have or not re.match(PROPERTY_KEY_RE, key):
                continue
            self._add_property(key)
            self._execute(f"INSERT INTO {PROPERTIES_TABLE} VALUES ('{key}')")  # checked against the pattern
            added.append(key)
            self._property_keys = have | set(added)
        return added

    def replace(self, table: Table, batches: Iterable) -> int:
        self._execute(f"TRUNCATE TABLE {table.name}")
        return self._append(table, batches)

    last_mirror = ""  # "full" or "incremental": how the last mirror() copied the events

    def mirror(self, store, tables: Iterable[str] = TABLE_NAMES, *, incremental: bool = True,
               properties: Iterable[str] = ()) -> dict[str, int]:
        """Copy the analytical tables of the operational ``store`` into the engine; the rows copied per
        table. Every table but ``events`` is replaced whole. ``events`` (the big one) gets only the rows
        added since the last mirror when that is exact: identity settled then and now, no merge or split
        since, and the events mirrored then still all there (a dedup pass deletes and renumbers); else it
        is replaced whole too (:attr:`last_mirror` says which). ``properties``: event property keys to keep
        in typed columns (:meth:`materialise`; the rule set's: ``compiler.property_keys``)."""
        wanted = set(tables)
        counts = {}
        # nothing uncommitted on the store's connection: a reader on its own connection sees the same rows
        # (the append-only events bounded by this snapshot's last id)
        separate = not getattr(store.conn, "in_transaction", True)
        with store.read_snapshot():
            max_id, count, fingerprint, settled = events_state(store)
            previous = self._state() if incremental else None
            append_after = None
            if previous is not None and settled:
                last_id, last_count, last_fingerprint = previous
                if last_fingerprint == fingerprint and last_id <= max_id and events_up_to(store, last_id) == last_count:
                    append_after = last_id
            for table in TABLES:
                if table.name not in wanted:
                    continue
                if table.name == "events" and append_after is not None:
                    counts[table.name] = self._append(table, read_batches(store, table, after_id=append_after,
                                                                          up_to=max_id, separate_reader=separate))
                elif table.name == "events" and self._holds_ingested_events():
                    # events ingested straight into the engine live only here: replace the store's alone
                    from .ingest import INGEST_ID_BASE

                    self._execute(f"DELETE FROM events WHERE id < {INGEST_ID_BASE}")
                    counts[table.name] = self._append(table, read_batches(store, table, up_to=max_id,
                                                                          separate_reader=separate))
                else:
                    counts[table.name] = self.replace(table, read_batches(store, table, up_to=max_id,
                                                                          separate_reader=separate))
            if "events" in wanted:
                if self._holds_ingested_events():  # events ingested into the engine follow merges and splits
                    from .ingest import refresh_ingested_people

                    refresh_ingested_people(store, self)
                self.last_mirror = "incremental" if append_after is not None else "full"
                self._set_state(max_id, count, fingerprint)
        self.materialise(properties)
        return counts

    def _holds_ingested_events(self) -> bool:
        from .ingest import ingested_count

        return ingested_count(self) > 0

    def _state(self) -> tuple[int, int, str] | None:
        rows = self.query(f"SELECT last_id, events, fingerprint FROM {STATE_TABLE}")
        return (int(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None

    def _set_state(self, last_id: int, events: int, fingerprint: str) -> None:
        self._execute(f"TRUNCATE TABLE {STATE_TABLE}")
        self._execute(f"INSERT INTO {STATE_TABLE} VALUES ({{last:Int64}}, {{events:Int64}}, {{fingerprint:String}})",
                      {"last": int(last_id), "events": int(events), "fingerprint": fingerprint})

    def counts(self) -> dict[str, int]:
        return {name: int(self.query(f"SELECT count(*) FROM {name}")[0][0]) for name in TABLE_NAMES}

    def person_ids(self, compiled) -> list[int]:
        """Run a compiled segment query (compiled for this engine's dialect) and return its person ids."""
        if compiled.dialect != self.dialect:
            raise ConfigError(f"a query compiled for {compiled.dialect} cannot run on {self.name}",
                              hint=f"compile it with dialect={self.dialect!r}")
        return self.ids(compiled.sql(), compiled.params)

    def ids(self, sql: str, params: dict | None = None) -> list[int]:
        """The first column of a read query as Python ints (person ids; the engines override this with a
        columnar fetch: a Python row per member costs more than the query for large segments)."""
        return [int(r[0]) for r in self.query(sql, params)]


class DuckDBEngine(AnalyticsEngine):
    name = "DuckDB"
    dialect = "duckdb"
    _TYPES = {"int": "BIGINT", "text": "VARCHAR", "float": "DOUBLE"}

    def __init__(self, path: str | Path = ":memory:", threads: int | None = None):
        import duckdb
        try:
            from duckdb.sqltypes import BIGINT, VARCHAR
        except ImportError:  # duckdb < 1.4
            from duckdb.typing import BIGINT, VARCHAR

        self.path = str(path)
        self.conn = duckdb.connect(self.path)
        if threads:
            self.conn.execute(f"SET threads = {int(threads)}")
        # the evaluator's calendar month shift, exactly (docs/compiler.md: motorcade_add_months)
        try:
            self.conn.create_function("motorcade_add_months", add_months, [BIGINT, BIGINT, VARCHAR], BIGINT,
                                      null_handling="special", side_effects=False)
        except duckdb.CatalogException:  # the file is open in this process already: its instance has it
            pass
        self.create_tables()

    def _execute(self, sql, params=None):
        self.conn.execute(sql, self._used(sql, params))

    def query(self, sql, params=None):
        return self.conn.execute(sql, self._used(sql, params)).fetchall()

    def ids(self, sql, params=None):
        column = next(iter(self.conn.execute(sql, self._used(sql, params)).fetchnumpy().values()))
        return column.astype("int64").tolist()  # numpy int64 -> Python int, in C

    @staticmethod
    def _used(sql: str, params) -> dict:
        # DuckDB refuses parameters the text does not use (a plan binds some it then drops)
        if not params:
            return {}
        if not isinstance(params, dict):
            return params
        names = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", sql))
        return {k: v for k, v in params.items() if k in names}

    def _create(self, table):
        columns = ", ".join(f"{c.name} {self._TYPES[c.kind]}" for c in table.columns)
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({columns})")

    def replace(self, table, batches):
        self.conn.execute(f"DELETE FROM {table.name}")
        return self._append(table, batches)

    def _set_state(self, last_id, events, fingerprint):
        self.conn.execute(f"DELETE FROM {STATE_TABLE}")
        self.conn.execute(f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?)", [last_id, events, fingerprint])

    def _add_property(self, key):
        from ..segments.dialects import DIALECTS

        columns = DIALECTS["duckdb"].property_sql(key)
        for name, (kind, _sql) in columns.items():
            self.conn.execute(f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {name} {kind}")
        self.conn.execute("UPDATE events SET " + ", ".join(f"{name} = {sql}" for name, (_k, sql) in columns.items()))

    def typed_columns(self) -> list[tuple[str, str]]:
        """``(column, SQL over properties)`` of every typed property column (computed as events are appended)."""
        from ..segments.dialects import DIALECTS

        return [(name, sql) for key in sorted(self.property_columns())
                for name, (_k, sql) in DIALECTS["duckdb"].property_sql(key).items()]

    def insert_events_sql(self, source: str) -> str:
        """``INSERT INTO events`` of the rows of ``source`` (a relation with the events' columns), typed property
        columns computed on the way in, in ``(name, ts)`` order: DuckDB's zone maps (min / max per row group)
        then skip the row groups of other names (the mirror reads events in time order)."""
        from .tables import TABLES

        names = next(t for t in TABLES if t.name == "events").names
        typed = self.typed_columns()
        return (f"INSERT INTO events ({', '.join(names + [c for c, _ in typed])}) "
                f"SELECT {', '.join(names + [sql for _, sql in typed])} FROM {source} ORDER BY name, ts")

    def _append(self, table, batches):
        import pyarrow as pa

        n = 0
        for batch in batches:
            view = pa.Table.from_batches([batch])
            self.conn.register("motorcade_batch", view)
            try:
                if table.name == "events":
                    self.conn.execute(self.insert_events_sql("motorcade_batch"))
                else:
                    self.conn.execute(f"INSERT INTO {table.name} ({', '.join(table.names)}) "
                                      "SELECT * FROM motorcade_batch")
            finally:
                self.conn.unregister("motorcade_batch")
            n += batch.num_rows
        return n

    def close(self):
        self.conn.close()


class ClickHouseEngine(AnalyticsEngine):
    """ClickHouse through chdb (in-process) or clickhouse-connect (a server). MergeTree tables sorted by
    :attr:`Table.order_by`; inserts in blocks of whole Arrow batches (Parquet files for chdb)."""

    name = "ClickHouse"
    dialect = "clickhouse"
    _TYPES = {"int": "Int64", "text": "String", "float": "Float64"}
    # correlated subqueries (the compiler's per-person checks) are a 25.x feature; name it explicitly
    SETTINGS = {"allow_experimental_correlated_subqueries": 1}

    def __init__(self, *, chdb_path: str | None = None, client=None, database: str = "motorcade"):
        self.database = database
        self.client = client
        self.session = None
        if client is None:
            from chdb import session

            self._tmp = None
            if chdb_path is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="motorcade-chdb-")
                chdb_path = self._tmp.name
            self.session = session.Session(chdb_path)
        self._execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        if self.session is not None:
            self._execute(f"USE {database}")
        else:  # every later request names it (the HTTP interface's `database` parameter)
            self.client.database = database
        self.create_tables()

    def _settings(self) -> str:
        return " SETTINGS " + ", ".join(f"{k} = {v}" for k, v in self.SETTINGS.items())

    def _execute(self, sql, params=None):
        if self.session is not None:
            self.session.query(sql, "CSV", params=params or {})
        else:
            self.client.command(sql, parameters=params or None)

    def query(self, sql, params=None):
        sql = sql + self._settings()
        if self.session is not None:
            table = self.session.query(sql, "ArrowTable", params=params or {})
            columns = [c.to_pylist() for c in table.columns]
            return list(zip(*columns))
        return self.client.query(sql, parameters=params or None).result_rows

    def ids(self, sql, params=None):
        if self.session is None:
            return super().ids(sql, params)
        table = self.session.query(sql + self._settings(), "ArrowTable", params=params or {})
        return table.column(0).to_numpy().astype("int64").tolist()

    def _create(self, table):
        keys = set(table.order_by)
        columns = ", ".join(f"{c.name} {self._TYPES[c.kind] if c.name in keys else f'Nullable({self._TYPES[c.kind]})'}"
                            for c in table.columns)
        self._execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({columns}) ENGINE = MergeTree "
                      f"ORDER BY ({', '.join(table.order_by)})")

    def _add_property(self, key):
        from ..segments.dialects import DIALECTS

        # MATERIALIZED: computed by ClickHouse on every insert; MATERIALIZE COLUMN fills the rows already there
        # (one mutation for the four columns: the parts are rewritten once)
        columns = DIALECTS["clickhouse"].property_sql(key)
        self._execute("ALTER TABLE events " + ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {kind} MATERIALIZED {sql}"
                                                        for name, (kind, sql) in columns.items()))
        self._execute("ALTER TABLE events " + ", ".join(f"MATERIALIZE COLUMN {name}" for name in columns)
                      + " SETTINGS mutations_sync = 2")

    def _append(self, table, batches):
        n = 0
        if self.session is None:
            import pyarrow as pa

            for batch in batches:
                self.client.insert_arrow(table.name, pa.Table.from_batches([batch]), database=self.database)
                n += batch.num_rows
            return n
        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(prefix="motorcade-load-") as folder:
            for i, batch in enumerate(batches):
                path = os.path.join(folder, f"{i}.parquet")
                pq.write_table(__import__("pyarrow").Table.from_batches([batch]), path)
                # the file name is ours (a temporary folder), never data
                self._execute(f"INSERT INTO {table.name} ({', '.join(table.names)}) SELECT * FROM file('{path}', Parquet)")
                n += batch.num_rows
        return n

    def close(self):
        if self.session is not None:
            self.session.close()
            self.session = None
        if getattr(self, "_tmp", None) is not None:
            self._tmp.cleanup()
            self._tmp = None


ENGINE_SCHEMES = ("duckdb", "chdb", "clickhouse")  # the URL schemes open_engine takes


def open_engine(url: str, *, base_dir: Path | None = None, **options: Any) -> AnalyticsEngine:
    """The analytics engine a setting names (see the module docstring for the forms)."""
    scheme, sep, rest = str(url).partition("://")
    if not sep:
        raise ConfigError(f"analytics {url!r} is not an engine URL",
                          hint='write analytics = "duckdb:///analytics.duckdb" or "chdb:///analytics-ch"')

    def local(path: str) -> str:
        path = path[1:] if path.startswith("/") and not path.startswith("//") else path  # duckdb:///rel, ////abs
        if path in ("", ":memory:"):
            return path
        p = Path(path)
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        return str(p)

    if scheme == "duckdb":
        try:
            import duckdb  # noqa: F401
        except ImportError:
            raise ConfigError("analytics uses DuckDB but the duckdb package is not installed",
                              hint="pip install duckdb") from None
        return DuckDBEngine(local(rest) or ":memory:", **options)
    if scheme == "chdb":
        try:
            import chdb  # noqa: F401
        except ImportError:
            raise ConfigError("analytics uses ClickHouse in-process but the chdb package is not installed",
                              hint="pip install chdb") from None
        return ClickHouseEngine(chdb_path=local(rest) or None, **options)
    if scheme == "clickhouse":
        return ClickHouseEngine(client=_clickhouse_client(url), database=_clickhouse_database(url), **options)
    raise ConfigError(f"analytics {url!r}: no engine for {scheme!r}",
                      hint="duckdb:///file.duckdb, chdb:///folder or clickhouse://host:8123/database")


def _clickhouse_database(url: str) -> str:
    return urllib.parse.urlsplit(url).path.strip("/") or "motorcade"


def _clickhouse_client(url: str):
    """A clickhouse-connect client for ``clickhouse://[user[:password]@]host[:port][/database][?secure=true]``
    (port 8123, or 8443 with ``secure``; user ``default``; the password may also come from the environment
    variable ``CLICKHOUSE_PASSWORD``)."""
    try:
        import clickhouse_connect
    except ImportError:
        raise ConfigError("analytics uses a ClickHouse server but clickhouse-connect is not installed",
                          hint="pip install clickhouse-connect (or the motorcade[clickhouse] extra)") from None
    parts = urllib.parse.urlsplit(url)
    options = dict(urllib.parse.parse_qsl(parts.query))
    unknown = set(options) - {"secure"}
    if unknown or options.get("secure", "false") not in ("true", "false", "1", "0"):
        raise ConfigError(f"analytics {without_password(url)}: unknown option {sorted(unknown or {'secure'})[0]!r}",
                          hint="the one option is ?secure=true (HTTPS)")
    secure = options.get("secure") in ("true", "1")
    try:
        port = parts.port or (8443 if secure else 8123)
    except ValueError:
        raise ConfigError(f"analytics {without_password(url)}: the port is not a number",
                          hint="clickhouse://host:8123/database") from None
    password = urllib.parse.unquote(parts.password) if parts.password is not None \
        else os.environ.get("CLICKHOUSE_PASSWORD", "")
    try:
        return clickhouse_connect.get_client(host=parts.hostname or "localhost", port=port, secure=secure,
                                             username=urllib.parse.unquote(parts.username or "default"),
                                             password=password)
    except Exception as error:  # the client's own errors (refused, authentication) name no setting
        raise ConfigError(f"analytics {without_password(url)}: cannot reach ClickHouse: {_first_line(error)}",
                          hint="check [project] analytics (host, port, user, password or CLICKHOUSE_PASSWORD) "
                               "and that the server is up") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]

