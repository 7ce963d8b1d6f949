"""Masking of personal data in logs and CLI output (on by default; MOTORCADE_SHOW_PII=1 turns it off for a
caller whose roles carry the ``pii`` permission, see docs/access.md)."""

from __future__ import annotations

import contextvars
import os
import re
import urllib.parse

_PHONE = re.compile(r"^\+?\d{7,15}$")


# Whether the current caller may see personal data at all (the ``pii`` permission); set with the caller.
_pii_permitted: contextvars.ContextVar[bool] = contextvars.ContextVar("motorcade_pii_permitted", default=True)


def permit_pii(allowed: bool) -> None:
    """Record whether the current caller holds the ``pii`` permission (``Project.access`` sets it)."""
    _pii_permitted.set(allowed)


def pii_visible() -> bool:
    return _pii_permitted.get() and os.environ.get("MOTORCADE_SHOW_PII", "") in ("1", "true", "yes")


def mask_phone(value: str) -> str:
    """+8613812345678 -> +86138****5678 (country code and first three digits, last four kept)."""
    if pii_visible() or not value:
        return value
    digits_start = 3 if value.startswith("+86") else (1 if value.startswith("+") else 0)
    head, body = value[:digits_start], value[digits_start:]
    if len(body) <= 7:
        return head + body[:1] + "*" * max(len(body) - 3, 1) + body[-2:]
    return head + body[:3] + "*" * (len(body) - 7) + body[-4:]


def mask_email(value: str) -> str:
    """zhang.wei@example.com -> z***@example.com"""
    if pii_visible() or "@" not in value:
        return value
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_id(value: str) -> str:
    """Opaque ids (openid, VIN, CRM number): keep the first and last 3 characters."""
    if pii_visible() or len(value) <= 6:
        return value if pii_visible() else value[:1] + "*" * max(len(value) - 1, 0)
    return value[:3] + "*" * (len(value) - 6) + value[-3:]


def mask_identifier(type_: str, value: str) -> str:
    """Mask an identifier by its type."""
    if type_ == "phone" or _PHONE.match(value or ""):
        return mask_phone(value)
    if type_ == "email":
        return mask_email(value)
    return mask_id(value)


def mask_name(value: str) -> str:
    """张伟 -> 张*, Zhang Wei -> Z*** W***"""
    if pii_visible() or not value:
        return value
    if all(ord(c) > 127 for c in value):
        return value[0] + "*" * (len(value) - 1)
    return " ".join(part[:1] + "***" for part in value.split())


# A match may start only where a run of address characters starts: tried from every position of a long
# run, the pattern was quadratic (a 10 MB field took over fifteen minutes).
_EMAIL_IN_TEXT = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_HEX_IN_TEXT = re.compile(r"\b[0-9a-fA-F]{32,}\b")
_DATE_LIKE = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}")
_PHONE_IN_TEXT = re.compile(r"(?<![\w])(\+?\d[\d \-]{6,}\d)(?![\w])")
# ids: 6+ letters/digits with at least one digit (customer numbers, VINs, openids, policy numbers)
_ID_IN_TEXT = re.compile(r"(?<![\w\-])(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{6,}(?![\w\-])")
# a field that is just a Chinese name (2-4 characters between delimiters)
_CJK_NAME_FIELD = re.compile(r"(?:(?<=^)|(?<=[,|\t\"]))([\u4e00-\u9fff]{2,4})(?=$|[,|\t\"])", re.M)


# Where a cut may end: at a separator, so that no value is shown cut in half (half an e-mail address or
# phone number no longer looks like one, and would be shown unmasked).
_SEPARATORS = frozenset(" \t\r\n,;|\"'(){}[]<>=:")


