"""Cleaning of raw source values: phone numbers, e-mail addresses, VINs, dates and time stamps.

Every cleaner either returns the normalised value or raises :class:`CleanError` with a reason an
operator understands ("VIN check digit is 7, expected 3"). Cleaners are pure and cached where the
same raw text recurs a lot (a person's phone appears on every one of their events).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import zoneinfo
from typing import Any

UTC = dt.timezone.utc


class CleanError(ValueError):
    """A value that cannot be used; the message says why."""


# -- identifiers ----------------------------------------------------------------------------------

_NON_DIGITS = re.compile(r"[^\d+]")
_CN_MOBILE = re.compile(r"^(?:\+?86)?(1\d{10})$")
_CN_MOBILE_SHAPE = re.compile(r"^1[3-9]\d{9}$")  # what a mainland mobile number looks like, whatever its range
_cn_block_valid: dict[str, bool] = {}
# the end of the reason a number of an unknown range is rejected with: what to do about it
UNKNOWN_RANGE_HINT = "set [identity.phone] accept_unknown_ranges = true to keep such numbers"
_UNKNOWN_RANGE = "not in an assigned number range of its region (phone numbering data); " + UNKNOWN_RANGE_HINT


def _cn_mobile_fast(compact: str, accept_unknown_ranges: bool) -> str | None:
    """E.164 of a mainland mobile number without a full parse: validity of a CN mobile number depends on
    its first seven digits only (the number block), so phonenumbers judges each block once."""
    m = _CN_MOBILE.match(compact)
    if m is None:
        return None
    digits = m.group(1)
    block = digits[:7]
    valid = _cn_block_valid.get(block)
    if valid is None:
        import phonenumbers

        valid = _cn_block_valid[block] = phonenumbers.is_valid_number(phonenumbers.parse(block + "5678", "CN"))
    if not valid:
        if not _CN_MOBILE_SHAPE.match(digits):
            raise CleanError("not a valid phone number for its region")
        if not accept_unknown_ranges:
            raise CleanError(_UNKNOWN_RANGE)
    return "+86" + digits


@functools.lru_cache(maxsize=1 << 18)
def clean_phone(raw: str, region: str = "CN", accept_unknown_ranges: bool = False) -> str:
    """A phone number in E.164 (``+8613812345678``); raises CleanError if it is not a valid number.

    ``accept_unknown_ranges``: also keep numbers of a possible length and shape in ranges the phone
    numbering data does not list as assigned (new mobile blocks reach it late).
    """
    import phonenumbers

    text = raw.strip()
    if not text:
        raise CleanError("empty phone number")
    compact = _NON_DIGITS.sub("", text)
    # "8613812345678" (country code without the plus) is how several Chinese systems export numbers
    if region == "CN" and not compact.startswith("+") and len(compact) == 13 and compact.startswith("86"):
        compact = "+" + compact
    if region == "CN" or compact.startswith("+86"):
        fast = _cn_mobile_fast(compact, accept_unknown_ranges)
        if fast is not None:
            return fast
    try:
        number = phonenumbers.parse(compact or text, region)
    except phonenumbers.NumberParseException as exc:
        raise CleanError(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        # a well-formed number is of a full length for its region (not a local-only short form)
        if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
            raise CleanError("not a valid phone number for its region")
        if not accept_unknown_ranges:
            raise CleanError(_UNKNOWN_RANGE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_lookup_key(raw: str) -> str:
    """The digits of a phone number as typed, without a leading 86 of a 13-digit mainland number: how a
    rejected number is found again from any spelling of it (``154 1234 5678``, ``+8615412345678``)."""
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def clean_email(raw: str) -> str:
    """Lower-cased, trimmed e-mail address; raises CleanError if it does not look like one."""
    text = raw.strip().lower()
    if not _EMAIL.match(text):
        raise CleanError("not an e-mail address")
    return text


# ISO 3779 transliteration and weights of the check digit (position 9); used in North America and
# China (GB 16735). European VINs often carry no check digit: validate with check_digit=False there.
_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8,
    "J": 1, "K": 2, "L": 3, "M": 4, "N": 5, "P": 7, "R": 9,
    "S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9,
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_check_digit(vin: str) -> str:
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS))
    rest = total % 11
    return "X" if rest == 10 else str(rest)


# WMI first characters of the regions whose VINs must carry the check digit: North America (1-5)
# and China (L, GB 16735). Elsewhere (e.g. Europe, W/V/Y/Z/S) position 9 is often a plain character.
CHECK_DIGIT_REGIONS = frozenset("12345L")


def clean_vin(raw: str, *, check_digit: bool | str = True) -> str:
    """Upper-cased VIN: 17 characters, no I/O/Q, and a matching ISO 3779 check digit.

    ``check_digit``: True (every VIN; China registers every vehicle with one), False (never), or
    ``"region"`` (only VINs whose manufacturer code is North American or Chinese).
    """
    vin = raw.strip().upper().replace(" ", "").replace("-", "")
    if not vin:
        raise CleanError("missing VIN")
    if len(vin) != 17:
        raise CleanError(f"VIN has {len(vin)} characters, expected 17")
    bad = sorted({c for c in vin if c not in _VIN_VALUES})
    if bad:
        raise CleanError(f"VIN contains {''.join(bad)!r} (I, O and Q are never used in a VIN)")
    if check_digit == "region":
        check_digit = vin[0] in CHECK_DIGIT_REGIONS
    if check_digit:
        expected = vin_check_digit(vin)
        if vin[8] != expected:
            raise CleanError(f"VIN check digit is {vin[8]!r}, expected {expected!r}")
    return vin


# Identifier types with a normal form of their own; every other type is its trimmed text.
NORMALISED_TYPES = frozenset({"phone", "email", "national_id_hash"})


def clean_identifier(type_: str, raw: Any, *, region: str = "CN", accept_unknown_ranges: bool = False) -> str:
    """Normalise one identifier by type (:data:`NORMALISED_TYPES`); other types are trimmed strings."""
    text = str(raw).strip() if raw is not None else ""
    if not text:
        raise CleanError(f"empty {type_}")
    if type_ == "phone":
        return clean_phone(text, region, accept_unknown_ranges)
    if type_ == "email":
        return clean_email(text)
    if type_ == "national_id_hash":
        return text.lower()
    return text


# -- times ----------------------------------------------------------------------------------------

_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d")
_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
)


@functools.lru_cache(maxsize=64)
def zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CleanError(f"unknown time zone {name!r}") from None


def parse_date(raw: Any) -> dt.date:
    """A calendar date from ``2025-03-01``, ``2025/03/01``, ``20250301`` (or a date/datetime)."""
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    text = str(raw).strip() if raw is not None else ""
    if not text:
        raise CleanError("missing date")
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:  # a full time stamp where a date was expected: keep its date
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise CleanError(f"unparseable date {text!r} (expected YYYY-MM-DD)") from None


def parse_timestamp(raw: Any, tz: str | dt.tzinfo = "Asia/Shanghai") -> dt.datetime:
    """An aware UTC datetime. Naive text is in the source's zone ``tz``; numbers are epoch s or ms."""
    tzinfo = zone(tz) if isinstance(tz, str) else tz
    if isinstance(raw, dt.datetime):
        value = raw
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        seconds = raw / 1000 if raw > 1e11 else raw
        try:
            return dt.datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise CleanError(f"time stamp {raw!r} is out of range") from None
    else:
        text = str(raw).strip() if raw is not None else ""
        if not text:
            raise CleanError("missing time stamp")
        value = None
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            for fmt in _DATETIME_FORMATS:
                try:
                    value = dt.datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
            if value is None:
                try:
                    day = parse_date(text)
                except CleanError:
                    raise CleanError(f"unparseable time stamp {text!r} (expected ISO 8601)") from None
                value = dt.datetime.combine(day, dt.time())
        if value.year < 1900:
            raise CleanError(f"time stamp {text!r} is before 1900")
    if value.tzinfo is None:
        value = value.replace(tzinfo=tzinfo)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-10:00 is in the year 10000 in UTC
        raise CleanError(f"time stamp {str(raw)!r} is out of range (after the year 9999 in UTC)") from None


