"""Columnar event batches: the fast path for event-heavy connectors.

A connector that reads millions of events (a JSON Lines log) can offer ``read_columns(cursor)``
besides :meth:`Source.read`: it yields :class:`EventBatch` objects whose events are plain tuples
instead of one :class:`EventRecord` per row. The ingest core cleans, resolves and writes them with the
same rules as records (same cleaning, same dedup keys, same quarantine reasons); only the per-row
Python objects are gone. Everything that is not an event (rejected lines, identify calls) travels in
``records`` and goes through the record path in the same transaction.
"""

from __future__ import annotations

import json
from typing import Any

from .base import SourceRecord

# The stored form of event properties (and what content dedup keys hash): compact, sorted keys, UTF-8.
_PROPERTIES_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


_FLAT = frozenset({str, int, bool, type(None)})

try:
    import orjson as _orjson
except ImportError:  # optional: the standard library writes the same text, slower
    _orjson = None


def properties_json(properties: dict[str, Any] | None) -> str:
    """Event properties as the events table keeps them.

    With orjson installed, flat properties (text, integers, booleans, nulls: most events) are
    encoded by orjson, which writes the very same text for them several times faster; floats
    (whose exponent notation differs) and nested values take the standard library's encoder.
    """
    if not properties:
        return "{}"
    if _orjson is not None:
        for value in properties.values():
            if type(value) not in _FLAT:
                break
        else:
            try:
                return _orjson.dumps(properties, option=_orjson.OPT_SORT_KEYS).decode()
            except TypeError:  # integers beyond 64 bits, lone surrogates
                pass
    return _PROPERTIES_JSON(properties)


class EventBatch:
    """One batch of events in row tuples, plus the batch's other records.

    ``events``: ``(name, ts, identifiers, properties JSON, dedup key or None, where, raw)`` per event,
    where ``identifiers`` is a tuple of ``(type, raw value)`` pairs, ``ts`` is raw text, a number or
    a datetime (as :class:`EventRecord.ts`), ``properties JSON`` comes from :func:`properties_json`,
    ``where`` is the line number or byte offset (``position_unit`` says which) and ``raw`` the raw line
    (bytes or text); the last two are only turned into text when a row goes to quarantine.
    """

    __slots__ = ("events", "records", "position_unit")

    def __init__(self, events: list[tuple] | None = None, records: list[SourceRecord] | None = None,
                 position_unit: str = "line"):
        self.events: list[tuple] = events if events is not None else []
        self.records: list[SourceRecord] = records if records is not None else []
        self.position_unit = position_unit

    def __len__(self) -> int:
        return len(self.events) + len(self.records)

    def position(self, where: Any) -> str:
        return f"{self.position_unit} {where}"

    def order_of(self, quarantined: tuple[str, str, str]) -> tuple[int, int]:
        """Sort key of a quarantined ``(position, raw, reason)`` of this batch: the source's order."""
        unit, _, number = quarantined[0].partition(" ")
        return (0, int(number)) if unit == self.position_unit and number.isdigit() else (1, 0)

    @staticmethod
    def raw_text(raw: Any) -> str:
        if isinstance(raw, (bytes, bytearray)):
            return bytes(raw).decode("utf-8", "replace").rstrip("\r\n")
        return str(raw)
