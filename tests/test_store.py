"""The store: migrations, pragmas, indexes, and the model's round trip through it.

Tests taking ``store_database`` run on SQLite and on PostgreSQL (tests/conftest.py)."""

import datetime as dt
import sqlite3

import attr
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.model import Advisor, Car, Consent, Event, Ownership, Store
from motorcade.store import open_store
from motorcade.store.migrations import MIGRATIONS

UTC = dt.timezone.utc


def test_migrates_from_empty_and_records_each_version(store_database):
    store = open_store(store_database)
    rows = store.conn.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    assert rows[0][1] == "m001_initial"
    assert store.migrate() == []  # idempotent


def test_migrates_from_the_previous_version_keeping_data(store_database):
    path = store_database
    old = open_store(path, migrate=False)
    old.migrate(upto=len(MIGRATIONS) - 1)
    if len(MIGRATIONS) > 1:
        person = old.create_person({"name": "张伟"})
    old.close()
    store = open_store(path)
    assert store.schema_version() == len(MIGRATIONS)
    if len(MIGRATIONS) > 1:
        assert store.get_person(person).attributes == {"name": "张伟"}


def test_wal_foreign_keys_and_event_indexes(tmp_path):
    store = open_store(tmp_path / "w.db")
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    indexes = {r[1]: [c[2] for c in store.conn.execute(f"PRAGMA index_info({r[1]})")]
               for r in store.conn.execute("PRAGMA index_list(events)")}
    assert indexes["events_name_ts_person"] == ["name", "ts", "person_id"]
    assert indexes["events_person_name_ts"] == ["person_id", "name", "ts"]
    plan = " ".join(r[3] for r in store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT person_id FROM events WHERE name = ? AND ts >= ?", ("share", 0)))
    assert "COVERING INDEX events_name_ts_person" in plan


def test_foreign_keys_are_enforced(tmp_path):
    store = open_store(tmp_path / "fk.db")
    import pytest

    with pytest.raises(sqlite3.IntegrityError):
        store.upsert_advisors([Advisor("A1", "王芳", store_id="NO_SUCH_STORE")])


def test_events_are_deduplicated_per_source(store_database):
    store = open_store(store_database)
    pid = store.create_person()
    event = Event("share", dt.datetime(2026, 11, 1, 10, tzinfo=UTC), pid, {"content": "x"}, "app", "e1")
    with store.transaction():
        assert store.insert_events([event, event]) == 1
    assert store.insert_events([event]) == 0
    assert store.insert_events([Event("share", event.ts, pid, {}, "other-source", "e1")]) == 1


def test_read_only_query_refuses_writes(store_database):
    import pytest

    store = open_store(store_database)
    with pytest.raises(ValueError):
        store.query("DELETE FROM people")


def test_transaction_rolls_back_on_error(store_database):
    import pytest

    store = open_store(store_database)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.create_person({"a": 1})
            raise RuntimeError("boom")
    assert store.status_counts()["people"] == 0


def test_resale_closes_the_previous_ownership(store_database):
    store = open_store(store_database)
    store.upsert_stores([Store("SH001", "上海浦东4S店", "华东")])
    store.upsert_cars([Car("LBV3A5106KMA00001", "BMW", "X3", 2019, dt.date(2019, 5, 1), "SH001")])
    first, second = store.create_person(), store.create_person()
    store.add_ownership(Ownership(first, "LBV3A5106KMA00001", dt.date(2019, 5, 1)))
    store.add_ownership(Ownership(second, "LBV3A5106KMA00001", dt.date(2023, 2, 1)))
    assert store.ownerships_of(first)[0].valid_to == dt.date(2023, 2, 1)
    assert store.ownerships_of(second)[0].valid_to is None


def test_older_consent_never_overwrites_newer(store_database):
    store = open_store(store_database)
    pid = store.create_person()
    newer = Consent(pid, "sms", False, dt.datetime(2026, 5, 1, tzinfo=UTC), "unsubscribe_event")
    older = Consent(pid, "sms", True, dt.datetime(2026, 1, 1, tzinfo=UTC), "crm")
    assert store.set_consent(newer)
    assert not store.set_consent(older)
    assert store.consents_of(pid) == [newer]


def test_an_undated_consent_read_again_keeps_its_first_time(store_database):
    """A CSV consent column has no time: re-reading the file a second later must change nothing."""
    store = open_store(store_database)
    pid = store.create_person()
    first = Consent(pid, "sms", True, dt.datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC), "crm")
    assert store.set_consent(first, undated=True)
    assert not store.set_consent(Consent(pid, "sms", True, dt.datetime(2026, 5, 1, 10, 0, 1, tzinfo=UTC), "crm"),
                                 undated=True)
    assert store.consents_of(pid) == [first]
    changed = Consent(pid, "sms", False, dt.datetime(2026, 5, 2, tzinfo=UTC), "crm")  # a new state counts
    assert store.set_consent(changed, undated=True)
    assert store.consents_of(pid) == [changed]


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
aware_times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 1, 1),
    timezones=st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=8)), dt.timezone(dt.timedelta(hours=-5))]),
).map(lambda t: t.replace(microsecond=0))
events = st.builds(
    Event, name=st.sampled_from(["share", "test_drive", "订单"]), ts=aware_times,
    properties=st.dictionaries(text, json_values, max_size=4), source=st.sampled_from(["app", "dms"]),
    dedup_key=st.uuids().map(str),
)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(attributes=st.dictionaries(text, json_values, max_size=5), evs=st.lists(events, max_size=8),
       cars=st.lists(st.builds(Car, vin=st.text("ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=17, max_size=17),
                               brand=text, model=text, model_year=st.none() | st.integers(1990, 2030),
                               purchase_date=st.none() | st.dates(), store_id=st.none()), max_size=3,
                     unique_by=lambda c: c.vin))
def test_model_round_trips_through_the_store(request, tmp_path_factory, kind, attributes, evs, cars):
    if kind == "postgresql":  # PostgreSQL text holds no NUL (test_postgres_refuses_nul_with_an_operator_error)
        from hypothesis import assume

        from motorcade.store.codec import dumps

        assume("\\u0000" not in dumps([attributes, [e.properties for e in evs]]))  # JSON escapes a NUL
        cars = [attr.evolve(c, brand=c.brand.replace("\x00", ""), model=c.model.replace("\x00", "")) for c in cars]
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
        store = open_store(url)
    else:
        store = open_store(tmp_path_factory.mktemp("rt") / "rt.db")
    try:
        pid = store.create_person(attributes)
        assert store.get_person(pid).attributes == attributes
        with store.transaction():
            store.insert_events([Event(e.name, e.ts, pid, e.properties, e.source, e.dedup_key) for e in evs])
            store.upsert_cars(cars)
        stored = store.events_of(pid)
        expected = sorted((Event(e.name, e.ts, pid, e.properties, e.source, e.dedup_key) for e in evs),
                          key=lambda e: e.ts)
        assert [(e.name, e.ts, e.properties, e.source, e.dedup_key) for e in stored] == \
               [(e.name, e.ts, e.properties, e.source, e.dedup_key) for e in expected]
        for car in cars:
            assert store.get_car(car.vin) == car
    finally:
        store.close()
        if kind == "postgresql":
            cluster.drop_database(url)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_opening_a_new_store_at_once_migrate_it_once(request, tmp_path, kind):
    import subprocess
    import sys

    code = "import sys; from motorcade.store import open_store; print(open_store(sys.argv[1]).status_counts()['people'])"
    for round_ in range(4):
        path = tmp_path / f"race{round_}.db" if kind == "sqlite" else \
            request.getfixturevalue("pg_cluster").create_database()
        workers = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outputs = [w.communicate(timeout=60) for w in workers]
        assert [(w.returncode, out.strip()) for w, (out, _err) in zip(workers, outputs)] == [(0, "0")] * 3, outputs
        versions = open_store(path).conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert [v[0] for v in versions] == list(range(1, len(MIGRATIONS) + 1))


def test_a_store_newer_than_the_code_is_refused(store_database):
    import pytest

    from motorcade.errors import MotorcadeError

    store = open_store(store_database)
    store.conn.execute("INSERT INTO schema_version VALUES (?, 'm999_future', '2030-01-01')", (len(MIGRATIONS) + 1,))
    store.close()
    with pytest.raises(MotorcadeError, match="newer than this Motorcade knows"):
        open_store(store_database)


def test_a_file_that_is_not_a_database_is_an_operator_error(tmp_path):
    import pytest

    from motorcade.errors import MotorcadeError

    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(MotorcadeError, match="cannot be opened as a Motorcade database"):
        open_store(tmp_path / "junk.db")


def test_postgres_refuses_nul_with_an_operator_error(pg_url):
    from motorcade.errors import MotorcadeError

    store = open_store(pg_url)
    with pytest.raises(MotorcadeError, match=r"cars contains the NUL character"):
        store.upsert_cars([Car("LBV3A5106KMA00001", "BMW", "X\x003", 2019, None, None)])
    store.close()


def test_postgresql_tests_skip_with_an_install_hint_and_fail_the_run_under_ci(tmp_path):
    """Without PostgreSQL binaries the PostgreSQL tests are skipped, saying how to install them; under CI=true
    the same run fails (CI must test both stores)."""
    import os
    import subprocess
    import sys

    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    args = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:randomly", "tests/test_store.py", "-k",
            "test_events_are_deduplicated_per_source"]
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["MOTORCADE_PG_BIN"] = str(tmp_path / "no-postgresql-here")
    local = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stdout
    assert "1 passed, 1 skipped" in local.stdout and "apt-get install postgresql" in local.stdout
    ci = subprocess.run(args, cwd=root, env={**env, "CI": "true"}, capture_output=True, text=True, timeout=300)
    assert ci.returncode != 0 and "CI=true requires them" in ci.stdout
