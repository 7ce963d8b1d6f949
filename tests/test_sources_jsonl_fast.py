"""The columnar fast path of JSON Lines ingest writes exactly what the record path writes.

The jsonl connector offers ``read_columns`` (events as tuples, no record objects); the ingest core
cleans, resolves, dedups and quarantines those rows with the same rules as ``EventRecord`` objects.
Generated files with good and bad lines (broken JSON, junk and invalid phones, naive/aware/epoch
time stamps, missing names, duplicate ids, Segment calls) must give the same database and summary
either way.
"""

import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.identity.guards import IdentityGuards
from motorcade.sources.batch import properties_json
from motorcade.sources.clean import CleanError, check_json_value
from motorcade.sources.ingest import Ingestor
from motorcade.store import open_store
from motorcade.testing import dump_database
from motorcade_sources_jsonl import JsonlSource, _loads, _Reject

SETTINGS = {"path": "e.jsonl", "format": "auto", "identifiers": {"phone": "phone", "crm_id": "crm_id"},
            "user_id": "crm_id", "anonymous_id": "wechat_mp_openid", "traits": {"phone": "phone"},
            "identify_attributes": {"name": "name"}}


class RecordPath(JsonlSource):
    """The same connector without its fast path: the ingest core falls back to ``read``."""

    read_columns = None


def dump(path) -> dict:
    return dump_database(path)


optional = lambda values: st.one_of(st.none(), st.sampled_from(values))  # noqa: E731
timestamps = st.sampled_from([
    "2025-03-01T10:00:00+08:00", "2025-03-01T02:00:00Z", "2025-03-01 10:00:00", "2025-03-01", "2025/03/01 10:00",
    " 2025-03-01T10:00:00 ", 1740000000, 1740000000123, 17.5, "yesterday", "0999-01-01T00:00:00", "", True,
])
properties = st.one_of(
    st.dictionaries(st.sampled_from(["page", "channel", "车型", "n"]),
                    st.one_of(st.integers(-10**20, 10**20), st.floats(allow_nan=False), st.text(max_size=4),
                              st.booleans(), st.none()), max_size=3),
    st.just([1]), st.none(),
)
native = st.fixed_dictionaries({}, optional={
    "event": st.sampled_from(["view", "share", "unsubscribe", "subscribe", "", 7]),
    "ts": timestamps,
    "phone": st.sampled_from(["13812345678", "+86 138 1234 5679", "8613812345670", "13800138000", "12345", "", 13911112222]),
    "crm_id": st.sampled_from(["C1", "C2", " C3 ", 0, ""]),
    "properties": properties,
    "id": st.sampled_from(["e1", "e2", "e3", "", 42]),
})
segment = st.fixed_dictionaries({
    "type": st.sampled_from(["track", "identify", "page", "alias"]),
    "messageId": st.sampled_from(["m1", "m2", "m3", "m4", ""]),
}, optional={
    "timestamp": timestamps,
    "userId": st.sampled_from(["C1", "C9", ""]),
    "anonymousId": st.sampled_from(["oX", "oY"]),
    "event": st.sampled_from(["share", ""]),
    "properties": properties,
    "traits": st.fixed_dictionaries({}, optional={"phone": st.sampled_from(["13812345678", "bad"]),
                                                  "name": st.sampled_from(["张伟", ""])}),
    "name": st.sampled_from(["home", ""]),
})
line = st.one_of(
    native.map(lambda o: json.dumps(o, ensure_ascii=False)),
    segment.map(lambda o: json.dumps(o, ensure_ascii=False)),
    st.sampled_from(['{"event":"view","ts":', "[1, 2]", "42", "   ", "\u3000", '{"event": NaN}', "\ufeff{}",
                     '{"event":"view","ts":"2025-03-01T10:00:00","phone":"13812345678","properties":{"x":NaN}}']),
)


def ingest(source_cls, lines, batch_size):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "e.jsonl").write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
        store = open_store(tmp / "s.db")
        ingestor = Ingestor(store, guards=IdentityGuards.from_config({}))
        source = source_cls("ev", {**SETTINGS, "batch_size": batch_size}, tmp)
        first = ingestor.ingest(source)
        again = ingestor.ingest(source)  # idempotent: a second read of the file adds nothing
        store.close()
        counts = ("read", "written", "events", "duplicates", "quarantined", "rejected", "identifiers_dropped",
                  "people_created", "merged")
        return dump(tmp / "s.db"), [getattr(first, c) for c in counts], [getattr(again, c) for c in counts]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=1, max_size=25), st.integers(1, 8))
def test_fast_path_writes_what_the_record_path_writes(lines, batch_size):
    fast_db, fast_first, fast_again = ingest(JsonlSource, lines, batch_size)
    slow_db, slow_first, slow_again = ingest(RecordPath, lines, batch_size)
    assert fast_db == slow_db
    assert fast_first == slow_first
    assert fast_again == slow_again
    assert fast_again[2] == 0  # no event is new the second time


