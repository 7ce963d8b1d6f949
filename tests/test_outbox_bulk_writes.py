"""The outbox and feedback writes of a batch of sends, done in bulk (one read of the keys present and one
executemany; the merge log followed for all people at once), give what one statement per send gave. On
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from motorcade.model import Event

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def store(store_database):
    from motorcade.store import open_store

    opened = open_store(store_database)
    try:
        yield opened
    finally:
        opened.close()


def _send(key: str, person_id: int, body: str) -> dict:
    return {"idempotency_key": key, "origin_kind": "journey", "origin": "j", "run_id": "journey:j",
            "person_id": person_id, "step": 0, "channel": "memory", "template": "t", "revision": "r",
            "payload": {"steps": [{"body": body}]}}


def test_enqueue_inserts_new_keys_once_keeps_the_first_of_a_key_and_never_touches_a_planned_one(store):
    pid = store.create_person({"name": "p"})
    with store.transaction():
        assert store.enqueue_sends([_send("k1", pid, "old")], at=T0) == ["k1"]
    batch = [_send(f"k{n}", pid, f"new {n}") for n in (5, 1, 3, 2)] + [_send("k3", pid, "second of k3")]
    with store.transaction():
        assert store.enqueue_sends(batch, at=T0) == ["k5", "k3", "k2"]  # in the order given, each once
        assert store.enqueue_sends(batch, at=T0) == []
    bodies = {s["idempotency_key"]: s["payload"]["steps"][0]["body"] for s in store.list_sends(limit=100)}
    assert bodies == {"k1": "old", "k2": "new 2", "k3": "new 3", "k5": "new 5"}
    assert store.enqueue_sends([], at=T0) == []
    # outside a transaction it takes one of its own
    assert store.enqueue_sends([_send("k9", pid, "x"), _send("k1", pid, "y")], at=T0) == ["k9"]


def test_feedback_events_of_many_people_follow_the_merge_log_as_one_at_a_time_does(store):
    with store.transaction():
        ids = [store.create_person({"name": f"p{n}"}) for n in range(8)]
        store.merge_people(ids[0], [ids[1], ids[2]], reason="t", at=T0)
        store.merge_people(ids[3], [ids[4]], reason="t", at=T0)
        store.merge_people(ids[0], [ids[3]], reason="t", at=T0)  # 4 -> 3 -> 0: a chain the log keeps short
    unknown = max(ids) + 100
    named = ids + [unknown]
    expected = {pid: store.live_person_id(pid) for pid in named}
    assert expected[ids[4]] == ids[0] and expected[unknown] is None
    assert store._live_person_ids(set(named)) == expected
    with store.transaction():
        assert store.insert_events([Event("queued", T0, pid, {"n": n}, "motorcade", f"q:{n}")
                                    for n, pid in enumerate(named)]) == len(named)
    stored = {e.dedup_key: e.person_id for pid in ids for e in store.events_of(pid)}  # an unknown id: nobody's
    assert {f"q:{n}": stored.get(f"q:{n}") for n in range(len(named))} == {
        f"q:{n}": expected[pid] for n, pid in enumerate(named)}
