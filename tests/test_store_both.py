"""The store's named functions on both stores (SQLite and a throwaway PostgreSQL, tests/conftest.py): outbox
claims and leases, the inbox, quarantine, tags, segment runs, identity repairs and the report reads give
the same answers; on PostgreSQL, concurrent claims never hand one send to two workers."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from motorcade.model import Car, Consent, Event, Ownership, Store
from motorcade.store import open_store
from motorcade.testing import store_conformance_problems

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 9, tzinfo=UTC)


def _send(key: str, person: int, *, run: str = "r1", not_before=None, transactional=False) -> dict:
    return {"idempotency_key": key, "origin_kind": "campaign", "origin": "spring", "run_id": run,
            "person_id": person, "channel": "webhook", "template": "t", "revision": "rev",
            "not_before": not_before, "payload": {"transactional": transactional, "steps": []}}


@pytest.fixture
def store(store_database):
    s = open_store(store_database)
    try:
        yield s
    finally:
        s.close()


def test_the_store_satisfies_the_protocol(store):
    assert store_conformance_problems(store) == []


def test_due_sends_break_ties_by_idempotency_key_so_both_stores_claim_in_one_order(store):
    """Sends planned in one pass share ``created_at``; which of them a worker claims first decides which a
    frequency cap lets through, so the order must not be the engine's (SQLite's rowid order, PostgreSQL's heap
    order, which an update reshuffles). The demo's summary differed between the stores by exactly that."""
    people = [store.create_person({"name": f"p{i}"}) for i in range(6)]
    keys = ["k5", "k2", "k4", "k0", "k3", "k1"]
    with store.transaction():
        store.enqueue_sends([_send(k, people[int(k[1])]) for k in keys], at=T0)
    assert store.update_send("k0", now=T0, reason="touched")  # a new row version (moves it on PostgreSQL)
    # a retry due at a time comes after the planned sends (no not_before sorts first, on both stores)
    assert store.update_send("k4", now=T0, status="failed", not_before=T0 - dt.timedelta(minutes=1))
    assert [s["idempotency_key"] for s in store.due_sends(T0, limit=10)] == ["k0", "k1", "k2", "k3", "k5", "k4"]
    assert [s["idempotency_key"] for s in store.due_sends(T0, limit=2)] == ["k0", "k1"]


def test_outbox_claim_renew_release_and_expiry(store):
    people = [store.create_person({"name": f"p{i}"}) for i in range(3)]
    assert store.create_run("r1", origin_kind="campaign", origin="spring", revision="rev", scheduled_for=None,
                            started_at=T0)
    assert not store.create_run("r1", origin_kind="campaign", origin="spring", revision="rev", scheduled_for=None,
                                started_at=T0)
    with store.transaction():
        assert store.add_audience_snapshot("r1", [(people[0], "treatment"), (people[1], "holdout")]) == 2
        inserted = store.enqueue_sends([_send("k1", people[0]), _send("k2", people[1]),
                                        _send("k3", people[2], not_before=T0 + dt.timedelta(hours=1))], at=T0)
    assert inserted == ["k1", "k2", "k3"]
    assert store.enqueue_sends([_send("k1", people[0])], at=T0) == []  # never planned twice
    assert store.audience_snapshot("r1") == {people[0]: "treatment", people[1]: "holdout"}
    due = store.due_sends(T0, limit=10)
    assert [s["idempotency_key"] for s in due] == ["k1", "k2"]
    until = T0 + dt.timedelta(minutes=5)
    with store.transaction():
        for key in ("k1", "k2"):
            assert store.update_send(key, now=T0, expect_status="planned", status="claimed", claimed_by="w1",
                                     claimed_until=until)
    assert not store.update_send("k1", now=T0, expect_status="planned", status="claimed", claimed_by="w2")
    assert store.renew_claims(["k1", "k2"], "w1", until=until, now=T0, count_attempt=True) == {"k1", "k2"}
    assert store.renew_claims(["k1"], "w2", until=until, now=T0) == set()
    assert store.get_send("k1")["attempts"] == 1
    assert store.release_claims(["k2"], "w1", now=T0) == 1
    assert store.get_send("k2")["status"] == "planned"
    # w1 dies: once its claim has expired, k1 is claimable again with the same key
    assert "k1" not in {s["idempotency_key"] for s in store.due_sends(until - dt.timedelta(seconds=1), limit=10)}
    assert "k1" in {s["idempotency_key"] for s in store.due_sends(until + dt.timedelta(seconds=1), limit=10)}
    assert store.update_send("k1", now=until, expect_claimed_by="w1", status="sent", claimed_by=None,
                             claimed_until=None, provider_message_id="m-1")
    assert store.send_by_provider_message_id("webhook", "m-1")["idempotency_key"] == "k1"
    assert store.marketing_sends_since(people[0], T0 - dt.timedelta(days=1)) == 1
    assert store.next_due_at() == dt.datetime(1970, 1, 1, tzinfo=UTC)  # k2 planned with no not_before
    assert store.status_counts_of_sends() == {"planned": 2, "sent": 1}
    assert store.run_send_outcomes(["r1"]) == [("planned", "", 2), ("sent", "", 1)]
    assert store.update_send("k2", now=T0, status="dead", reason="boom")
    assert store.retry_sends(status="dead", now=T0) == 1
    assert store.get_send("k2")["reason"] == "retried by operator (was: boom)"
    assert [s["idempotency_key"] for s in store.list_sends(run_id="r1", limit=10)] == ["k1", "k2", "k3"]


