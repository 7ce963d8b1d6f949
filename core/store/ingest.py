"""Bulk writes of the ingest stage: events, cars, ownerships and relations with their identity record,
placeholder stores, and source cursors. Callers wrap a batch in :meth:`transaction`."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import TYPE_CHECKING, Iterable, Iterator

from .codec import iso, utc_now

if TYPE_CHECKING:
    from .quarantine import QuarantinedRow


def pack_staged_events(rows: list[tuple]) -> bytes:
    """The staging database :meth:`IngestMixin.load_stage` takes, holding ``(name, ts, idset, properties JSON,
    dedup key)`` event rows in the source's order: a serialized SQLite database with tables ``events`` and
    (empty) ``people``. Parse workers build it without a store (they run in other processes)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute("CREATE TABLE events (name, ts, idset, properties, dedup_key)")
        conn.execute("CREATE TABLE people (idset INTEGER PRIMARY KEY, person_id, record_id)")
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        return conn.serialize()
    finally:
        conn.close()


class IngestMixin:
    @contextlib.contextmanager
    def unsynced_writes(self) -> Iterator[None]:
        """Commits without a sync to disk for a large load, and one synced checkpoint at its end.

        In WAL mode a killed process loses nothing the operating system was handed, so the kill/re-run
        guarantee holds; only a power cut or kernel crash during the load could damage the file, and
        such a load is repeated from its source anyway. Commits per batch cost half as much.
        """
        conn = self.conn
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        conn.execute("PRAGMA synchronous=OFF")
        try:
            yield
        finally:
            conn.execute(f"PRAGMA synchronous={int(synchronous)}")
            if not conn.in_transaction:  # write the load through to the database file, synced
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def insert_event_rows(self, rows: list[tuple]) -> int:
        """``(person_id, name, ts epoch, properties JSON, source, dedup_key, record_id)``; returns rows new.

        An event whose (source, dedup_key) is stored already is ignored: re-ingesting is a no-op.
        """
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO events (person_id, name, ts, properties, source, dedup_key, record_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return self.conn.total_changes - before

    def events_deduplicated(self) -> bool:
        """False while a first bulk load that defers deduplication runs (or after one was killed, until the
        next ingest repairs it): its duplicates are still stored and event ids may still move down.
        Readers that keep event ids or count events (event triggers, tag and segment runs) wait meanwhile."""
        from .events import DEDUP_INDEX

        return DEDUP_INDEX in self._event_index_names()

    def _event_index_names(self) -> set[str]:
        return {r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")}

    def require_events_deduplicated(self) -> None:
        if not self.events_deduplicated():
            from ..errors import MotorcadeError

            raise MotorcadeError("a large first event load is still running (or was killed before its end): its "
                                 "duplicate events are not removed yet",
                                 hint="wait for `motorcade ingest` to finish, or run it again to complete a killed load")

    def ensure_event_indexes(self) -> int:
        """Recreate event indexes a bulk load dropped (at its end, or after a killed one); returns the
        duplicate events removed first (see :func:`motorcade.store.events.remove_duplicate_events`)."""
        from .events import DEDUP_INDEX, DEDUP_INDEX_DDL, EVENT_INDEXES, remove_duplicate_events

        conn = self.conn
        present = self._event_index_names()
        missing = [name for name in (DEDUP_INDEX, *EVENT_INDEXES) if name not in present]
        if not missing:
            return 0
        removed = 0
        # The sorts may use a helper thread per spare core; a sorter only hands work to them when its
        # memory fills, so the cache is kept small meanwhile (measured: ~20 % faster on 2 cores).
        threads = conn.execute("PRAGMA threads").fetchone()[0]
        cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
        conn.execute(f"PRAGMA threads={min(os.cpu_count() or 1, 4) - 1}")
        if (os.cpu_count() or 1) > 1:
            conn.execute("PRAGMA cache_size=-8192")
        try:
            with self.transaction():
                if DEDUP_INDEX in missing:
                    try:
                        conn.execute(DEDUP_INDEX_DDL)
                    except sqlite3.IntegrityError:  # a bulk load's duplicates (the common case has none)
                        removed = remove_duplicate_events(conn)
                        conn.execute(DEDUP_INDEX_DDL)
                for name, ddl in EVENT_INDEXES.items():
                    if name in missing:
                        conn.execute(ddl)
        finally:
            conn.execute(f"PRAGMA threads={int(threads)}")
            conn.execute(f"PRAGMA cache_size={int(cache_size)}")
        return removed

    def attach_stage(self, schema: str) -> None:
        """Attach an empty in-memory database as ``schema`` for :meth:`load_stage` (outside a transaction)."""
        self.conn.execute("ATTACH DATABASE ':memory:' AS " + _identifier(schema))

    def load_stage(self, schema: str, data: bytes) -> None:
        """Replace the attached ``schema`` by the serialized database ``data`` (between transactions)."""
        self.conn.deserialize(data, name=schema)

    def detach_stage(self, schema: str) -> None:
        if self.conn.in_transaction:  # after a failure: the rollback has not happened yet
            return
        try:
            self.conn.execute("DETACH DATABASE " + _identifier(schema))
        except sqlite3.OperationalError:  # not attached (attaching failed)
            pass

    def insert_staged_events(self, schema: str, source: str, people: list[tuple[int, int, int]]) -> int:
        """Insert the events of a staging database attached as ``schema`` (see
        :class:`motorcade.sources.batch.StagedEvents`); returns rows inserted.

        ``people``: ``(identifier set number, person_id, record_id)`` of the sets the rows name; rows of
        a set not listed are left out. One ``INSERT ... SELECT`` in staging order (the source's order):
        no row crosses into Python. Duplicates are ignored only while the dedup index exists.
        """
        conn = self.conn
        conn.execute(f"DELETE FROM {schema}.people")
        conn.executemany(f"INSERT INTO {schema}.people (idset, person_id, record_id) VALUES (?, ?, ?)", people)
        before = conn.total_changes
        # CROSS JOIN: staged rows are the outer loop, read in rowid order (no sort)
        conn.execute(
            "INSERT OR IGNORE INTO events (person_id, name, ts, properties, source, dedup_key, record_id) "
            f"SELECT p.person_id, s.name, s.ts, s.properties, ?, s.dedup_key, p.record_id FROM {schema}.events s "
            f"CROSS JOIN {schema}.people p ON p.idset = s.idset ORDER BY s.rowid",
            (source,),
        )
        return conn.total_changes - before

    def source_has_events(self, source: str) -> bool:
        """Whether any event of ``source`` is stored (a first load of a source has none)."""
        return self.conn.execute("SELECT 1 FROM events WHERE source = ? LIMIT 1", (source,)).fetchone() is not None

    def event_count(self) -> int:
        row = self.conn.execute("SELECT max(id) FROM events").fetchone()
        return row[0] or 0

    def ensure_stores(self, store_ids: Iterable[str]) -> None:
        """Placeholder rows for store codes named before the stores file is loaded (name = code)."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO stores (id, name, group_name) VALUES (?, ?, '')",
            [(s, s) for s in set(store_ids) if s],
        )

    def upsert_ownership_rows(self, rows: list[tuple]) -> None:
        """``(person_id, vin, valid_from, valid_to, source, record_id)``; a later owner closes the earlier one."""
        dated = [r for r in rows if r[2] is not None]
        undated = [r for r in rows if r[2] is None]
        self.conn.executemany(
            "INSERT INTO ownerships (person_id, vin, valid_from, valid_to, source, record_id) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(vin, valid_from) DO UPDATE SET person_id = excluded.person_id, "
            "valid_to = coalesce(excluded.valid_to, ownerships.valid_to), source = excluded.source, "
            "record_id = excluded.record_id",
            dated,
        )
        # NULL never conflicts in a UNIQUE index: undated ownerships are matched on (vin, record)
        self.conn.executemany(
            "INSERT INTO ownerships (person_id, vin, valid_from, valid_to, source, record_id) "
            "SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM ownerships WHERE vin = ?2 "
            "AND valid_from IS NULL AND record_id = ?6)",
            undated,
        )
        self.conn.executemany(
            "UPDATE ownerships SET valid_to = ?1 WHERE vin = ?2 AND valid_to IS NULL AND valid_from IS NOT NULL "
            "AND valid_from < ?1 AND EXISTS (SELECT 1 FROM ownerships o WHERE o.vin = ?2 AND o.valid_from = ?1)",
            sorted({(r[2], r[1]) for r in dated}),
        )

    def transfer_ownerships(self, sales: list[tuple], *, today: str) -> None:
        """``(vin, seller person, buyer person, date or None, source, buyer's record id)``: each sale
        closes the seller's open ownership of the car (on its date; undated: ``today``) and opens the
        buyer's (from its date; undated: from an unknown date). Reading a sale again changes nothing."""
        conn = self.conn
        for vin, seller, buyer, date, source, record_id in sales:
            # the seller's ownership may still name a person merged away in this run: match by record too
            conn.execute(
                "UPDATE ownerships SET valid_to = ?1 WHERE vin = ?2 AND valid_to IS NULL "
                "AND (valid_from IS NULL OR valid_from < ?1) AND (person_id = ?3 OR record_id IN "
                "(SELECT id FROM identity_records WHERE person_id = ?3))",
                (date or today, vin, seller),
            )
        self.upsert_ownership_rows([(buyer, vin, date, None, source, record_id)
                                    for vin, _seller, buyer, date, source, record_id in sales])

    def add_record_relations(self, rows: list[tuple]) -> None:
        """``(record_id, person_id, kind, target_id, source, since)``: stored per record, shown per person."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO record_relations (record_id, kind, target_id, source, since) VALUES (?, ?, ?, ?, ?)",
            [(r[0], r[2], r[3], r[4], r[5]) for r in rows],
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO person_relations (person_id, kind, target_id, source, since) VALUES (?, ?, ?, ?, ?)",
            [r[1:] for r in rows],
        )

    # -- cursors ----------------------------------------------------------------------------------

    def get_source_cursor(self, source: str) -> str | None:
        row = self.conn.execute("SELECT cursor FROM source_cursors WHERE source = ?", (source,)).fetchone()
        return None if row is None else row[0]

    def set_source_cursor(self, source: str, cursor: str | None) -> None:
        self.conn.execute(
            "INSERT INTO source_cursors (source, cursor, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(source) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at "
            "WHERE source_cursors.cursor IS NOT excluded.cursor",
            (source, cursor, iso(utc_now())),
        )

    def quarantine_row(self, row_id: int) -> QuarantinedRow | None:
        row = self.conn.execute(
            "SELECT id, source, position, raw, reason, created_at, retried_at, resolved FROM quarantine WHERE id = ?",
            (row_id,),
        ).fetchone()
        if row is None:
            return None
        from .quarantine import QuarantinedRow

        return QuarantinedRow(*row[:7], bool(row[7]))


def _identifier(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"not a schema name: {name!r}")
    return name
