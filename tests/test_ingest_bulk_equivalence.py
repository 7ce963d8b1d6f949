"""The bulk paths of JSON Lines ingest write exactly what the plain path writes.

Three ways into a store: the plain path (batches with the dedup index in place), the bulk load in one
process (no event index during the load, duplicates removed and indexes built at the end) and the
parallel bulk load (worker processes parse byte ranges into staging databases). Generated files with
good and bad lines, repeated ids, consent events, Segment identify calls and blank lines must give
the same tables (ids included), quarantine rows (position, raw, reason) and summary counts, on the
first run and on a re-run.
"""

import json
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.identity.guards import IdentityGuards
from motorcade.sources.ingest import Ingestor
from motorcade.store import open_store
from motorcade.store.events import remove_duplicate_events
from motorcade_sources_jsonl import JsonlSource
from motorcade.testing import dump_database

SETTINGS = {"path": "e.jsonl", "format": "auto", "identifiers": {"phone": "phone", "crm_id": "crm_id"},
            "user_id": "crm_id", "anonymous_id": "wechat_mp_openid", "traits": {"phone": "phone"},
            "identify_attributes": {"name": "name"}}
COUNTS = ("read", "written", "events", "duplicates", "quarantined", "rejected", "identifiers_dropped",
          "people_created", "merged")


def dump(path) -> dict:
    return dump_database(path, indexes=True)


timestamps = st.one_of(
    st.builds(lambda m, d, h, mi, s, suffix: f"2025-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{suffix}",
              st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
              st.sampled_from(["", "Z", "+08:00", "-05:00", ".250+08:00", " "])),
    st.sampled_from(["2025-03-01", "2025/03/01 10:00", "1969-12-31T23:59:59Z", "0999-01-01T00:00:00", "yesterday",
                     "2025-03-01T10:60:00", "2025-03-01T10:0５:00", "", 1740000000, 1740000000123, 17.5, True,
                     "2025-03-30T02:30:00", "2025-10-26T02:30:00"]),
)
properties = st.one_of(
    st.dictionaries(st.sampled_from(["page", "channel", "车型", "n"]),
                    st.one_of(st.integers(-10**20, 10**20), st.floats(), st.text(max_size=3),
                              st.booleans(), st.none(), st.just({"x": 12345678901234567890123})), max_size=3),
    st.just([1]), st.none(),
)
iso = st.builds(lambda m, d, h, mi, s, suffix: f"2025-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{suffix}",
                st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
                st.sampled_from(["", "Z", "+08:00", "-05:00"]))
good_native = st.fixed_dictionaries({  # lines that become events (the fast paths)
    "event": st.sampled_from(["view", "share", "unsubscribe"]),
    "ts": iso,
    "phone": st.sampled_from(["13812345678", "13912345678", "+86 139 1234 5678", 13711112222]),
    "id": st.one_of(st.sampled_from(["e1", "e2"]), st.integers(0, 10**6).map(str), st.integers(0, 10**6)),
}, optional={"properties": st.dictionaries(st.sampled_from(["page", "车型", "n"]),
                                          st.one_of(st.integers(), st.text(max_size=3), st.booleans(), st.none()),
                                          max_size=2)})