def test_leases_have_one_holder_until_they_expire(store):
    assert store.acquire_lease("dispatcher", "a", ttl_seconds=30, now=T0)
    assert not store.acquire_lease("dispatcher", "b", ttl_seconds=30, now=T0 + dt.timedelta(seconds=10))
    assert store.acquire_lease("dispatcher", "a", ttl_seconds=30, now=T0 + dt.timedelta(seconds=20))  # renewed
    assert store.lease_holder("dispatcher", now=T0 + dt.timedelta(seconds=40)) == "a"
    assert store.acquire_lease("dispatcher", "b", ttl_seconds=30, now=T0 + dt.timedelta(seconds=51))
    store.release_lease("dispatcher", "a")  # not a's any more: nothing happens
    assert store.lease_holder("dispatcher", now=T0 + dt.timedelta(seconds=52)) == "b"


def test_inbox_quarantine_cursors_and_tokens(store):
    assert store.inbox_append("http", [("m1", "2026-03-01T09:00:00+00:00", "{}"),
                                       ("m1", "2026-03-01T09:00:01+00:00", "{}"),
                                       ("m2", "2026-03-01T09:00:02+00:00", "{\"a\": 1}")]) == (2, 1)
    read = store.inbox_read("http")
    assert [r[2] for r in read] == ["{}", "{\"a\": 1}"] and read[0][0] < read[1][0]  # ids ascend (gaps allowed)
    assert store.inbox_last_id("http") == read[1][0]
    assert store.inbox_purge("http", up_to_id=read[0][0], received_before="2026-03-02T00:00:00+00:00") == 1
    assert store.quarantine_rows("crm", [("row 3", "a,b", "bad phone"), ("row 3", "a,b", "bad phone")]) == 1
    assert [(q.source, q.reason) for q in store.list_quarantine()] == [("crm", "bad phone")]
    store.set_source_cursor("crm", "2026-01-01")
    store.set_source_cursor("crm", "2026-01-01")
    assert store.get_source_cursor("crm") == "2026-01-01"
    store.put_channel_token("wecom", "tok", T0 + dt.timedelta(hours=2))
    assert store.get_channel_token("wecom", valid_at=T0) == ("tok", T0 + dt.timedelta(hours=2))
    assert not store.drop_channel_token("wecom", "other")
    assert store.drop_channel_token("wecom", "tok")


def test_tags_segments_and_merges_follow_people(store):
    a, b = store.create_person({"name": "A"}), store.create_person({"name": "B"})
    store.write_tag_values([(a, "score", 3), (b, "score", 2.5), (a, "level", "gold"), (b, "vip", True)],
                           tags=["score", "level", "vip"], calculator="c", calculator_version="1", computed_at=T0)
    assert [(t.tag, t.value) for t in store.tags_of(a)] == [("level", "gold"), ("score", 3)]
    assert [(t.tag, t.value) for t in store.tags_of(b)] == [("score", 2.5), ("vip", 1)]
    figures = store.tag_value_figures("score", numeric=True)
    assert (figures["count"], figures["min"], figures["max"], figures["mean"]) == (2, 2.5, 3, 2.75)
    assert store.tag_value_figures("level", numeric=False)["counts"] == {"gold": 1}
    assert store.tag_histogram("score", 0, 5, 5) == [0, 0, 1, 1, 0]
    assert store.tag_value_pairs("score", "level") == [(a, 3, "gold")]
    run = store.record_segment_run("s", [a, b], revision="r", as_of=T0, computed_at=T0, duration_ms=1.0, plan=None)
    assert (run["size"], run["entered"], run["left"]) == (2, 2, 0)
    with store.transaction():
        store.merge_people(a, [b], reason="test", at=T0)
        store.settle_identity()
    assert store.resolve_person_id(b) == a
    assert store.get_person(b).id == a
    assert {t.tag for t in store.tags_of(a)} == {"score", "level", "vip"}


