"""The guard rails' small rules against oracles of their own: daily windows checked minute by minute,
consent precedence and the ``[guardrails]`` settings' defaults and limits (mutation testing found these
unpinned: tests/MUTANTS.md)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motorcade.activation.guardrails import GuardRails, consent_allows, outside_window_until, window_end
from motorcade.errors import ConfigError

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
MINUTE = dt.timedelta(minutes=1)


def minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def in_daily(local: dt.datetime, start: dt.time, end: dt.time) -> bool:
    """``local`` is inside the daily window [start, end), which may wrap midnight; start == end is empty."""
    now = local.hour * 60 + local.minute + (local.second or local.microsecond) / 60
    s, e = minutes(start), minutes(end)
    if s == e:
        return False
    return s <= now < e if s < e else now >= s or now < e


def first_minute(local: dt.datetime, wanted) -> dt.datetime:
    """The first whole wall-clock minute at or after ``local`` for which ``wanted`` holds (within 2 days)."""
    naive = local.replace(tzinfo=None)
    at = naive.replace(second=0, microsecond=0)
    if at < naive:
        at += MINUTE
    for _ in range(2 * 24 * 60 + 1):
        if wanted(at):
            return at.replace(tzinfo=local.tzinfo)
        at += MINUTE
    raise AssertionError("no such minute in two days")


def oracle_window_end(local, start, end):
    if not in_daily(local, start, end):
        return None
    return first_minute(local, lambda at: not in_daily(at, start, end))


def oracle_outside_until(local, start, end):
    if start == end or in_daily(local, start, end):  # start == end: no window at all
        return None
    return first_minute(local, lambda at: in_daily(at, start, end))


times_of_day = st.builds(dt.time, st.integers(0, 23), st.sampled_from([0, 0, 1, 30, 59]))


@st.composite
def window_and_moment(draw):
    """A window and a local moment, often exactly on or a minute or a second beside one of its edges."""
    start, end = draw(times_of_day), draw(times_of_day)
    if draw(st.booleans()):
        end = start if draw(st.integers(0, 5)) == 0 else end
    day = dt.date(2026, 11, 23)
    edge = draw(st.sampled_from([start, end, dt.time(0, 0), dt.time(23, 59)]))
    base = dt.datetime.combine(day, edge)
    moment = draw(st.one_of(
        st.sampled_from([dt.timedelta(0), MINUTE, -MINUTE, dt.timedelta(seconds=1), -dt.timedelta(seconds=1)])
        .map(lambda d: base + d),
        st.integers(0, 24 * 3600 - 1).map(lambda s: dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=s))))
    return moment.replace(tzinfo=SH), start, end


@settings(max_examples=300, deadline=None)
@given(window_and_moment())
def test_window_end_is_the_first_minute_outside_the_quiet_window(case):
    """Mutants it catches: every changed comparison in window_end (``<=``/``<``/``==`` swapped at the edges)."""
    local, start, end = case
    assert window_end(local, start, end) == oracle_window_end(local, start, end)


@settings(max_examples=300, deadline=None)
@given(window_and_moment())
def test_outside_window_until_is_the_first_minute_inside_the_allowed_window(case):
    local, start, end = case
    assert outside_window_until(local, start, end) == oracle_outside_until(local, start, end)


def test_window_edges_worked_examples():
    q = (dt.time(21), dt.time(9))
    at = lambda h, m=0, s=0, d=23: dt.datetime(2026, 11, d, h, m, s, tzinfo=SH)  # noqa: E731
    assert window_end(at(21), *q) == at(9, d=24)  # the start belongs to the window
    assert window_end(at(20, 59, 59), *q) is None
    assert window_end(at(8, 59, 59), *q) == at(9)
    assert window_end(at(9), *q) is None  # the end does not
    assert window_end(at(12), dt.time(12), dt.time(13)) == at(13)
    assert window_end(at(13), dt.time(12), dt.time(13)) is None
    assert window_end(at(12), dt.time(12), dt.time(12)) is None  # an empty window
    assert outside_window_until(at(8), dt.time(8), dt.time(22)) is None
    assert outside_window_until(at(22), dt.time(8), dt.time(22)) == at(8, d=24)
    assert outside_window_until(at(7, 59, 59), dt.time(8), dt.time(22)) == at(8)
    assert outside_window_until(at(12), dt.time(8), dt.time(8)) is None  # start == end: no window


@pytest.mark.parametrize("consents, channel, mode, allowed", [
    ({"*": False, "sms": True}, "sms", "opt_out", False),  # a global refusal wins over the channel's grant
    ({"*": False, "sms": True}, "sms", "opt_in", False),
    ({"*": True, "sms": False}, "sms", "opt_out", False),  # then the channel's own state
    ({"*": False}, "wecom", "opt_out", False),
    ({"sms": True}, "sms", "opt_in", True),
    ({"*": True}, "sms", "opt_in", True),  # then the global state
    ({"*": True}, "sms", "opt_out", True),
    ({"wecom": False}, "sms", "opt_out", True),  # then the mode's default
    ({"wecom": True}, "sms", "opt_in", False),
    ({}, "sms", "opt_out", True),
    ({}, "sms", "opt_in", False),
])
def test_consent_precedence(consents, channel, mode, allowed):
    assert consent_allows(consents, channel, mode) is allowed


def test_guardrail_settings_defaults():
    assert GuardRails().cap_days == 7
    assert GuardRails.from_config({}) == GuardRails(consent_mode="opt_out", quiet_hours=None, cap_count=None, cap_days=7)
    assert GuardRails.from_config({"frequency_cap": {"count": 2}}).cap_days == 7
    rails = GuardRails.from_config({"frequency_cap": {"count": 0, "days": 1}})  # 0: no marketing at all
    assert (rails.cap_count, rails.cap_days) == (0, 1)


@pytest.mark.parametrize("cap", [{"count": -1}, {"count": -1, "days": 7}, {"count": 2, "days": 0},
                                 {"count": 2, "days": -3}, {"days": 7}, [2, 7]])
def test_frequency_cap_out_of_range_is_refused(cap):
    with pytest.raises(ConfigError, match="frequency_cap"):
        GuardRails.from_config({"frequency_cap": cap})


@pytest.mark.parametrize("quiet", [["start", "end"], "21:00-09:00", {"start": "21:00"}, {"end": "09:00"}])
def test_quiet_hours_need_a_table_with_start_and_end(quiet):
    with pytest.raises(ConfigError, match="quiet_hours needs start and end"):
        GuardRails.from_config({"quiet_hours": quiet})
