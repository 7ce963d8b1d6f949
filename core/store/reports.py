"""Read functions for the feedback reports (funnels, uplift, retention, churn).

Everything here is a read; the report modules in :mod:`motorcade.feedback` turn the rows into
numbers. Two conventions hold for every function:

- **Event order**: a funnel step must be strictly later than the previous one (as ``then`` in the rule
  language: two events in the same second are not "then"). A return event in a cohort must come after
  the cohort event in ``(ts, id)`` order (the first purchase itself is not a return).
- **A person's store** ("home store") is their first relation among ``home_store``,
  ``service_store``, ``selling_store``, ``lead_store`` (the smallest store id when a kind has several),
  the order activation uses for a message's store. ``store=S`` restricts a
  report to the people whose home store is S; without it the whole group is counted. Home stores
  partition the people, so the store views add up to the group view (plus people with no store).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..localtime import local_date_sql

_FAR = 2**62  # beyond any time stamp: "no limit"
FIXED_UNIT_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400}


def window_limit_sql(within: tuple[int, str] | None, zone: str = "UTC") -> tuple[str, list]:
    """SQL for the end of a conversion window from column ``t1`` (epoch), and its parameters.

    Minutes to weeks are fixed lengths (a day is 86 400 s). Months and years move the local wall-clock
    time in the zone by calendar months, the day clamped to the month's last day (31 January + 1 month =
    28 February), at the offset in force at the end (daylight saving), as the rule language defines
    ``within`` (motorcade.dsl.evaluate.shift). ``zone`` is the project's time zone (:mod:`motorcade.localtime`).
    """
    if within is None:
        return "NULL", []
    amount, unit = int(within[0]), within[1]
    if unit in FIXED_UNIT_SECONDS:
        return "t1 + ?", [amount * FIXED_UNIT_SECONDS[unit]]
    if unit not in ("months", "years"):
        raise ValueError(f"unknown time unit {unit!r}; use minutes, hours, days, weeks, months or years")
    return "motorcade_add_months(t1, ?, ?)", [amount * (12 if unit == "years" else 1), zone]


# A person's store, most specific first: a preferred store (CRM), where the car is serviced, where it was
# sold, where the lead came in. The same order activation uses for a message's store.
HOME_STORE_KINDS = ("home_store", "service_store", "selling_store", "lead_store")


def home_store_expr(person_column: str) -> str:
    """SQL for the home store of the person in ``person_column`` (see the module docstring)."""
    parts = ", ".join(
        f"(SELECT min(hs.target_id) FROM person_relations hs WHERE hs.person_id = {person_column} "
        f"AND hs.kind = '{kind}')" for kind in HOME_STORE_KINDS
    )
    return f"COALESCE({parts})"


def store_filter(person_column: str, store: str | None) -> tuple[str, list]:
    """``AND person IN (people of store)`` for a store view; nothing for the group view."""
    if store is None:
        return "", []
    kinds = ", ".join(f"'{kind}'" for kind in HOME_STORE_KINDS)
    sql = (
        f" AND {person_column} IN (SELECT sr.person_id FROM person_relations sr "
        f"WHERE sr.kind IN ({kinds}) AND sr.target_id = ? "
        f"AND {home_store_expr('sr.person_id')} = ?)"
    )
    return sql, [store, store]


class ReportsMixin:
    def report_population(self, person_column: str, store: str | None) -> tuple[str, list]:
        """The people a report counts: ``store``'s (its home-store view) or everyone's, always narrowed to
        the caller's scope; a store outside it is refused."""
        if store is not None and self.access is not None:
            self.access.require_stores([store])
        sql, params = store_filter(person_column, store)
        mine = self.person_scope_filter(person_column)
        return (sql if mine == "1" else f"{sql} AND {mine}"), params

    # -- stores -----------------------------------------------------------------------------------

    def store_names(self) -> dict[str, str]:
        """``{store id: display name}`` of every store."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT id, name FROM stores ORDER BY id")}

    def home_stores(self, person_ids: Iterable[int]) -> dict[int, str | None]:
        """The home store of each person (None when they have no store relation)."""
        ids = sorted(set(person_ids))
        out: dict[int, str | None] = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT p.id, {home_store_expr('p.id')} FROM people p WHERE p.id IN ({marks})"
            out.update({r[0]: r[1] for r in self.conn.execute(sql, part)})
        return out

    def segment_memberships(self, person_ids: Iterable[int]) -> dict[int, list[str]]:
        """The segments each person is currently a member of (sorted)."""
        ids = sorted(set(person_ids))
        out: dict[int, list[str]] = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            marks = ",".join("?" * len(part))
            for person_id, segment in self.conn.execute(
                f"SELECT person_id, segment FROM segment_members WHERE person_id IN ({marks}) "
                "ORDER BY person_id, segment", part):
                out.setdefault(person_id, []).append(segment)
        return out

    # -- funnels ----------------------------------------------------------------------------------

    def funnel_paths(self, steps: Sequence[str], *, within: tuple[int, str] | None = None,
                     zone: str = "UTC", since: int | None = None, until: int | None = None,
                     campaign: str | None = None, store: str | None = None, by: str | None = None) -> list[tuple]:
        """Each person's best pass through the funnel: ``(person_id, key, t1, t2, ..., tk)``.

        A pass starts at an event of the first step (``since <= ts < until``, of ``campaign`` when
        given; later steps then skip events of other campaigns and triggers) and takes, for every next step, the first event of that step strictly later than the
        previous step's event, no later than the start plus ``within`` (``(amount, unit)``, inclusive;
        calendar units on the wall clock of time zone ``zone``; no limit when None) — the
        meaning of ``did A then B within N unit`` in the rule language. A person's best pass is the
        one that gets furthest, the earliest start on a tie (so step k is reached exactly when
        ``did s1 then ... then sk within N`` holds for a start in the period). ``t_i`` is None for steps
        not reached. ``key`` is the breakdown value ``by`` read from the first step's event properties
        (``store`` falls back to the person's home store); None without ``by``.
        """
        if len(steps) < 1:
            raise ValueError("a funnel needs at least one step")
        if by == "store":
            key = ("COALESCE(json_extract(e.properties, '$.store_id'), json_extract(e.properties, '$.store'), "
                   f"{home_store_expr('e.person_id')})")
            key_params: list = []
        elif by:
            key, key_params = "json_extract(e.properties, ?)", [f'$."{by}"']
        else:
            key, key_params = "NULL", []
        where = ["e.name = ?", "e.person_id IS NOT NULL"]
        params: list = [*key_params, steps[0]]
        if since is not None:
            where.append("e.ts >= ?")
            params.append(since)
        if until is not None:
            where.append("e.ts < ?")
            params.append(until)
        if campaign is not None:
            where.append("json_extract(e.properties, '$.campaign') = ?")
            params.append(campaign)
        pop_sql, pop_params = self.report_population("e.person_id", store)
        params.extend(pop_params)
        limit_sql, limit_params = window_limit_sql(within, zone)
        params.extend(limit_params)
        ctes = [
            f"starts AS (SELECT e.person_id, {key} AS key, e.id AS id1, e.ts AS t1 "
            f"FROM events e WHERE {' AND '.join(where)}{pop_sql})",
            f"s1 AS (SELECT person_id, key, id1, t1, {limit_sql} AS lim FROM starts)",
        ]
        # With a campaign, a later step's event that names a campaign or trigger (feedback events carry
        # `origin`, and `campaign` for campaign sends) must name this campaign: another message's click
        # is not this campaign's click. Events that name none (service_visit, lead_submit) all count.
        own = (" AND (json_extract(y.properties, '$.campaign') = ? OR (json_extract(y.properties, '$.campaign') "
               "IS NULL AND json_extract(y.properties, '$.origin') IS NULL))") if campaign is not None else ""
        for i, step in enumerate(steps[1:], start=2):
            bound = " AND y.ts <= s.lim" if within else ""
            ctes.append(
                f"s{i} AS (SELECT s.*, x.ts AS t{i} FROM s{i - 1} s LEFT JOIN events x ON x.id = "
                f"(SELECT y.id FROM events y WHERE y.person_id = s.person_id AND y.name = ? "
                f"AND y.ts > s.t{i - 1}{bound}{own} ORDER BY y.ts, y.id LIMIT 1))"
            )
            params.append(step)
            if campaign is not None:
                params.append(campaign)
        k = len(steps)
        depth = " + ".join(f"(t{i} IS NOT NULL)" for i in range(1, k + 1))
        times = ", ".join(f"t{i}" for i in range(1, k + 1))
        ctes.append(
            f"ranked AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY {depth} DESC, t1, id1) "
            f"AS rn FROM s{k})"
        )
        sql = f"WITH {', '.join(ctes)} SELECT person_id, key, {times} FROM ranked WHERE rn = 1 ORDER BY person_id"
        return [tuple(r) for r in self.conn.execute(sql, params)]

    # -- campaign uplift ----------------------------------------------------------------------------

    def campaign_runs(self, campaign: str, *, until: int | None = None) -> list[tuple]:
        """``(run id, started_at, status, audience_size)`` of a campaign's runs (started at or before ``until``,
        epoch seconds), oldest first."""
        mine = self.person_scope_filter("s.person_id")
        size = "audience_size" if mine == "1" else (  # a scoped caller counts their own people only
            f"(SELECT count(*) FROM audience_snapshots s WHERE s.run_id = activation_runs.id AND {mine})")
        return [tuple(r) for r in self.conn.execute(
            f"SELECT id, started_at, status, {size} FROM activation_runs "
            "WHERE origin_kind = 'campaign' AND origin = ? AND CAST(strftime('%s', started_at) AS INTEGER) <= ? "
            "ORDER BY started_at, id", (campaign, _FAR if until is None else until))]

    def campaign_outcomes(self, campaign: str, *, event: str, window_seconds: int, service_event: str,
                          run_id: str | None = None, store: str | None = None, until: int | None = None,
                          zone: str = "UTC") -> list[tuple]:
        """One row per person in the campaign's audience snapshots (their first run only):

        ``(person_id, arm, run_id, t0, converted_at, last_service_before, owner_since, home_store)``

        ``t0`` is the run's start (the snapshot instant, the same for both arms: an intention-to-treat
        comparison). ``converted_at`` is the first ``event`` with ``t0 < ts <= t0 + window`` and ``ts <= until``;
        ``last_service_before`` the last ``service_event`` at or before t0; ``owner_since`` the earliest
        start of an ownership still held on t0's date in ``zone`` (the project's time zone: ownership dates
        are local dates; None for people who owned no car then). Runs that start after ``until`` are left out.
        """
        until = _FAR if until is None else int(until)
        run_sql, run_params = ("AND id = ?", [run_id]) if run_id else ("", [])
        pop_sql, pop_params = self.report_population("a.person_id", store)
        day = local_date_sql("f.t0", "?")
        sql = f"""
            WITH runs AS (
                SELECT id, CAST(strftime('%s', started_at) AS INTEGER) AS t0 FROM activation_runs
                WHERE origin_kind = 'campaign' AND origin = ? {run_sql}
                AND CAST(strftime('%s', started_at) AS INTEGER) <= ?),
            snap AS (
                SELECT a.person_id, a.arm, r.id AS run_id, r.t0,
                       ROW_NUMBER() OVER (PARTITION BY a.person_id ORDER BY r.t0, r.id) AS rn
                FROM audience_snapshots a JOIN runs r ON r.id = a.run_id WHERE 1 = 1 {pop_sql})
            SELECT f.person_id, f.arm, f.run_id, f.t0,
                (SELECT min(e.ts) FROM events e WHERE e.person_id = f.person_id AND e.name = ?
                    AND e.ts > f.t0 AND e.ts <= min(f.t0 + ?, ?)),
                (SELECT max(e.ts) FROM events e WHERE e.person_id = f.person_id AND e.name = ? AND e.ts <= f.t0),
                (SELECT min(o.valid_from) FROM ownerships o WHERE o.person_id = f.person_id
                    AND (o.valid_from IS NULL OR o.valid_from <= {day})
                    AND (o.valid_to IS NULL OR o.valid_to > {day})),
                (SELECT count(*) FROM ownerships o WHERE o.person_id = f.person_id
                    AND (o.valid_from IS NULL OR o.valid_from <= {day})
                    AND (o.valid_to IS NULL OR o.valid_to > {day})),
                {home_store_expr('f.person_id')}
            FROM snap f WHERE f.rn = 1 ORDER BY f.person_id"""
        params = [campaign, *run_params, until, *pop_params, event, window_seconds, until, service_event,
                  zone, zone, zone, zone]
        rows = []
        for r in self.conn.execute(sql, params):
            person_id, arm, run, t0, converted, last_service, owner_since, owned, home = r
            # an ownership with no start date still makes an owner: its start shows as ""
            rows.append((person_id, arm, run, t0, converted, last_service,
                         (owner_since or "") if owned else None, home))
        return rows

    def campaign_send_counts(self, campaign: str, *, run_id: str | None = None,
                             store: str | None = None, until: int | None = None) -> dict[str, dict[str, int]]:
        """``{"outbox": {status: n}, "events": {feedback event name: distinct people}}`` for a campaign: the
        outbox rows of its runs started at or before ``until`` and the feedback events up to ``until``."""
        until = _FAR if until is None else int(until)
        run_sql, run_params = ("AND o.run_id = ?", [run_id]) if run_id else ("", [])
        run_sql += (" AND o.run_id IN (SELECT id FROM activation_runs "
                    "WHERE CAST(strftime('%s', started_at) AS INTEGER) <= ?)")
        run_params = [*run_params, until]
        pop_sql, pop_params = self.report_population("o.person_id", store)
        outbox = {r[0]: r[1] for r in self.conn.execute(
            f"SELECT o.status, count(*) FROM outbox o WHERE o.origin_kind = 'campaign' AND o.origin = ? "
            f"{run_sql}{pop_sql} GROUP BY o.status ORDER BY o.status", [campaign, *run_params, *pop_params])}
        ev_run_sql, ev_run_params = ("AND json_extract(e.properties, '$.run_id') = ?", [run_id]) if run_id else ("", [])
        ev_pop_sql, ev_pop_params = self.report_population("e.person_id", store)
        events = {r[0]: r[1] for r in self.conn.execute(
            "SELECT e.name, count(DISTINCT e.person_id) FROM events e WHERE e.source = 'motorcade' "
            f"AND json_extract(e.properties, '$.campaign') = ? AND e.ts <= ? {ev_run_sql}{ev_pop_sql} GROUP BY e.name "
            "ORDER BY e.name", [campaign, until, *ev_run_params, *ev_pop_params])}
        return {"outbox": outbox, "events": events}

    # -- retention ----------------------------------------------------------------------------------

    def _cohort_cte(self, cohort_event: str | None, zone: str, store: str | None,
                    until: int | None) -> tuple[str, list]:
        """``firsts(person_id, t0, id0)``: each person's first cohort event, or first ownership start."""
        if cohort_event is None:
            pop_sql, pop_params = self.report_population("o.person_id", store)
            # a date is its local midnight in the project's time zone: `n` is that wall-clock time read as UTC,
            # less the offset in force then (found from the offset an offset earlier: exact but in a DST gap)
            return (
                "firsts AS (SELECT person_id, n - motorcade_utc_offset(n - motorcade_utc_offset(n, ?), ?) AS t0, "
                "0 AS id0 FROM (SELECT o.person_id, min(CAST(strftime('%s', o.valid_from) AS INTEGER)) AS n "
                f"FROM ownerships o WHERE o.valid_from IS NOT NULL{pop_sql} GROUP BY o.person_id) WHERE t0 <= ?)",
                [zone, zone, *pop_params, until if until is not None else _FAR],
            )
        pop_sql, pop_params = self.report_population("e.person_id", store)
        return (
            "firsts AS (SELECT person_id, t0, id0 FROM (SELECT e.person_id, e.ts AS t0, e.id AS id0, "
            "ROW_NUMBER() OVER (PARTITION BY e.person_id ORDER BY e.ts, e.id) AS rn FROM events e "
            f"WHERE e.name = ? AND e.person_id IS NOT NULL AND e.ts <= ?{pop_sql}) WHERE rn = 1)",
            [cohort_event, until if until is not None else _FAR, *pop_params],
        )

    def cohort_activity(self, *, cohort_event: str | None, return_event: str, zone: str = "UTC",
                        store: str | None = None, until: int | None = None) -> dict[str, list[tuple]]:
        """Monthly cohort counts.

        Cohort = the calendar month (local, in time zone ``zone``, at each instant's own UTC offset) of each
        person's first ``cohort_event`` (or, with ``cohort_event=None``, of their first ownership start). Period N
        of a return event = its local month minus the cohort month. Only return events after the cohort event
        in ``(ts, id)`` order count; nothing after ``until`` counts. Returns ``sizes`` ``(cohort, people)``,
        ``active`` ``(cohort, period, people with a return event in that period)``, ``first_return``
        ``(cohort, period, people whose first return falls in that period)`` and ``data_since``: the local
        month (``"YYYY-MM"``) of the earliest ``return_event`` in the store up to ``until`` (None when there is
        none), before which no period can be observed.
        """
        firsts, params = self._cohort_cte(cohort_event, zone, store, until)

        def local(t: str) -> str:
            return f"({t} + motorcade_utc_offset({t}, ?))"

        def month(t: str) -> str:
            return (f"(CAST(strftime('%Y', {local(t)}, 'unixepoch') AS INTEGER) * 12 + "
                    f"CAST(strftime('%m', {local(t)}, 'unixepoch') AS INTEGER))")

        base = (
            f"WITH {firsts}, cohorts AS (SELECT person_id, t0, id0, strftime('%Y-%m', {local('t0')}, 'unixepoch') "
            f"AS cohort, {month('t0')} AS m0 FROM firsts), "
            "returns AS (SELECT c.cohort, c.person_id, "
            f"{month('e.ts')} - c.m0 AS period FROM cohorts c JOIN events e ON e.person_id = c.person_id "
            "AND e.name = ? AND e.ts <= ? AND (e.ts > c.t0 OR (e.ts = c.t0 AND e.id > c.id0))) "
        )
        until_ts = until if until is not None else _FAR
        base_params = [*params, zone, zone, zone, zone, zone, return_event, until_ts]
        sizes = [tuple(r) for r in self.conn.execute(
            base + "SELECT cohort, count(*) FROM cohorts GROUP BY cohort ORDER BY cohort", base_params)]
        active = [tuple(r) for r in self.conn.execute(
            base + "SELECT cohort, period, count(DISTINCT person_id) FROM returns GROUP BY cohort, period "
            "ORDER BY cohort, period", base_params)]
        first_return = [tuple(r) for r in self.conn.execute(
            base + "SELECT cohort, period, count(*) FROM (SELECT cohort, person_id, min(period) AS period "
            "FROM returns GROUP BY cohort, person_id) GROUP BY cohort, period ORDER BY cohort, period",
            base_params)]
        (earliest,) = self.conn.execute("SELECT min(ts) FROM events WHERE name = ? AND ts <= ?",
                                        [return_event, until_ts]).fetchone()
        data_since = None if earliest is None else self.conn.execute(
            f"SELECT strftime('%Y-%m', {local('?')}, 'unixepoch')", [earliest, earliest, zone]).fetchone()[0]
        return {"sizes": sizes, "active": active, "first_return": first_return, "data_since": data_since}

    # -- churn ------------------------------------------------------------------------------------

    def owner_service_histories(self, *, service_event: str, as_of: int, store: str | None = None,
                                zone: str = "UTC") -> list[tuple[int, str | None, str | None, list[int]]]:
        """Current owners at ``as_of``: ``(person_id, home store, earliest ownership start, visit times)``.

        An owner holds an ownership valid on ``as_of``'s date in ``zone`` (the project's time zone: ownership
        dates are local dates). Visit times are the person's ``service_event`` timestamps up to ``as_of``,
        ascending.
        """
        pop_sql, pop_params = self.report_population("o.person_id", store)
        day = local_date_sql("?", "?")
        owners = self.conn.execute(
            f"SELECT o.person_id, {home_store_expr('o.person_id')}, min(o.valid_from) FROM ownerships o "
            f"WHERE (o.valid_from IS NULL OR o.valid_from <= {day}) AND (o.valid_to IS NULL OR o.valid_to > {day})"
            f"{pop_sql} GROUP BY o.person_id ORDER BY o.person_id",
            [as_of, as_of, zone, as_of, as_of, zone, *pop_params]).fetchall()
        visits: dict[int, list[int]] = {}
        for person_id, ts in self.conn.execute(
            f"SELECT e.person_id, e.ts FROM events e WHERE e.name = ? AND e.ts <= ? AND e.person_id IN "
            f"(SELECT o.person_id FROM ownerships o WHERE (o.valid_from IS NULL OR o.valid_from <= {day}) "
            f"AND (o.valid_to IS NULL OR o.valid_to > {day}){pop_sql}) ORDER BY e.person_id, e.ts, e.id",
            [service_event, as_of, as_of, as_of, zone, as_of, as_of, zone, *pop_params]):
            visits.setdefault(person_id, []).append(ts)
        return [(p, home, since, visits.get(p, [])) for p, home, since in owners]

    def contact_summaries(self, person_ids: Iterable[int]) -> dict[int, dict]:
        """``{person_id: {"name": ..., "phone": ...}}`` (unmasked: the caller masks for display)."""
        ids = sorted(set(person_ids))
        out: dict[int, dict] = {p: {"name": None, "phone": None} for p in ids}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            marks = ",".join("?" * len(part))
            for person_id, name in self.conn.execute(
                f"SELECT id, json_extract(attributes, '$.name') FROM people WHERE id IN ({marks})", part):
                out[person_id]["name"] = name
            for person_id, phone in self.conn.execute(
                f"SELECT person_id, min(value) FROM identifiers WHERE type = 'phone' AND person_id IN ({marks}) "
                "GROUP BY person_id", part):
                out[person_id]["phone"] = phone
        return out
