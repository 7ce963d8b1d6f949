"""Stable ids, the merge log, explain and split: a bad merge is undone and events follow their people."""

import datetime as dt

import pytest
from click.testing import CliRunner

from motorcade.errors import MotorcadeError
from motorcade.identity.explain import explain, split, unsplit
from motorcade.sources.base import EventRecord, PersonRecord, RawIdentifier
from motorcade.sources.ingest import Ingestor
from motorcade.store import open_store


def person(key, **ids):
    return PersonRecord(source_key=key, identifiers=tuple(RawIdentifier(t, v) for t, v in ids.items()), position=key)


def event(name, ts, dedup, **ids):
    return EventRecord(name=name, ts=ts, identifiers=tuple(RawIdentifier(t, v) for t, v in ids.items()),
                       dedup_key=dedup, position=dedup)


def test_merge_keeps_the_oldest_id_and_split_restores_both(tmp_path):
    store = open_store(tmp_path / "m.db")
    ing = Ingestor(store)
    ing.ingest_records("crm", [[person("C1", crm_id="C1", phone="13900000001")]])
    ing.ingest_records("app", [[person("U7", app_user_id="U7", email="a@b.cn")]])
    a = store.person_of_identifier("crm_id", "C1")
    b = store.person_of_identifier("app_user_id", "U7")
    assert a < b
    ing.ingest_records("events", [[
        event("app_login", "2025-01-01 10:00:00", "e1", app_user_id="U7"),
        event("order", "2025-01-02 10:00:00", "e2", crm_id="C1"),
    ]])
    # an event carrying both identifiers merges the two people into the older id
    ing.ingest_records("events", [[event("app_login", "2025-01-03 10:00:00", "e3", app_user_id="U7",
                                         phone="13900000001")]])
    assert store.person_of_identifier("app_user_id", "U7") == a
    assert store.resolve_person_id(b) == a
    assert {e.dedup_key for e in store.events_of(a)} == {"e1", "e2", "e3"}
    e = explain(store, f"{b}")
    assert e.person_id == a and any(old == b for old, _, _ in e.merged_ids)
    assert {l["type"] for _, _, l in e.chain} >= {"phone", "app_user_id"}

    # the phone typed into the app was someone else's: split it off
    people = split(store, a, identifier="phone:13900000001")
    assert sorted(people) == [a, b]
    # each piece's golden record comes from its own records again (not the merged person's)
    assert store.get_person(b).attributes["sources"] == ["app", "events"]
    assert store.recompute_golden_records([a, b], ing.guards.priority) == 0
    assert store.person_of_identifier("app_user_id", "U7") == b
    assert store.resolve_person_id(b) == b  # the old id means the old person again
    assert {e.dedup_key for e in store.events_of(b)} == {"e1", "e3"}
    assert {e.dedup_key for e in store.events_of(a)} == {"e2"}
    # e3 carried only the split phone and the app id: it follows the app user
    e3 = store.conn.execute("SELECT person_id FROM events WHERE dedup_key = 'e3'").fetchone()[0]
    assert e3 == b
    # the flagged phone never links again, even when re-ingested
    ing.ingest_records("events", [[event("app_login", "2025-01-04 10:00:00", "e4", app_user_id="U7",
                                         phone="13900000001")]])
    assert store.resolve_person_id(b) == b and store.get_person(a) is not None


def test_shared_identifier_over_the_limit_is_flagged_and_unmerged(tmp_path):
    store = open_store(tmp_path / "s.db")
    ing = Ingestor(store)
    leads = [person(f"L{i}", lead_id=f"L{i}", phone="13912345678") for i in range(8)]
    ing.ingest_records("leads", [leads[:3], leads[3:]])
    pids = {store.person_of_identifier("lead_id", f"L{i}") for i in range(8)}
    assert len(pids) == 8
    stats = store.identity_stats()
    assert stats["flagged"][0]["reason"].startswith("shared by 8 records of source leads")


def test_cli_explain_and_split(tmp_path, motorcade_project):
    store = motorcade_project.store
    ing = Ingestor(store)
    ing.ingest_records("crm", [[person("C1", crm_id="C1", phone="13900000001"),
                                person("C2", crm_id="C2", phone="13900000001")]])
    pid = store.person_of_identifier("crm_id", "C1")
    from motorcade.cli import build_cli

    runner = CliRunner()
    args = ["--project", str(motorcade_project.directory), "identity"]
    out = runner.invoke(build_cli(), args + ["explain", "phone:13900000001"])
    assert out.exit_code == 0, out.output
    assert "+86139****0001" in out.output and "13900000001" not in out.output
    assert "-- phone" in out.output
    out = runner.invoke(build_cli(), args + ["split", str(pid), "--identifier", "phone:13900000001"])
    assert out.exit_code == 0, out.output
    assert "is now 2 people" in out.output


def test_over_shared_flag_reason_follows_the_count(tmp_path):
    store = open_store(tmp_path / "s.db")
    ing = Ingestor(store)
    leads = [person(f"L{i}", lead_id=f"L{i}", phone="13912345678") for i in range(31)]
    ing.ingest_records("leads", [leads[:3], leads[3:6], leads[6:20]])
    ing.ingest_records("leads", [leads[20:]])
    ing.ingest_records("crm", [[person("C1", crm_id="C1", phone="13912345678")]])
    (flag,) = store.list_flagged_identifiers()
    assert flag["reason"] == "shared by 31 records of source leads (limit 5 for phone)"
    assert flag["records"] == 32


