"""Fuzz test of ingest (issue 14, "Make it stay fixed").

Hypothesis writes a CSV export and a JSON Lines log full of odd encodings (byte order marks, bytes that
are not UTF-8, lone surrogates, NULs), numbers (NaN, Infinity, 1e400, 30-digit integers), dates (year
1, year 9999 with a negative offset, 30 February, epoch milliseconds, next week), nesting (up to 1,200
levels), quoting (commas, quotes and line breaks in fields, a quote never closed) and sizes (a field
over the CSV reader's 128 KiB limit). Whatever it writes:

- ingest never raises (plain, bulk and parallel bulk path);
- every input row is accounted for: stored, or quarantined with a reason (counted row by row);
- the store holds strict JSON only, and `tags compute`, `segments compute` and `run` succeed afterwards.

``INGEST_FUZZ_EXAMPLES`` sets the number of examples (default 10: the normal suite; ``make fuzz`` runs
500); a Hypothesis profile that scales examples (``thorough``) multiplies it.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
import json
import os
import tempfile
import zoneinfo
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import motorcade_sources_csv
import motorcade_sources_jsonl
from motorcade.activation.testing import memory_channel_plugin
from motorcade.cli import main
from motorcade.project import Project
from motorcade.sources.ingest import ingest, open_source, project_ingestor

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
TAG_PLUGINS = ("value", "activity", "intent", "lifecycle", "quadrant")
COLUMNS = ("no", "name", "mobile", "visits", "score", "seen", "ordered", "amount")
BAD_BYTES = "\ue000"  # stands for bytes that are not UTF-8 (swapped in after encoding; never generated)
INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\x80\x80")

CONFIG = """
[project]
name = "fuzz"
timezone = "Asia/Shanghai"

[sources.crm]
type = "csv"
path = "crm.csv"
encoding = "ENCODING"
[sources.crm.person]
key = "no"
identifiers = { crm_id = "no", phone = "mobile" }
attributes = { name = "name", visits = { column = "visits", type = "int" }, score = { column = "score", type = "float" }, seen = { column = "seen", type = "datetime" } }
[sources.crm.event]
name = "order"
ts = "ordered"
properties = { amount = { column = "amount", type = "float" }, note = "name" }

[sources.ev]
type = "jsonl"
path = "ev.jsonl"
format = "native"
identifiers = { phone = "phone", crm_id = "crm_id" }
"""


def rules() -> str:
    at = (dt.datetime.now(SH) - dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M")
    return f"""
