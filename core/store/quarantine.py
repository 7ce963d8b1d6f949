"""Rows that could not be used: kept with their source, position, raw content and reason."""

from __future__ import annotations

from typing import Iterable

import attrs

from .codec import iso, utc_now


@attrs.frozen
class QuarantinedRow:
    id: int  # quarantine row id
    source: str  # source name
    position: str  # where in the source ("line 17")
    raw: str  # raw content
    reason: str  # why it could not be used
    created_at: str  # when it was quarantined (UTC ISO)
    retried_at: str | None  # last retry
    resolved: bool  # a retry succeeded


class QuarantineMixin:
    def quarantine_rows(self, source: str, rows: Iterable[tuple[str, str, str]]) -> int:
        """Store ``(position, raw, reason)`` rows; the same row twice is kept once. Returns rows added."""
        now = iso(utc_now())
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT INTO quarantine (source, position, raw, reason, created_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(source, position, raw) DO UPDATE SET reason = excluded.reason WHERE quarantine.resolved = 0 "
            "AND quarantine.reason != excluded.reason",
            [(source, position, raw, reason, now) for position, raw, reason in rows],
        )
        return self.conn.total_changes - before

    def list_quarantine(self, *, source: str | None = None, include_resolved: bool = False,
                        limit: int | None = None) -> list[QuarantinedRow]:
        sql = "SELECT id, source, position, raw, reason, created_at, retried_at, resolved FROM quarantine WHERE 1=1"
        params: list = []
        if source is not None:
            sql += " AND source = ?"
            params.append(source)
        if not include_resolved:
            sql += " AND resolved = 0"
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [QuarantinedRow(*r[:7], bool(r[7])) for r in self.conn.execute(sql, params)]

    def mark_quarantine_retried(self, row_id: int, *, resolved: bool, reason: str | None = None) -> None:
        self.conn.execute(
            "UPDATE quarantine SET retried_at = ?, resolved = ?, reason = coalesce(?, reason) WHERE id = ?",
            (iso(utc_now()), int(resolved), reason, row_id),
        )

    def quarantine_summary(self) -> list[tuple[str, str, int]]:
        """(source, reason, count) of unresolved rows, largest first."""
        return [
            tuple(r)
            for r in self.conn.execute(
                "SELECT source, reason, count(*) FROM quarantine WHERE resolved = 0 "
                "GROUP BY source, reason ORDER BY count(*) DESC, source, reason"
            )
        ]
