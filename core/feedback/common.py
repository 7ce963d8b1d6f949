"""Helpers shared by the reports: time parsing, number formatting, store names."""

from __future__ import annotations

import datetime as dt

from ..errors import MotorcadeError

UTC = dt.timezone.utc


def to_epoch(value: dt.date | dt.datetime | str | int | None, tz: dt.tzinfo = UTC) -> int | None:
    """Epoch seconds for a date (midnight in ``tz``), a datetime (naive = ``tz``), ISO text or an int."""
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value) if ("T" in value or " " in value or ":" in value) \
                else dt.date.fromisoformat(value)
        except ValueError:
            raise MotorcadeError(f"cannot read {value!r} as a date or time",
                                 hint="write a date as 2026-11-01 or a time as 2026-11-01T09:00") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        return int(value.timestamp())
    return int(dt.datetime.combine(value, dt.time(), tz).timestamp())


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def signed_pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f} pp"


def duration_text(seconds: float | None) -> str:
    """4500 -> "1.2 h"; 3 days -> "3.0 d"."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def check_store(store, store_id: str | None) -> str | None:
    """Validate ``--store``: an unknown store id is an error that lists the known ones."""
    if store_id is None:
        return None
    names = store.store_names()
    if store_id not in names:
        from motorcade.dsl.errors import did_you_mean

        raise MotorcadeError(
            f"no store {store_id!r} in {store.location}",
            hint=did_you_mean(store_id, names) or
            f"known stores: {', '.join(list(names)[:20]) or 'none (ingest the store list first)'}",
        )
    return store_id


def scope_text(store, store_id: str | None) -> str:
    if store_id is None:
        return "group view (all stores)"
    name = store.store_names().get(store_id, store_id)
    return f"store view: {store_id} {name}"
