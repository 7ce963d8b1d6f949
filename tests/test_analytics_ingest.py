"""Bulk JSON Lines ingest straight into DuckDB and ClickHouse (chdb) gives what the SQLite path gives.

The oracle is the SQLite path itself (``Ingestor.ingest``, plain batches): the same file goes into a
fresh SQLite store that way, and into a fresh store plus an engine through
:class:`motorcade.analytics.ingest.EngineIngest`. Then the operational stores must be equal table by
table but ``events`` (people, identity records and links, consents, quarantine rows with position,
raw text and reason, rejected identifier values, same ids), the engine's events must be the SQLite
store's events (same person, name, time and properties, in the same order), and the summary counts
the same, on the first run and on a re-run that adds nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.analytics import open_engine
from motorcade.analytics.ingest import INGEST_ID_BASE, EngineIngest
from motorcade.identity.guards import IdentityGuards
from motorcade.sources.ingest import Ingestor
from motorcade.store import open_store
from motorcade.testing import dump_database
import motorcade_sources_jsonl
from motorcade_sources_jsonl import JsonlSource

pytest.importorskip("duckdb")
pytest.importorskip("chdb")

SETTINGS = {"path": "e.jsonl", "format": "native", "identifiers": {"phone": "phone", "crm_id": "crm_id"},
            "user_id": "crm_id", "anonymous_id": "wechat_mp_openid", "traits": {"phone": "phone"},
            "identify_attributes": {"name": "name"}}
COUNTS = ("read", "written", "events", "duplicates", "quarantined", "rejected", "identifiers_dropped",
          "people_created", "merged", "collapsed")
ENGINES = ("duckdb:///:memory:", "chdb://")
# tables of the operational store that the engine ingest leaves alone or that hold wall-clock values
NOT_COMPARED = {"events", "sqlite_stat1", "sqlite_stat4"}
MOTORCADE = [sys.executable, "-c", "import sys; from motorcade.cli import run; sys.argv[0] = 'motorcade'; run()"]

iso = st.builds(lambda m, d, h, mi, s, suffix: f"2025-{m:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{suffix}"
                if (sep := "T") else "",
                st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
                st.sampled_from(["", "Z", "+08:00", "-05:00", ".250+08:00", " ", "+0800", "x"]))
odd_times = st.sampled_from(["2025-03-01", "2025/03/01 10:00", "1969-12-31T23:59:59Z", "0999-01-01T00:00:00",
                             "yesterday", "2025-03-01T10:60:00", "2025-03-01T10:0５:00", "", 1740000000, 1740000000123,
                             17.5, True, None, "2025-03-30T02:30:00", "9999-12-31T23:59:59-10:00",
                             "1985-01-01T00:00:00Z", "2025-03-01 10:00:00"])
properties = st.one_of(
    st.dictionaries(st.sampled_from(["page", "channel", "车型", "n", "a\"b"]),
                    st.one_of(st.integers(-10**20, 10**20), st.floats(), st.text(max_size=3), st.booleans(), st.none(),
                              st.just({"x": [1, {"y": "z"}]}), st.just({"x": 12345678901234567890123})), max_size=3),
    st.just([1]), st.none(), st.just(0), st.just(""), st.just({}),
)
native = st.fixed_dictionaries({"event": st.sampled_from(["view", "share", "unsubscribe", "subscribe", "", 7, None])},
                               optional={
    "ts": st.one_of(iso, iso, odd_times),
    "phone": st.sampled_from(["13812345678", "+86 138 1234 5679", "13800138000", "12345", "", 13911112222,
                              12345678901234567890123, 1.5, ["x"], True, None, -5]),
    "crm_id": st.sampled_from(["C1", "C2", " C3 ", 0, "", "C\u00e9"]),
    "properties": properties,
    "id": st.sampled_from(["e1", "e2", "e3", "", 42, 4.5, None, True, -0]),
})
_GOOD = '"event":"view","ts":"2025-03-01T10:00:00Z","phone":"13812345678"'
HOSTILE_LINES = [
    '{%s,"properties":{"n":NaN}}' % _GOOD,
    '{%s,"properties":{"n":[1,-Infinity]}}' % _GOOD,
    '{%s,"properties":{"n":1e400},"id":"big"}' % _GOOD,
    '{%s,"properties":{"n":1e30},"id":"e30"}' % _GOOD,
    '{"event":"view","ts":"9999-12-31T23:59:59-10:00","phone":"13812345678","id":"far"}',
    '{"event":"view","ts":"1985-01-01T00:00:00Z","phone":"13812345678"}',
    '{"event":"view","ts":253402300799000,"phone":"13812345678"}',
    '{%s,"properties":{"n":%s}}' % (_GOOD, "[" * 150 + "]" * 150),
    '{%s,"properties":{"n":%s}}' % (_GOOD, "[" * 1100 + "]" * 1100),
    '{%s,"properties":{"n":%s}}' % (_GOOD, "[" * 60 + "]" * 60),
    '{%s,"properties":{"n":"\udcff"}}' % _GOOD,  # written with surrogatepass: bytes that are not UTF-8
    '{%s,"properties":{"n":"\\ud800"}}' % _GOOD,  # a JSON escape of a lone surrogate
    '{%s,"properties":{"n":"\\ud83d\\ude00"}}' % _GOOD,  # an escaped surrogate pair (fine)
    '\ufeff{%s,"id":"bom"}' % _GOOD,
    '{%s,"event":"share","id":"dupkey"}' % _GOOD,  # a duplicate key: the last one counts (Python's json)
    '{%s,"\\u0065vent":"share","id":"escdupkey"}' % _GOOD,  # the same, the second spelt with an escape
    '{%s,"x":1,"x":2,"id":"dupunread"}' % _GOOD,  # a repeated key no field reads
    '{%s,"properties":{"a":1,"a":2},"id":"dupprop"}' % _GOOD,
    '{%s,"properties":{"a":{"b":1,"b":2}},"id":"dupdeep"}' % _GOOD,
    '{%s,"properties":{"a":[{"b":1,"b":2}]},"id":"dupinarray"}' % _GOOD,
    '{%s,}' % _GOOD,  # a trailing comma
    '{%s} // a comment' % _GOOD,
    '{%s}{"event":"view"}' % _GOOD,
    '  {%s,"id":"indented"}' % _GOOD,
    '{%s,"id":"crlf"}\r' % _GOOD,
    '{"event":"view","ts":"2025-03-01T10:00:00Z","phone":"13812345678","id":12345678901234567890}',
    '{"event":"view","ts":"2025-03-01T10:00:00Z","crm_id":"C9","id":1.0}',  # JSON text of 1.0 is "1" on ClickHouse
    '{"event":"view","ts":"2025-03-01T10:00:00Z","crm_id":7.0,"id":-0}',
    '{"event":"view","ts":"2025-03-01T10:00:00Z","phone":"13812345678","id":"esc\\"aped\\n"}',
    '{"event":"vi\\u0065w","ts":"2025-03-01T10:00:00\\u005a","phone":"1381234567\\u0038","id":"u-escapes"}',
    '{"event":"view","ts":"2025-03-01T10:00:00Z","phone":"13812345678","properties":{"t":"\\t\\u0001"}}',
    '{"event":"view","ts":"2025-03-01T10:00:00Z","crm_id":"C1","properties":{"f":1.0,"g":-0.0,"h":0.1}}',
    '{"event":"view","ts":"2025-03-01T10:00:00Z","phone":"13812345678","properties":{"deep":{"a":[{"b":null}]}}}',
    '{"event":"view","ts":"2025-03-01T10:00:00Z","phone":"001","crm_id":""}',
    '{"event":"view","ts":"2025-03-01T10:00:00Z"}',
    '{"event":"view","ts":"2025-03-01T10:00:00+08:00","phone":"13812345678","properties":"page"}',
    '[1, 2]', '42', '', '   ', '\u3000', '\t', '{"event": NaN}', '\ufeff{}', '{"event":"view","ts":',
]
line = st.one_of(native.map(lambda o: json.dumps(o, ensure_ascii=False)),
                 native.map(lambda o: json.dumps(o)), st.sampled_from(HOSTILE_LINES))


def run_paths(lines: list[str], end: str = "\n", fmt: str = "native", engines=ENGINES, block: int = 1 << 26) -> dict:
    """``{path: (store dump, events, first counts, second counts)}`` for the SQLite path and each engine."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "e.jsonl").write_bytes(("\n".join(lines) + end).encode("utf-8", "surrogatepass"))
        for way in ("sqlite", *engines):
            db = tmp / f"{way.partition(':')[0]}.db"
            store = open_store(db)
            ingestor = Ingestor(store, guards=IdentityGuards.from_config({}), workers=0)
            source = JsonlSource("ev", {**SETTINGS, "format": fmt, "batch_size": 7}, tmp)
            engine = None
            if way == "sqlite":
                first, again = ingestor.ingest(source, bulk=False), ingestor.ingest(source, bulk=False)
                events = [tuple(r) for r in store.conn.execute(
                    "SELECT id, person_id, name, ts, properties FROM events ORDER BY id")]
            else:
                engine = open_engine(way)
                runner = EngineIngest(ingestor, engine, block=block)
                first, again = runner.ingest(source), runner.ingest(source)
                events = [(i - INGEST_ID_BASE, *rest) for i, *rest in engine.query(
                    "SELECT id, person_id, name, ts, properties FROM events ORDER BY id")]
                engine.close()
            store.close()
            dump = {k: v for k, v in dump_database(db).items() if k not in NOT_COMPARED}
            out[way] = (dump, [(i, p, n, t, json.loads(props)) for i, p, n, t, props in events],
                        {c: getattr(first, c) for c in COUNTS}, {c: getattr(again, c) for c in COUNTS})
    return out


