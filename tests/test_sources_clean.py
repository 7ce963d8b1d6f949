"""Cleaning: phones to E.164, e-mails lower-cased, VINs validated (ISO 3779), times to UTC."""

import datetime as dt

import pytest
from hypothesis import given, strategies as st

from motorcade.sources.clean import CleanError, clean_email, clean_phone, clean_vin, convert, parse_date, parse_timestamp, vin_check_digit

UTC = dt.timezone.utc


@pytest.mark.parametrize("raw", ["13812345678", "138 1234 5678", "+86 13812345678", "+8613812345678",
                                 "138-1234-5678", "8613812345678"])
def test_phone_formats_clean_to_one_e164(raw):
    assert clean_phone(raw) == "+8613812345678"


@pytest.mark.parametrize("raw", ["", "12345", "1234567890123456", "abc"])
def test_bad_phones_are_rejected(raw):
    with pytest.raises(CleanError):
        clean_phone(raw)


def test_email_lower_cased_and_checked():
    assert clean_email("  Wang.Wei@163.COM ") == "wang.wei@163.com"
    with pytest.raises(CleanError):
        clean_email("wangwei163.com")


def test_vin_rules():
    good = "WBASH2K02NA000042"  # from the example data, valid check digit
    assert clean_vin(good.lower()) == good
    with pytest.raises(CleanError, match="17"):
        clean_vin(good[:-1])
    with pytest.raises(CleanError, match="I, O and Q"):
        clean_vin(good[:4] + "O" + good[5:])
    wrong = "0" if good[8] != "0" else "1"
    with pytest.raises(CleanError, match="check digit"):
        clean_vin(good[:8] + wrong + good[9:])
    # European manufacturers need not use the check digit: region mode skips it for them, not for China
    assert clean_vin(good[:8] + wrong + good[9:], check_digit="region")
    chinese = "LBV" + good[3:]
    chinese = chinese[:8] + vin_check_digit(chinese) + chinese[9:]
    bad_cn = chinese[:8] + ("0" if chinese[8] != "0" else "1") + chinese[9:]
    with pytest.raises(CleanError):
        clean_vin(bad_cn, check_digit="region")


@given(st.text(alphabet="0123456789ABCDEFGHJKLMNPRSTUVWXYZ", min_size=17, max_size=17))
def test_any_vin_with_its_check_digit_is_valid(body):
    vin = body[:8] + vin_check_digit(body) + body[9:]
    assert clean_vin(vin) == vin


def test_timestamps_to_utc_from_the_source_zone():
    assert parse_timestamp("2025-03-01 10:00:00", "Asia/Shanghai") == dt.datetime(2025, 3, 1, 2, tzinfo=UTC)
    assert parse_timestamp("2025/03/01 10:00", "Asia/Shanghai") == dt.datetime(2025, 3, 1, 2, tzinfo=UTC)
    assert parse_timestamp("2025-03-01T10:00:00+08:00", "UTC") == dt.datetime(2025, 3, 1, 2, tzinfo=UTC)
    assert parse_timestamp("2025-03-01T02:00:00.123Z") == dt.datetime(2025, 3, 1, 2, 0, 0, 123000, tzinfo=UTC)
    assert parse_timestamp(1740794400) == dt.datetime(2025, 3, 1, 2, tzinfo=UTC)
    for bad in ("2025-02-30T10:00:00+08:00", "2026-13-01 25:61", "下午3点", "0000-00-00T00:00:00", "N/A"):
        with pytest.raises(CleanError):
            parse_timestamp(bad)


def test_dates_and_typed_columns():
    assert parse_date("2025/03/01") == dt.date(2025, 3, 1)
    for bad in ("2025-02-30", "31/31/2025", "20251", "昨天下午"):
        with pytest.raises(CleanError):
            parse_date(bad)
    assert convert("1970", "int") == 1970
    assert convert("", "int") is None
    assert convert("是", "bool") is True
    with pytest.raises(CleanError):
        convert("x", "int")