segment spenders {{ where sum(order.amount) in last 36500 days > 10 }}
segment viewers {{ where count(view where n > 1) in last 36500 days >= 1 or avg(view.n) in last 36500 days > 0 }}
segment noted {{ where count(order where note = "x") in last 36500 days >= 1 }}
campaign notice {{ audience spenders  schedule at {at}  via memory template "n"  quiet hours off }}
trigger viewed {{ on view  reenter always  via memory template "n"  quiet hours off }}
"""


# -- values --------------------------------------------------------------------------------------------

odd_text = st.text(
    alphabet=st.one_of(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\ue000"),
        st.sampled_from(['"', ",", "\n", "\x00", "🚗", "张", "\ufeff", "\u2028", " ", "\t"])),
    max_size=12)
sane_numbers = st.one_of(st.integers(0, 500).map(str), st.sampled_from(["12.5", "0.1", "-3", "1e3", " 7 "]))
numbers = st.one_of(  # half of them sane: most rows should get through, and every path be taken
    sane_numbers, sane_numbers, sane_numbers,
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "-Infinity", "1e400", "-1e400", "1e308", "1e-320",
                     "-0", "12.0", "12.5", "9" * 30, "0x10", "１２", "", " ", "abc", "1_000"]),
    st.integers(-10**20, 10**20).map(str),
    st.floats().map(repr),
)
now = dt.datetime.now(dt.timezone.utc)
sane_times = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2026, 1, 1)).map(
    lambda d: d.isoformat(sep=" ", timespec="seconds"))
times = st.one_of(
    sane_times, sane_times,
    st.sampled_from(["2025-03-01 10:00:00", "2025-03-01T10:00:00+08:00", "9999-12-31T23:59:59-10:00",
                     "9999-12-31", "0001-01-01", "1900-01-01", "1989-12-31 23:59:59", "1990-01-01T00:00:00Z",
                     "2025-02-30", "2025-03-01T10:00:00+14:00", "1740000000", "253402300799000", "", "yesterday",
                     (now + dt.timedelta(days=7)).isoformat(timespec="seconds"),
                     (now + dt.timedelta(hours=2)).isoformat(timespec="seconds")]),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)).map(
        lambda d: d.isoformat(sep=" ", timespec="seconds")),
)
phones = st.sampled_from(["13812345678", "13912345678", "+86 139 1234 5678", "13800138000", "12345", "", "not a phone"])

good_phones = st.sampled_from(["13812345678", "13912345678", "+86 139 1234 5678", "8613712345678"])
# a sane row (names are free text: any of it is fine), then up to two columns given any odd value
csv_rows = st.builds(
    lambda sane, odd, damage, where: {**sane, **odd, "damage": damage, "where": where},
    st.fixed_dictionaries({"name": odd_text, "mobile": good_phones, "visits": st.integers(0, 99).map(str),
                           "score": sane_numbers, "seen": sane_times, "ordered": sane_times, "amount": sane_numbers}),
    st.dictionaries(st.sampled_from(COLUMNS[1:]), st.one_of(numbers, times, phones, odd_text), max_size=2),
    # what goes wrong with the row as a whole
    st.sampled_from([None] * 6 + ["bad bytes", "unclosed quote", "huge field", "extra field"]),
    st.sampled_from(COLUMNS[1:]),
)


def csv_file(rows: list[dict], *, bom: bool, newline: str) -> tuple[bytes, list[int]]:
    """The file's bytes and the line each data row starts on. Once a row has an unclosed quote, the rows
    after it hold no quote, comma or line break: a quote that a later quote closes makes one row of
    two, which no reader can tell from a quoted line break."""
    out = io.BytesIO()
    if bom:
        out.write(b"\xef\xbb\xbf")
    out.write((",".join(COLUMNS) + newline).encode())
    starts, line, plain = [], 2, False
    for i, row in enumerate(rows):
        fields = {c: row[c] for c in COLUMNS[1:]}
        fields["no"] = f"C{i}"
        damage = row["damage"]
        if plain and damage == "unclosed quote":  # one per file (see above)
            damage = None
        if plain or damage == "unclosed quote":
            fields = {c: v.replace('"', "").replace(",", "").replace("\n", "") for c, v in fields.items()}
        if damage == "huge field":
            fields[row["where"]] = "x" * 140_000
        if damage == "bad bytes":
            fields[row["where"]] += BAD_BYTES
        values = [fields[c] for c in COLUMNS]
        if damage == "extra field":
            values.append("extra")
        if damage == "unclosed quote":
            text = ",".join(values[:1] + ['"' + values[1]] + values[2:]) + newline
            plain = True
        else:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator=newline).writerow(values)
            text = buffer.getvalue()
        starts.append(line)
        line += 1 + text[:-len(newline)].count("\n")
        data = text.encode("utf-8")
        if BAD_BYTES in text:
            data = data.replace(BAD_BYTES.encode(), INVALID_UTF8[i % len(INVALID_UTF8)])
        out.write(data)
    return out.getvalue(), starts


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


json_numbers = st.one_of(st.integers(-10**30, 10**30).map(str), st.floats().map(lambda f: json.dumps(f)),
                         st.sampled_from(["1e400", "-1e400", "-0", "0.1", "NaN", "Infinity", "-Infinity"]))
json_strings = st.one_of(
    odd_text.map(lambda s: json.dumps(s, ensure_ascii=False)),
    odd_text.map(json.dumps),
    st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\u0000"', '"' + BAD_BYTES + '"']),
)
json_values = st.one_of(json_numbers, json_numbers, json_strings, st.sampled_from(["true", "null", "{}", "[]"]),
                        st.integers(1, 1200).map(nested))
SANE_EVENT = {"event": '"view"', "ts": None, "phone": '"13812345678"', "properties": '{"n":2,"note":"x"}', "id": None}
# a sane event line, then up to two of its fields (or properties) given any odd JSON value, or left out
event_lines = st.builds(
    lambda ts, event_id, odd: "{" + ",".join(
        f'"{k}":{v}' for k, v in {**SANE_EVENT, "ts": ts, "id": event_id, **odd}.items() if v is not None) + "}",
    sane_times.map(json.dumps),
    st.integers(0, 30).map(lambda n: f'"e{n}"'),
    st.dictionaries(
        st.sampled_from(["event", "ts", "phone", "crm_id", "properties", "id"]),
        st.one_of(st.none(), json_values, times.map(json.dumps),
                  st.dictionaries(st.sampled_from(["n", "x", "车型", "note"]), json_values, max_size=3).map(
                      lambda d: "{" + ",".join(f'"{k}":{v}' for k, v in d.items()) + "}")),
        max_size=2),
)
jsonl_lines = st.tuples(
    st.one_of(event_lines, event_lines, event_lines,
              st.sampled_from(["", "   ", "\t", "[1, 2]", "42", "null", '{"event":"view","ts":', "\ufeff", "}{",
                               '{"event":"view"}'])),
    st.sampled_from([None] * 5 + ["bom", "bad bytes", "cut", "crlf"]),
    st.integers(0, 200),
)


def jsonl_file(lines: list[tuple]) -> tuple[bytes, int]:
    """The file's bytes and how many of its lines are not blank (blank lines are skipped, not rows)."""
    out, rows = [], 0
    for text, damage, at in lines:
        if damage == "cut":
            text = text[:at]
        if damage == "bad bytes":
            text = text[:at] + BAD_BYTES + text[at:]
        data = text.encode("utf-8", "surrogatepass").replace(BAD_BYTES.encode(), INVALID_UTF8[at % len(INVALID_UTF8)])
        if damage == "bom":
            data = b"\xef\xbb\xbf" + data
        data += b"\r\n" if damage == "crlf" else b"\n"
        if data.strip() and data.decode("utf-8", "replace").strip():
            rows += 1
        out.append(data)
    return b"".join(out), rows


