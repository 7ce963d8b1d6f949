"""The jsonl connector: native and Segment shapes, rejected lines with their line number."""

from motorcade.sources.base import EventRecord, PersonRecord, RejectedRow
from motorcade_sources_jsonl import JsonlSource

SETTINGS = {"path": "e.jsonl", "format": "auto", "identifiers": {"phone": "phone"}, "user_id": "crm_id",
            "anonymous_id": "wechat_mp_openid", "traits": {"phone": "phone"}, "identify_attributes": {"name": "name"}}


def test_native_and_segment_lines(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n".join([
        '{"event":"order","ts":"2025-03-01T10:00:00+08:00","phone":"13812345678","properties":{"amount":1},"id":"e1"}',
        '{"type":"track","messageId":"m1","timestamp":"2025-03-01T02:00:00.000Z","userId":"C1","event":"share","properties":{}}',
        '{"type":"identify","messageId":"m2","timestamp":"2025-03-01T02:00:00.000Z","anonymousId":"oX","traits":{"name":"张伟","phone":"+8613812345678"}}',
        '{"type":"track","messageId":"m3","timestamp":"2025-03-01T02:00:00.000Z","event":"share"}',
        '{"event":"order","ts":',
    ]) + "\n", encoding="utf-8")
    records = [r for batch in JsonlSource("ev", SETTINGS, tmp_path).read() for r in batch]
    assert isinstance(records[0], EventRecord) and records[0].dedup_key == "e1"
    assert records[1].name == "share" and records[1].identifiers[0].type == "crm_id"
    assert isinstance(records[2], PersonRecord) and records[2].attributes == {"name": "张伟"}
    assert {i.type for i in records[2].identifiers} == {"wechat_mp_openid", "phone"}
    assert isinstance(records[3], RejectedRow) and "neither userId nor anonymousId" in records[3].reason
    assert isinstance(records[4], RejectedRow) and records[4].position == "line 5"