native = st.fixed_dictionaries({"event": st.sampled_from(["view", "share", "unsubscribe", "subscribe", "", 7])}, optional={
    "ts": timestamps,
    "phone": st.sampled_from(["13812345678", "+86 138 1234 5679", "13800138000", "12345", "", 13911112222,
                              12345678901234567890123, 1.5, ["x"]]),
    "crm_id": st.sampled_from(["C1", "C2", " C3 ", 0, ""]),
    "properties": properties,
    "id": st.sampled_from(["e1", "e2", "e3", "", 42, 4.5, None]),
})
segment = st.fixed_dictionaries({
    "type": st.sampled_from(["track", "identify", "page"]),
    "messageId": st.sampled_from(["m1", "m2", "m3", ""]),
}, optional={
    "timestamp": timestamps,
    "userId": st.sampled_from(["C1", "C9", ""]),
    "anonymousId": st.sampled_from(["oX", "oY"]),
    "event": st.sampled_from(["share", "unsubscribe"]),
    "properties": properties,
    "traits": st.fixed_dictionaries({}, optional={"phone": st.sampled_from(["13812345678", "bad"]),
                                                  "name": st.sampled_from(["张伟", ""])}),
})
# lines the store cannot keep (issue 14): each is quarantined with its reason on every path
_GOOD = '"event":"view","ts":"2025-03-01T10:00:00Z","phone":"13812345678"'
HOSTILE_LINES = [
    '{%s,"properties":{"n":NaN}}' % _GOOD,
    '{%s,"properties":{"n":[1,-Infinity]}}' % _GOOD,
    '{%s,"properties":{"n":1e400},"id":"big"}' % _GOOD,
    '{"type":"track","messageId":"m9","userId":"C1","event":"share","timestamp":"2025-03-01T10:00:00Z",'
    '"properties":{"x":Infinity}}',
    '{"event":"view","ts":"9999-12-31T23:59:59-10:00","phone":"13812345678","id":"far"}',
    '{"event":"view","ts":"1985-01-01T00:00:00Z","phone":"13812345678"}',
    '{"event":"view","ts":253402300799000,"phone":"13812345678"}',
    '{"type":"page","messageId":"m8","anonymousId":"oX","timestamp":"9999-12-31T23:59:59-10:00"}',
    '{%s,"properties":{"n":%s}}' % (_GOOD, "[" * 150 + "]" * 150),
    '{%s,"properties":{"n":%s}}' % (_GOOD, "[" * 1100 + "]" * 1100),
    '{%s,"properties":{"n":"\udcff"}}' % _GOOD,  # written with surrogatepass: bytes that are not UTF-8
    '{%s,"properties":{"n":"\\ud800"}}' % _GOOD,  # a JSON escape of a lone surrogate
    '\ufeff{%s,"id":"bom"}' % _GOOD,
]
hostile = st.sampled_from(HOSTILE_LINES)
line = st.one_of(
    good_native.map(lambda o: json.dumps(o, ensure_ascii=False)),
    good_native.map(lambda o: json.dumps(o, ensure_ascii=False)),
    native.map(lambda o: json.dumps(o, ensure_ascii=False)),
    segment.map(lambda o: json.dumps(o, ensure_ascii=False)),
    st.sampled_from(['{"event":"view","ts":', "[1, 2]", "42", "", "   ", "\u3000", "\t", '{"event": NaN}', "\ufeff{}"]),
    hostile,
)