def assert_same(out: dict) -> None:
    sqlite = out["sqlite"]
    for way in out:
        if way == "sqlite":
            continue
        for table in sqlite[0]:
            assert out[way][0][table] == sqlite[0][table], (way, table)
        assert out[way][1] == sqlite[1], way
        assert out[way][2] == sqlite[2], (way, "first run")
        assert out[way][3] == sqlite[3], (way, "second run")
    assert sqlite[3]["events"] == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line, min_size=1, max_size=25), st.sampled_from(["\n", "", "\r\n"]),
       st.sampled_from([1 << 26, 1, 200, 1000]))
def test_engine_ingest_writes_what_the_sqlite_path_writes(lines, end, block):
    """``block``: bytes per block of lines (1: a line per block)."""
    assert_same(run_paths(lines, end, block=block))


def test_hostile_lines_are_quarantined_alike_on_sqlite_duckdb_and_clickhouse():
    good = [json.dumps({"event": "view", "ts": f"2025-03-01T10:00:{i:02d}Z", "phone": "13812345678", "id": f"g{i}"})
            for i in range(len(HOSTILE_LINES))]
    mixed = [x for pair in zip(good, HOSTILE_LINES) for x in pair]
    out = run_paths(mixed)
    assert_same(out)
    quarantine = out["sqlite"][0]["quarantine"]
    assert len(quarantine) >= 20, quarantine  # the hostile lines really are refused, one row each
    reasons = " ".join(quarantine)
    for word in ("finite", "outside the accepted range", "nested", "UTF-8", "surrogate", "not valid JSON",
                 "must be an object", "no usable identifier", "missing identifiers"):
        assert word in reasons, word


