"""Behaviour and feedback events."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from typing import Iterable, Iterator

from ..model import Event
from .codec import dumps, epoch, from_epoch, loads

# Secondary indexes on events that segment plans seek; dropped during large first loads and rebuilt.
EVENT_INDEXES = {
    "events_name_ts_person": "CREATE INDEX IF NOT EXISTS events_name_ts_person ON events (name, ts, person_id)",
    "events_person_name_ts": "CREATE INDEX IF NOT EXISTS events_person_name_ts ON events (person_id, name, ts)",
}


def content_dedup_key(event: Event) -> str:
    """A dedup key derived from what the event says, for sources that give events no id of their own."""
    text = dumps([event.name, epoch(event.ts), event.person_id, event.properties])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class EventsMixin:
    def insert_events(self, events: Iterable[Event]) -> int:
        """Insert events, ignoring ones whose (source, dedup_key) is already stored; return the number new.

        Call inside :meth:`transaction` for bulk loads (one executemany per call).
        """
        rows = [
            (e.person_id, e.name, epoch(e.ts), dumps(e.properties), e.source, e.dedup_key or content_dedup_key(e))
            for e in events
        ]
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO events (person_id, name, ts, properties, source, dedup_key) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        return self.conn.total_changes - before

    @contextlib.contextmanager
    def bulk_event_load(self) -> Iterator[None]:
        """Drop the events' secondary indexes for a large first load and rebuild them afterwards.

        The dedup index stays: idempotency must hold during the load too.
        """
        for name in EVENT_INDEXES:
            self.conn.execute(f"DROP INDEX IF EXISTS {name}")
        try:
            yield
        finally:
            for ddl in EVENT_INDEXES.values():
                self.conn.execute(ddl)

    def events_of(self, person_id: int, *, name: str | None = None) -> list[Event]:
        """The person's events in time order (optionally one event name)."""
        sql = "SELECT id, person_id, name, ts, properties, source, dedup_key FROM events WHERE person_id = ?"
        params: list = [person_id]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        sql += " ORDER BY ts, id"
        return [
            Event(id=r[0], person_id=r[1], name=r[2], ts=from_epoch(r[3]), properties=loads(r[4]), source=r[5],
                  dedup_key=r[6])
            for r in self.conn.execute(sql, params)
        ]

    def event_names(self) -> list[str]:
        """Distinct event names present (for the DSL catalogue)."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT name FROM events ORDER BY name")]
