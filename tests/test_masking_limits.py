"""Masking stays linear on hostile text, cuts before it masks, and hides values quoted in messages."""

import time

import pytest

from motorcade.masking import mask_free_text, mask_message, mask_url

# Each string defeated the old e-mail pattern (a match attempt from every position of a long run of
# word characters: 40,000 characters took seconds, 10 MB more than fifteen minutes).
HOSTILE = {
    "one long word": "a" * 1_000_000,
    "dots": "a." * 500_000,
    "letters and digits": "A1" * 500_000 + "é",
    "dashes": "1-" * 500_000 + "1a",
    "hex then a letter": "f" * 1_000_000 + "g",
    "at signs": "a@" * 500_000,
    "domains without a dot": "a@" + "b" * 1_000_000 + "@",
    "spaced digits": "1 " * 500_000 + "1x",
    "letters and dots, no scheme": "a." * 500_000,
    "quotes never closed": "'" + "a" * 1_000_000,
    "schemes without a host": "a://" * 250_000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_masking_a_megabyte_of_hostile_text_is_linear(name, monkeypatch):
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    start = time.perf_counter()
    mask_free_text(HOSTILE[name])
    mask_message(f"not a number: {HOSTILE[name]!r}")
    # generous: linear work is well under a second; the quadratic pattern needed hours for this size
    assert time.perf_counter() - start < 30


def test_cut_before_masking_drops_a_value_cut_in_half(monkeypatch):
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    raw = "2025-10-10," + "x" * 30 + ",zhang.wei@qq.com,13812345678"
    for limit in range(1, len(raw) + 5):
        shown = mask_free_text(raw, limit=limit)
        for secret in ("zhang", "zhang.w", "qq.com,1381", "12345678", "381234"):
            assert secret not in shown, (limit, shown)
        if limit < len(raw):
            assert shown.endswith("…")
    assert mask_free_text(raw, limit=11).startswith("2025-10-10,")


def test_messages_hide_quoted_values_and_keep_dates(monkeypatch):
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    for message, secret in [
        ("not a whole number: '13812345678'", "12345678"),
        ("not a yes/no value: 'Zhang Wei'", "Zhang Wei"),
        ("not a number: 'oAbCdEfGhIjKlMnOpQr'", "CdEfGhIjKlMnOp"),
        ('HTTP 400: {"to": "zhang.wei@example.com", "text": "Hello Zhang Wei"}', "Zhang Wei"),
        ('HTTP 400: {"to": "zhang.wei@example.com", "text": "Hello Zhang Wei"}', "zhang.wei"),
        ("unparseable date '黄鑫林' (expected YYYY-MM-DD)", "鑫林"),
        ("VIN contains 'LBVSHMJS0RA47410I'", "SHMJS0RA474"),
    ]:
        assert secret not in mask_message(message), message
    kept = "unparseable time stamp '2026-13-45T10:00:00' (expected ISO 8601)"
    assert mask_message(kept) == kept
    assert mask_message("VIN check digit is 'X', expected '7'") == "VIN check digit is 'X', expected '7'"
    assert mask_message("not a whole number: 'nan'") == "not a whole number: 'nan'"
    monkeypatch.setenv("MOTORCADE_SHOW_PII", "1")
    assert mask_message("not a yes/no value: 'Zhang Wei'") == "not a yes/no value: 'Zhang Wei'"


def test_a_url_loses_its_password_and_query_values(monkeypatch):
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    shown = mask_url("ftp://bot:s3cret-pw@hooks.example.com:8443/in?token=abcdef123456&x=1#frag")
    assert "s3cret" not in shown and "abcdef123456" not in shown
    assert shown.startswith("ftp://bot:***@hooks.example.com:8443/in?token=***")
    assert mask_url("not a url at all with secret@host") == "not a url at all with ***@host"