def _merged_pair(tmp_path):
    store = open_store(tmp_path / "u.db")
    ing = Ingestor(store)
    ing.ingest_records("crm", [[person("C1", crm_id="C1", phone="13900000001")]])
    ing.ingest_records("app", [[person("U7", app_user_id="U7", email="a@b.cn")]])
    ing.ingest_records("events", [[event("order", "2025-01-02 10:00:00", "e2", crm_id="C1"),
                                   event("app_login", "2025-01-03 10:00:00", "e3", app_user_id="U7", phone="13900000001")]])
    a = store.person_of_identifier("crm_id", "C1")
    b = store.person_of_identifier("app_user_id", "U7")
    assert a == b
    return store, ing, a


def test_split_by_link_keeps_its_reason_and_can_be_undone(tmp_path):
    store, ing, a = _merged_pair(tmp_path)
    e = explain(store, str(a))
    (link,) = [l for _, _, l in e.chain if l["type"] == "phone" and l["source"] == "events"]
    people = split(store, a, link_id=link["link_id"], reason="ticket 4411: shared family phone")
    assert len(people) == 2
    b = store.person_of_identifier("app_user_id", "U7")
    assert b != a
    (s,) = store.list_identity_splits(a)
    assert s["reason"] == "ticket 4411: shared family phone" and s["link_id"] == link["link_id"]
    assert sorted(s["people"]) == sorted(people) and s["undone_at"] is None
    for pid in (a, b):  # both pieces show the split and its reason
        assert any(x["reason"] == "ticket 4411: shared family phone" for x in explain(store, str(pid)).splits)

    # undo: the link comes back and the pieces are one person again, recorded in the merge log
    merged = unsplit(store, s["id"], reason="customer confirmed one household account")
    assert merged == a
    assert store.person_of_identifier("app_user_id", "U7") == a and store.resolve_person_id(b) == a
    assert {ev.dedup_key for ev in store.events_of(a)} == {"e2", "e3"}
    (s,) = store.list_identity_splits(a)
    assert s["undone_at"] is not None and s["undo_reason"] == "customer confirmed one household account"
    e = explain(store, str(a))
    assert any(old == b and f"split #{s['id']} undone" in why for old, _, why in e.merged_ids)
    assert not e.not_linking  # the link is live again
    with pytest.raises(MotorcadeError, match="already undone"):
        unsplit(store, s["id"])


def test_split_by_identifier_can_be_undone(tmp_path):
    store, ing, a = _merged_pair(tmp_path)
    split(store, a, identifier="phone:13900000001", reason="typed by the salesperson")
    assert store.person_of_identifier("phone", "+8613900000001") is None
    (s,) = store.list_identity_splits(a)
    assert unsplit(store, s["id"]) == a
    assert store.person_of_identifier("phone", "+8613900000001") == a
    assert store.person_of_identifier("app_user_id", "U7") == a
    # the undone identifier links again on the next ingest
    ing.ingest_records("leads", [[person("L1", lead_id="L1", phone="13900000001")]])
    assert store.person_of_identifier("lead_id", "L1") == a


def test_split_of_an_unknown_person_says_so(tmp_path):
    store, _ing, a = _merged_pair(tmp_path)
    with pytest.raises(MotorcadeError, match="no person with id 9999"):
        split(store, 9999, identifier="phone:13900000001")
    with pytest.raises(MotorcadeError, match="no person with id 9999"):
        split(store, 9999, link_id=1)
    with pytest.raises(MotorcadeError, match="no split #42"):
        unsplit(store, 42)


def test_cli_split_with_reason_is_logged_and_undone(motorcade_project):
    store = motorcade_project.store
    ing = Ingestor(store)
    ing.ingest_records("crm", [[person("C1", crm_id="C1", phone="13900000001"),
                                person("C2", crm_id="C2", phone="13900000001")]])
    pid = store.person_of_identifier("crm_id", "C1")
    link = [l for l in store.identity_links_of(pid) if l["type"] == "phone"][1]
    from motorcade.cli import build_cli

    args = ["--project", str(motorcade_project.directory), "identity"]
    run = lambda *a: CliRunner().invoke(build_cli(), args + list(a))  # noqa: E731
    out = run("split", str(pid), "--link", str(link["link_id"]), "--reason", "twins share a phone")
    assert out.exit_code == 0, out.output
    assert "Split #1" in out.output and "identity unsplit 1" in out.output
    out = run("splits")
    assert "twins share a phone" in out.output and "13900000001" not in out.output and "139****0001" in out.output
    out = run("explain", str(pid))
    assert "twins share a phone" in out.output
    out = run("unsplit", "1", "--reason", "not twins after all")
    assert out.exit_code == 0, out.output
    assert f"person {pid} again" in out.output
    out = run("explain", str(pid))
    assert "split #1 undone: not twins after all" in out.output
    out = run("split", "9999", "--identifier", "phone:13900000001")
    assert out.exit_code == 1 and "no person with id 9999" in str(out.exception)
