"""Masking of personal data in logs and CLI output (on by default; MOTORCADE_SHOW_PII=1 turns it off)."""

from __future__ import annotations

import os
import re

_PHONE = re.compile(r"^\+?\d{7,15}$")


def pii_visible() -> bool:
    return os.environ.get("MOTORCADE_SHOW_PII", "") in ("1", "true", "yes")


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


_EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_HEX_IN_TEXT = re.compile(r"\b[0-9a-fA-F]{32,}\b")
_DATE_LIKE = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}")
_PHONE_IN_TEXT = re.compile(r"(?<![\w])(\+?\d[\d \-]{6,}\d)(?![\w])")
# ids: 6+ letters/digits with at least one digit (customer numbers, VINs, openids, policy numbers)
_ID_IN_TEXT = re.compile(r"(?<![\w\-])(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{6,}(?![\w\-])")
# a field that is just a Chinese name (2-4 characters between delimiters)
_CJK_NAME_FIELD = re.compile(r"(?:(?<=^)|(?<=[,|\t\"]))([\u4e00-\u9fff]{2,4})(?=$|[,|\t\"])", re.M)


def mask_free_text(text: str) -> str:
    """Mask personal data inside free text such as a quarantined raw row: e-mails, phone numbers, ids and
    hashes, Chinese names standing alone in a field. Dates and times stay readable (they are often what
    is wrong with the row)."""
    if pii_visible() or not text:
        return text
    text = _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)
    text = _HEX_IN_TEXT.sub(lambda m: m.group(0)[:6] + "…", text)
    text = _PHONE_IN_TEXT.sub(
        lambda m: m.group(0) if _DATE_LIKE.match(m.group(1)) else mask_phone(re.sub(r"[ \-]", "", m.group(1))), text)
    text = _ID_IN_TEXT.sub(lambda m: m.group(0) if _DATE_LIKE.match(m.group(0)) or "*" in m.group(0)
                           else mask_id(m.group(0)), text)
    return _CJK_NAME_FIELD.sub(lambda m: mask_name(m.group(1)), text)
