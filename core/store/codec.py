"""How values are encoded in the store: UTC timestamps, epoch seconds, JSON text."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

UTC = dt.timezone.utc


def utc_now() -> dt.datetime:
    return dt.datetime.now(UTC)


def iso(value: dt.datetime) -> str:
    """UTC ISO-8601 text (``2026-11-20T02:00:00+00:00``): the store's format for TEXT timestamps."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store only keeps aware times")
    return value.astimezone(UTC).isoformat(timespec="seconds")


def from_iso(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text).astimezone(UTC)


def epoch(value: dt.datetime) -> int:
    """Whole seconds since the epoch (events.ts, outbox.not_before)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the store only keeps aware times")
    return int(value.timestamp())


def from_epoch(seconds: int | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, UTC)


# allow_nan=False: NaN and Infinity are no JSON numbers, and SQLite's JSON functions reject the text
# Python would write for them (every later query of the column would fail): refusing them here
# makes a value that slipped past cleaning fail its own write, not every read after it.
_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str, allow_nan=False)


def dumps(value: Any) -> str:
    """JSON text as the store keeps it (UTF-8, no ASCII escaping, stable key order, strict: a number
    that is not finite raises ValueError)."""
    return _ENCODER.encode(value)


def loads(text: str | None) -> Any:
    return {} if not text else json.loads(text)


def date_text(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def from_date_text(text: str | None) -> dt.date | None:
    return None if not text else dt.date.fromisoformat(text)
