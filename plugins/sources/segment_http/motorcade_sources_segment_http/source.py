"""The ``segment_http`` source: what the collector stored in the inbox, read in order like any source.

``motorcade ingest NAME`` reads it (the cursor is the last inbox id read); the collector's processor
(:mod:`.processor`) does the same continuously and plans event triggers right after.
"""

from __future__ import annotations

import json
from typing import Iterator

from motorcade.config_schema import PATH, TEXT, Setting, map_of, whole
from motorcade.sources.base import RejectedRow, Source, SourceRecord

from .records import MessageMapping, records_of


class SegmentHttpSource(Source):
    """Messages received by `motorcade collect` for this source (authenticated by its write key)."""

    type_name = "segment_http"
    description = "Segment tracking API over HTTP (motorcade collect): track, identify, page, screen, alias, group"
    yields = ("events", "people")
    settings_schema = (
        Setting("write_key_env", TEXT, "environment variable holding this source's write key"),
        Setting("write_key_file", PATH, "file holding this source's write key (instead of write_key_env)"),
        Setting("user_id", TEXT, "identifier type of userId", "user_id"),
        Setting("anonymous_id", TEXT, "identifier type of anonymousId (and of an alias's previousId)",
                "anonymous_id"),
        Setting("traits", map_of(TEXT, "trait"), "trait = identifier type (identify traits, context.traits)",
                {"phone": "phone", "email": "email"}),
        Setting("identify_attributes", map_of(TEXT, "trait"), "identify: trait = profile attribute", {}),
        Setting("dedup_days", whole(1), "days a messageId is remembered in the inbox (events keep theirs for ever)",
                7),
        Setting("batch_size", whole(1), "inbox messages per transaction", 5000),
    )

    def __init__(self, name, settings, project_dir):
        super().__init__(name, settings, project_dir)
        self.mapping = MessageMapping.from_settings(settings)
        self.batch_size = int(settings.get("batch_size", 5000))
        self.store = None  # the processor hands its own; otherwise opened from the project
        self._last = None

    def _store(self):
        if self.store is None:
            from motorcade.project import Project

            self.store = Project(self.project_dir).store
        return self.store

    def read(self, cursor: str | None = None) -> Iterator[list[SourceRecord]]:
        store = self._store()
        after = int(cursor) if cursor else 0
        self._last = after
        while True:
            rows = store.inbox_read(self.name, after_id=after, limit=self.batch_size)
            if not rows:
                return
            batch: list[SourceRecord] = []
            for inbox_id, _, body in rows:
                batch.extend(self.parse(inbox_id, body))
            after = self._last = rows[-1][0]
            yield batch

    def parse(self, inbox_id: int, body: str) -> list[SourceRecord]:
        position = f"inbox {inbox_id}"
        try:
            message = json.loads(body)
            return records_of(message, mapping=self.mapping, position=position, raw=body)
        except (ValueError, KeyError, TypeError) as exc:  # a message stored by an older collector
            return [RejectedRow(position, body, f"stored message cannot be read: {exc}")]

    def next_cursor(self) -> str | None:
        return None if self._last is None else str(self._last)

    def reparse(self, position: str, raw: str) -> list[SourceRecord]:
        number = position.removeprefix("inbox ")
        if not number.isdigit():  # refused at the door ("http ..."): it was never stored
            return [RejectedRow(position, raw, "the collector refused this message; the client must send it again")]
        return self.parse(int(number), raw)

    def size_hint(self) -> int | None:
        return None
