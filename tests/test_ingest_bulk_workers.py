"""The parallel bulk load's parts: byte ranges that reproduce the connector's batches, the hour-cached
time stamps, worker processes that never outlive a failure, a kill of the ingest process, and the
worker count."""

import datetime as dt
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from motorcade.errors import MotorcadeError
from motorcade.identity.guards import IdentityGuards
from motorcade.sources import batch as batch_module
from motorcade.sources.batch import EventBatch, ParseWorkerError, ParseWorkers, default_workers
from motorcade.sources.ingest import Ingestor, IngestSummary, _epoch, _SourceSettings
from motorcade.store import open_store
from motorcade.testing import dump_database
from motorcade_sources_jsonl import JsonlSource

SETTINGS = {"path": "e.jsonl", "format": "auto", "identifiers": {"phone": "phone", "crm_id": "crm_id"},
            "user_id": "crm_id", "anonymous_id": "wechat_mp_openid", "traits": {"phone": "phone"},
            "identify_attributes": {"name": "name"}}


def dump(path) -> dict:
    return dump_database(path, indexes=True)


ROOT = Path(__file__).resolve().parents[1]
linux = pytest.mark.skipif(not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods(),
                           reason="worker processes are forked (Linux)")


def batches_of(source: JsonlSource, batches) -> list:
    out = []
    for batch in batches:
        records = [(type(r).__name__, r.position, getattr(r, "raw", None), getattr(r, "reason", None)) for r in batch.records]
        out.append((batch.position_unit, batch.events, records))
    return out


lines = st.lists(st.one_of(
    st.builds(lambda n: json.dumps({"event": "view", "ts": "2025-03-01T10:00:00Z", "phone": f"138{n:08d}"}),
              st.integers(0, 99)),
    st.sampled_from(["", " ", "\t", "\u3000", "\r", "[1]", " {\"event\": 1}", "{\"event\":", "\u00a0", "x"]),
), max_size=40)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines, st.integers(1, 6), st.sampled_from(["\n", "\r\n"]), st.sampled_from(["\n", "", "\r\n"]),
       st.booleans(), st.integers(0, 3))
def test_byte_ranges_hold_the_batches_read_columns_yields(text_lines, batch_size, sep, end, follow, resume_after):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "e.jsonl"
        data = (sep.join(text_lines) + end).encode()
        path.write_bytes(data)
        cursor = None
        if follow and resume_after:  # resume at the start of a line, as a saved cursor does
            cut = 0
            for _ in range(resume_after):
                cut = data.find(b"\n", cut) + 1 or len(data)
            cursor = str(cut)
        source = JsonlSource("ev", {**SETTINGS, "batch_size": batch_size, "follow": follow}, tmp)
        expected = batches_of(source, source.read_columns(cursor))
        end_expected = source.next_cursor()
        source._end = -1
        ranges = list(source.column_ranges(cursor))
        got = batches_of(source, [source.read_column_range(*r) for r in ranges])
        assert got == expected
        assert source.next_cursor() == end_expected


ZONES = ["Asia/Shanghai", "America/New_York", "Australia/Lord_Howe", "Europe/London", "UTC"]


# hours around daylight-saving changes: New York (spring gap, autumn repeat), Lord Howe (half-hour
# shifts), London; then anything between 1965 and 2040
TRANSITIONS = [dt.datetime(2025, 3, 9, 2), dt.datetime(2025, 11, 2, 1), dt.datetime(2025, 4, 6, 1),
               dt.datetime(2025, 10, 5, 2), dt.datetime(2025, 3, 30, 1), dt.datetime(2025, 10, 26, 1),
               dt.datetime(1970, 1, 1, 0), dt.datetime(1969, 12, 31, 23)]
moments = st.one_of(
    st.builds(lambda hour, m, s: hour.replace(minute=m, second=s), st.sampled_from(TRANSITIONS), st.integers(0, 59),
              st.integers(0, 59)),
    st.datetimes(min_value=dt.datetime(1965, 1, 1), max_value=dt.datetime(2040, 1, 1)),
)


@settings(max_examples=150, deadline=None)
@example(dt.datetime(2025, 10, 5, 2, 10), "Australia/Lord_Howe", "", "T")  # 02:00-02:30 does not exist
@example(dt.datetime(2025, 3, 9, 2, 10), "America/New_York", "", " ")
@given(moments, st.sampled_from(ZONES), st.sampled_from(["", "Z", "+08:00", "-03:30", "+0530", ".5", " ", "+08:00:00"]),
       st.sampled_from(["T", " "]))
