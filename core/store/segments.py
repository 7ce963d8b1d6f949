"""Segment runs, memberships and their enter/leave history, and the rule text behind each revision."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, Iterable, Iterator, Sequence

from .codec import dumps, iso, loads

try:
    from orjson import loads as _json_loads
except ImportError:  # optional: the standard library parses the same array, slower
    from json import loads as _json_loads


class SegmentsMixin:
    # -- reading for a plan -----------------------------------------------------------------------

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[Any]:
        """Statements inside see one snapshot of the file (a deferred read transaction), so a plan's
        probes, its checks of the store's state and its query agree. Inside a transaction: that one."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def query_person_ids(self, sql: str, params: dict | tuple = ()) -> list[int]:
        """The ``person_id`` column of a read query (a compiled segment), ascending.

        The ids leave SQLite as one JSON array: materialising a Python row per member costs more than
        the query itself for large segments (400,000 owners: 0.30 s as rows, 0.09 s as one array).
        """
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            raise ValueError("person_ids takes a SELECT")
        row = self.conn.execute(f"SELECT json_group_array(person_id) FROM ({sql})", params).fetchone()
        ids = _json_loads(row[0])
        ids.sort()  # json_group_array keeps no promised order (already ascending in practice: timsort is linear then)
        return ids

    def explain_query(self, sql: str, params: dict | tuple = ()) -> list[str]:
        """SQLite's ``EXPLAIN QUERY PLAN`` of a read query: one line per step, indented two spaces per level."""
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            raise ValueError("explain_query takes a SELECT")
        lines: list[str] = []
        depth: dict[int, int] = {0: -1}
        for node_id, parent, _unused, detail in self.conn.execute("EXPLAIN QUERY PLAN " + sql, params):
            depth[node_id] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node_id] + detail)
        return lines

    def person_rule_rows(self, person_ids: Sequence[int]) -> dict[str, list[tuple]]:
        """The stored rows of these people that rules read, for the reference evaluator (ids not stored are left
        out): ``people`` ``(id, attributes dict)``; ``tags`` ``(person_id, tag, value as stored)``; ``store_tags`` ``(person_id, store_id, tag, value)``; ``cars``
        ``(person_id, vin, brand, model, model_year, purchase_date, store_id, valid_from, valid_to)`` of their
        ownerships in ownership order; ``relations`` ``(person_id, kind, target_id)``; ``consents``
        ``(person_id, channel, granted bool)``; ``events`` ``(id, person_id, name, ts epoch, properties dict)``,
        each person's in ``(ts, id)`` order; ``scope_stores`` ``(person_id, store_id)`` of the stores each person
        belongs to for access control. Dates stay ISO text."""
        from motorcade.access.scope import person_stores_sql

        out: dict[str, list[tuple]] = {k: [] for k in ("people", "tags", "store_tags", "cars", "relations",
                                                       "scope_stores", "consents", "events")}
        pairs, pair_params = person_stores_sql()
        ids = list(person_ids)
        conn = self.conn
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out["people"] += [(pid, loads(attributes)) for pid, attributes in conn.execute(
                f"SELECT id, attributes FROM people WHERE id IN ({marks})", chunk)]
            out["tags"] += [tuple(r) for r in conn.execute(
                f"SELECT person_id, tag, value FROM tag_values WHERE person_id IN ({marks})", chunk)]
            out["store_tags"] += [tuple(r) for r in conn.execute(
                f"SELECT person_id, store_id, tag, value FROM store_tag_values WHERE person_id IN ({marks})", chunk)]
            out["cars"] += [tuple(r) for r in conn.execute(
                "SELECT o.person_id, c.vin, c.brand, c.model, c.model_year, c.purchase_date, c.store_id, "
                f"o.valid_from, o.valid_to FROM ownerships o JOIN cars c ON c.vin = o.vin "
                f"WHERE o.person_id IN ({marks}) ORDER BY o.id", chunk)]
            out["relations"] += [tuple(r) for r in conn.execute(
                f"SELECT person_id, kind, target_id FROM person_relations WHERE person_id IN ({marks})", chunk)]
            out["scope_stores"] += [tuple(r) for r in conn.execute(
                f"SELECT person_id, store_id FROM ({pairs}) WHERE person_id IN ({marks})", (*pair_params, *chunk))]
            out["consents"] += [(pid, channel, bool(granted)) for pid, channel, granted in conn.execute(
                f"SELECT person_id, channel, granted FROM consents WHERE person_id IN ({marks})", chunk)]
            out["events"] += [(eid, pid, name, ts, loads(properties)) for eid, pid, name, ts, properties in conn.execute(
                f"SELECT id, person_id, name, ts, properties FROM events WHERE person_id IN ({marks}) "
                "ORDER BY ts, id", chunk)]
        return out

    def identity_settled(self) -> bool:
        """True when no merge or split waits for :meth:`settle_identity`: then every person id in events,
        ownerships, relations, consents and tag values names a row of ``people``.

        That holds because every writer keeps it: the identity stage writes ids it has just resolved;
        ``insert_events``, ``set_consent``, ``set_relation`` and ``add_ownership`` follow the merge log
        (``live_person_id``; an event naming nobody is stored as nobody's); ``write_tag_values`` drops
        values of people that no longer exist; ``settle_identity`` moves what merges and splits left
        behind; migration 6 repaired stores written before."""
        return self.conn.execute("SELECT NOT EXISTS (SELECT 1 FROM identity_dirty)").fetchone()[0] == 1

    # -- rule revisions ---------------------------------------------------------------------------

    def record_rule_revision(self, revision: str, files: dict[str, str], *, at: dt.datetime) -> None:
        """Keep the rule text (path -> content) a revision hash stands for (first write wins)."""
        self.conn.execute("INSERT OR IGNORE INTO rule_revisions (revision, created_at, files) VALUES (?, ?, ?)",
                          (revision, iso(at), dumps(files)))

    def rule_revision_files(self, revision: str) -> dict[str, str] | None:
        row = self.conn.execute("SELECT files FROM rule_revisions WHERE revision = ?", (revision,)).fetchone()
        return None if row is None else loads(row[0])

    # -- runs and memberships ---------------------------------------------------------------------

    def record_segment_run(self, segment: str, member_ids: Iterable[int], *, revision: str, as_of: dt.datetime,
                           computed_at: dt.datetime, duration_ms: float, plan: str | None) -> dict[str, Any]:
        """Replace the segment's members with ``member_ids`` in one transaction and log the run.

        People already in keep their ``entered_at``; new members get ``computed_at``; leavers are deleted.
        Every enter and leave is appended to ``segment_changes`` (what `send to new members only` and
        enter/leave triggers read). Returns ``{"run_id", "size", "entered", "left"}``.
        """
        new = set(member_ids)
        at = iso(computed_at)
        conn = self.conn
        with self.transaction():
            old = {r[0] for r in conn.execute("SELECT person_id FROM segment_members WHERE segment = ?",
                                              (segment,))}
            entered = sorted(new - old)
            left = sorted(old - new)
            cur = conn.execute(
                "INSERT INTO segment_runs (segment, revision, as_of, computed_at, size, entered, left_count, "
                "duration_ms, plan) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (segment, revision, iso(as_of), at, len(new), len(entered), len(left), duration_ms, plan))
            run_id = cur.lastrowid
            conn.executemany("DELETE FROM segment_members WHERE segment = ? AND person_id = ?",
                             ((segment, pid) for pid in left))
            conn.execute("UPDATE segment_members SET computed_at = ?, revision = ? WHERE segment = ?",
                         (at, revision, segment))
            conn.executemany(
                "INSERT INTO segment_members (segment, person_id, entered_at, computed_at, revision) "
                "VALUES (?, ?, ?, ?, ?)", ((segment, pid, at, at, revision) for pid in entered))
            conn.executemany(
                "INSERT INTO segment_changes (run_id, segment, person_id, change, at) VALUES (?, ?, ?, ?, ?)",
                [(run_id, segment, pid, "enter", at) for pid in entered]
                + [(run_id, segment, pid, "leave", at) for pid in left])
        return {"run_id": run_id, "size": len(new), "entered": len(entered), "left": len(left)}

    def segment_member_ids(self, segment: str) -> list[int]:
        """The members stored by the segment's last computation, by id."""
        return [r[0] for r in self.conn.execute(
            "SELECT person_id FROM segment_members WHERE segment = ? ORDER BY person_id", (segment,))]

    def segment_member_rows(self, segment: str, *, limit: int | None = None) -> list[tuple[int, str]]:
        """``(person_id, entered_at)`` of the members stored by the last computation, by id."""
        return [(r[0], r[1]) for r in self.conn.execute(
            f"SELECT person_id, entered_at FROM segment_members WHERE segment = ? AND "
            f"{self.person_scope_filter('person_id')} ORDER BY person_id LIMIT ?",
            (segment, -1 if limit is None else limit))]

    def segment_membership(self, segment: str, person_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT entered_at, computed_at, revision FROM segment_members WHERE segment = ? AND person_id = ?",
            (segment, person_id)).fetchone()
        return None if row is None else {"entered_at": row[0], "computed_at": row[1], "revision": row[2]}

    def segment_changes_since(self, segment: str, after_id: int = 0) -> list[tuple[int, int, str, str]]:
        """``(change_id, person_id, "enter" | "leave", at)`` of the segment after change ``after_id``, in order."""
        return [tuple(r) for r in self.conn.execute(
            "SELECT id, person_id, change, at FROM segment_changes WHERE segment = ? AND id > ? ORDER BY id",
            (segment, after_id))]

    def last_segment_change_id(self, segment: str) -> int:
        """The id of the segment's latest change (0 when it has none): a cursor for segment_changes_since."""
        row = self.conn.execute("SELECT max(id) FROM segment_changes WHERE segment = ?", (segment,)).fetchone()
        return row[0] or 0

    def last_segment_run(self, segment: str) -> dict[str, Any] | None:
        runs = self.segment_runs(segment, limit=1)
        return runs[0] if runs else None

    def segment_runs(self, segment: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The segment's most recent runs, newest first."""
        keys = ("id", "segment", "revision", "as_of", "computed_at", "size", "entered", "left", "duration_ms", "plan")
        runs = [dict(zip(keys, r)) for r in self.conn.execute(
            "SELECT id, segment, revision, as_of, computed_at, size, entered, left_count, duration_ms, plan "
            "FROM segment_runs WHERE segment = ? ORDER BY id DESC LIMIT ?", (segment, limit))]
        mine = self.person_scope_filter("person_id")
        if mine != "1":  # a scoped caller learns the sizes of their own people only: the latest run's, counted
            for index, run in enumerate(runs):
                run.update(entered=None, left=None, size=None if index else self.conn.execute(
                    f"SELECT count(*) FROM segment_members WHERE segment = ? AND {mine}", (segment,)).fetchone()[0])
        return runs

    def computed_segments(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT segment FROM segment_runs ORDER BY segment")]