def ingest_three_ways(lines, batch_size, fmt="auto", end="\n"):
    """``{way: (dump, first run counts, second run counts, quarantine rows)}`` for the plain, bulk and parallel paths."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "e.jsonl").write_bytes(("\n".join(lines) + end).encode("utf-8", "surrogatepass"))
        for way, bulk, workers in (("plain", False, 0), ("bulk", True, 0), ("parallel", True, 2)):
            store = open_store(tmp / f"{way}.db")
            ingestor = Ingestor(store, guards=IdentityGuards.from_config({}), workers=workers)
            source = JsonlSource("ev", {**SETTINGS, "format": fmt, "batch_size": batch_size}, tmp)
            first = ingestor.ingest(source, bulk=bulk)
            again = ingestor.ingest(source, bulk=bulk)
            quarantine = store.conn.execute("SELECT id, position, raw, reason FROM quarantine ORDER BY id").fetchall()
            store.close()
            out[way] = (dump(tmp / f"{way}.db"), [getattr(first, c) for c in COUNTS],
                        [getattr(again, c) for c in COUNTS], quarantine)
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=1, max_size=30), st.integers(1, 7), st.sampled_from(["auto", "native"]),
       st.sampled_from(["\n", "", "\r\n"]))
def test_bulk_and_parallel_paths_write_what_the_plain_path_writes(lines, batch_size, fmt, end):
    ways = ingest_three_ways(lines, batch_size, fmt, end)
    plain = ways["plain"]
    for way in ("bulk", "parallel"):
        assert ways[way][3] == plain[3], way  # quarantine: same rows, same ids, in file order
        assert ways[way][0] == plain[0], way
        assert ways[way][1] == plain[1], way
        assert ways[way][2] == plain[2], way
    assert plain[2][2] == 0  # nothing is new the second time


def test_hostile_lines_are_quarantined_alike_on_every_path():
    good = [json.dumps({"event": "view", "ts": f"2025-03-01T10:00:{i:02d}Z", "phone": "13812345678", "id": f"g{i}"})
            for i in range(len(HOSTILE_LINES))]
    mixed = [x for pair in zip(good, HOSTILE_LINES) for x in pair]
    ways = ingest_three_ways(mixed, 3, "auto")
    plain = ways["plain"]
    for way in ("bulk", "parallel"):
        assert ways[way] == plain, way
    counts = dict(zip(COUNTS, plain[1]))
    assert counts["events"] == len(good) + 1  # the line with a byte order mark is read
    reasons = [row[3] for row in plain[3]]
    assert len(reasons) == len(HOSTILE_LINES) - 1, reasons
    for reason in reasons:
        assert any(word in reason for word in ("finite", "outside the accepted range", "nested", "UTF-8", "surrogate")), reason


def test_repeated_ids_are_removed_keeping_the_first_and_ids_close_up(tmp_path):
    lines = []
    for i in range(400):
        event_id = f"e{i % 150}" if i % 3 == 0 else f"u{i}"  # every third line repeats an earlier id
        lines.append(json.dumps({"event": "view", "ts": f"2025-03-01T10:{i % 60:02d}:00+08:00",
                                 "phone": f"1381234{i % 37:04d}", "id": event_id, "properties": {"n": i}}))
    ways = ingest_three_ways(lines, 64, "native")
    for way in ("bulk", "parallel"):
        assert ways[way][0] == ways["plain"][0], way
        assert ways[way][1] == ways["plain"][1], way
    first = dict(zip(COUNTS, ways["parallel"][1]))
    assert first["events"] == 400 - (400 // 3 + 1 - 50) and first["duplicates"] == 400 // 3 + 1 - 50
    events = [r for r in ways["parallel"][0]["events"]]
    ids = sorted(eval(r)[0] for r in events)
    assert ids == list(range(1, len(ids) + 1))  # no gaps where duplicates were


def test_a_second_bulk_run_adds_nothing(tmp_path):
    lines = [json.dumps({"event": "view", "ts": f"2025-03-01T10:00:{i % 60:02d}Z", "phone": f"1391234{i % 50:04d}",
                         "id": f"e{i}"}) for i in range(300)]
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = open_store(tmp_path / "s.db")
    ingestor = Ingestor(store, guards=IdentityGuards.from_config({}), workers=2)
    source = JsonlSource("ev", {**SETTINGS, "format": "native", "batch_size": 40}, tmp_path)
    first = ingestor.ingest(source, bulk=True)
    before = dump(tmp_path / "s.db")
    again = ingestor.ingest(source, bulk=True)
    store.close()
    assert (first.events, first.duplicates) == (300, 0)
    assert (again.events, again.duplicates, again.written) == (0, 300, 0)
    assert dump(tmp_path / "s.db") == before


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["k1", "k2", "k3", "k4", "k5"])), max_size=30),
       st.integers(0, 30))
def test_removing_duplicates_leaves_what_insert_or_ignore_leaves(rows, already):
    """Rows inserted without the unique index, then deduplicated, equal rows inserted with OR IGNORE
    under it: same rows, same ids (existing rows first, some of them with gaps)."""
    with tempfile.TemporaryDirectory() as tmp:
        stores = [open_store(Path(tmp) / "a.db"), open_store(Path(tmp) / "b.db")]
        existing = [(1, "old", i, "{}", "a", f"x{i}", None) for i in range(already)]
        new = [(1, "view", i, "{}", source, key, None) for i, (source, key) in enumerate(rows)]
        for store in stores:
            with store.transaction():
                store.insert_event_rows(existing)
                store.conn.execute("DELETE FROM events WHERE id % 7 = 3")  # gaps before the load
        a, b = stores
        with a.transaction():
            inserted_a = a.insert_event_rows(new)
        with b.bulk_event_load(defer_dedup=True) as load:
            with b.transaction():
                inserted_b = b.insert_event_rows(new)
        assert inserted_b - load.removed == inserted_a
        got = [s.conn.execute("SELECT id, name, ts, source, dedup_key FROM events ORDER BY id").fetchall() for s in stores]
        assert got[0] == got[1]
        with b.transaction():
            assert remove_duplicate_events(b.conn) == 0
        for store in stores:
            store.close()


def test_a_killed_bulk_load_is_repaired_by_the_next_run(tmp_path):
    """The state a bulk load killed mid-way leaves (indexes dropped, duplicates committed) is repaired
    by ensure_event_indexes, which every ingest runs first."""
    store = open_store(tmp_path / "s.db")
    rows = [(1, "view", i, "{}", "ev", f"k{i % 5}", None) for i in range(12)]
    for name in ("events_dedup", "events_name_ts_person", "events_person_name_ts"):
        store.conn.execute(f"DROP INDEX {name}")
    with store.transaction():
        store.insert_event_rows(rows)
    assert store.ensure_event_indexes() == 7
    assert store.conn.execute("SELECT id, ts, dedup_key FROM events ORDER BY id").fetchall() == [
        (i + 1, i, f"k{i}") for i in range(5)]
    names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")}
    assert {"events_dedup", "events_name_ts_person", "events_person_name_ts"} <= names
    assert store.ensure_event_indexes() == 0
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute("INSERT INTO events (name, ts, source, dedup_key) VALUES ('view', 1, 'ev', 'k1')")
    store.close()


def test_only_a_first_load_defers_deduplication(tmp_path, monkeypatch):
    """Deduplicating at the end moves ids down; ids already stored (held by triggers, tag runs) never move."""
    def write(name, ids):
        (tmp_path / name).write_text("".join(json.dumps(
            {"event": "view", "ts": "2025-03-01T10:00:00+08:00", "phone": "13812345678", "id": f"e{i}"}) + "\n"
            for i in ids), encoding="utf-8")

    write("a.jsonl", [1, 2, 2, 3])
    write("b.jsonl", [3, 4, 4, 5])
    store = open_store(tmp_path / "s.db")
    deferred = []
    bulk_event_load = store.bulk_event_load

    def spy(*, defer_dedup=False):
        deferred.append(defer_dedup)
        return bulk_event_load(defer_dedup=defer_dedup)

    monkeypatch.setattr(store, "bulk_event_load", spy)
    settings = {"format": "native", "identifiers": {"phone": "phone"}}
    ingestor = Ingestor(store)
    first = ingestor.ingest(JsonlSource("a", {**settings, "path": "a.jsonl"}, tmp_path), bulk=True)
    before = store.query("SELECT id, dedup_key FROM events ORDER BY id")
    second = ingestor.ingest(JsonlSource("a", {**settings, "path": "b.jsonl"}, tmp_path), bulk=True)
    assert deferred == [True, False]
    assert (first.events, first.duplicates, second.events, second.duplicates) == (3, 1, 2, 2)
    after = [tuple(r) for r in store.query("SELECT id, dedup_key FROM events ORDER BY id")]
    assert after[:3] == [tuple(r) for r in before] == [(1, "e1"), (2, "e2"), (3, "e3")]
    assert after[3:] == [(4, "e4"), (5, "e5")]