def test_hour_cached_time_stamps_equal_the_general_path(when, zone, suffix, sep):
    """Naive times in zones with daylight saving (New York, Lord Howe's half-hour shift), offsets,
    fractions and junk suffixes: the staged epoch is what _epoch computes, or the row fails the same way."""
    ts = when.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + suffix
    neighbours = [ts, ts[:14] + "00:00" + ts[19:], ts[:14] + "59:59" + ts[19:], ts[:14] + "30:00" + ts[19:]]
    with tempfile.TemporaryDirectory() as tmp:
        # a range of event times wide enough for every moment generated (the range has tests of its own)
        source = JsonlSource("ev", {**SETTINGS, "timezone": zone, "min_event_time": "1960-01-01",
                                    "max_event_days_ahead": 36500}, Path(tmp))
        settings_ = _SourceSettings.of(source, zone)
        ingestor = Ingestor(open_store(Path(tmp) / "s.db"), guards=IdentityGuards.from_config({}))
        events = [(i + 1, "view", t, (("phone", "13812345678"),), "{}", f"e{i}", b"raw") for i, t in enumerate(neighbours)]
        staged = ingestor._stage(settings_, EventBatch(events))
        conn = sqlite3.connect(":memory:")
        conn.deserialize(staged.data)
        got = dict(zip([f"e{i}" for i in range(len(neighbours))], [None] * len(neighbours)))
        got.update(conn.execute("SELECT dedup_key, ts FROM events").fetchall())
        failed: dict = {}
        summary = IngestSummary(source="ev")
        plain = {row[5]: row[2] for row in ingestor._clean_event_rows(EventBatch(events), settings_, summary, failed)}
        for i, t in enumerate(neighbours):
            try:
                expected = _epoch(t, settings_.tzinfo)
            except Exception:
                expected = None
            assert got[f"e{i}"] == expected, t  # the parallel path (_stage)
            assert plain.get(f"e{i}") == expected, t  # the one-process fast path


class FailingSource(JsonlSource):
    """Fails in the worker that parses the byte range starting at ``fail_at`` or later."""

    fail_at = 0

    def read_column_range(self, start, stop, lines_before):
        if start >= self.fail_at > 0:
            raise RuntimeError(f"boom at byte {start}")
        return super().read_column_range(start, stop, lines_before)


def write_events(path: Path, n: int, bad_every: int = 0) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            if bad_every and i % bad_every == bad_every - 1:
                out.write('{"event": "view", "ts": \n')
                continue
            out.write(json.dumps({"event": "view", "ts": f"2025-03-{1 + i % 28:02d}T10:{i % 60:02d}:00+08:00",
                                  "phone": f"1381234{i % 97:04d}", "id": f"e{i}", "properties": {"n": i}}) + "\n")