def test_other_line_shapes_take_the_python_path_with_the_same_result():
    lines = ['{"type":"identify","messageId":"m1","userId":"C1","timestamp":"2025-03-01T10:00:00Z",'
             '"traits":{"phone":"13812345678","name":"张伟"}}',
             '{"type":"track","messageId":"m2","userId":"C1","event":"share","timestamp":"2025-03-01T10:00:00Z"}',
             '{"event":"view","ts":"2025-03-01T10:00:00Z","phone":"13812345678","id":"n1"}', "not json"]
    assert_same(run_paths(lines, fmt="auto"))


def test_a_large_file_is_taken_by_the_engine_and_matches(tmp_path):
    """Many people, repeated ids, consent events, a few odd lines: the bulk of the rows never go through
    Python per row (the engine keeps them), and the result is still the SQLite path's."""
    lines = []
    for i in range(3000):
        lines.append(json.dumps({"event": "unsubscribe" if i % 500 == 7 else "view",
                                 "ts": f"2025-0{1 + i % 9}-1{i % 10}T1{i % 10}:{i % 60:02d}:{(i * 7) % 60:02d}+08:00",
                                 "phone": f"1381234{i % 211:04d}", "crm_id": f"C{i % 97}" if i % 3 else "",
                                 "id": f"e{i % 2900}", "properties": {"n": i, "page": "home", "channel": "app"}}))
    lines[100] = "oops"
    lines[200] = json.dumps({"event": "view", "ts": 1740000000, "phone": "13812340001"})
    out = run_paths(lines, block=50_000)  # several blocks, boundaries within the SQLite path's batches
    assert_same(out)
    assert out["sqlite"][2]["events"] == 2900 - 1


