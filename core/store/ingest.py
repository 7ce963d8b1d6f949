"""Bulk writes of the ingest stage: events, cars, ownerships and relations with their identity record,
placeholder stores, and source cursors. Callers wrap a batch in :meth:`transaction`."""

from __future__ import annotations

from typing import Iterable

from .codec import iso, utc_now


class IngestMixin:
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

    def ensure_event_indexes(self) -> None:
        """Recreate event indexes a killed bulk load may have left dropped."""
        from .events import EVENT_INDEXES

        for ddl in EVENT_INDEXES.values():
            self.conn.execute(ddl)

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

    def quarantine_row(self, row_id: int):
        row = self.conn.execute(
            "SELECT id, source, position, raw, reason, created_at, retried_at, resolved FROM quarantine WHERE id = ?",
            (row_id,),
        ).fetchone()
        if row is None:
            return None
        from .quarantine import QuarantinedRow

        return QuarantinedRow(*row[:7], bool(row[7]))
