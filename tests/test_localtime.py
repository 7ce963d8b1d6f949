"""Local days in the project's time zone: the SQL function agrees with zoneinfo at every instant."""

import datetime as dt
import zoneinfo

from hypothesis import given, settings, strategies as st

from motorcade.localtime import local_date, utc_offset, zone_from_key, zone_key
from motorcade.store import SQLiteStore

ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Shanghai", "UTC", "+05:45", "-03:30"]


@settings(max_examples=300, deadline=None)
@given(ts=st.integers(0, 2**32), key=st.sampled_from(ZONES))
def test_utc_offset_agrees_with_zoneinfo(ts, key):
    tz = zone_from_key(key)
    expected = dt.datetime.fromtimestamp(ts, tz).utcoffset().total_seconds()
    assert utc_offset(ts, key) == expected
    assert local_date(ts, tz) == dt.datetime.fromtimestamp(ts, tz).date()


def test_offsets_change_at_the_exact_second_of_a_dst_change():
    change = int(dt.datetime(2026, 3, 8, 7, 0, tzinfo=dt.timezone.utc).timestamp())  # 02:00 EST -> 03:00 EDT
    assert [utc_offset(t, "America/New_York") for t in (change - 1, change)] == [-5 * 3600, -4 * 3600]


def test_zone_keys_round_trip():
    for tz in (zoneinfo.ZoneInfo("America/New_York"), dt.timezone.utc, dt.timezone(dt.timedelta(hours=8)),
               dt.timezone(-dt.timedelta(hours=3, minutes=30))):
        assert zone_from_key(zone_key(tz)).utcoffset(dt.datetime(2026, 7, 1)) == tz.utcoffset(dt.datetime(2026, 7, 1))


def test_the_store_exposes_the_offset_to_sql(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    try:
        ts = int(dt.datetime(2026, 1, 6, 4, 30, tzinfo=dt.timezone.utc).timestamp())  # 23:30 on 5 Jan in New York
        (day,), = store.query("SELECT date(:ts + motorcade_utc_offset(:ts, :zone), 'unixepoch')",
                              {"ts": ts, "zone": "America/New_York"})
        assert day == "2026-01-05"
    finally:
        store.close()