def test_ownerships_consents_and_events(store):
    store.upsert_stores([Store("SH001", "上海浦东4S店", "华东")])
    store.upsert_cars([Car("LBV3A5106KMA00001", "BMW", "X3", 2019, dt.date(2019, 5, 1), "SH001")])
    p, q = store.create_person(), store.create_person()
    store.add_ownership(Ownership(p, "LBV3A5106KMA00001", dt.date(2019, 5, 1)))
    store.add_ownership(Ownership(q, "LBV3A5106KMA00001", dt.date(2023, 2, 1)))
    assert store.ownerships_of(p)[0].valid_to == dt.date(2023, 2, 1)
    assert store.set_consent(Consent(p, "sms", False, T0, "app"))
    assert not store.set_consent(Consent(p, "sms", True, T0 - dt.timedelta(days=1), "crm"))
    with store.transaction():
        assert store.insert_events([Event("share", T0, p, {"content": "x", "n": 2}, "app", "e1"),
                                    Event("share", T0, p, {}, "app", "e1")]) == 1
    assert [(e.name, e.properties) for e in store.events_of(p)] == [("share", {"content": "x", "n": 2})]
    assert store.event_names() == ["share"]


def test_report_reads_give_the_same_rows_on_both_stores(tmp_path, pg_url):
    """A campaign with a holdout, feedback events and ownerships: every report read equal on both stores."""
    results = []
    for database in (str(tmp_path / "r.db"), pg_url):
        store = open_store(database)
        store.upsert_stores([Store("S1", "s1", "g"), Store("S2", "s2", "g")])
        people = [store.create_person({"name": f"客户{i}"}) for i in range(6)]
        store.upsert_cars([Car(f"VIN{i:014d}", "BMW", "X3", 2020, None, "S1") for i in range(6)])
        for i, pid in enumerate(people):
            store.set_relation(pid, "selling_store", "S1" if i % 2 else "S2")
            store.add_ownership(Ownership(pid, f"VIN{i:014d}", dt.date(2025, 1 + i, 15)))
        store.create_run("run1", origin_kind="campaign", origin="spring", revision="rev", scheduled_for=None,
                         started_at=T0)
        with store.transaction():
            store.add_audience_snapshot("run1", [(pid, "holdout" if i == 0 else "treatment")
                                                 for i, pid in enumerate(people)])
            store.enqueue_sends([_send(f"k{i}", pid, run="run1") for i, pid in enumerate(people[1:])], at=T0)
            events = []
            for i, pid in enumerate(people):
                for day in range(i):
                    ts = T0 + dt.timedelta(days=day * 9, hours=i)
                    events.append(Event("service_visit", ts, pid, {"store_id": "S1"}, "dms", f"v{i}-{day}"))
                    events.append(Event("sms_click", ts + dt.timedelta(minutes=5), pid,
                                        {"campaign": "spring", "run_id": "run1"}, "motorcade", f"c{i}-{day}"))
            store.insert_events(events)
        until = int((T0 + dt.timedelta(days=90)).timestamp())
        results.append({
            "funnel": store.funnel_paths(["service_visit", "sms_click"], within=(1, "months"), zone="Asia/Shanghai"),
            "funnel_store": store.funnel_paths(["sms_click"], campaign="spring", by="store"),
            "runs": store.campaign_runs("spring", until=until),
            "outcomes": store.campaign_outcomes("spring", event="service_visit", window_seconds=30 * 86400,
                                                service_event="service_visit", zone="Asia/Shanghai", until=until),
            "counts": store.campaign_send_counts("spring", until=until),
            "cohorts": store.cohort_activity(cohort_event=None, return_event="service_visit", zone="Asia/Shanghai"),
            "cohorts_ev": store.cohort_activity(cohort_event="service_visit", return_event="sms_click",
                                                zone="Asia/Shanghai", store="S1"),
            "churn": store.owner_service_histories(service_event="service_visit", as_of=until, zone="Asia/Shanghai"),
            "contacts": store.contact_summaries(people),
            "homes": store.home_stores(people),
        })
        store.close()
    sqlite_rows, postgres_rows = results
    for key in sqlite_rows:
        assert postgres_rows[key] == sqlite_rows[key], key
    assert sqlite_rows["outcomes"] and sqlite_rows["cohorts"]["sizes"]