# -- values stored as JSON ------------------------------------------------------------------------

MAX_NESTING = 100  # levels of objects and arrays a stored value may have (SQLite's JSON functions stop at 1000)


def check_json_value(value: Any, what: str, *, max_nesting: int | None = MAX_NESTING) -> None:
    """Raise CleanError if ``value`` cannot be stored as strict JSON: a number that is not finite
    (NaN, Infinity: no JSON number spells them, and SQLite's JSON functions reject the text Python
    writes for them), a string holding a lone surrogate (not Unicode, so not UTF-8 either), or
    more than ``max_nesting`` levels of objects and arrays. ``what`` names the value in the reason."""
    stack = [(value, what, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, path, depth = pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                raise CleanError(f"{path or 'the value'} is not a finite number ({item!r}): the store keeps only finite numbers")
        elif kind is str:
            if not item.isascii():
                _check_unicode(item, path)
        elif kind is dict or kind is list or kind is tuple or isinstance(item, (dict, list, tuple)):
            if max_nesting is not None and depth >= max_nesting:
                raise CleanError(f"{what or 'the value'} is nested more than {max_nesting} levels deep")
            if isinstance(item, dict):
                for key, inner in item.items():
                    if type(key) is str and not key.isascii():
                        _check_unicode(key, path)
                    push((inner, f"{path}.{key}" if path else str(key), depth + 1))
            else:
                for i, inner in enumerate(item):
                    push((inner, f"{path}[{i}]", depth + 1))
        elif isinstance(item, float) and not math.isfinite(item):
            raise CleanError(f"{path or 'the value'} is not a finite number ({float(item)!r}): the store keeps only finite numbers")


def _check_unicode(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CleanError(f"{path or 'the value'} holds a lone surrogate ({text[exc.start]!r}): not valid Unicode") from None


# -- typed values of mapped columns ---------------------------------------------------------------

_TRUE = {"1", "true", "yes", "y", "t", "是", "同意", "opt_in", "opted_in", "subscribed"}
_FALSE = {"0", "false", "no", "n", "f", "否", "拒绝", "opt_out", "opted_out", "unsubscribed"}


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CleanError(f"not a yes/no value: {raw!r}")


def convert(value: Any, type_: str, *, tz: str = "Asia/Shanghai", region: str = "CN",
            vin_check_digit: bool | str = True) -> Any:
    """Convert a mapped column to ``type_`` (str, int, float, bool, date, datetime, vin, phone, email).

    Empty text becomes None (a missing optional value, not an error). Dates come back as ISO text and
    datetimes as UTC ISO text, so they serialise into JSON attributes and properties as they are.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if type_ in ("str", "string", "text"):
        return str(value).strip()
    if type_ in ("int", "integer"):
        try:
            return int(str(value).strip())
        except ValueError:  # "12.0", "1e3" (and integers too long for int(), which float makes infinite)
            try:
                number = float(str(value).strip())
            except ValueError:
                raise CleanError(f"not a whole number: {value!r}") from None
            if not math.isfinite(number):
                raise CleanError(f"not a whole number: {value!r} is not a finite number") from None
            if number != int(number):
                raise CleanError(f"not a whole number: {value!r}") from None
            return int(number)
    if type_ in ("float", "number", "real"):
        try:
            number = float(str(value).strip())
        except ValueError:
            raise CleanError(f"not a number: {value!r}") from None
        if not math.isfinite(number):  # "nan", "inf", "1e400": no JSON number holds them
            raise CleanError(f"not a finite number: {value!r} (the store keeps only finite numbers)")
        return number
    if type_ == "bool":
        return parse_bool(value)
    if type_ == "date":
        return parse_date(value).isoformat()
    if type_ == "datetime":
        return parse_timestamp(value, tz).isoformat(timespec="seconds")
    if type_ == "vin":
        return clean_vin(str(value), check_digit=vin_check_digit)
    if type_ == "phone":
        return clean_phone(str(value), region)
    if type_ == "email":
        return clean_email(str(value))
    raise CleanError(f"unknown column type {type_!r} (use str, int, float, bool, date, datetime, vin, phone, email)")


def identifier_lookup_key(type_: str, raw: Any) -> str:
    """How an identifier value that did not clean is looked up again (see :func:`phone_lookup_key`)."""
    text = str(raw).strip() if raw is not None else ""
    if type_ == "phone":
        return phone_lookup_key(text)
    if type_ == "email":
        return text.lower()
    return text