def test_identifier_sets_of_earlier_blocks_count_their_dropped_values_and_consents_as_the_sqlite_path():
    """A block sends Python only the identifier sets it meets first; a set met again in a later block still
    counts its values that did not clean per event, records them, and its consent events reach its person."""
    lines = []
    for i in range(40):
        person = i % 4  # each person's set recurs in many blocks
        lines.append(json.dumps({"event": "unsubscribe" if i in (21, 34) else "view",
                                 "ts": f"2025-03-01T10:{i:02d}:00Z", "phone": "12345" if person < 2 else "13812345678",
                                 "crm_id": f"C{person}", "id": f"e{i}", "properties": {"channel": "sms"}}))
    out = run_paths(lines, block=400)  # about two lines per block
    assert_same(out)
    assert out["sqlite"][2]["identifiers_dropped"] == 20
    assert len(out["sqlite"][0]["consents"]) == 2


def test_the_mirror_keeps_the_events_the_engine_ingested(tmp_path):
    lines = [json.dumps({"event": "view", "ts": f"2025-03-01T10:00:{i:02d}Z", "phone": f"1381234{i:04d}",
                         "id": f"e{i}"}) for i in range(30)]
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for url in ENGINES:
        store = open_store(tmp_path / f"{url[:4]}.db")
        ingestor = Ingestor(store, guards=IdentityGuards.from_config({}))
        engine = open_engine(url)
        try:
            EngineIngest(ingestor, engine).ingest(JsonlSource("ev", SETTINGS, tmp_path))
            ingestor.ingest_records("crm", [[]])  # the store changes; the mirror runs
            engine.mirror(store)
            engine.mirror(store, incremental=False)
            assert engine.query("SELECT count(*) FROM events")[0][0] == 30, url
        finally:
            engine.close()
            store.close()


CONFIG = """
[project]
name = "p"
database = "motorcade.db"
{analytics}

[sources.ev]
type = "jsonl"
path = "events.jsonl"
format = "native"
identifiers = {{ phone = "phone", crm_id = "crm_id" }}
{into}
"""
RULES = """
segment sharers "分享达人" {
  where count(share) in last 90 days >= 2 and did view in last 30 days
}
segment big_orders "大单" {
  where sum(order.amount) in last 1 years >= 500000
}
"""


