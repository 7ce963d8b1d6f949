"""Journeys: per-person journey state, the path each person took, and the journey versions people entered.

Every SQL statement on the journey tables lives here; :mod:`motorcade.journeys` talks to these functions only.
Times are epoch seconds (as ``events.ts``). A state row is ``(journey, person_id, entry)``: ``entry`` counts
a person's entries into the journey (1, 2, ...), so a re-entry never overwrites the path of an earlier one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from .codec import dumps, epoch, iso, loads

STATE_COLUMNS = ("journey", "person_id", "entry", "version", "arm", "step", "status", "entered_at", "due_at",
                 "waiting_since", "updated_at")
# How many ids one IN (...) list may hold (SQLite's default limit on variables is 32766).
_CHUNK = 900


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class JourneysMixin:
    # -- versions -----------------------------------------------------------------------------------

    def record_journey_version(self, journey: str, version: str, text: str, *, at: dt.datetime) -> None:
        """Keep the text of a journey version (the first text recorded for a version stays)."""
        self.conn.execute("INSERT OR IGNORE INTO journey_versions (journey, version, text, created_at) "
                          "VALUES (?, ?, ?, ?)", (journey, version, text, iso(at)))

    def journey_version_text(self, journey: str, version: str) -> str | None:
        """The rule text of ``journey`` at ``version`` (people in flight finish on the version they entered), or None."""
        row = self.conn.execute("SELECT text FROM journey_versions WHERE journey = ? AND version = ?",
                                (journey, version)).fetchone()
        return None if row is None else row[0]

    # -- entering -----------------------------------------------------------------------------------

    def journey_entry_history(self, journey: str, person_ids: Iterable[int]) -> dict[int, tuple[int, int, bool]]:
        """``person -> (last entry number, when it was entered, whether the person is still in the journey)``
        for the people given who entered ``journey`` before."""
        out: dict[int, tuple[int, int, bool]] = {}
        ids = sorted(set(person_ids))
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for pid, entry, entered_at, status in self.conn.execute(
                    f"SELECT person_id, entry, entered_at, status FROM journey_states WHERE journey = ? "
                    f"AND person_id IN ({marks}) ORDER BY person_id, entry", [journey, *chunk]):
                out[pid] = (entry, entered_at, status == "active")
        return out

    def add_journey_states(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert new entries (a row whose key exists is left as it is). Returns how many were inserted."""
        before = self.conn.total_changes
        self.conn.executemany(
            f"INSERT OR IGNORE INTO journey_states ({', '.join(STATE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(STATE_COLUMNS))})",
            [tuple(row[c] for c in STATE_COLUMNS) for row in rows])
        return self.conn.total_changes - before

    # -- advancing ----------------------------------------------------------------------------------

    def due_journey_states(self, journey: str, now: dt.datetime, *, limit: int,
                           after: tuple[int, int] = (0, 0)) -> list[dict[str, Any]]:
        """Active states whose step is due at ``now``, in (person, entry) order after ``after``."""
        rows = self.conn.execute(
            f"SELECT {', '.join(STATE_COLUMNS)} FROM journey_states WHERE journey = ? AND status = 'active' "
            "AND due_at <= ? AND (person_id, entry) > (?, ?) ORDER BY person_id, entry LIMIT ?",
            (journey, epoch(now), after[0], after[1], limit)).fetchall()
        return [dict(zip(STATE_COLUMNS, row)) for row in rows]

    def journey_waits_with_event(self, journey: str, step: str, event: str, now: dt.datetime) -> list[dict[str, Any]]:
        """Active states waiting at ``step`` (a ``wait for``) whose person has had ``event`` since the wait
        began, up to ``now``; not yet due (those come with :meth:`due_journey_states`)."""
        rows = self.conn.execute(
            f"SELECT {', '.join('s.' + c for c in STATE_COLUMNS)} FROM journey_states s WHERE s.journey = ? "
            "AND s.status = 'active' AND s.step = ? AND s.due_at > ? AND EXISTS (SELECT 1 FROM events e "
            "WHERE e.person_id = s.person_id AND e.name = ? AND e.ts > s.waiting_since AND e.ts <= ?)",
            (journey, step, epoch(now), event, epoch(now))).fetchall()
        return [dict(zip(STATE_COLUMNS, row)) for row in rows]

    def journey_events(self, person_ids: Iterable[int], names: Iterable[str], *, since: int, until: int
                       ) -> dict[int, list[tuple[int, str, int, dict]]]:
        """``person -> [(event id, name, ts, properties)]`` of the named events in ``[since, until]``, by time."""
        out: dict[int, list[tuple[int, str, int, dict]]] = {}
        ids, names = sorted(set(person_ids)), sorted(set(names))
        if not names:
            return out
        name_marks = ",".join("?" * len(names))
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for event_id, pid, name, ts, properties in self.conn.execute(
                    f"SELECT id, person_id, name, ts, properties FROM events WHERE person_id IN ({marks}) "
                    f"AND name IN ({name_marks}) AND ts >= ? AND ts <= ? ORDER BY ts, id",
                    [*chunk, *names, since, until]):
                out.setdefault(pid, []).append((event_id, name, ts, loads(properties)))
        return out

    def update_journey_states(self, rows: Iterable[dict[str, Any]]) -> None:
        """Write each row's step, status, due_at, waiting_since and updated_at onto its (journey, person_id, entry); joins the caller's transaction (the engine writes a batch's states, path and sends in one)."""
        self.conn.executemany(
            "UPDATE journey_states SET step = ?, status = ?, due_at = ?, waiting_since = ?, updated_at = ? "
            "WHERE journey = ? AND person_id = ? AND entry = ?",
            [(r["step"], r["status"], r["due_at"], r["waiting_since"], r["updated_at"], r["journey"], r["person_id"],
              r["entry"]) for r in rows])

    def add_journey_path(self, rows: Iterable[dict[str, Any]]) -> None:
        """Record steps taken: ``(journey, person_id, entry, step, outcome, next_step, at, detail)``."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO journey_path (journey, person_id, entry, step, outcome, next_step, at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r["journey"], r["person_id"], r["entry"], r["step"], r["outcome"], r["next_step"], r["at"],
              dumps(r["detail"]) if r.get("detail") else "{}") for r in rows])

    # -- observing ----------------------------------------------------------------------------------

    def journey_state_counts(self, journey: str) -> list[tuple[str, str, str, int]]:
        """``(status, arm, step, people)`` for every combination present, over the caller's people only."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT status, arm, step, count(*) FROM journey_states WHERE journey = ? AND "
            f"{self.person_scope_filter('person_id')} GROUP BY status, arm, step ORDER BY status, arm, step",
            (journey,))]

    def journey_edge_counts(self, journey: str) -> list[tuple[str, str, str | None, int]]:
        """``(step, outcome, next step, people)``: how many took each edge (every entry counts), over the
        caller's people only."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT step, outcome, next_step, count(*) FROM journey_path WHERE journey = ? AND "
            f"{self.person_scope_filter('person_id')} GROUP BY step, outcome, next_step ORDER BY step, outcome",
            (journey,))]

    def journey_states_of(self, journey: str, person_id: int) -> list[dict[str, Any]]:
        """Every entry of the person into ``journey`` (its state row), by entry."""
        rows = self.conn.execute(f"SELECT {', '.join(STATE_COLUMNS)} FROM journey_states WHERE journey = ? "
                                 "AND person_id = ? ORDER BY entry", (journey, person_id)).fetchall()
        return [dict(zip(STATE_COLUMNS, row)) for row in rows]

    def journey_path_of(self, journey: str, person_id: int) -> list[dict[str, Any]]:
        """The steps the person took in ``journey`` (entry, step, outcome, next_step, at, detail with the values seen), by entry then in the order taken."""
        keys = ("entry", "step", "outcome", "next_step", "at", "detail")
        return [{**dict(zip(keys, row)), "detail": loads(row[5])} for row in self.conn.execute(
            "SELECT entry, step, outcome, next_step, at, detail FROM journey_path WHERE journey = ? AND person_id = ? "
            "ORDER BY entry, id", (journey, person_id))]

    def journey_entries(self, journey: str) -> list[tuple[int, int, str, int]]:
        """``(person, entry, arm, entered_at)`` of every entry of the caller's people."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT person_id, entry, arm, entered_at FROM journey_states WHERE journey = ? AND "
            f"{self.person_scope_filter('person_id')} ORDER BY person_id, entry", (journey,))]

    def journey_active_versions(self, journey: str, *, besides: str) -> list[str]:
        """The versions of ``journey`` other than ``besides`` that people are still active on, by version."""
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT version FROM journey_states WHERE journey = ? AND status = 'active' AND version != ? "
            "ORDER BY version", (journey, besides))]

    def journey_names_with_state(self) -> list[str]:
        """The journeys anyone has entered, by name."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT journey FROM journey_states ORDER BY journey")]
