"""Tracking: short links and open pixels of sends, their hits, provider receipts handled and refused.

Every SQL statement on ``links``, ``link_hits``, ``receipts_seen`` and ``receipt_rejections`` lives here;
:mod:`motorcade.activation.tracking` and :mod:`motorcade.activation.receipts` talk to these functions only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from .codec import epoch, from_epoch


class TrackingMixin:
    def add_links(self, links: Iterable[tuple[str, str, int, str, str | None]], *, at: dt.datetime) -> int:
        """Store ``(code, idempotency key, step, kind, target)`` rows; returns the number new."""
        stamp = epoch(at)
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO links (code, idempotency_key, step, kind, target, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", [(*link, stamp) for link in links])
            return self.conn.total_changes - before

    def link(self, code: str) -> dict[str, Any] | None:
        """The link or open pixel with ``code``: idempotency_key, step, kind, target; None if unknown."""
        row = self.conn.execute(
            "SELECT code, idempotency_key, step, kind, target, created_at FROM links WHERE code = ?",
            (code,)).fetchone()
        if row is None:
            return None
        return {"code": row[0], "idempotency_key": row[1], "step": row[2], "kind": row[3], "target": row[4],
                "created_at": from_epoch(row[5])}

    def links_of_send(self, idempotency_key: str) -> list[dict[str, Any]]:
        """The tracked links written for one send (see :meth:`link`), by step then in the order they were made."""
        rows = self.conn.execute("SELECT code FROM links WHERE idempotency_key = ? ORDER BY step, rowid",
                                 (idempotency_key,)).fetchall()
        return [self.link(code) for (code,) in rows]

    def add_link_hit(self, code: str, *, at: dt.datetime, user_agent: str | None, bot: str | None) -> None:
        """Record one request for link ``code`` (``bot``: the rule that recognised a bot or scanner, or None for a person); in one transaction."""
        with self.transaction():
            self.conn.execute("INSERT INTO link_hits (code, at, user_agent, bot) VALUES (?, ?, ?, ?)",
                              (code, epoch(at), (user_agent or "")[:500] or None, bot))

    def link_hit_counts(self, origin_kind: str | None = None, origin: str | None = None) -> dict[str, int]:
        """Hits on links and pixels by what they were: ``click``, ``open``, ``bot`` (optionally of one
        campaign, trigger or journey ``origin``; ``origin_kind`` narrows it to that kind)."""
        sql = ("SELECT l.kind, h.bot IS NOT NULL, count(*) FROM link_hits h JOIN links l ON l.code = h.code "
               "JOIN outbox o ON o.idempotency_key = l.idempotency_key")
        params: tuple = ()
        if origin is not None:  # of one campaign, trigger or journey (of that kind only, when given)
            sql += " WHERE o.origin = ?" + (" AND o.origin_kind = ?" if origin_kind else "")
            params = (origin, origin_kind) if origin_kind else (origin,)
        counts = {"click": 0, "open": 0, "bot": 0}
        for kind, is_bot, count in self.conn.execute(sql + " GROUP BY 1, 2", params):
            counts["bot" if is_bot else ("click" if kind == "link" else "open")] += count
        return counts

    def receipt_seen(self, provider: str, dedupe_key: str, *, at: dt.datetime) -> bool:
        """Remember a receipt; True if it had been handled before (a redelivery)."""
        cursor = self.conn.execute(
            "INSERT OR IGNORE INTO receipts_seen (provider, dedupe_key, at) VALUES (?, ?, ?)",
            (provider, dedupe_key, epoch(at)))
        return cursor.rowcount == 0

    def add_receipt_rejection(self, channel: str, reason: str, detail: str | None, *, at: dt.datetime) -> None:
        """Count a refused receipt (``reason``: signature, replayed, unknown_message or malformed); in one transaction."""
        with self.transaction():
            self.conn.execute("INSERT INTO receipt_rejections (channel, reason, detail, at) VALUES (?, ?, ?, ?)",
                              (channel, reason, (detail or "")[:500] or None, epoch(at)))

    def receipt_rejection_counts(self) -> dict[tuple[str, str], int]:
        """``{(channel, reason): count}`` of receipts refused."""
        return {(channel, reason): count for channel, reason, count in self.conn.execute(
            "SELECT channel, reason, count(*) FROM receipt_rejections GROUP BY 1, 2")}

    def subscriptions_left(self, person_id: int, *, grant_event: str, template_id: str, channel: str,
                           templates: list[str]) -> int:
        """One-time subscriptions (WeChat mini-program ``subscribeMessage``) a person still has for
        ``template_id``: the ``grant_event`` events accepting it (property ``template_id``, ``result`` =
        "accept") minus the sends of ``channel`` already sent with one of ``templates`` (the rule template
        names that map to it)."""
        granted = self.conn.execute(
            "SELECT count(*) FROM events WHERE person_id = ? AND name = ? "
            "AND json_extract(properties, '$.template_id') = ? "
            "AND coalesce(json_extract(properties, '$.result'), 'accept') = 'accept'",
            (person_id, grant_event, template_id)).fetchone()[0]
        placeholders = ", ".join("?" for _ in templates) or "NULL"
        used = self.conn.execute(
            f"SELECT count(*) FROM outbox WHERE person_id = ? AND channel = ? AND status = 'sent' "
            f"AND template IN ({placeholders})", (person_id, channel, *templates)).fetchone()[0]
        return granted - used