def _project(folder: Path, analytics: str, into: str, lines: list[str]) -> Path:
    folder.mkdir()
    (folder / "motorcade.toml").write_text(CONFIG.format(analytics=analytics, into=into), encoding="utf-8")
    (folder / "rules").mkdir()
    (folder / "rules" / "s.mc").write_text(RULES, encoding="utf-8")
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("url", ["duckdb:///analytics.duckdb", "chdb:///analytics-ch"])
def test_motorcade_ingest_routes_a_source_into_the_engine_and_segments_agree(tmp_path, url, motorcade_pm,
                                                                             register_plugin):
    """`ingest_into = "analytics"`: `motorcade ingest` loads the file into the engine, the operational store
    gets people, identities and quarantine but no events, and `segments compute` on the engine gives the
    members the same file gives ingested into SQLite."""
    import random

    from motorcade.project import Project

    register_plugin(motorcade_sources_jsonl, name="jsonl")
    from motorcade.segments.compute import compute_segments

    rnd = random.Random(3)
    lines = []
    for i in range(600):
        name = rnd.choice(["share", "view", "order", "share"])
        props = {"amount": rnd.choice([100000, 300000, 600000])} if name == "order" else {"page": "首页"}
        lines.append(json.dumps({"event": name, "ts": f"2026-{rnd.randint(6, 11):02d}-{rnd.randint(1, 28):02d}T10:00:00+08:00",
                                 "phone": f"1381234{rnd.randrange(80):04d}", "id": f"e{i}", "properties": props},
                                ensure_ascii=False))
    lines.append("not json")
    as_of = "2026-11-30T00:00:00+08:00"
    members: dict[tuple[str, int], dict] = {}
    for way, analytics, into in (("sqlite", "", ""), ("engine", f'analytics = "{url}"', 'ingest_into = "analytics"')):
        folder = _project(tmp_path / way, analytics, into, lines[:300])
        # then the whole file again: its first 300 lines are in already, and the rules' event properties are typed
        # columns on the engine by now (the first compute made them): the new events must fill them too
        for run, upto in enumerate((300, 601)):
            (folder / "events.jsonl").write_text("\n".join(lines[:upto]) + "\n", encoding="utf-8")
            # a process of its own, as an operator runs it (chdb keeps one data folder per process)
            result = subprocess.run([*MOTORCADE, "--project", str(folder), "ingest", "ev"], capture_output=True,
                                    text=True, env={**os.environ, "MOTORCADE_LOAD_PLUGINS": "jsonl"})
            assert result.returncode == 0, result.stderr
            assert f"read {upto}" in result.stdout, result.stdout
            project = Project(folder, plugin_manager=motorcade_pm)
            try:
                stored = project.store.query("SELECT count(*) FROM events")[0][0]
                assert stored == (min(upto, 600) if way == "sqlite" else 0)
                assert project.store.query("SELECT count(*) FROM quarantine")[0][0] == run
                compute_segments(project, as_of=as_of)
                members[way, run] = {name: sorted(r[0] for r in project.store.query(
                    "SELECT person_id FROM segment_members WHERE segment = ?", (name,)))
                    for name in ("sharers", "big_orders")}
                if way == "engine":
                    assert project.analytics.query("SELECT count(*) FROM events")[0][0] == min(upto, 600)
            finally:
                project.close()
    for run in (0, 1):
        assert members["engine", run] == members["sqlite", run], run
    assert members["sqlite", 0]["big_orders"] != members["sqlite", 1]["big_orders"]  # the second file counts
    assert members["sqlite", 1]["sharers"] and members["sqlite", 1]["big_orders"]


def test_ingest_into_analytics_without_an_engine_is_a_configuration_error(tmp_path, motorcade_pm, register_plugin):
    from click.testing import CliRunner

    import motorcade_sources_jsonl

    from motorcade.cli import build_cli

    register_plugin(motorcade_sources_jsonl, name="jsonl")
    cli = build_cli()

    folder = _project(tmp_path / "p", "", 'ingest_into = "analytics"', ['{"event":"view"}'])
    result = CliRunner().invoke(cli, ["--project", str(folder), "ingest", "ev"])
    assert result.exit_code != 0
    assert "no analytics engine" in str(result.exception) and "[project] analytics" in result.exception.hint


