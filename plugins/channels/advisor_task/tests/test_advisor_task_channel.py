"""The advisor-task channel writing real CSV files and a real SQLite table."""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

import motorcade_channels_advisor_task as advisor_task
from motorcade.activation.channel import ChannelContext, OutboundMessage
from motorcade.activation.testing import registered_channels

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


class SqliteTaskStore:
    """A stand-in for the Store's tasks table: a real SQLite file, idempotent on the key."""

    def __init__(self, path: Path):
        self.path = path
        self.calls = 0
        with sqlite3.connect(path) as db:
            db.execute("create table if not exists advisor_tasks (idempotency_key text primary key, advisor_id text,"
                       " store_id text, person_id integer, note text, created_at text)")

    def add_advisor_tasks(self, rows: list[dict]) -> None:
        self.calls += 1
        with sqlite3.connect(self.path) as db:
            db.executemany("insert or ignore into advisor_tasks values (:idempotency_key, :advisor_id, :store_id,"
                           " :person_id, :note, :created_at)", rows)

    def rows(self):
        with sqlite3.connect(self.path) as db:
            return db.execute("select idempotency_key, advisor_id, store_id, person_id, note from advisor_tasks"
                              " order by idempotency_key").fetchall()


def task(key, advisor="A007", store="S01", person=42, note="请电话联系车主张先生，确认保养预约。"):
    return OutboundMessage(idempotency_key=key, person_id=person, address=advisor, template="call_task", body=note,
                           metadata={"store_id": store} if store is not None else {})


def read_csv(path: Path):
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def make_channel(tmp_path, store=None, **settings_):
    return advisor_task.AdvisorTaskChannel(settings_, ChannelContext(project_dir=tmp_path, clock=lambda: NOW,
                                                                     store=store))


def test_rows_go_to_one_csv_per_store_and_to_the_store(tmp_path):
    store = SqliteTaskStore(tmp_path / "motorcade.db")
    channel = make_channel(tmp_path, store)
    results = channel.send([task("k1"), task("k2", advisor="A008", person=43), task("k3", store="S02")])
    assert [r.status for r in results] == ["sent"] * 3
    s01 = read_csv(tmp_path / "out/advisor_tasks/S01.csv")
    assert s01 == [
        {"idempotency_key": "k1", "advisor_id": "A007", "store_id": "S01", "person_id": "42",
         "note": "请电话联系车主张先生，确认保养预约。", "created_at": "2026-03-02T09:00:00+08:00"},
        {"idempotency_key": "k2", "advisor_id": "A008", "store_id": "S01", "person_id": "43",
         "note": "请电话联系车主张先生，确认保养预约。", "created_at": "2026-03-02T09:00:00+08:00"},
    ]
    assert [r["idempotency_key"] for r in read_csv(tmp_path / "out/advisor_tasks/S02.csv")] == ["k3"]
    assert (tmp_path / "out/advisor_tasks/S01.csv").read_bytes().startswith(b"\xef\xbb\xbfidempotency_key,")
    assert store.rows() == [("k1", "A007", "S01", 42, "请电话联系车主张先生，确认保养预约。"),
                            ("k2", "A008", "S01", 43, "请电话联系车主张先生，确认保养预约。"),
                            ("k3", "A007", "S02", 42, "请电话联系车主张先生，确认保养预约。")]
    assert results[0].detail == "task written to out/advisor_tasks/S01.csv"


def test_a_resend_adds_no_second_row(tmp_path):
    store = SqliteTaskStore(tmp_path / "motorcade.db")
    channel = make_channel(tmp_path, store)
    channel.send([task("k1")])
    [again] = make_channel(tmp_path, store).send([task("k1")])
    twice_in_one_batch = channel.send([task("k2"), task("k2")])
    assert [r.status for r in twice_in_one_batch] == ["sent", "sent"]
    assert again.status == "sent" and "re-send" in again.detail
    assert [r["idempotency_key"] for r in read_csv(tmp_path / "out/advisor_tasks/S01.csv")] == ["k1", "k2"]
    assert len(store.rows()) == 2


