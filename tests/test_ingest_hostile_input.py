"""Hostile input never stops ingest nor poisons the store (issue 14 items 2, 4, 5; issue 13 item 9).

Each bad row goes to quarantine on its own with the reason, the good rows around it are stored, every
JSON text the store holds is strict JSON, and `tags compute`, `segments compute` and `run` still work
afterwards.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import zoneinfo

import pytest

import motorcade_sources_csv
import motorcade_sources_jsonl
from motorcade.activation.testing import memory_channel_plugin
from motorcade.cli import main
from motorcade.project import Project
from motorcade.sources.ingest import ingest, open_source, project_ingestor
from motorcade.store import codec

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
TAG_PLUGINS = ("value", "activity", "intent", "lifecycle", "quadrant")

CONFIG = """
[project]
name = "hostile"
timezone = "Asia/Shanghai"

[sources.crm]
type = "csv"
path = "crm.csv"
encoding = "CRM_ENCODING"
[sources.crm.person]
key = "no"
identifiers = { crm_id = "no", phone = "mobile" }
attributes = { name = "name", visits = { column = "visits", type = "int" }, score = { column = "score", type = "float" }, seen = { column = "seen", type = "datetime" } }
[sources.crm.event]
name = "order"
ts = "ordered"
properties = { amount = { column = "amount", type = "float" } }

[sources.ev]
type = "jsonl"
path = "ev.jsonl"
format = "native"
identifiers = { phone = "phone", crm_id = "crm_id" }
EV_EXTRA
"""

CSV_HEADER = "no,name,mobile,visits,score,seen,ordered,amount\n"


def csv_row(no: str, *, visits="3", score="1.5", seen="2024-01-02 10:00:00", ordered="2025-03-01 10:00:00",
            amount="12.5", name="客户") -> str:
    return f"{no},{name}{no},1381234{int(no[1:]):04d},{visits},{score},{seen},{ordered},{amount}\n"


def rules() -> str:
    at = (dt.datetime.now(SH) - dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M")
    return f"""
