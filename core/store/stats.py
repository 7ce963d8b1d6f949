"""Planner statistics: how many rows an index range holds, without reading the range.

A segment plan drives from the candidate condition with the smallest index range
(:mod:`motorcade.segments.plan`). Counting each range costs milliseconds per candidate; these small
tables answer the same question at once:

- ``event_day_counts(name, day, n)``: events per name and UTC day (``ts / 86400``), kept up to the events'
  id mark ``plan_stats['events_id']``; :meth:`refresh_plan_stats` adds the events written since.
- ``tag_value_counts(tag, value, n)``: rows per value of a tag, recounted whenever the tag's values are
  written; a tag with more than :data:`TAG_VALUES_COUNTED` distinct values (a score) is not counted
  (``plan_stats['tag:NAME'] = -1``) and its ranges are probed instead.

They steer plan choice only: a plan's answer never depends on them. Rows deleted later (a bulk load's
duplicates, moved tag values) may leave a count a little high.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

DAY = 86400
TAG_VALUES_COUNTED = 1000
# Events written since the last refresh are counted on the fly (a scan of the newest rows) up to this many;
# beyond it the plan probes the index instead.
EVENT_DELTA_LIMIT = 50_000


class StatsMixin:
    def status_counts(self) -> dict[str, int]:
        """Headline counts for `motorcade status` (portable SQL: every store runs it as it is).

        A scoped caller counts only their own people's rows."""
        one = lambda sql: self.conn.execute(sql).fetchone()[0]  # noqa: E731
        mine = self.person_scope_filter  # a scoped caller counts only their own people's rows
        counts = {
            "people": one(f"SELECT count(*) FROM people WHERE {mine('id')}"),
            "identifiers": one(f"SELECT count(*) FROM identifiers WHERE {mine('person_id')}"),
            "cars": one(f"SELECT count(DISTINCT vin) FROM ownerships WHERE {mine('person_id')}")
            if mine("person_id") != "1" else one("SELECT count(*) FROM cars"),
            "events": one(f"SELECT count(*) FROM events WHERE {mine('person_id')}"),
            "quarantined": one("SELECT count(*) FROM quarantine WHERE resolved = 0"),
            "tag_values": one(f"SELECT count(*) FROM tag_values WHERE {mine('person_id')}"),
            "tags": one("SELECT count(DISTINCT tag) FROM tag_values"),
            "segments": one("SELECT count(DISTINCT segment) FROM segment_runs"),
            "segment_members": one(f"SELECT count(*) FROM segment_members WHERE {mine('person_id')}"),
            "sends": one(f"SELECT count(*) FROM outbox WHERE {mine('person_id')}"),
        }
        if mine("person_id") != "1":
            del counts["quarantined"]  # rows no store can be told from: the group's operators see them
        return counts

    def refresh_plan_stats(self) -> int:
        """Add the events written since the last refresh to ``event_day_counts`` and count the defined tags
        never counted yet (call inside a write transaction, e.g. before computing segments). Returns the
        events added."""
        conn = self.conn
        # the tags present, one index seek each (a loose index scan), that were never counted
        uncounted = [r[0] for r in conn.execute(
            "WITH RECURSIVE t(tag) AS (SELECT min(tag) FROM tag_values UNION ALL "
            "SELECT (SELECT min(tag) FROM tag_values WHERE tag > t.tag) FROM t WHERE t.tag IS NOT NULL) "
            "SELECT tag FROM t WHERE tag IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM plan_stats WHERE key = 'tag:' || tag)")]
        if uncounted:
            self.recount_tag_values(uncounted)
        known = self._stat("events_id")
        mark = known or 0
        top = self.max_event_id()
        if top <= mark:
            if top < mark:  # events were rebuilt from scratch: count them again
                conn.execute("DELETE FROM event_day_counts")
                mark = 0
            else:
                if known is None:
                    self._set_stat("events_id", top)  # up to date (with no events at all)
                return 0
        if mark == 0:  # everything: walk the covering events(name, ts, ...) index, already in group order
            conn.execute("DELETE FROM event_day_counts")
            conn.execute(
                "INSERT INTO event_day_counts (name, day, n) SELECT name, ts / ?, count(*) FROM events "
                "WHERE id <= ? GROUP BY 1, 2", (DAY, top))
        else:  # the newest rows only: a range of the table's ids
            conn.execute(
                "INSERT INTO event_day_counts (name, day, n) SELECT name, ts / ?, count(*) FROM events "
                "WHERE id > ? AND id <= ? GROUP BY 1, 2 "
                "ON CONFLICT(name, day) DO UPDATE SET n = event_day_counts.n + excluded.n",
                (DAY, mark, top),
            )
        self._set_stat("events_id", top)
        return top - mark

    def plan_stats_behind(self) -> int:
        """How many events :meth:`refresh_plan_stats` has still to count (by id)."""
        top = self.max_event_id()
        return max(top - (self._stat("events_id") or 0), 0)

    def event_range_estimate(self, names: Sequence[str], low: int | None, high: int) -> int | None:
        """About how many events named ``names`` have ``low <= ts <= high`` (epoch seconds; ``low`` None =
        no lower bound). None when the statistics are missing or too far behind (probe instead)."""
        conn = self.conn
        mark = self._stat("events_id")
        if mark is None:
            return None
        top = self.max_event_id()
        if top - mark > EVENT_DELTA_LIMIT:
            return None
        names = list(dict.fromkeys(names))
        marks = ", ".join("?" * len(names))
        lo_day = None if low is None else _day(low)
        hi_day = _day(high)
        sql = f"SELECT day, sum(n) FROM event_day_counts WHERE name IN ({marks}) AND day <= ?"
        params: list = [*names, hi_day]
        if lo_day is not None:
            sql += " AND day >= ?"
            params.append(lo_day)
        per_day: dict[int, float] = {d: n for d, n in conn.execute(sql + " GROUP BY day", params)}
        if top > mark:  # the newest events, not yet in the table
            delta_sql = f"SELECT ts / ?, count(*) FROM events WHERE id > ? AND name IN ({marks}) AND ts <= ?"
            delta_params: list = [DAY, mark, *names, high]
            if low is not None:
                delta_sql += " AND ts >= ?"
                delta_params.append(low)
            for d, n in conn.execute(delta_sql + " GROUP BY 1", delta_params):
                per_day[d] = per_day.get(d, 0) + n
        total = 0.0
        for d, n in per_day.items():
            # a day the range cuts counts by the share of it inside (events spread evenly over the day)
            start, end = d * DAY, d * DAY + DAY - 1
            inside_lo = start if low is None else max(start, low)
            inside_hi = min(end, high)
            if inside_hi >= inside_lo:
                total += n * (inside_hi - inside_lo + 1) / DAY
        return math.ceil(total)

    def recount_tag_values(self, tags: Iterable[str]) -> None:
        """Rewrite ``tag_value_counts`` for ``tags`` (inside the transaction that wrote their values)."""
        conn = self.conn
        for tag in set(tags):
            conn.execute("DELETE FROM tag_value_counts WHERE tag = ?", (tag,))
            rows = conn.execute(
                "SELECT value, count(*) FROM tag_values WHERE tag = ? AND value IS NOT NULL GROUP BY value LIMIT ?",
                (tag, TAG_VALUES_COUNTED + 1)).fetchall()
            if len(rows) > TAG_VALUES_COUNTED:
                self._set_stat(f"tag:{tag}", -1)
                continue
            conn.executemany("INSERT INTO tag_value_counts (tag, value, n) VALUES (?, ?, ?)",
                             [(tag, v, n) for v, n in rows])
            self._set_stat(f"tag:{tag}", len(rows))

    def tag_range_estimate(self, tag: str, values: Sequence) -> int | None:
        """How many people have tag ``tag`` equal to one of ``values``; None when the tag is not counted."""
        counted = self._stat(f"tag:{tag}")
        if counted is None or counted < 0 or not values:
            return None if counted is None or counted < 0 else 0
        marks = ", ".join("?" * len(values))
        row = self.conn.execute(f"SELECT sum(n) FROM tag_value_counts WHERE tag = ? AND value IN ({marks})",
                                (tag, *values)).fetchone()
        return row[0] or 0

    def ownership_rows(self) -> int:
        """An upper bound of the ownership rows (ownerships are never deleted: the largest id)."""
        return self.conn.execute("SELECT max(id) FROM ownerships").fetchone()[0] or 0

    # -- the marks --------------------------------------------------------------------------------

    def _stat(self, key: str) -> int | None:
        row = self.conn.execute("SELECT value FROM plan_stats WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_stat(self, key: str, value: int) -> None:
        self.conn.execute("INSERT INTO plan_stats (key, value) VALUES (?, ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))


def _day(ts: int) -> int:
    """The ``ts / 86400`` SQLite computes (integer division truncates toward zero)."""
    return ts // DAY if ts >= 0 else -((-ts) // DAY)
