"""Local dates in the project's time zone, for Python and for SQL.

Events are stored as UTC epoch seconds; "a day" and "a month" an operator talks about are local ones in
``[project] timezone``. One UTC offset is not enough in a zone with daylight saving time
(America/New_York is UTC−5 in winter and UTC−4 in summer): :func:`utc_offset` gives the offset in force
at each instant, and the SQLite store exposes it as ``motorcade_utc_offset(ts, zone)`` (see
:mod:`motorcade.store.functions`), so SQL buckets events by ``ts + motorcade_utc_offset(ts, zone)``.

A zone travels into SQL as text (:func:`zone_key`): an IANA name (``"America/New_York"``), ``"UTC"``,
or a fixed offset such as ``"+08:00"`` for a ``datetime.timezone``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo

_DAY = 86400
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_FIXED = re.compile(r"^([+-])(\d\d):(\d\d)(?::(\d\d))?$")


def zone_key(tz: dt.tzinfo) -> str:
    """The text naming ``tz`` for :func:`zone_from_key` and the SQL function."""
    key = getattr(tz, "key", None)
    if key:
        return key
    if tz is dt.timezone.utc:
        return "UTC"
    offset = tz.utcoffset(None)
    if offset is None:
        raise ValueError(f"time zone {tz!r} has neither an IANA name nor a fixed offset")
    seconds = int(offset.total_seconds())
    sign, seconds = ("-" if seconds < 0 else "+"), abs(seconds)
    text = f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"
    return text + (f":{seconds % 60:02d}" if seconds % 60 else "")


@functools.lru_cache(maxsize=64)
def zone_from_key(key: str) -> dt.tzinfo:
    """The time zone named by :func:`zone_key`'s text."""
    fixed = _FIXED.match(key)
    if fixed:
        sign, hours, minutes, seconds = fixed.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0))
        return dt.timezone(-delta if sign == "-" else delta)
    if key == "UTC":
        return dt.timezone.utc
    return zoneinfo.ZoneInfo(key)


def _offset_at(ts: int, tz: dt.tzinfo) -> int:
    return int((_EPOCH + dt.timedelta(seconds=ts)).astimezone(tz).utcoffset().total_seconds())


@functools.lru_cache(maxsize=1 << 16)
def _day_offsets(key: str, day: int) -> tuple[int, int, int]:
    """``(change, before, after)`` for the UTC day ``day``: the offset is ``before`` until ``change`` (an
    epoch second) and ``after`` from then on. Zones change offset at most once a day."""
    tz = zone_from_key(key)
    start, end = day * _DAY, day * _DAY + _DAY - 1
    before, after = _offset_at(start, tz), _offset_at(end, tz)
    if before == after:
        return end + 1, before, after
    low, high = start, end  # the offset at low is `before`, at high `after`: find the first second of `after`
    while high - low > 1:
        middle = (low + high) // 2
        if _offset_at(middle, tz) == before:
            low = middle
        else:
            high = middle
    return high, before, after


def utc_offset(ts: int | float | None, key: str | None) -> int | None:
    """The UTC offset in seconds in force at epoch second ``ts`` in the zone named ``key``."""
    if ts is None or key is None:
        return None
    ts = int(ts // 1)
    change, before, after = _day_offsets(key, ts // _DAY)
    return before if ts < change else after


def local_day(ts: int, tz: dt.tzinfo) -> int:
    """Days since 1970-01-01 of the local date of ``ts`` in ``tz`` (what SQL gets from
    ``(ts + motorcade_utc_offset(ts, zone)) / 86400`` for times after 1970)."""
    return (ts + utc_offset(ts, zone_key(tz))) // _DAY


def local_date(ts: int, tz: dt.tzinfo) -> dt.date:
    """The local date of epoch second ``ts`` in ``tz``."""
    return dt.date(1970, 1, 1) + dt.timedelta(days=local_day(ts, tz))


def local_day_sql(column: str, zone_param: str = ":zone") -> str:
    """SQL for the local day number of the epoch seconds in ``column`` (``zone_param`` binds the zone key)."""
    return f"(({column} + motorcade_utc_offset({column}, {zone_param})) / 86400)"


def local_date_sql(column: str, zone_param: str = "?") -> str:
    """SQL for the local ISO date (``'2026-03-08'``) of the epoch seconds in ``column``."""
    return f"date({column} + motorcade_utc_offset({column}, {zone_param}), 'unixepoch')"
