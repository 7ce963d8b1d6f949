"""Behaviour and feedback events."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from typing import Iterable, Iterator

from ..model import Event
from .codec import dumps, epoch, from_epoch, loads

# The index that makes (source, dedup_key) unique: INSERT OR IGNORE relies on it for idempotency.
DEDUP_INDEX = "events_dedup"
DEDUP_INDEX_DDL = "CREATE UNIQUE INDEX IF NOT EXISTS events_dedup ON events (source, dedup_key)"

# Secondary indexes on events that segment plans seek; dropped during large first loads and rebuilt.
EVENT_INDEXES = {
    "events_name_ts_person": "CREATE INDEX IF NOT EXISTS events_name_ts_person ON events (name, ts, person_id)",
    "events_person_name_ts": "CREATE INDEX IF NOT EXISTS events_person_name_ts ON events (person_id, name, ts)",
}


class BulkEventLoad:
    """What :meth:`EventsMixin.bulk_event_load` did at its end: ``removed`` duplicate rows."""

    removed = 0


def remove_duplicate_events(conn) -> int:
    """Delete events that repeat an earlier row's (source, dedup_key) and close up the ids after them.

    The row kept is the one with the lowest id: the one ``INSERT OR IGNORE`` under the unique index
    would have kept. Ids after a deleted row move down by the number of rows deleted below them, which
    gives every surviving row of the load the id it would have had (rows ignored by ``INSERT OR
    IGNORE`` take no id). Runs in the caller's transaction; returns the number of rows deleted.
    """
    conn.execute("DROP TABLE IF EXISTS temp.events_duplicates")
    conn.execute(
        "CREATE TEMP TABLE events_duplicates AS SELECT id FROM ("
        " SELECT id, row_number() OVER (PARTITION BY source, dedup_key ORDER BY id) AS n FROM events"
        ") WHERE n > 1 ORDER BY id"
    )
    removed, first = conn.execute("SELECT count(*), min(id) FROM temp.events_duplicates").fetchone()
    if removed:
        conn.execute("DELETE FROM events WHERE id IN (SELECT id FROM temp.events_duplicates)")
        # new id = id - (rows deleted below it); moved in two steps so no new id meets an old one
        conn.execute("DROP TABLE IF EXISTS temp.events_renumbered")
        conn.execute(
            "CREATE TEMP TABLE events_renumbered AS SELECT id AS old_id, id - gone AS new_id FROM ("
            " SELECT id, dup, sum(dup) OVER (ORDER BY id ROWS UNBOUNDED PRECEDING) AS gone FROM ("
            "  SELECT id, 0 AS dup FROM events WHERE id > ? UNION ALL SELECT id, 1 FROM temp.events_duplicates"
            " )) WHERE dup = 0",
            (first,),
        )
        conn.execute("UPDATE events SET id = -id WHERE id > ?", (first,))
        conn.execute(
            "UPDATE events SET id = r.new_id FROM temp.events_renumbered r WHERE events.id < 0 AND r.old_id = -events.id"
        )
        conn.execute("DROP TABLE temp.events_renumbered")
    conn.execute("DROP TABLE temp.events_duplicates")
    return removed


def content_dedup_key(event: Event) -> str:
    """A dedup key derived from what the event says, for sources that give events no id of their own."""
    text = dumps([event.name, epoch(event.ts), event.person_id, event.properties])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class EventsMixin:
    def insert_events(self, events: Iterable[Event]) -> int:
        """Insert events, ignoring ones whose (source, dedup_key) is already stored; return the number new.

        Call inside :meth:`transaction` for bulk loads (one executemany per call).
        """
        events = list(events)
        # the person each event names today: a merged-away id follows the merge log, an id that names
        # nobody is stored as nobody's (NULL), so every stored person id names a person
        live = self._live_person_ids({e.person_id for e in events if e.person_id is not None})
        rows = [
            (live.get(e.person_id), e.name, epoch(e.ts), dumps(e.properties), e.source,
             e.dedup_key or content_dedup_key(e))
            for e in events
        ]
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO events (person_id, name, ts, properties, source, dedup_key) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        return self.conn.total_changes - before

    def _live_person_ids(self, person_ids: set[int]) -> dict[int, int | None]:
        """:meth:`live_person_id` of many ids: a few reads for all of them instead of two per id."""
        ids = sorted(person_ids)
        if len(ids) < 4:
            return {pid: self.live_person_id(pid) for pid in ids}
        target = {pid: pid for pid in ids}
        visited = {pid: {pid} for pid in ids}
        moving = ids
        while moving:  # follow the merge log, one hop per round for all ids at once
            hops: dict[int, int] = {}
            wanted = sorted({target[pid] for pid in moving})
            for start in range(0, len(wanted), 900):
                chunk = wanted[start:start + 900]
                hops.update(self.conn.execute(f"SELECT old_id, new_id FROM person_merges WHERE old_id IN "
                                              f"({', '.join('?' * len(chunk))})", chunk).fetchall())
            moving = [pid for pid in moving if target[pid] in hops]
            for pid in moving:
                target[pid] = hops[target[pid]]
                if target[pid] in visited[pid]:
                    raise RuntimeError(f"merge log has a cycle through person {target[pid]}")
                visited[pid].add(target[pid])
        existing: set[int] = set()
        wanted = sorted(set(target.values()))
        for start in range(0, len(wanted), 900):
            chunk = wanted[start:start + 900]
            existing.update(r[0] for r in self.conn.execute(
                f"SELECT id FROM people WHERE id IN ({', '.join('?' * len(chunk))})", chunk))
        return {pid: target[pid] if target[pid] in existing else None for pid in ids}

    @contextlib.contextmanager
    def bulk_event_load(self, *, defer_dedup: bool = False) -> Iterator["BulkEventLoad"]:
        """Drop the events' secondary indexes for a large first load and rebuild them afterwards.

        ``defer_dedup=False``: the dedup index stays, so ``INSERT OR IGNORE`` keeps idempotency during the
        load. ``defer_dedup=True`` drops it too (inserting into a table without any index is about twice
        as fast) and restores it at the end: duplicates of (source, dedup_key) are deleted keeping the
        first (the lowest id, the row ``INSERT OR IGNORE`` would have kept) and the ids after them closed
        up, so the table is exactly what loading with the index would have left
        (:func:`remove_duplicate_events`). The yielded :class:`BulkEventLoad` says how many rows went.

        Each batch of the load still commits on its own. A run killed before the end leaves the
        indexes dropped (and perhaps duplicates): :meth:`ensure_event_indexes`, which every ingest
        run calls first, repairs that the same way. While such a load runs, other readers may see
        the duplicates it has not removed yet; the load is meant for large first loads.

        The load commits without syncs (:meth:`unsynced_writes`, which says why a killed process loses
        nothing) and ends with a synced checkpoint.
        """
        conn = self.conn
        load = BulkEventLoad()
        for name in EVENT_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        if defer_dedup:
            conn.execute(f"DROP INDEX IF EXISTS {DEDUP_INDEX}")
        with self.unsynced_writes():
            try:
                yield load
            finally:
                load.removed = self.ensure_event_indexes()

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
