"""The tag catalogue, tag values with provenance, and tag runs (health history)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from ..model import TagValue
from .codec import dumps, from_iso, iso, loads, utc_now


class TagsMixin:
    def define_tags(self, definitions: Iterable[Any], *, calculator: str, calculator_version: str) -> None:
        """Record tag definitions (:class:`motorcade.tags.base.TagDefinition`) in the catalogue."""
        self.conn.executemany(
            "INSERT INTO tag_definitions (name, type, description, title, allowed_values, value_range, calculator, "
            "calculator_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
            "type=excluded.type, description=excluded.description, title=excluded.title, "
            "allowed_values=excluded.allowed_values, value_range=excluded.value_range, "
            "calculator=excluded.calculator, calculator_version=excluded.calculator_version",
            [
                (d.name, d.type, d.description, d.title,
                 None if d.allowed_values is None else dumps(list(d.allowed_values)),
                 None if d.value_range is None else dumps(list(d.value_range)), calculator, calculator_version)
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

    def write_tag_values(self, values: Iterable[tuple[int, str, Any]], *, tags: Iterable[str], calculator: str,
                         calculator_version: str, computed_at: dt.datetime,
                         person_ids: Iterable[int] | None = None) -> int:
        """Replace the values of ``tags`` (for everyone, or only ``person_ids``) with ``values``.

        Runs in one transaction: readers see the old or the new values, never a mix.
        """
        tags = list(tags)
        at = iso(computed_at)
        with self.transaction():
            if person_ids is None:
                self.conn.executemany("DELETE FROM tag_values WHERE tag = ?", [(t,) for t in tags])
            else:
                ids = list(person_ids)
                self.conn.executemany(
                    "DELETE FROM tag_values WHERE tag = ? AND person_id = ?", [(t, p) for t in tags for p in ids]
                )
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR REPLACE INTO tag_values (tag, person_id, value, computed_at, calculator, "
                "calculator_version) VALUES (?, ?, ?, ?, ?, ?)",
                ((tag, pid, value, at, calculator, calculator_version) for pid, tag, value in values),
            )
            return self.conn.total_changes - before

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