def test_bad_lines_go_to_quarantine_with_line_and_reason(tmp_path):
    lines = [
        '{"event":"view","ts":"2025-03-01T10:00:00+08:00","phone":"13812345678","id":"a"}',
        '{"event":"view","ts":"not a time","phone":"13812345678","id":"b"}',
        '{"event":"view","ts":"2025-03-01T10:00:00","phone":"13800138000","id":"c"}',
        '{"event":"view","ts":',
        '{"event":"view","ts":"2025-03-01T10:00:00","phone":"12345","id":"d"}',
    ]
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = open_store(tmp_path / "s.db")
    summary = Ingestor(store, guards=IdentityGuards.from_config({})).ingest(JsonlSource("ev", SETTINGS, tmp_path))
    assert (summary.events, summary.rejected, summary.identifiers_dropped) == (1, 4, 1)
    rows = store.conn.execute("SELECT position, reason FROM quarantine ORDER BY position").fetchall()
    assert rows[0] == ("line 2", "unparseable time stamp 'not a time' (expected ISO 8601)")
    assert rows[1] == ("line 3", "no usable identifier: phone is a junk value")
    assert rows[2][0] == "line 4" and rows[2][1].startswith("not valid JSON")
    assert rows[3] == ("line 5", "no usable identifier: phone did not clean")
    assert store.conn.execute("SELECT raw FROM quarantine WHERE position = 'line 2'").fetchone()[0] == lines[1]


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8,
)


def storable(value) -> bool:
    """Whether the store can keep ``value`` as strict JSON (finite numbers, valid Unicode)."""
    try:
        check_json_value(value, "", max_nesting=None)
    except CleanError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_line_parser_returns_what_the_standard_library_does_or_rejects_what_the_store_cannot_keep(value):
    text = json.dumps(value, ensure_ascii=False)
    expected = json.loads(text)
    for raw in (text, text.encode("utf-8", "surrogatepass")):
        got = _loads(raw)
        if storable(expected):
            assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
        else:  # NaN, Infinity, a lone surrogate (which, encoded, is not UTF-8 either)
            assert isinstance(got, _Reject), got


REFERENCE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=4), json_values, max_size=5)
       | st.dictionaries(st.text(max_size=4), st.one_of(st.text(), st.integers(-2**70, 2**70), st.booleans(),
                                                         st.none()), max_size=5))
def test_properties_are_stored_as_the_standard_library_writes_them(props):
    # the stored text is what content dedup keys hash: it must not depend on which encoder ran
    if not storable(props):  # NaN, Infinity, lone surrogates: refused with the reason
        with pytest.raises(CleanError):
            properties_json(props)
        return
    expected = REFERENCE(props) if props else "{}"
    assert properties_json(props) == expected


def test_ingest_makes_no_reference_cycles_per_row(tmp_path):
    # the ingest run pauses the cyclic garbage collector; that is only sound while rows make no cycles
    import gc

    good = '{{"event":"view","ts":"2025-03-01T10:00:{s:02d}+08:00","phone":"1381234{n:04d}","properties":{{"n":{n}}}}}'
    lines = [good.format(s=n % 60, n=n) for n in range(3000)]
    lines += ['{"event":"view","ts":"never","phone":"13812345678"}', '{"event":', '{"ts":1}'] * 200
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = open_store(tmp_path / "s.db")
    ingestor = Ingestor(store, guards=IdentityGuards.from_config({}))
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        summary = ingestor.ingest(JsonlSource("ev", SETTINGS, tmp_path))
        garbage = gc.collect()
    finally:
        if was:
            gc.enable()
    store.close()
    assert summary.events == 3000 and summary.rejected == 600
    assert garbage < 100, f"{garbage} objects in reference cycles after {len(lines)} rows"


def test_follow_reads_only_what_was_appended_and_waits_for_a_complete_line(tmp_path):
    line = '{{"event":"view","ts":"2025-03-01T10:00:0{n}+08:00","phone":"1381234567{n}","id":"e{n}"}}\n'
    path = tmp_path / "e.jsonl"
    path.write_text(line.format(n=1) + line.format(n=2), encoding="utf-8")
    store = open_store(tmp_path / "s.db")
    ingestor = Ingestor(store, guards=IdentityGuards.from_config({}))
    source = JsonlSource("ev", {**SETTINGS, "follow": True}, tmp_path)
    assert ingestor.ingest(source).events == 2
    offset = path.stat().st_size
    with open(path, "a", encoding="utf-8") as out:
        out.write(line.format(n=3) + '{"event":"view"}\n' + line.format(n=4)[:20])  # the writer is mid-line
    first = ingestor.ingest(source)
    assert (first.read, first.events, first.rejected) == (2, 1, 1)
    # resumed reads name rows by byte offset
    bad = store.conn.execute("SELECT position FROM quarantine").fetchone()[0]
    assert bad == f"byte {offset + len(line.format(n=3))}"
    with open(path, "a", encoding="utf-8") as out:
        out.write(line.format(n=4)[20:])
    second = ingestor.ingest(source)
    assert (second.read, second.events) == (1, 1)
    assert {r[0] for r in store.conn.execute("SELECT dedup_key FROM events")} == {"e1", "e2", "e3", "e4"}
    store.close()


def test_an_identifier_spelled_1_1_0_and_true_stays_three_identifiers(tmp_path):
    """Python's dict keys take 1, 1.0 and True for one another: the fast path must not."""
    (tmp_path / "e.jsonl").write_text("".join(
        json.dumps({"event": "view", "ts": "2025-03-01T10:00:00+08:00", "crm_id": v, "id": f"e{i}"}) + "\n"
        for i, v in enumerate([1, 1.0, True])), encoding="utf-8")
    settings = {"path": "e.jsonl", "format": "native", "identifiers": {"crm_id": "crm_id"}}
    dumps = []
    for cls, name in ((JsonlSource, "fast.db"), (RecordPath, "plain.db")):
        store = open_store(tmp_path / name)
        Ingestor(store).ingest(cls("s", settings, tmp_path), bulk=False)
        store.close()
        dumps.append(dump(tmp_path / name))
    assert dumps[0] == dumps[1]
    assert len([v for v in dumps[0]["identifiers"] if "crm_id" in v]) == 3  # three identifiers, not one