@pytest.mark.parametrize("url", ["duckdb:///analytics.duckdb", "chdb:///analytics-ch"])
def test_store_copy_moves_a_projects_analytical_data_into_an_engine_verified(tmp_path, url, motorcade_pm,
                                                                             register_plugin):
    """`motorcade store copy --to duckdb:///... | chdb:///...`: the existing project's events (ingested into
    SQLite) are copied into the engine; the command checks row counts and every segment's members."""
    import motorcade_sources_jsonl
    from click.testing import CliRunner

    from motorcade.analytics import open_engine
    from motorcade.cli import build_cli

    register_plugin(motorcade_sources_jsonl, name="jsonl")
    lines = [json.dumps({"event": ["share", "view", "order"][i % 3],
                         "ts": f"2026-11-{1 + i % 28:02d}T10:{i % 60:02d}:00+08:00", "phone": f"1381234{i % 50:04d}",
                         "id": f"e{i}", "properties": {"amount": 100000 * (i % 7)}}) for i in range(900)]
    folder = _project(tmp_path / "p", "", "", lines)
    runner = CliRunner()
    assert runner.invoke(build_cli(), ["--project", str(folder), "ingest", "ev"]).exit_code == 0
    result = runner.invoke(build_cli(), ["--project", str(folder), "store", "copy", "--to", url,
                                         "--as-of", "2026-11-30T00:00:00+08:00"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from motorcade.analytics.tables import TABLE_NAMES

    assert f"verify: row counts of {len(TABLE_NAMES)} tables equal" in result.output
    assert "segment sharers:" in result.output and "in only one" not in result.output
    assert "verify: OK" in result.output
    engine = open_engine(url, base_dir=folder)
    try:
        assert engine.query("SELECT count(*) FROM events")[0][0] == 900
    finally:
        engine.close()


def _event_people(store, engine) -> list[tuple[int, int]]:
    """``(event id, person id)`` of every event, from the store (``engine`` None) or the engine (ids as the
    store numbers them)."""
    if engine is None:
        return [tuple(r) for r in store.query("SELECT id, person_id FROM events ORDER BY id")]
    return [(i - INGEST_ID_BASE, p) for i, p in engine.query("SELECT id, person_id FROM events ORDER BY id")]


def test_ingested_events_follow_a_later_merge_as_the_stores_events_do(tmp_path):
    """A CRM record ingested later joins two people the events named apart: on SQLite settle_identity
    moves their events; in the engine the next mirror moves the ingested events the same way."""
    from motorcade.sources.base import PersonRecord, RawIdentifier

    lines = [json.dumps({"event": "view", "ts": f"2025-03-01T10:00:{i:02d}Z", "phone": f"1381234{i % 4:04d}",
                         "id": f"e{i}"}) for i in range(40)]
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    crm = [[PersonRecord(source_key="K1", identifiers=(RawIdentifier("phone", "13812340000"),
                                                       RawIdentifier("phone", "13812340001")))]]
    people = {}
    for way in ("sqlite", *ENGINES):
        store = open_store(tmp_path / f"{way.partition(':')[0]}.db")
        ingestor = Ingestor(store, guards=IdentityGuards.from_config({}))
        engine = None
        try:
            if way == "sqlite":
                ingestor.ingest(JsonlSource("ev", SETTINGS, tmp_path))
            else:
                engine = open_engine(way)
                EngineIngest(ingestor, engine).ingest(JsonlSource("ev", SETTINGS, tmp_path))
            ingestor.ingest_records("crm", crm)
            assert store.query("SELECT count(*) FROM person_merges")[0][0] == 1
            if engine is not None:
                engine.mirror(store)
            people[way] = _event_people(store, engine)
        finally:
            if engine is not None:
                engine.close()
            store.close()
    assert len({p for _, p in people["sqlite"]}) == 3
    for way in ENGINES:
        assert people[way] == people["sqlite"], way


def test_ingested_events_follow_a_merge_undone_in_the_same_run_as_the_stores_events_do(tmp_path):
    """Within one run a shared phone first merges two CRM customers (block 4) and, met on a third record,
    goes over its limit, is flagged and the merge undone (block 5). The merge log ends as it began, so the
    identity fingerprint is the one the previous run left; the event of block 4, written to the engine with
    the merged person, must still go back to its own person, as settle_identity moves the store's."""
    guards = {"phone": {"max_records_per_source": 2}}
    shared = "13912345678"
    first = [{"event": "view", "ts": "2025-03-01T09:00:00Z", "crm_id": "C0", "id": "e0"}]
    second = [{"event": "view", "ts": f"2025-03-01T10:00:0{i}Z", "id": f"e{i}", **ids} for i, ids in enumerate([
        {"crm_id": "C1"}, {"crm_id": "C2"}, {"crm_id": "C1", "phone": shared}, {"crm_id": "C2", "phone": shared},
        {"crm_id": "C3", "phone": shared}], start=1)]
    settings = {**SETTINGS, "batch_size": 1}
    people = {}
    for way in ("sqlite", *ENGINES):
        folder = tmp_path / way.partition(":")[0]
        folder.mkdir()
        store = open_store(folder / "s.db")
        ingestor = Ingestor(store, guards=IdentityGuards.from_config(guards))
        engine = None if way == "sqlite" else open_engine(way)
        try:
            for lines in (first, second):  # the first run leaves its identity fingerprint in the engine
                (folder / "e.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
                source = JsonlSource("ev", settings, folder)
                if engine is None:
                    ingestor.ingest(source)
                else:
                    EngineIngest(ingestor, engine, block=1).ingest(source)
            assert store.query("SELECT count(*) FROM person_merges")[0][0] == 0
            assert store.query("SELECT count(*) FROM identifiers WHERE flagged = 1")[0][0] == 1
            people[way] = _event_people(store, engine)
        finally:
            if engine is not None:
                engine.close()
            store.close()
    assert len({p for _, p in people["sqlite"]}) == 4  # C0, C1, C2 and C3 apart
    for way in ENGINES:
        assert people[way] == people["sqlite"], way