segment spenders {{ where sum(order.amount) in last 36500 days > 10 }}
segment viewers {{ where count(view where n > 1) in last 36500 days >= 1 }}
campaign notice {{ audience spenders  schedule at {at}  via memory template "n"  quiet hours off }}
trigger viewed {{ on view  reenter always  via memory template "n"  quiet hours off }}
"""


@pytest.fixture
def make_project(tmp_path, register_plugin):
    register_plugin(motorcade_sources_csv, name="csv")
    register_plugin(motorcade_sources_jsonl, name="jsonl")
    register_plugin(memory_channel_plugin("memory"), name="memory")
    for name in TAG_PLUGINS:
        module = pytest.importorskip(f"motorcade_tags_{name}")
        register_plugin(importlib.reload(module) and module, name=name)
    opened = []

    def make(crm: bytes, ev: bytes, *, encoding: str = "utf-8-sig", ev_extra: str = "", name: str = "p") -> Project:
        d = tmp_path / name
        (d / "rules").mkdir(parents=True)
        (d / "templates").mkdir()
        (d / "motorcade.toml").write_text(
            CONFIG.replace("CRM_ENCODING", encoding).replace("EV_EXTRA", ev_extra), encoding="utf-8")
        (d / "rules" / "main.mc").write_text(rules(), encoding="utf-8")
        (d / "templates" / "n.txt").write_text("{{ person.name }}", encoding="utf-8")
        (d / "crm.csv").write_bytes(crm)
        (d / "ev.jsonl").write_bytes(ev)
        project = Project(d)
        opened.append(project)
        return project

    yield make
    for project in opened:
        project.close()


def ingest_both(project):
    ingestor = project_ingestor(project)
    return {name: ingest(project, name, ingestor=ingestor) for name in ("crm", "ev")}


def quarantine(project, source=None) -> dict[str, tuple[str, str]]:
    return {q.position: (q.reason, q.raw) for q in project.store.list_quarantine(source=source)}


def assert_store_json_is_strict(project) -> None:
    conn = project.store.conn
    for table, column in (("events", "properties"), ("people", "attributes"), ("identity_records", "attributes")):
        try:
            bad = conn.execute(f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL AND NOT json_valid({column})"
                               ).fetchone()[0]
        except Exception as exc:  # a table or column this store does not have
            if "no such" in str(exc):
                continue
            raise
        assert bad == 0, f"{table}.{column} holds invalid JSON"
    for (text,) in conn.execute("SELECT properties FROM events"):
        value = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-finite {c} stored"))
        assert value is not None


def assert_downstream_commands_work(project, capsys) -> None:
    for args in (["tags", "compute"], ["segments", "compute"], ["run", "--once"]):
        code = main(["--project", str(project.directory), *args])
        out = capsys.readouterr()
        assert code == 0, (args, out.out, out.err)


# -- item 2: NaN and Infinity ------------------------------------------------------------------------

def test_non_finite_numbers_are_quarantined_and_every_stored_json_is_strict(make_project, capsys):
    crm = (CSV_HEADER + csv_row("C1") + csv_row("C2", amount="nan") + csv_row("C3", score="inf")
           + csv_row("C4", amount="-Infinity") + csv_row("C5")).encode()
    ev = "".join(line + "\n" for line in [
        '{"event":"view","ts":"2025-03-01T10:00:00+08:00","phone":"13812340001","properties":{"n":2}}',
        '{"event":"view","ts":"2025-03-01T10:00:01+08:00","phone":"13812340001","properties":{"n":NaN}}',
        '{"event":"view","ts":"2025-03-01T10:00:02+08:00","phone":"13812340001","properties":{"n":Infinity}}',
        '{"event":"view","ts":"2025-03-01T10:00:03+08:00","phone":"13812340001","properties":{"n":{"x":-Infinity}}}',
        '{"event":"view","ts":"2025-03-01T10:00:04+08:00","phone":"13812340001","properties":{"n":1e400}}',
        '{"event":"view","ts":"2025-03-01T10:00:05+08:00","phone":"13812340005","properties":{"n":3}}',
    ]).encode()
    project = make_project(crm, ev)
    summaries = ingest_both(project)
    assert (summaries["crm"].events, summaries["crm"].rejected) == (2, 3)
    assert (summaries["ev"].events, summaries["ev"].rejected) == (2, 4)
    crm_q, ev_q = quarantine(project, "crm"), quarantine(project, "ev")
    assert set(crm_q) == {"line 3", "line 4", "line 5"} and set(ev_q) == {"line 2", "line 3", "line 4", "line 5"}
    for reason, _raw in [*crm_q.values(), *ev_q.values()]:
        assert "finite" in reason, reason
    assert "amount" in crm_q["line 3"][0] and "score" in crm_q["line 4"][0]
    assert_store_json_is_strict(project)
    assert_downstream_commands_work(project, capsys)


def test_the_store_encoders_refuse_non_finite_numbers():
    from motorcade.sources.batch import properties_json
    from motorcade.sources.clean import CleanError
    from motorcade.store.identity import fast_dumps

    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            codec.dumps({"x": value})
        with pytest.raises(ValueError):
            fast_dumps({"x": [value]})
        with pytest.raises(CleanError, match="finite"):
            properties_json({"x": value})
        with pytest.raises(CleanError, match="finite"):
            properties_json({"x": {"y": [1, value]}})


# -- item 4: event times outside the sane range --------------------------------------------------------

def test_event_times_outside_the_sane_range_are_quarantined(make_project, capsys):
    far = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)).isoformat(timespec="seconds")
    crm = (CSV_HEADER + csv_row("C1") + csv_row("C2", ordered="9999-12-31T23:59:59-10:00")
           + csv_row("C3", seen="9999-12-31T23:59:59-10:00") + csv_row("C4", ordered="1989-12-31 23:59:59")
           + csv_row("C5")).encode()
    ev = "".join(line + "\n" for line in [
        '{"event":"view","ts":"9999-12-31T23:59:59-10:00","phone":"13812340001","properties":{"n":2}}',
        '{"event":"view","ts":"2025-03-01T10:00:00+08:00","phone":"13812340001","properties":{"n":2}}',
        '{"event":"view","ts":"1985-06-01T10:00:00Z","phone":"13812340001","properties":{"n":2}}',
        json.dumps({"event": "view", "ts": far, "phone": "13812340001"}),
        '{"event":"view","ts":253402300799000,"phone":"13812340001"}',
    ]).encode()
    project = make_project(crm, ev)
    summaries = ingest_both(project)
    assert (summaries["crm"].events, summaries["crm"].rejected) == (2, 3)
    assert (summaries["ev"].events, summaries["ev"].rejected) == (1, 4)
    crm_q, ev_q = quarantine(project, "crm"), quarantine(project, "ev")
    assert set(crm_q) == {"line 3", "line 4", "line 5"} and set(ev_q) == {"line 1", "line 3", "line 4", "line 5"}
    for position in ("line 3", "line 5"):
        assert "outside the accepted range" in crm_q[position][0], crm_q[position]
    assert "seen" in crm_q["line 4"][0]
    for reason, _raw in ev_q.values():
        assert "outside the accepted range" in reason, reason
    assert_downstream_commands_work(project, capsys)
    # the range is a setting of the source
    wide = make_project(crm, ev, ev_extra='min_event_time = "1980-01-01"\nmax_event_days_ahead = 5', name="wide")
    assert ingest_both(wide)["ev"].events == 3


def test_a_bad_range_setting_is_a_config_error(make_project):
    from motorcade.errors import MotorcadeError

    project = make_project((CSV_HEADER + csv_row("C1")).encode(), b"", ev_extra='min_event_time = "yesterday"')
    with pytest.raises(MotorcadeError, match="min_event_time"):
        ingest(project, "ev")


# -- item 5: one bad row, one quarantined row -----------------------------------------------------------

def test_csv_bad_rows_are_quarantined_one_by_one(make_project, capsys):
    crm = b"".join([
        CSV_HEADER.encode(),
        csv_row("C1").encode(),
        csv_row("C2", name="\xff\xfe").encode("latin-1"),              # invalid UTF-8
        csv_row("C3", visits="inf").encode(),
        csv_row("C4", visits="nan").encode(),
        csv_row("C5", visits="1e400").encode(),
        csv_row("C6", name='"unterminated').encode(),                   # an opening quote never closed
        csv_row("C7").encode(),
        csv_row("C8", name='"a\nmulti-line, quoted"').encode(),        # a real multi-line field (lines 9-10)
        csv_row("C9").encode(),
    ])
    project = make_project(crm, b"")
    summary = ingest(project, "crm")
    q = quarantine(project, "crm")
    assert set(q) == {"line 3", "line 4", "line 5", "line 6", "line 7"}, q
    assert "UTF-8" in q["line 3"][0] and "\\xff" in q["line 3"][1]
    for position in ("line 4", "line 5", "line 6"):
        assert "visits" in q[position][0] and "whole number" in q[position][0], q[position]
    assert q["line 7"][1].startswith("C6,")
    assert summary.events == 4 and summary.rejected == 5
    store = project.store
    assert all(store.person_of_identifier("crm_id", c) for c in ("C1", "C7", "C8", "C9"))
    assert store.get_person(store.person_of_identifier("crm_id", "C8")).attributes["name"] == "a\nmulti-line, quotedC8"
    assert_downstream_commands_work(project, capsys)


def test_a_quoted_line_break_in_a_row_with_a_wrong_field_count_is_quarantined_whole(make_project):
    """Its quote is closed: nothing was swallowed, so its second line is not read again as a row."""
    two_lines = 'C2,"a\nC9",13812340002,3,1.5,2024-01-02 10:00:00,2025-03-01 10:00:00,12.5,extra\n'
    crm = (CSV_HEADER + csv_row("C1") + two_lines + csv_row("C3")).encode()
    project = make_project(crm, b"")
    summary = ingest(project, "crm")
    q = quarantine(project, "crm")
    assert list(q) == ["line 3"] and q["line 3"][0] == "expected 8 fields, found 9"
    assert summary.events == 2
    assert {r[0] for r in project.store.conn.execute("SELECT value FROM identifiers WHERE type = 'crm_id'")} == {
        "C1", "C3"}


def test_retrying_an_undecodable_row_does_not_store_its_shown_bytes(make_project):
    crm = CSV_HEADER.encode() + csv_row("C1").encode() + csv_row("C2", name="\xff").encode("latin-1")
    project = make_project(crm, b"")
    ingest(project, "crm")
    rows = project.store.list_quarantine(source="crm")
    assert [r.position for r in rows] == ["line 3"] and "\\xff" in rows[0].raw
    retried, fixed = project_ingestor(project).retry(open_source(project, "crm"), rows)
    assert (retried, fixed) == (1, 0)
    assert project.store.person_of_identifier("crm_id", "C2") is None
    assert "UTF-8" in project.store.list_quarantine(source="crm")[0].reason


def test_a_csv_with_a_byte_order_mark_is_read_with_plain_utf8(make_project):
    project = make_project(b"\xef\xbb\xbf" + (CSV_HEADER + csv_row("C1")).encode(), b"", encoding="utf-8")
    assert ingest(project, "crm").events == 1


def test_jsonl_bad_lines_are_quarantined_one_by_one(make_project, capsys):
    deep = '{"event":"view","ts":"2025-03-01T10:00:00Z","phone":"13812340001","properties":{"n":' + "[" * 1200 + "]" * 1200 + "}}"
    half = '{"event":"view","ts":"2025-03-01T10:00:00Z","phone":"13812340001","properties":{"n":' + "[" * 500 + "]" * 500 + "}}"
    lines = [
        b'\xef\xbb\xbf{"event":"view","ts":"2025-03-01T10:00:00+08:00","phone":"13812340001","properties":{"n":2}}',
        deep.encode(),
        half.encode(),
        b'{"event":"view","ts":"2025-03-01T10:00:01+08:00","phone":"13812340001","properties":{"n":"\xff"}}',
        b'{"event":"view","ts":"2025-03-01T10:00:02+08:00","phone":"13812340001","properties":{"n":"\\ud800"}}',
        b'{"event":"view","ts":"2025-03-01T10:00:03+08:00","phone":"13812340002","properties":{"n":5}}',
    ]
    for bulk in (False, True):
        project = make_project(b"no,name,mobile,visits,score,seen,ordered,amount\n", b"\n".join(lines) + b"\n",
                               name=f"p{bulk}")
        summary = project_ingestor(project).ingest(open_source(project, "ev"), bulk=bulk)
        q = quarantine(project, "ev")
        assert set(q) == {"line 2", "line 3", "line 4", "line 5"}, q
        assert "nested" in q["line 2"][0] and "nested" in q["line 3"][0]
        assert "UTF-8" in q["line 4"][0] and "\\xff" in q["line 4"][1]
        assert "surrogate" in q["line 5"][0]
        assert summary.events == 2
        assert_store_json_is_strict(project)
        assert_downstream_commands_work(project, capsys)


# -- issue 13 item 9: identical rows collapse, and the operator is told ---------------------------------

def test_identical_rows_of_a_first_load_are_reported_as_collapsed(make_project, capsys):
    crm = (CSV_HEADER + csv_row("C1") + csv_row("C2") + csv_row("C2") + csv_row("C3") + csv_row("C3")
           + csv_row("C3")).encode()
    project = make_project(crm, b"")
    first = main(["--project", str(project.directory), "ingest", "crm", "-q"])
    out = capsys.readouterr().out
    assert first == 0
    assert "warning: 3 rows repeated an event read earlier in this first load" in out and "dedup_key" in out
    assert main(["--project", str(project.directory), "ingest", "crm", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)[0]
    assert again["collapsed"] == 0 and again["duplicates"] == 6
    summary = ingest(project, "crm")  # a re-read is not a first load: no warning
    assert (summary.events, summary.collapsed) == (0, 0)
    fresh = make_project(crm, b"", name="fresh")  # the pipeline's ingest stage says it too
    assert main(["--project", str(fresh.directory), "pipeline"]) == 0
    assert "crm: warning: 3 rows repeated an event" in capsys.readouterr().out