def children_of(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@linux
def test_a_failing_worker_stops_the_run_and_leaves_no_process_behind(tmp_path):
    write_events(tmp_path / "e.jsonl", 3000, bad_every=50)
    store = open_store(tmp_path / "s.db")
    source = FailingSource("ev", {**SETTINGS, "format": "native", "batch_size": 200}, tmp_path)
    source.fail_at = (tmp_path / "e.jsonl").stat().st_size // 2
    ingestor = Ingestor(store, guards=IdentityGuards.from_config({}), workers=2)
    before = children_of(os.getpid())
    with pytest.raises(ParseWorkerError, match="boom at byte"):
        ingestor.ingest(source, bulk=True)
    assert multiprocessing.active_children() == []
    assert children_of(os.getpid()) <= before
    # whole batches were written; the indexes are back; a re-run completes the load exactly
    written = store.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    assert 0 < written < 3000
    again = ingestor.ingest(JsonlSource("ev", {**SETTINGS, "format": "native", "batch_size": 200}, tmp_path), bulk=True)
    assert again.events == 3000 - 60 - written
    store.close()
    clean = open_store(tmp_path / "clean.db")
    Ingestor(clean, guards=IdentityGuards.from_config({}), workers=2).ingest(
        JsonlSource("ev", {**SETTINGS, "format": "native", "batch_size": 200}, tmp_path), bulk=True)
    clean.close()
    assert dump(tmp_path / "s.db") == dump(tmp_path / "clean.db")


@linux
def test_a_worker_that_dies_is_reported_and_the_others_are_reaped():
    def work(task):
        if task == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return task * 2

    with pytest.raises(ParseWorkerError, match="died"):
        with ParseWorkers(2, work) as pool:
            pids = pool.pids()
            assert list(pool.map(range(10))) == [n * 2 for n in range(10)]
    assert multiprocessing.active_children() == []
    assert not any(alive(p) for p in pids)


@linux
def test_workers_return_results_in_task_order_and_errors_as_operator_errors():
    with ParseWorkers(3, lambda n: (n, os.getpid()), ahead=1) as pool:
        results = list(pool.map(range(20)))
    assert [r[0] for r in results] == list(range(20))
    assert len({r[1] for r in results}) == 3  # every worker did some
    with pytest.raises(MotorcadeError, match="broken setting"):
        with ParseWorkers(1, lambda n: (_ for _ in ()).throw(MotorcadeError("broken setting"))) as pool:
            list(pool.map([1]))
    assert multiprocessing.active_children() == []


KILLED_RUN = """
import sys
from pathlib import Path
from motorcade.identity.guards import IdentityGuards
from motorcade.sources.ingest import Ingestor
from motorcade.store import open_store
from motorcade_sources_jsonl import JsonlSource
tmp = Path(sys.argv[1])
settings = {"path": "e.jsonl", "format": "native", "identifiers": {"phone": "phone"}, "batch_size": 300}
Ingestor(open_store(tmp / sys.argv[2]), guards=IdentityGuards.from_config({}), workers=2).ingest(
    JsonlSource("ev", settings, tmp), bulk=True)
"""


@linux
def test_a_killed_parallel_load_leaves_no_worker_and_a_rerun_equals_one_clean_run(tmp_path):
    write_events(tmp_path / "e.jsonl", 40000, bad_every=333)
    assert subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path), "clean.db"]).returncode == 0
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path), "killed.db"])
    workers: set[int] = set()
    n = 0
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        workers |= children_of(proc.pid)
        try:
            conn = sqlite3.connect(tmp_path / "killed.db", timeout=1)
            n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            conn.close()
        except sqlite3.OperationalError:
            n = 0
        if n >= 2000 and workers:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert len(workers) == 2
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(p) for p in workers):
        time.sleep(0.05)
    assert not any(alive(p) for p in workers), "a worker outlived the killed ingest"
    conn = sqlite3.connect(tmp_path / "killed.db")
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")}
    conn.close()
    assert "events_dedup" not in indexes  # killed mid-load: the re-run has to repair it
    assert subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path), "killed.db"]).returncode == 0
    assert dump(tmp_path / "killed.db") == dump(tmp_path / "clean.db")


def test_the_worker_count_follows_the_machine_and_the_settings(tmp_path, monkeypatch):
    forking = "fork" in multiprocessing.get_all_start_methods()
    monkeypatch.setattr(batch_module.os, "cpu_count", lambda: 1)
    assert default_workers() == 0
    monkeypatch.setattr(batch_module.os, "cpu_count", lambda: 6)
    assert default_workers() == (6 if forking else 0)
    store = open_store(tmp_path / "s.db")
    source = JsonlSource("ev", {**SETTINGS, "workers": 3}, tmp_path)
    assert Ingestor(store)._workers_for(source) == (3 if forking else 0)
    assert Ingestor(store, workers=0)._workers_for(source) == 0
    monkeypatch.setattr(batch_module.os, "cpu_count", lambda: 1)
    assert Ingestor(store)._workers_for(JsonlSource("ev", SETTINGS, tmp_path)) == 0  # one core: no worker
    assert Ingestor(store)._workers_for(source) == (3 if forking else 0)  # unless asked for
    monkeypatch.setattr(batch_module.os, "cpu_count", lambda: 6)
    assert Ingestor(store)._workers_for(JsonlSource("ev", SETTINGS, tmp_path)) == (6 if forking else 0)
    with pytest.raises(MotorcadeError, match="workers"):
        Ingestor(store)._workers_for(JsonlSource("ev", {**SETTINGS, "workers": "many"}, tmp_path))
    with pytest.raises(MotorcadeError, match="negative"):
        Ingestor(store)._workers_for(JsonlSource("ev", {**SETTINGS, "workers": -1}, tmp_path))
    store.close()