def test_concurrent_workers_write_each_key_once(tmp_path):
    def worker(offset):
        channel = make_channel(tmp_path)
        for i in range(40):
            channel.send([task(f"k{(i + offset) % 50}")])

    threads = [threading.Thread(target=worker, args=(n * 10,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [r["idempotency_key"] for r in read_csv(tmp_path / "out/advisor_tasks/S01.csv")]
    assert len(keys) == len(set(keys)) == 50


def test_bad_messages_are_permanent_and_write_nothing(tmp_path):
    channel = make_channel(tmp_path)
    results = channel.send([task("a", store=None), task("b", store="../etc"), task("c", advisor="")])
    assert [r.status for r in results] == ["permanent"] * 3
    assert "store_id" in results[0].detail and "'../etc'" in results[1].detail
    assert not (tmp_path / "out").exists()


def test_store_failure_is_transient_and_the_csv_waits(tmp_path):
    class BrokenStore:
        def add_advisor_tasks(self, rows):
            raise sqlite3.OperationalError("database is locked")

    [result] = make_channel(tmp_path, BrokenStore()).send([task("k1")])
    assert result.status == "transient" and "database is locked" in result.detail
    assert not (tmp_path / "out/advisor_tasks/S01.csv").exists()
    assert make_channel(tmp_path, object()).send([task("k1")])[0].status == "sent"  # store without the method


def test_formulas_are_neutralised_in_the_export(tmp_path):
    make_channel(tmp_path).send([task("k1", note="=HYPERLINK(\"http://evil\")"), task("k2", note="-5 折优惠")])
    notes = [r["note"] for r in read_csv(tmp_path / "out/advisor_tasks/S01.csv")]
    assert notes == ["'=HYPERLINK(\"http://evil\")", "'-5 折优惠"]


def test_directory_setting(tmp_path):
    make_channel(tmp_path, directory="exports/calls").send([task("k1")])
    assert (tmp_path / "exports/calls/S01.csv").exists()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.tuples(st.sampled_from(["k1", "k2", "k3", "k4", "k5"]),
                                           st.sampled_from(["S01", "S02"])), max_size=6), max_size=6))
def test_any_sequence_of_resends_leaves_each_key_once(tmp_path_factory, batches):
    directory = tmp_path_factory.mktemp("project")
    channel = make_channel(directory)
    first_store: dict[str, str] = {}
    for batch in batches:
        messages = []
        for key, store_id in batch:
            store_id = first_store.setdefault(key, store_id)  # a key belongs to one store
            messages.append(task(key, store=store_id))
        results = channel.send(messages)
        assert len(results) == len(messages) and {r.status for r in results} <= {"sent"}
    for store_id in ("S01", "S02"):
        path = directory / f"out/advisor_tasks/{store_id}.csv"
        keys = [r["idempotency_key"] for r in read_csv(path)] if path.exists() else []
        assert sorted(keys) == sorted(k for k, s in first_store.items() if s == store_id)


def test_registers_through_the_hook_and_the_entry_point():
    registered, entry_points = registered_channels(advisor_task, "advisor_task")
    assert registered == [advisor_task.AdvisorTaskChannel]
    assert entry_points == {"motorcade_channels_advisor_task"}


def test_without_a_store_id_the_task_goes_to_the_advisors_own_store(tmp_path):
    from motorcade.model import Advisor, Store
    from motorcade.store import open_store

    store = open_store(tmp_path / "m.db")
    store.upsert_stores([Store("SH002", "上海浦西4S店", "华东")])
    store.upsert_advisors([Advisor("A9", "李娜", "SH002")])
    channel = make_channel(tmp_path, store=store)
    results = channel.send([task("k1", advisor="A9", store=None), task("k2", advisor="NOBODY", store=None)])
    assert sorted((r.idempotency_key, r.status) for r in results) == [("k1", "sent"), ("k2", "permanent")]
    assert [row["advisor_id"] for row in read_csv(tmp_path / "out" / "advisor_tasks" / "SH002.csv")] == ["A9"]
    assert tuple(store.query("SELECT advisor_id, store_id FROM advisor_tasks")[0]) == ("A9", "SH002")
