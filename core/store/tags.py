"""The tag catalogue, tag values with provenance, and tag runs (health history)."""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any, Iterable

from ..model import TagValue
from .codec import dumps, from_iso, iso, loads


class TagsMixin:
    def define_tags(self, definitions: Iterable[Any], *, calculator: str, calculator_version: str) -> None:
        """Record tag definitions (:class:`motorcade.tags.base.TagDefinition`) in the catalogue."""
        self.conn.executemany(
            "INSERT INTO tag_definitions (name, type, description, title, allowed_values, value_range, calculator, "
            "calculator_version, per_store) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "type=excluded.type, description=excluded.description, title=excluded.title, "
            "allowed_values=excluded.allowed_values, value_range=excluded.value_range, "
            "calculator=excluded.calculator, calculator_version=excluded.calculator_version, "
            "per_store=excluded.per_store",
            [
                (d.name, d.type, d.description, d.title,
                 None if d.allowed_values is None else dumps(list(d.allowed_values)),
                 None if d.value_range is None else dumps(list(d.value_range)), calculator, calculator_version,
                 int(getattr(d, "per_store", False)))
                for d in definitions
            ],
        )

    def tag_definitions(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT name, type, description, title, allowed_values, value_range, calculator, calculator_version "
            "FROM tag_definitions ORDER BY name"
        ).fetchall()
        keys = ("name", "type", "description", "title", "allowed_values", "value_range", "calculator",
                "calculator_version")
        out = []
        for r in rows:
            d = dict(zip(keys, r))
            d["allowed_values"] = None if d["allowed_values"] is None else loads(d["allowed_values"])
            d["value_range"] = None if d["value_range"] is None else loads(d["value_range"])
            out.append(d)
        return out

    # Values are written set-based: staged into a temporary table (one plain insert per value, no index); then,
    # per tag, one DELETE of the rows the new values do not replace and one upsert joined to people. A statement
    # per value (INSERT OR REPLACE with a per-row EXISTS) cost time growing with the values already written once
    # the write ran inside an enclosing transaction (compute_tags writes person and per-store values together,
    # so SQLite keeps a savepoint journal): 100,000 people took over 20 minutes. The upsert updates a kept row
    # in place (its person index entry stays), which costs less than deleting every row and inserting it again.
    def _stage_tag_values(self, rows: Iterable[tuple]) -> None:
        """``(tag, person_id, value, store_id)`` rows into ``temp.motorcade_tag_stage``, in the given order."""
        conn = self.conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS motorcade_tag_stage (seq INTEGER PRIMARY KEY, tag TEXT NOT "
                     "NULL, person_id INTEGER NOT NULL, value, store_id TEXT)")
        conn.execute("DELETE FROM temp.motorcade_tag_stage")
        conn.executemany("INSERT INTO temp.motorcade_tag_stage (tag, person_id, value, store_id) VALUES (?, ?, ?, ?)",
                         rows)

    def _replace_staged(self, table: str, tags: list[str], person_ids: Iterable[int] | None, at: str,
                        calculator: str, calculator_version: str) -> int:
        """Make the rows of ``tags`` in ``table`` (everyone's, or only ``person_ids``') the staged values of
        people that exist, and write the staged values of any other tag over what is stored for those people;
        a (tag, [store,] person) staged twice keeps the later value. Returns the values
        written (of existing people, a repeated one counted each time, as one upsert per value counts)."""
        key = "(store_id, person_id)" if table == "store_tag_values" else "person_id"
        scope = ""
        params: tuple = ()
        if person_ids is not None:
            scope = " AND person_id IN (SELECT value FROM json_each(?2))"
            params = (dumps(sorted({int(p) for p in person_ids})),)  # whole numbers: exact in JSON
        conn = self.conn
        # the rows no staged value replaces: gone (as are rows of people who no longer exist)
        conn.executemany(
            f"DELETE FROM {table} WHERE tag = ?1{scope} AND ({key} NOT IN (SELECT {key.strip('()')} FROM "
            "temp.motorcade_tag_stage WHERE tag = ?1) OR person_id NOT IN (SELECT id FROM people))",
            [(tag, *params) for tag in tags])
        store = "store_id, " if table == "store_tag_values" else ""
        before = conn.total_changes
        # only for people that exist: a value computed for someone merged away meanwhile is dropped (the
        # survivor's comes with the next run), so every stored person id names a person
        conn.execute(
            f"INSERT INTO {table} (tag, {store}person_id, value, computed_at, calculator, calculator_version) "
            f"SELECT s.tag, {store.replace('store_id', 's.store_id')}s.person_id, s.value, ?, ?, ? "
            "FROM temp.motorcade_tag_stage s WHERE s.person_id IN (SELECT id FROM people) "
            f"ORDER BY s.tag, {store.replace('store_id', 's.store_id')}s.person_id, s.seq "
            f"ON CONFLICT (tag, {store}person_id) DO UPDATE SET value = excluded.value, "
            "computed_at = excluded.computed_at, calculator = excluded.calculator, "
            "calculator_version = excluded.calculator_version", (at, calculator, calculator_version))
        changed = conn.total_changes - before
        conn.execute("DELETE FROM temp.motorcade_tag_stage")
        return changed

    def write_tag_values(self, values: Iterable[tuple[int, str, Any]], *, tags: Iterable[str], calculator: str,
                         calculator_version: str, computed_at: dt.datetime,
                         person_ids: Iterable[int] | None = None) -> int:
        """Replace the values of ``tags`` (for everyone, or only ``person_ids``) with ``values``.

        Runs in one transaction: readers see the old or the new values, never a mix.
        """
        tags = list(tags)
        written = set(tags)  # and any other tag given a value (its other people's values stay)
        with self.transaction():
            self._stage_tag_values((tag, pid, value, None) for pid, tag, value in values if written.add(tag) is None)
            changed = self._replace_staged("tag_values", tags, person_ids, iso(computed_at), calculator,
                                           calculator_version)
            self.recount_tag_values(written)  # planner statistics (motorcade.store.stats)
            return changed

    def write_store_tag_values(self, values: Iterable[tuple[int, str, Any, str]], *, tags: Iterable[str],
                               calculator: str, calculator_version: str, computed_at: dt.datetime,
                               person_ids: Iterable[int] | None = None) -> int:
        """Replace the per-store values ``(person_id, tag, value, store_id)`` of ``tags`` (for everyone, or only
        ``person_ids``); like :meth:`write_tag_values`, in one transaction, dropping people merged away."""
        with self.transaction():
            self._stage_tag_values((tag, pid, value, str(store_id)) for pid, tag, value, store_id in values)
            return self._replace_staged("store_tag_values", list(tags), person_ids, iso(computed_at), calculator,
                                        calculator_version)

    def store_tags_of(self, person_id: int) -> dict[str, dict[str, Any]]:
        """The person's per-store tag values: ``store_id -> {tag: value as stored}``."""
        out: dict[str, dict[str, Any]] = {}
        for store_id, tag, value in self.conn.execute(
                "SELECT store_id, tag, value FROM store_tag_values WHERE person_id = ? ORDER BY store_id, tag",
                (person_id,)):
            out.setdefault(store_id, {})[tag] = value
        return out

    def tags_of(self, person_id: int) -> list[TagValue]:
        return [
            TagValue(r[0], r[1], r[2], from_iso(r[3]), r[4], r[5])
            for r in self.conn.execute(
                "SELECT person_id, tag, value, computed_at, calculator, calculator_version FROM tag_values "
                "WHERE person_id = ? ORDER BY tag",
                (person_id,),
            )
        ]

    def record_tag_run(self, *, calculator: str, calculator_version: str, started_at: dt.datetime,
                       finished_at: dt.datetime, rows_written: int, health: dict[str, Any]) -> int:
        cur = self.conn.execute(
            "INSERT INTO tag_runs (calculator, calculator_version, started_at, finished_at, rows_written, health) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (calculator, calculator_version, iso(started_at), iso(finished_at), rows_written, dumps(health)),
        )
        return cur.lastrowid

    def tag_runs(self, calculator: str, *, limit: int = 2) -> list[dict[str, Any]]:
        """The calculator's most recent runs, newest first."""
        return [
            {"id": r[0], "calculator_version": r[1], "started_at": r[2], "finished_at": r[3],
             "rows_written": r[4], "health": loads(r[5])}
            for r in self.conn.execute(
                "SELECT id, calculator_version, started_at, finished_at, rows_written, health FROM tag_runs "
                "WHERE calculator = ? ORDER BY id DESC LIMIT ?",
                (calculator, limit),
            )
        ]

    # -- incremental runs and health ----------------------------------------------------------------

    def max_event_id(self) -> int:
        """The events' high-water mark: ids are assigned in insertion order, so later events have larger ids."""
        return self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def people_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM people").fetchone()[0]

    def people_update_mark(self, *, keep_ids: int = 10000) -> dict[str, Any]:
        """Where people's ``updated_at`` stands now: the latest value and the ids updated in that second
        (``updated_at`` has whole-second resolution) with a fingerprint of their attributes, or None for the
        ids when more than ``keep_ids``."""
        mark = self.conn.execute("SELECT max(updated_at) FROM people").fetchone()[0]
        rows = self.conn.execute(
            "SELECT id, attributes FROM people WHERE updated_at = ? LIMIT ?", (mark, keep_ids + 1)).fetchall() \
            if mark else []
        # a fingerprint per id: a second update within the same second shows as a changed fingerprint
        ids = {str(pid): zlib.crc32(attributes.encode()) for pid, attributes in rows}
        return {"updated_at": mark, "ids": ids if len(ids) <= keep_ids else None}

    def changed_people(self, *, after_event_id: int, upto_event_id: int, event_names: Iterable[str] | None,
                       people_mark: dict[str, Any] | None) -> set[int]:
        """People whose inputs changed: events with ``after_event_id < id <= upto_event_id`` (only the given
        names, or any when ``event_names`` is None), plus people whose record was updated after
        ``people_mark`` (from :meth:`people_update_mark`: attributes, merges). Updates within the mark's own
        second count unless the mark listed them, so none is missed."""
        params: list[Any] = [after_event_id, upto_event_id]
        sql = "SELECT DISTINCT person_id FROM events WHERE id > ? AND id <= ? AND person_id IS NOT NULL"
        if event_names is not None:
            names = list(event_names)
            sql += f" AND name IN ({', '.join('?' for _ in names)})"
            params += names
        people = {r[0] for r in self.conn.execute(sql, params)}
        if people_mark is not None and people_mark.get("updated_at"):
            mark, seen = people_mark["updated_at"], people_mark.get("ids")
            people.update(r[0] for r in self.conn.execute(
                "SELECT id FROM people WHERE updated_at > ?", (mark,)))
            for pid, attributes in self.conn.execute(
                    "SELECT id, attributes FROM people WHERE updated_at = ?", (mark,)):
                if seen is None or seen.get(str(pid)) != zlib.crc32(attributes.encode()):
                    people.add(pid)
        elif people_mark is not None:
            people.update(r[0] for r in self.conn.execute("SELECT id FROM people"))
        return people

    def tag_value_figures(self, tag: str, *, numeric: bool, top: int = 20) -> dict[str, Any]:
        """Health figures of one tag over all its stored values: count; the value counts (top ``top``) for
        categorical tags; min, max, mean, standard deviation and quartiles for numeric ones."""
        count = self._tag_value_count(tag)
        figures: dict[str, Any] = {"count": count}
        if not numeric:
            rows = self._tag_value_counts(tag, top + 1)
            counts = {str(v): n for v, n in rows[:top]}
            if len(rows) > top:
                counts["(other)"] = count - sum(counts.values())
            figures["counts"] = counts
            return figures
        if count == 0:
            return figures
        lo, hi, mean, mean_sq = self._tag_number_moments(tag)
        figures.update(min=lo, max=hi, mean=mean, std=max(mean_sq - mean * mean, 0.0) ** 0.5)
        for label, q in (("p25", 0.25), ("p50", 0.5), ("p75", 0.75)):
            # nearest-rank quantile
            figures[label] = self._tag_number_at(tag, max(int(-(-q * count // 1)) - 1, 0))
        return figures

    # The reads behind tag_value_figures, in this engine's SQL (another store overrides these four only).
    def _tag_value_count(self, tag: str) -> int:
        return self.conn.execute("SELECT count(*) FROM tag_values WHERE tag = ? AND value IS NOT NULL",
                                 (tag,)).fetchone()[0]

    def _tag_value_counts(self, tag: str, limit: int) -> list[tuple[Any, int]]:
        return self.conn.execute(
            "SELECT value, count(*) AS n FROM tag_values WHERE tag = ? AND value IS NOT NULL "
            "GROUP BY value ORDER BY n DESC, value LIMIT ?", (tag, limit)).fetchall()

    def _tag_number_moments(self, tag: str) -> tuple[Any, Any, float, float]:
        return self.conn.execute(
            "SELECT min(value), max(value), avg(value), avg(value * value) FROM tag_values "
            "WHERE tag = ? AND value IS NOT NULL", (tag,)).fetchone()

    def _tag_number_at(self, tag: str, offset: int) -> Any:
        # the (tag, value) index makes the OFFSET walk cheap
        return self.conn.execute(
            "SELECT value FROM tag_values WHERE tag = ? AND value IS NOT NULL ORDER BY value LIMIT 1 OFFSET ?",
            (tag, offset)).fetchone()[0]

    def tag_histogram(self, tag: str, low: float, high: float, bins: int = 10) -> list[int]:
        """Counts of the tag's values in ``bins`` equal-width bins over [low, high] (ends clamp)."""
        width = (high - low) / bins or 1.0
        counts = [0] * bins
        for b, n in self.conn.execute(
            "SELECT min(max(CAST((value - ?) / ? AS INTEGER), 0), ?) AS b, count(*) FROM tag_values "
            "WHERE tag = ? AND value IS NOT NULL GROUP BY b", (low, width, bins - 1, tag)):
            counts[int(b)] = n
        return counts

    def latest_tag_runs(self) -> list[dict[str, Any]]:
        """The newest run of every calculator that has run, by calculator name."""
        return [
            {"id": r[0], "calculator": r[1], "calculator_version": r[2], "started_at": r[3], "finished_at": r[4],
             "rows_written": r[5], "health": loads(r[6])}
            for r in self.conn.execute(
                "SELECT id, calculator, calculator_version, started_at, finished_at, rows_written, health "
                "FROM tag_runs WHERE id IN (SELECT max(id) FROM tag_runs GROUP BY calculator) ORDER BY calculator")
        ]

    def tag_value_pairs(self, first: str, second: str, *,
                        person_ids: Iterable[int] | None = None) -> list[tuple[int, Any, Any]]:
        """``(person_id, value of first, value of second)`` of the people who have both tags (only ``person_ids``
        when given), by person id."""
        sql = ("SELECT a.person_id, a.value, b.value FROM tag_values a "
               "JOIN tag_values b ON b.tag = ? AND b.person_id = a.person_id WHERE a.tag = ?")
        params: list[Any] = [second, first]
        if person_ids is not None:
            sql += " AND a.person_id IN (SELECT value FROM json_each(?))"
            params.append(dumps(sorted(person_ids)))
        return [tuple(r) for r in self.conn.execute(sql + " ORDER BY a.person_id", params)]

    def tag_value_count(self, tag: str) -> int:
        return self.conn.execute("SELECT count(*) FROM tag_values WHERE tag = ?", (tag,)).fetchone()[0]
