"""Masking of personal data in CLI output."""

from motorcade.masking import mask_free_text, mask_identifier


def test_a_quarantined_row_keeps_dates_and_hides_people(monkeypatch):
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    raw = "PAIC20255925924924,LBVSHMJS0RA474102,138 1234 5678,黄鑫林,2025-10-10 19:05:11,zhang.wei@qq.com"
    masked = mask_free_text(raw)
    for secret in ("PAIC20255925924924", "LBVSHMJS0RA474102", "1234 5678", "12345678", "黄鑫林", "zhang.wei"):
        assert secret not in masked, secret
    assert "2025-10-10 19:05:11" in masked  # what is often wrong with the row stays readable
    assert mask_free_text('{"app_user_id":"U9000017045","model":"X5"}') == '{"app_user_id":"U90*****045","model":"X5"}'


def test_show_pii_switch(monkeypatch):
    monkeypatch.setenv("MOTORCADE_SHOW_PII", "1")
    assert mask_free_text("13812345678,黄鑫林") == "13812345678,黄鑫林"
    assert mask_identifier("phone", "+8613812345678") == "+8613812345678"
    monkeypatch.delenv("MOTORCADE_SHOW_PII")
    assert mask_identifier("phone", "+8613812345678") == "+86138****5678"
