"""SQL functions the SQLite store adds to every connection, for what SQLite's own date functions cannot say
exactly as the rule language means it.

``motorcade_add_months(ts, months, zone)``: the epoch second (floored) of ``ts`` moved by ``months`` calendar
months on the wall clock of time zone ``zone``, the day clamped to the month's end — the reference
evaluator's ``shift`` (docs/dsl.md), so `did A then B within 6 months` compiles instead of falling back.
SQLite's ``'+N months'`` modifier overflows into the next month instead of clamping and knows only UTC
and the machine's local zone.

``motorcade_utc_offset(ts, zone)``: the UTC offset in seconds in force at epoch second ``ts`` in ``zone``
(an IANA name, ``UTC`` or ``+08:00``): ``ts + motorcade_utc_offset(ts, zone)`` is the local wall-clock time,
so local days and months are exact across daylight-saving changes (:mod:`motorcade.localtime`).
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
import zoneinfo

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_FAR = 1 << 62  # beyond any time stamp: a limit past year 9999


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(name)


def add_months(ts: int | None, months: int | None, zone: str | None) -> int | None:
    from motorcade.dsl.evaluate import shift

    if ts is None or months is None or zone is None:
        return None
    instant = _EPOCH + dt.timedelta(seconds=ts)
    try:
        moved = shift(instant, int(months), "months", _zone(zone))
    except (ValueError, OverflowError):  # outside years 1..9999
        return _FAR if months > 0 else -_FAR
    return (moved - _EPOCH) // dt.timedelta(seconds=1)


def register(conn: sqlite3.Connection) -> None:
    from motorcade.localtime import utc_offset

    conn.create_function("motorcade_add_months", 3, add_months, deterministic=True)
    conn.create_function("motorcade_utc_offset", 2, utc_offset, deterministic=True)