# -- the test ------------------------------------------------------------------------------------------

@pytest.fixture
def plugins(register_plugin):
    register_plugin(motorcade_sources_csv, name="csv")
    register_plugin(motorcade_sources_jsonl, name="jsonl")
    register_plugin(memory_channel_plugin("memory"), name="memory")
    for name in TAG_PLUGINS:
        module = pytest.importorskip(f"motorcade_tags_{name}")
        register_plugin(importlib.reload(module) and module, name=name)


@settings(max_examples=int(os.environ.get("INGEST_FUZZ_EXAMPLES", "10")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
@given(crm_rows=st.lists(csv_rows, max_size=12), bom=st.booleans(), newline=st.sampled_from(["\n", "\r\n"]),
       encoding=st.sampled_from(["utf-8-sig", "utf-8"]), lines=st.lists(jsonl_lines, max_size=25),
       way=st.sampled_from(["plain", "bulk", "parallel"]))
def test_ingest_survives_anything_and_accounts_for_every_row(plugins, capsys, crm_rows, bom, newline, encoding,
                                                             lines, way):
    crm_bytes, starts = csv_file(crm_rows, bom=bom, newline=newline)
    ev_bytes, ev_rows = jsonl_file(lines)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "rules").mkdir()
        (d / "templates").mkdir()
        (d / "motorcade.toml").write_text(CONFIG.replace("ENCODING", encoding), encoding="utf-8")
        (d / "rules" / "main.mc").write_text(rules(), encoding="utf-8")
        (d / "templates" / "n.txt").write_text("{{ person.name }}", encoding="utf-8")
        (d / "crm.csv").write_bytes(crm_bytes)
        (d / "ev.jsonl").write_bytes(ev_bytes)
        project = Project(d)
        try:
            store = project.store
            ingestor = project_ingestor(project)
            crm = ingest(project, "crm", ingestor=ingestor)

            # every CSV row: stored (its person has the row's key) or quarantined on its first line, not both;
            # nothing else is stored, and what else is quarantined lies inside a quarantined row (the lines
            # after an unclosed quote are read again: a line that only continued the row is refused too)
            reasons = {q.position: q.reason for q in store.list_quarantine(source="crm")}
            assert all(reasons.values()) and len(reasons) == crm.rejected
            ends = starts[1:] + [10**9]
            for i, start in enumerate(starts):
                stored = store.person_of_identifier("crm_id", f"C{i}") is not None
                assert stored != (f"line {start}" in reasons), (i, start, reasons)
                inside = [p for p in reasons if start < int(p.split()[1]) < ends[i]]
                assert not (stored and inside), (i, inside)
            # (looked at before the JSON lines are read: their crm_id may be anything)
            keys = {r[0] for r in store.conn.execute("SELECT value FROM identifiers WHERE type = 'crm_id'")}
            assert keys <= {f"C{i}" for i in range(len(starts))}, keys

            # every JSON line that is not blank: an event (new or a repeat) or quarantined with a reason
            if way == "parallel":
                ingestor.workers = 2
            ev = ingestor.ingest(open_source(project, "ev"), bulk=way != "plain")
            quarantined = store.list_quarantine(source="ev")
            assert all(q.reason for q in quarantined)
            assert ev.events + ev.duplicates + ev.rejected == ev_rows, (ev, ev_rows)
            assert len(quarantined) == ev.rejected
            assert store.conn.execute("SELECT count(*) FROM events WHERE source = 'ev'").fetchone()[0] == ev.events

            # strict JSON only, and the stages after ingest still work
            for table, column in (("events", "properties"), ("people", "attributes")):
                assert store.conn.execute(f"SELECT count(*) FROM {table} WHERE NOT json_valid({column})"
                                          ).fetchone()[0] == 0, table
            for args in (["tags", "compute"], ["segments", "compute"], ["run", "--once"]):
                code = main(["--project", str(d), *args])
                out = capsys.readouterr()
                assert code == 0, (args, out.out, out.err)
        finally:
            project.close()
