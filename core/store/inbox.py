"""The inbox: messages a push source received, stored before the sender is told they arrived."""

from __future__ import annotations

from typing import Iterable


class InboxMixin:
    def inbox_append(self, source: str, messages: Iterable[tuple[str, str, str]]) -> tuple[int, int]:
        """Store ``(message_id, received_at, body)`` messages of ``source`` in one transaction; a message id
        already stored for the source is kept once (the first body wins). Returns ``(stored, duplicates)``.
        When this returns, the messages are committed: a crash of the process afterwards loses none."""
        rows = [(source, message_id, received_at, body) for message_id, received_at, body in messages]
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT INTO inbox (source, message_id, received_at, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (source, message_id) DO NOTHING", rows)
            stored = self.conn.total_changes - before
        return stored, len(rows) - stored

    def inbox_read(self, source: str, *, after_id: int = 0, limit: int = 10_000) -> list[tuple[int, str, str]]:
        """``(id, received_at, body)`` of the source's messages with an id above ``after_id``, in id order."""
        return [(r[0], r[1], r[2]) for r in self.conn.execute(
            "SELECT id, received_at, body FROM inbox WHERE source = ? AND id > ? ORDER BY id LIMIT ?",
            (source, after_id, limit))]

    def inbox_last_id(self, source: str | None = None) -> int:
        """The highest inbox id (of one source, or of all); 0 when empty."""
        if source is None:
            row = self.conn.execute("SELECT max(id) FROM inbox").fetchone()
        else:
            row = self.conn.execute("SELECT max(id) FROM inbox WHERE source = ?", (source,)).fetchone()
        return row[0] or 0

    def inbox_purge(self, source: str, *, up_to_id: int, received_before: str) -> int:
        """Delete the source's messages already read (id ≤ ``up_to_id``) and received before the ISO time
        ``received_before`` (the deduplication window has passed). Returns the rows deleted."""
        with self.transaction():
            return self.conn.execute(
                "DELETE FROM inbox WHERE source = ? AND id <= ? AND received_at < ?",
                (source, up_to_id, received_before)).rowcount