def cut(text: str, limit: int | None) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` characters at a separator (whole tokens only); True if it was cut."""
    if limit is None or len(text) <= limit:
        return text, False
    end = limit
    while end > 0 and text[end] not in _SEPARATORS and text[end - 1] not in _SEPARATORS:
        end -= 1  # the character at ``end`` is dropped: step back over the token it belongs to
    return text[:end], True


def mask_free_text(text: str, limit: int | None = None) -> str:
    """Mask personal data inside free text such as a quarantined raw row: e-mails, phone numbers, ids and
    hashes, Chinese names standing alone in a field. Dates and times stay readable (they are often what
    is wrong with the row).

    ``limit``: show at most this many characters of ``text`` (ending in "…" when cut). The text is cut
    before it is masked, at a separator, so a long field costs nothing and no value is shown half."""
    text, was_cut = cut(text or "", limit)
    if not pii_visible() and text:
        text = _mask_free_text(text)
    return text + "…" if was_cut else text


def _mask_free_text(text: str) -> str:
    text = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)
    text = _HEX_IN_TEXT.sub(lambda m: m.group(0)[:6] + "…", text)
    text = _PHONE_IN_TEXT.sub(
        lambda m: m.group(0) if _DATE_LIKE.match(m.group(1)) else mask_phone(re.sub(r"[ \-]", "", m.group(1))), text)
    text = _ID_IN_TEXT.sub(lambda m: m.group(0) if _DATE_LIKE.match(m.group(0)) or "*" in m.group(0)
                           else mask_id(m.group(0)), text)
    return _CJK_NAME_FIELD.sub(lambda m: mask_name(m.group(1)), text)


# A quoted literal in a message (Python's repr of a value, or a JSON string in a provider's answer).
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|" r'"(?:[^"\\\n]|\\.)*"')
# (a scheme of at most 16 characters: the pattern stays linear on long runs of letters and dots)
_URL_IN_TEXT = re.compile(r"(?<![\w+.\-])[a-zA-Z][\w+.\-]{0,15}://[^\s'\"<>()]+")
_TIME_LIKE = re.compile(r"^[\d\s:./TZ+\-]*\Z")
# lower-case words without digits: an error code or status ("rejected", "invalid_number"), not a person
_PLAIN_WORDS = re.compile(r"[a-z_\-]+(?: [a-z_\-]+)*\Z")


def mask_value(value: str) -> str:
    """A value quoted in a message: dates, times, lower-case words (an error code, a status) and ASCII
    values of up to three characters (a check digit, ``nan``) stay readable; anything else that could
    name a person is masked."""
    if (pii_visible() or (len(value) <= 3 and value.isascii()) or _PLAIN_WORDS.match(value)
            or (_DATE_LIKE.match(value) and _TIME_LIKE.match(value))):
        return value
    masked = _mask_free_text(value)
    if masked != value:
        return masked
    if all(ord(c) > 127 for c in value if not c.isspace()):
        return mask_name(value)
    return mask_id(value)


def mask_message(text: str | None, limit: int | None = None) -> str | None:
    """Mask personal data in a message that may quote values: a quarantine reason (``not a number:
    '138...'``), a provider's answer echoing the request body, an error naming a value. Quoted values go
    through :func:`mask_value`, the text between them through :func:`mask_free_text`.
    MOTORCADE_SHOW_PII=1 shows them."""
    if text is None:
        return None
    text, was_cut = cut(text, limit)
    if not pii_visible() and text:
        text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
        out, at = [], 0
        for m in _QUOTED.finditer(text):
            out.append(_mask_free_text(text[at:m.start()]))
            quote, value = m.group(0)[0], m.group(0)[1:-1]
            is_key = text.startswith(":", m.end()) or text.startswith(": ", m.end())  # a JSON key
            out.append(quote + (value if is_key else mask_value(value)) + quote)
            at = m.end()
        out.append(_mask_free_text(text[at:]))
        text = "".join(out)
    return text + "…" if was_cut else text


def without_password(url: str) -> str:
    """A connection URL (``postgresql://``, ``clickhouse://``) with its password as ``***``: for messages and the
    audit log, whatever the PII setting (a password is a secret, not personal data). Text that is no URL with a
    password is returned as it is."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, host = rest.rpartition("@")  # a password may hold an unescaped @
    user, colon, _password = userinfo.partition(":")
    if not at or not colon or "/" in user:
        return url
    return f"{scheme}://{user}:***@{host}"


def mask_url(url: str) -> str:
    """A URL for messages: the password (or a bare user token), query values and fragment become ``***``;
    scheme, host, port and path stay (they are what an operator needs to fix a setting)."""
    if pii_visible():
        return url
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        parts, netloc = None, ""
    if parts is None or not (parts.scheme and netloc):
        return re.sub(r"[^\s/@]+@", "***@", url)
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    query = "&".join(f"{k}=***" if sep else "***" for k, sep, _v in
                     (item.partition("=") for item in parts.query.split("&") if item))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, "***" if parts.fragment else ""))
