"""The analytical tables: what is mirrored from the operational store into an analytics engine.

The segment compiler reads nine tables. In an analytics engine they keep the operational store's names
and columns, with one difference: a tag value, untyped on SQLite, is three typed columns there
(``value_kind`` ``integer`` / ``real`` / ``text``, ``value_num``, ``value_text``; docs/engines.md).

The rows are read from the operational store through :meth:`Store.query` in batches of ``BATCH`` rows
(plain SELECTs; the tag value's kind with SQLite's ``typeof``, the one SQLite-specific word, which is why
this reader is for the SQLite store) and handed to the engine as Arrow tables: the engine appends them
with its own bulk path, never a row at a time.
"""

from __future__ import annotations

from typing import Iterator

import attrs

BATCH = 200_000


@attrs.frozen
class Column:
    name: str
    kind: str  # int, text, float


@attrs.frozen
class Table:
    name: str
    columns: tuple[Column, ...]
    select: str  # the SQLite query that reads it from the operational store, in column order
    order_by: tuple[str, ...]  # the sort key on engines that have one (ClickHouse MergeTree)
    since_id: bool = False  # rows only ever appended, keyed by an increasing ``id`` (incremental mirror)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _cols(spec: str) -> tuple[Column, ...]:
    out = []
    for part in spec.split(","):
        name, kind = part.split()
        out.append(Column(name, kind))
    return tuple(out)


TABLES: tuple[Table, ...] = (
    Table("people", _cols("id int, attributes text"), "SELECT id, attributes FROM people", ("id",)),
    # Sorted by name and time: the compiler's drivers read one name's window, its checks one person's events.
    Table("events", _cols("id int, person_id int, name text, ts int, properties text"),
          "SELECT id, person_id, name, ts, properties FROM events", ("name", "ts"), since_id=True),
    Table("tag_values", _cols("tag text, person_id int, value_kind text, value_num float, value_text text"),
          "SELECT tag, person_id, CASE typeof(value) WHEN 'null' THEN NULL ELSE typeof(value) END, "
          "CASE WHEN typeof(value) IN ('integer', 'real') THEN value END, "
          "CASE WHEN typeof(value) = 'text' THEN value END FROM tag_values", ("tag", "person_id")),
    # A per-store tag's value at each store (what a store's rule reads), typed as tag_values.
    Table("store_tag_values", _cols("tag text, store_id text, person_id int, value_kind text, value_num float, "
                                    "value_text text"),
          "SELECT tag, store_id, person_id, CASE typeof(value) WHEN 'null' THEN NULL ELSE typeof(value) END, "
          "CASE WHEN typeof(value) IN ('integer', 'real') THEN value END, "
          "CASE WHEN typeof(value) = 'text' THEN value END FROM store_tag_values", ("tag", "store_id", "person_id")),
    Table("cars", _cols("vin text, brand text, model text, model_year int, purchase_date text, store_id text"),
          "SELECT vin, brand, model, model_year, purchase_date, store_id FROM cars", ("vin",)),
    Table("ownerships", _cols("id int, person_id int, vin text, valid_from text, valid_to text"),
          "SELECT id, person_id, vin, valid_from, valid_to FROM ownerships", ("person_id",)),
    Table("person_relations", _cols("person_id int, kind text, target_id text"),
          "SELECT person_id, kind, target_id FROM person_relations", ("person_id",)),
    # A store scope (``scope store "X"``) reaches a person through an advisor's store too.
    Table("advisors", _cols("id text, store_id text"), "SELECT id, store_id FROM advisors", ("id",)),
    Table("consents", _cols("person_id int, channel text, granted int"),
          "SELECT person_id, channel, granted FROM consents", ("person_id", "channel")),
)
TABLE_NAMES = tuple(t.name for t in TABLES)

# What an incremental mirror must not miss: a merge or split since the last one (settle_identity then
# rewrites the person ids of existing events) or one still waiting to be settled.
IDENTITY_FINGERPRINT = ("SELECT (SELECT count(*) FROM person_merges) || '/' || coalesce((SELECT max(merged_at) "
                        "FROM person_merges), '') || '/' || (SELECT count(*) FROM identity_splits) || '/' || "
                        "(SELECT count(undone_at) FROM identity_splits) || '/' || (SELECT count(*) FROM identity_dirty)")


def events_state(store) -> tuple[int, int, str, bool]:
    """``(max event id, event count, identity fingerprint, settled)`` of the operational store."""
    max_id, count = store.query("SELECT coalesce(max(id), 0), count(*) FROM events")[0]
    fingerprint = store.query(IDENTITY_FINGERPRINT)[0][0]
    return int(max_id), int(count), str(fingerprint), fingerprint.endswith("/0")


def events_up_to(store, max_id: int) -> int:
    return int(store.query("SELECT count(*) FROM events WHERE id <= ?", (max_id,))[0][0])


def arrow_schema(table: Table):
    import pyarrow as pa

    types = {"int": pa.int64(), "text": pa.string(), "float": pa.float64()}
    return pa.schema([pa.field(c.name, types[c.kind]) for c in table.columns])


def _batch(table: Table, rows):
    import pyarrow as pa

    schema = arrow_schema(table)
    columns = list(zip(*rows)) if rows else [() for _ in table.columns]
    return pa.RecordBatch.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(columns, schema)],
                                      schema=schema)


# Tables read through ADBC's SQLite driver when it is installed (Arrow built in C, in a child process:
# :mod:`motorcade.analytics.sqlite_arrow`): those whose every column has one SQLite type in every row,
# which the driver needs (it infers a column's type from the first rows).
ADBC_TABLES = frozenset({"events"})


def _adbc_batches(store, table: Table, sql: str, params: tuple) -> Iterator | None:
    """Arrow batches of ``sql`` read by ADBC's SQLite driver in a child process, or None when the
    driver is not installed or the store is not a SQLite file."""
    from . import sqlite_arrow

    path = getattr(store, "path", None)
    if table.name not in ADBC_TABLES or getattr(store, "dialect", "") != "sqlite" or path is None \
            or str(path) == ":memory:" or not sqlite_arrow.available():
        return None
    return sqlite_arrow.batches(str(path), sql, params, [(c.name, c.kind) for c in table.columns])


def read_batches(store, table: Table, after_id: int | None = None, up_to: int | None = None, *,
                 separate_reader: bool = False) -> Iterator:
    """The rows of ``table`` in the operational store as Arrow record batches of up to BATCH rows
    (``after_id``: only rows with a larger ``id``, for tables that are only appended; ``up_to``: none
    beyond this ``id``).

    Read with a plain cursor of the store's connection (tuples, not ``sqlite3.Row``: a quarter of the
    time), in one read transaction so the batches are one snapshot. ``separate_reader`` (the caller
    has no uncommitted writes, and bounds append-only tables by ``up_to``, its snapshot's last id):
    :data:`ADBC_TABLES` may be read by ADBC's SQLite driver on a connection of its own instead."""
    conn = store.conn
    sql, params = table.select, ()
    where = []
    if after_id is not None and table.since_id:
        where.append(("id > ?", after_id))
    if up_to is not None and table.since_id:
        where.append(("id <= ?", up_to))
    if where:
        sql, params = f"{sql} WHERE {' AND '.join(w for w, _ in where)}", tuple(v for _, v in where)
    if separate_reader and (up_to is not None or not table.since_id):
        fast = _adbc_batches(store, table, sql, params)
        if fast is not None:
            yield from fast
            return
    with store.read_snapshot():
        cursor = conn.cursor()
        cursor.row_factory = None
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(BATCH)
            if not rows:
                return
            yield _batch(table, rows)
