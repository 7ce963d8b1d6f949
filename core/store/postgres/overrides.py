"""The named functions whose SQLite statements mean something PostgreSQL spells differently (JSON arrays as
bulk parameters, JSON paths, typed tag values) or that PostgreSQL does better (the outbox claim).

Each keeps the contract stated on the mixin function it overrides; only the SQL differs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, Iterable, Iterator, Sequence

from ..codec import epoch, iso, loads
from ..events import BulkEventLoad
from ..outbox import CLAIMABLE_STATES, OUTBOX_COLUMNS, _send_row
from .connection import _refuse_nul, percent_escaped


def _jsonb(value: Any):
    """A tag value as jsonb: booleans as 0 / 1 (as SQLite keeps them), other values as the codec writes."""
    from psycopg.types.json import Jsonb

    from ..codec import dumps

    if value is None:
        return None
    return Jsonb(int(value) if isinstance(value, bool) else value, dumps=dumps)


class PostgresOverrides:
    # -- tracking: PostgreSQL has no rowid; links are only ever inserted, so their physical order (ctid) is
    # the order they were made in --------------------------------------------------------------------

    def links_of_send(self, idempotency_key: str) -> list[dict[str, Any]]:
        """The tracked links written for one send (see ``link``), by step then in the order they were made."""
        rows = self.conn.execute("SELECT code FROM links WHERE idempotency_key = ? ORDER BY step, ctid",
                                 (idempotency_key,)).fetchall()
        return [self.link(code) for (code,) in rows]

    # -- identity: a batch's keys travel as one array parameter (unnest) ---------------------------

    def find_records(self, source: str, keys: Sequence[str]) -> dict[str, tuple[int, int, str]]:
        rows = self.conn.execute_native(
            "SELECT r.source_key, r.id, r.person_id, r.attributes FROM identity_records r "
            "WHERE r.source = %s AND r.source_key = ANY(%s::text[])", (source, list(keys))) if keys else []
        return {key: (rid, pid, attributes) for key, rid, pid, attributes in rows}

    def record_link_ids(self, record_ids: Sequence[int]) -> dict[int, set[int]]:
        links: dict[int, set[int]] = {}
        if record_ids:
            for rid, iid in self.conn.execute_native(
                    "SELECT record_id, identifier_id FROM identity_links WHERE record_id = ANY(%s::bigint[])",
                    (list(record_ids),)):
                links.setdefault(rid, set()).add(iid)
        return links

    def find_identifiers(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str],
                         tuple[int, int | None, str | None]]:
        found = {}
        by_type: dict[str, list[str]] = {}
        for type_, value in pairs:
            by_type.setdefault(type_, []).append(value)
        for type_, values in by_type.items():
            for value, iid, pid, flagged, reason in self.conn.execute_native(
                    "SELECT value, id, person_id, flagged, flag_reason FROM identifiers "
                    "WHERE type = %s AND value = ANY(%s::text[])", (type_, values)):
                found[(type_, value)] = (iid, pid, (reason or "flagged") if flagged else None)
        return found

    def identifier_link_counts(self, source: str, identifier_ids: Sequence[int]) -> dict[int, int]:
        if not identifier_ids:
            return {}
        return dict(self.conn.execute_native(
            "SELECT identifier_id, count(*) FROM identity_links WHERE identifier_id = ANY(%s::bigint[]) "
            "AND source = %s AND removed_at IS NULL GROUP BY identifier_id", (list(identifier_ids), source)))

    def identifier_top_sources(self, identifier_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
        top: dict[int, tuple[str, int]] = {}
        if identifier_ids:
            for iid, source, n in self.conn.execute_native(
                    "SELECT identifier_id, source, count(*) AS n FROM identity_links "
                    "WHERE identifier_id = ANY(%s::bigint[]) AND removed_at IS NULL GROUP BY identifier_id, source "
                    "ORDER BY identifier_id, n DESC, source COLLATE \"C\"", (list(identifier_ids),)):
                top.setdefault(iid, (source, n))
        return top

    def identity_rows_of_people(self, person_ids: Iterable[int]) -> tuple[list[tuple[str, str, int]],
                                list[tuple[str, str, int]]]:
        ids = sorted(set(person_ids))
        records = self.conn.execute_native(
            "SELECT source, source_key, person_id FROM identity_records WHERE person_id = ANY(%s::bigint[])",
            (ids,)).fetchall()
        identifiers = self.conn.execute_native(
            "SELECT type, value, person_id FROM identifiers WHERE person_id = ANY(%s::bigint[])", (ids,)).fetchall()
        return records, identifiers

    # One set-based INSERT per call (arrays unnested in order) instead of executemany, which sends every row
    # as its own statement: One-ID's writes of a batch are a few statements, not one per row.

    def _insert_set(self, sql: str, params: tuple) -> None:
        conn = self.conn
        try:
            conn.execute_native(sql, params)
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is the NUL case
            _refuse_nul(exc, sql)
            raise
        conn._follow_ids(sql)  # explicit ids: the table's sequence moves past them

    def insert_new_people(self, first_id: int, attributes: Sequence[str], at: str) -> None:
        if attributes:
            self._insert_set(
                "INSERT INTO people (id, attributes, created_at, updated_at) SELECT %s + u.n - 1, u.a::jsonb, %s, %s "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS u(a, n)", (first_id, at, at, list(attributes)))

    def insert_new_identity_records(self, first_id: int, source: str,
                                    rows: Sequence[tuple[str, int, int | None, str]], at: str) -> None:
        if not rows:
            return
        self._identity_changed()
        keys, people, origins, attributes = (list(column) for column in zip(*rows))
        self._insert_set(
            "INSERT INTO identity_records (id, source, source_key, person_id, origin_person_id, attributes, "
            "first_seen, last_seen) SELECT %s + u.n - 1, %s, u.k, u.p, u.o, u.a, %s, %s "
            "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[]) WITH ORDINALITY AS u(k, p, o, a, n)",
            (first_id, source, at, at, keys, people, origins, attributes))

    def insert_new_identifiers(self, first_id: int, rows: Sequence[tuple[str, str, int | None, str | None]]) -> None:
        if not rows:
            return
        self._identity_changed()
        types, values, people, reasons = (list(column) for column in zip(*rows))
        self._insert_set(
            "INSERT INTO identifiers (id, type, value, person_id, flagged, flag_reason) "
            "SELECT %s + u.n - 1, u.t, u.v, u.p, (u.r IS NOT NULL)::int, u.r "
            "FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[]) WITH ORDINALITY AS u(t, v, p, r, n)",
            (first_id, types, values, people, reasons))

    def insert_new_identity_links(self, source: str, rule: str, at: str, codes: Sequence[int], mult: int) -> None:
        if not codes:
            return
        if max(codes) >= 1 << 63:  # beyond bigint: row by row
            self.insert_identity_links((*divmod(code, mult), source, rule, at, None, None) for code in codes)
            return
        self._identity_changed()
        # in the given order (the links' ids follow it, as on SQLite); a link that exists is left as it is
        self._insert_set(
            "INSERT INTO identity_links (record_id, identifier_id, source, rule, created_at) "
            "SELECT u.c / %s, u.c %% %s, %s, %s, %s FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(c, n) "
            "ORDER BY u.n ON CONFLICT (record_id, identifier_id) DO NOTHING",
            (mult, mult, source, rule, at, list(codes)))

    def list_identity_splits(self, person_id: int | None = None, *,
                             split_id: int | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT s.id, s.person_id, s.identifier_id, s.link_id, s.reason, s.people, s.split_at, s.undone_at, "
               "s.undo_reason, i.type, i.value FROM identity_splits s LEFT JOIN identifiers i ON i.id = "
               "coalesce(s.identifier_id, (SELECT identifier_id FROM identity_links WHERE id = s.link_id))")
        params: tuple = ()
        if split_id is not None:
            sql += " WHERE s.id = %s"
            params = (split_id,)
        elif person_id is not None:
            sql += " WHERE s.person_id = %s OR s.people::jsonb @> to_jsonb(ARRAY[%s::bigint])"
            params = (person_id, person_id)
        return [
            {"id": r[0], "person_id": r[1], "identifier_id": r[2], "link_id": r[3], "reason": r[4],
             "people": loads(r[5]), "split_at": r[6], "undone_at": r[7], "undo_reason": r[8], "type": r[9],
             "value": r[10]}
            for r in self.conn.execute_native(sql + " ORDER BY s.id", params)
        ]

    def _golden_record_rows(self, person_ids: Sequence[int]) -> tuple[list[tuple], dict[int, list[str]]]:
        records = self.conn.execute_native(
            "SELECT person_id, id, source, source_key, attributes FROM identity_records "
            "WHERE person_id = ANY(%s::bigint[])", (list(person_ids),)).fetchall()
        types: dict[int, list[str]] = {}
        for rid, type_ in self.conn.execute_native(
                "SELECT l.record_id, i.type FROM identity_links l JOIN identifiers i ON i.id = l.identifier_id "
                "WHERE l.record_id = ANY(%s::bigint[]) AND l.removed_at IS NULL AND i.flagged = 0",
                ([r[1] for r in records],)):
            types.setdefault(rid, []).append(type_)
        return records, types

    # -- ingest: no staging database to attach; events go in by rows ------------------------------

    supports_staged_ingest = False

    def _event_index_names(self) -> set[str]:
        return {r[0] for r in self.conn.execute_native(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'events' AND schemaname = current_schema()")}

    @contextlib.contextmanager
    def unsynced_writes(self) -> Iterator[None]:
        """Nothing to relax: the throughput knob on PostgreSQL is the server's (synchronous_commit)."""
        yield

    @contextlib.contextmanager
    def bulk_event_load(self, *, defer_dedup: bool = False) -> Iterator[BulkEventLoad]:
        """A large load keeps the events' indexes here: PostgreSQL's unique index is what keeps a re-read
        idempotent, and rows go in by batch (no staging database)."""
        yield BulkEventLoad()

    def ensure_event_indexes(self) -> int:
        from ..events import DEDUP_INDEX_DDL, EVENT_INDEXES

        with self.transaction():
            self.conn.execute_native(DEDUP_INDEX_DDL)
            for ddl in EVENT_INDEXES.values():
                self.conn.execute_native(ddl)
        return 0

    # -- tags: values are jsonb (a number, text or boolean) ----------------------------------------

    # Set-based like _insert_set: the values travel as arrays (jsonb as the codec's text) and one INSERT ...
    # SELECT joined to people replaces them, instead of one statement per value. A (tag, person) given twice
    # keeps the later value, as the row-by-row upsert did (DISTINCT ON, latest ordinal first); the count is of
    # the values of existing people, duplicates included, as before.
    _WRITE_TAGS = (
        "WITH given AS (SELECT u.* FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[]) WITH ORDINALITY "
        "AS u(tag, store_id, person_id, value, n) WHERE EXISTS (SELECT 1 FROM people WHERE id = u.person_id)), "
        "written AS (INSERT INTO {table} (tag, {store}person_id, value, computed_at, calculator, calculator_version) "
        "SELECT DISTINCT ON (g.tag, {given_store}g.person_id) g.tag, {given_store}g.person_id, g.value::jsonb, %s, "
        "%s, %s FROM given g ORDER BY g.tag, {given_store}g.person_id, g.n DESC "
        "ON CONFLICT ({conflict}) DO UPDATE SET value = excluded.value, computed_at = excluded.computed_at, "
        "calculator = excluded.calculator, calculator_version = excluded.calculator_version) "
        "SELECT count(*) FROM given")

    def _write_tag_rows(self, table: str, rows: list[tuple], at: str, calculator: str, calculator_version: str) -> int:
        """``(tag, store_id or None, person_id, value)`` rows into ``table`` (tag_values or store_tag_values)."""
        if not rows:
            return 0
        per_store = table == "store_tag_values"
        from ..codec import dumps

        tags, stores, people, values = (list(column) for column in zip(*rows))
        values = [None if v is None else dumps(int(v) if isinstance(v, bool) else v) for v in values]
        sql = self._WRITE_TAGS.format(table=table, store="store_id, " if per_store else "",
                                      given_store="g.store_id, " if per_store else "",
                                      conflict="tag, store_id, person_id" if per_store else "tag, person_id")
        try:
            count = self.conn.execute_native(sql, (tags, stores, people, values, at, calculator,
                                                   calculator_version)).fetchone()[0]
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is the NUL case
            _refuse_nul(exc, sql)
            raise
        self.conn.total_changes += count
        return count

    def write_tag_values(self, values: Iterable[tuple[int, str, Any]], *, tags: Iterable[str], calculator: str,
                         calculator_version: str, computed_at: dt.datetime,
                         person_ids: Iterable[int] | None = None) -> int:
        tags = list(tags)
        at = iso(computed_at)
        conn = self.conn
        with self.transaction():
            if person_ids is None:
                conn.execute_native("DELETE FROM tag_values WHERE tag = ANY(%s::text[])", (tags,))
            else:
                conn.execute_native("DELETE FROM tag_values WHERE tag = ANY(%s::text[]) AND person_id = ANY(%s::bigint[])",
                                    (tags, list(person_ids)))
            written = set(tags)
            rows = [(tag, None, pid, value) for pid, tag, value in values if written.add(tag) is None]
            changed = self._write_tag_rows("tag_values", rows, at, calculator, calculator_version)
            self.recount_tag_values(written)
            return changed

    def write_store_tag_values(self, values: Iterable[tuple[int, str, Any, str]], *, tags: Iterable[str],
                               calculator: str, calculator_version: str, computed_at: dt.datetime,
                               person_ids: Iterable[int] | None = None) -> int:
        tags = list(tags)
        at = iso(computed_at)
        conn = self.conn
        with self.transaction():
            if person_ids is None:
                conn.execute_native("DELETE FROM store_tag_values WHERE tag = ANY(%s::text[])", (tags,))
            else:
                conn.execute_native("DELETE FROM store_tag_values WHERE tag = ANY(%s::text[]) "
                                    "AND person_id = ANY(%s::bigint[])", (tags, list(person_ids)))
            rows = [(tag, str(store_id), pid, value) for pid, tag, value, store_id in values]
            return self._write_tag_rows("store_tag_values", rows, at, calculator, calculator_version)

    _NUMBER = "(value #>> '{}')::double precision"

    def _tag_value_count(self, tag: str) -> int:
        return self.conn.execute_native("SELECT count(*) FROM tag_values WHERE tag = %s AND value IS NOT NULL "
                                        "AND value <> 'null'::jsonb", (tag,)).fetchone()[0]

    def _tag_value_counts(self, tag: str, limit: int) -> list[tuple[Any, int]]:
        return self.conn.execute_native(
            "SELECT value, count(*) AS n FROM tag_values WHERE tag = %s AND value IS NOT NULL "
            "AND value <> 'null'::jsonb GROUP BY value ORDER BY n DESC, value LIMIT %s", (tag, limit)).fetchall()

    def _tag_number_moments(self, tag: str) -> tuple[Any, Any, float, float]:
        number = self._NUMBER
        lo, hi, mean, mean_sq = self.conn.execute_native(
            f"SELECT min({number}), max({number}), avg({number}), avg({number} * {number}) FROM tag_values "
            "WHERE tag = %s AND jsonb_typeof(value) = 'number'", (tag,)).fetchone()
        return _number(lo), _number(hi), mean, mean_sq

    def _tag_number_at(self, tag: str, offset: int) -> Any:
        return _number(self.conn.execute_native(
            f"SELECT {self._NUMBER} FROM tag_values WHERE tag = %s AND jsonb_typeof(value) = 'number' "
            "ORDER BY 1 LIMIT 1 OFFSET %s", (tag, offset)).fetchone()[0])

    def tag_histogram(self, tag: str, low: float, high: float, bins: int = 10) -> list[int]:
        width = (high - low) / bins or 1.0
        counts = [0] * bins
        for b, n in self.conn.execute_native(
                "SELECT LEAST(GREATEST(trunc(((value #>> '{}')::double precision - %s) / %s)::bigint, 0), %s) AS b, "
                "count(*) FROM tag_values WHERE tag = %s AND jsonb_typeof(value) = 'number' GROUP BY b",
                (low, width, bins - 1, tag)):
            counts[int(b)] = n
        return counts

    # -- segments -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[Any]:
        """Statements inside see one snapshot (a REPEATABLE READ transaction: PostgreSQL's default READ
        COMMITTED takes a new snapshot per statement). Inside a transaction: that one."""
        conn = self.conn
        if conn.in_transaction:
            yield conn
            return
        conn.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            yield conn
        finally:
            if not conn.raw.closed:
                conn.raw.execute("COMMIT")

    def query_person_ids(self, sql: str, params: dict | tuple = ()) -> list[int]:
        """The ``person_id`` column of a read query written in PostgreSQL (a compiled segment), ascending."""
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            raise ValueError("person_ids takes a SELECT")
        with self.conn.raw.cursor() as cur:  # one column of integers: no row objects
            text = f"SELECT person_id FROM ({sql}) AS members"
            cur.execute(percent_escaped(text) if params else text, params or None)
            return sorted(r[0] for r in cur.fetchall())

    def explain_query(self, sql: str, params: dict | tuple = ()) -> list[str]:
        """PostgreSQL's ``EXPLAIN`` of a read query: one line per plan node, indented as PostgreSQL does."""
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            raise ValueError("explain_query takes a SELECT")
        text = "EXPLAIN " + sql
        return [r[0] for r in self.conn.execute_native(percent_escaped(text) if params else text, params or None)]

    def attribute_names(self, *, limit: int = 10000) -> set[str]:
        return {r[0] for r in self.conn.execute_native(
            "SELECT DISTINCT key FROM people, jsonb_object_keys(people.attributes) AS key LIMIT %s", (limit,))}

    def tag_value_pairs(self, first: str, second: str, *,
                        person_ids: Iterable[int] | None = None) -> list[tuple[int, Any, Any]]:
        sql = ("SELECT a.person_id, a.value, b.value FROM tag_values a "
               "JOIN tag_values b ON b.tag = %s AND b.person_id = a.person_id WHERE a.tag = %s")
        params: list[Any] = [second, first]
        if person_ids is not None:
            sql += " AND a.person_id = ANY(%s::bigint[])"
            params.append(sorted(person_ids))
        return [tuple(r) for r in self.conn.execute_native(sql + " ORDER BY a.person_id", params)]

    def recount_tag_values(self, tags: Iterable[str]) -> None:
        from ..stats import TAG_VALUES_COUNTED

        conn = self.conn
        for tag in set(tags):
            conn.execute_native("DELETE FROM tag_value_counts WHERE tag = %s", (tag,))
            rows = conn.execute_native(
                "SELECT value, count(*) FROM tag_values WHERE tag = %s AND value IS NOT NULL GROUP BY value LIMIT %s",
                (tag, TAG_VALUES_COUNTED + 1)).fetchall()
            if len(rows) > TAG_VALUES_COUNTED:
                self._set_stat(f"tag:{tag}", -1)
                continue
            if rows:
                with conn.raw.cursor() as cur:
                    cur.executemany("INSERT INTO tag_value_counts (tag, value, n) VALUES (%s, %s, %s)",
                                    [(tag, _jsonb(v), n) for v, n in rows])
            self._set_stat(f"tag:{tag}", len(rows))

    def tag_range_estimate(self, tag: str, values: Sequence) -> int | None:
        counted = self._stat(f"tag:{tag}")
        if counted is None or counted < 0 or not values:
            return None if counted is None or counted < 0 else 0
        row = self.conn.execute_native(
            "SELECT sum(n) FROM tag_value_counts WHERE tag = %s AND value = ANY(%s::jsonb[])",
            (tag, [_jsonb(v) for v in values])).fetchone()
        return row[0] or 0

    # -- the outbox: claims lock their rows ----------------------------------------------------------

    def due_sends(self, now: dt.datetime, *, limit: int) -> list[dict[str, Any]]:
        """As the SQLite store's; inside a transaction the rows returned stay locked until it ends, and
        rows another worker's open transaction holds are skipped (``FOR UPDATE SKIP LOCKED``)."""
        t = epoch(now)
        lock = " FOR UPDATE SKIP LOCKED" if self.conn.in_transaction else ""
        rows = self.conn.execute_native(
            f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE (status = ANY(%s::text[]) "
            f"AND coalesce(not_before, 0) <= %s) OR (status = 'claimed' AND claimed_until < %s) "
            f"ORDER BY not_before NULLS FIRST, created_at, idempotency_key LIMIT %s{lock}",
            (list(CLAIMABLE_STATES), t, t, limit)).fetchall()
        return [_send_row(r) for r in rows]

    def marketing_sends_since(self, person_id: int, since: dt.datetime, *, exclude_key: str | None = None) -> int:
        return self.conn.execute_native(
            "SELECT count(*) FROM outbox WHERE person_id = %s AND status IN ('claimed', 'sent') AND updated_at >= %s "
            "AND coalesce((payload::jsonb ->> 'transactional')::boolean, false) = false AND idempotency_key <> %s",
            (person_id, iso(since), exclude_key or "")).fetchone()[0]

    # -- access -------------------------------------------------------------------------------------

    def _id_list_source(self, ids: list[int]) -> tuple[str, Any]:
        return "unnest(CAST(? AS BIGINT[])) AS j(value)", ids

    # -- reports ------------------------------------------------------------------------------------

    def _cohort_cte(self, cohort_event: str | None, zone: str, store: str | None,
                    until: int | None) -> tuple[str, list]:
        """As the SQLite store's, with the ownership form's ``t0`` filtered outside the SELECT that names
        it (PostgreSQL reads no output alias in WHERE)."""
        if cohort_event is not None:
            return super()._cohort_cte(cohort_event, zone, store, until)
        from ..reports import _FAR

        pop_sql, pop_params = self.report_population("o.person_id", store)
        return (
            "firsts AS (SELECT person_id, t0, id0 FROM (SELECT person_id, "
            "n - motorcade_utc_offset(n - motorcade_utc_offset(n, ?), ?) AS t0, 0 AS id0 FROM "
            "(SELECT o.person_id, min(CAST(strftime('%s', o.valid_from) AS INTEGER)) AS n "
            f"FROM ownerships o WHERE o.valid_from IS NOT NULL{pop_sql} GROUP BY o.person_id) AS owners) AS starts "
            "WHERE t0 <= ?)",
            [zone, zone, *pop_params, until if until is not None else _FAR],
        )

    def contact_summaries(self, person_ids: Iterable[int]) -> dict[int, dict]:
        ids = sorted(set(person_ids))
        out: dict[int, dict] = {p: {"name": None, "phone": None} for p in ids}
        for person_id, name in self.conn.execute_native(
                "SELECT id, attributes::jsonb ->> 'name' FROM people WHERE id = ANY(%s::bigint[])", (ids,)):
            out[person_id]["name"] = name
        for person_id, phone in self.conn.execute_native(
                "SELECT person_id, min(value) FROM identifiers WHERE type = 'phone' AND person_id = ANY(%s::bigint[]) "
                "GROUP BY person_id", (ids,)):
            out[person_id]["phone"] = phone
        return out


def _number(value):
    """A float that is whole as an int (as SQLite returns an integer tag value)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