def test_concurrent_claims_on_postgresql_never_share_a_send(pg_url):
    """Four threads (four connections) claim at once, each in its own transaction with FOR UPDATE SKIP
    LOCKED: every send is claimed exactly once."""
    store = open_store(pg_url)
    pid = store.create_person()
    with store.transaction():
        store.enqueue_sends([_send(f"k{i:04d}", pid) for i in range(400)], at=T0)
    claimed: dict[str, list[str]] = {}
    errors = []
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        try:
            barrier.wait()
            while True:
                with store.transaction(immediate=False):  # no writer lock: the row locks alone keep claims apart
                    due = store.due_sends(T0, limit=25)
                    for send in due:
                        assert store.update_send(send["idempotency_key"], now=T0, expect_status="planned",
                                                 status="claimed", claimed_by=name,
                                                 claimed_until=T0 + dt.timedelta(minutes=5))
                if not due:
                    return
                claimed.setdefault(name, []).extend(s["idempotency_key"] for s in due)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    assert not errors
    keys = [k for ks in claimed.values() for k in ks]
    assert sorted(keys) == [f"k{i:04d}" for i in range(400)]  # each once: none shared, none lost


def test_one_id_on_postgresql_writes_a_batch_in_a_few_statements_not_one_per_row(pg_url):
    """Stitching ran at 740-1,270 records/s on PostgreSQL against 6,600-7,200 on SQLite: the new people,
    records, identifiers and links of a batch went in one INSERT per row (executemany sends each row as its
    own statement). The same results (the One-ID checks above and tests/test_e2e_stores.py) in set-based
    statements: a batch of 400 records costs a few dozen statements."""
    from motorcade.sources.base import PersonRecord, RawIdentifier
    from motorcade.sources.ingest import Ingestor

    store = open_store(pg_url)
    try:
        conn = store.conn
        statements = {"n": 0}
        for name in ("execute", "execute_native"):
            def counted(*args, _real=getattr(conn, name), **kwargs):
                statements["n"] += 1
                return _real(*args, **kwargs)
            setattr(conn, name, counted)

        def counted_many(sql, rows, _real=conn.executemany):
            rows = list(rows)
            statements["n"] += len(rows)
            return _real(sql, rows)
        conn.executemany = counted_many
        records = [PersonRecord(source_key=f"C{i:05d}", position=str(i), attributes={"name": f"n{i}"},
                                identifiers=(RawIdentifier("crm_id", f"C{i:05d}"),
                                             RawIdentifier("phone", f"1381000{i // 2:04d}")))  # pairs share a phone
                   for i in range(400)]
        report = Ingestor(store).ingest_records("crm", [records])
        assert statements["n"] < 100, f"{statements['n']} statements for 400 records"
        people = store.person_ids()
        assert len(people) == 200 and report.merged == 0
        person = store.get_person(people[0])
        assert {i.type for i in person.identifiers} == {"crm_id", "phone"} and len(person.identifiers) == 3
        assert store.query("SELECT count(*) FROM identity_links")[0][0] == 800
        # the sequences moved past the explicit ids: the next person gets a new id
        assert store.create_person({"name": "later"}) > max(people)
    finally:
        store.close()


def test_people_in_a_store_scope_keeps_the_order_and_only_the_stores_people(store):
    from motorcade.access.scope import Scope

    people = [store.create_person({"name": f"p{i}"}) for i in range(7)]
    store.set_relation(people[1], "service_store", "SH01")
    store.set_relation(people[4], "selling_store", "SH01")
    store.set_relation(people[5], "selling_store", "BJ02")
    asked = [people[5], people[4], people[0], people[1], 999_999]
    assert store.people_in(Scope.of_stores("SH01"), asked) == [people[4], people[1]]
    assert store.people_in(Scope.of_stores("SH01", "BJ02"), asked) == [people[5], people[4], people[1]]
    assert store.people_in(Scope.everyone(), asked) == asked
    assert store.people_in(Scope.of_stores("SH01"), []) == []
    many = people * 1500  # more than one chunk of ids
    assert store.people_in(Scope.of_stores("BJ02"), many) == [people[5]] * 1500
