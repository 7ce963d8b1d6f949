"""Identifier values that did not clean are kept with their reason (``identity rejected``), explain says so,
and ``[identity.phone] accept_unknown_ranges`` keeps well-formed numbers of ranges the numbering data lacks."""

import json

import pytest
from click.testing import CliRunner

from motorcade.errors import MotorcadeError
from motorcade.identity.explain import explain
from motorcade.identity.guards import IdentityGuards
from motorcade.sources.base import EventRecord, PersonRecord, RawIdentifier
from motorcade.sources.clean import CleanError, clean_phone
from motorcade.sources.ingest import Ingestor
from motorcade.store import open_store

UNASSIGNED = "15412345678"  # the 154 block: well-formed, but not in the numbering data


def person(key, **ids):
    return PersonRecord(source_key=key, identifiers=tuple(RawIdentifier(t, v) for t, v in ids.items()), position=key)


def event(dedup, **ids):
    return EventRecord(name="view", ts="2025-01-02 10:00:00", identifiers=tuple(RawIdentifier(t, v) for t, v in ids.items()),
                       dedup_key=dedup, position=dedup)


def test_rejected_identifiers_are_kept_with_their_reason(tmp_path):
    store = open_store(tmp_path / "s.db")
    ing = Ingestor(store, guards=IdentityGuards.from_config({}))
    summary = ing.ingest_records("crm", [[person("C1", crm_id="C1", phone=UNASSIGNED),
                                          person("C2", crm_id="C2", phone="12345", email="not-an-address")]])
    assert summary.identifiers_dropped == 3
    rows = store.list_rejected_identifiers()
    assert {(r["source"], r["type"], r["value"]) for r in rows} == {
        ("crm", "phone", UNASSIGNED), ("crm", "phone", "12345"), ("crm", "email", "not-an-address")}
    reasons = {r["value"]: r["reason"] for r in rows}
    assert "not in an assigned number range" in reasons[UNASSIGNED]
    assert "accept_unknown_ranges" in reasons[UNASSIGNED]
    assert reasons["not-an-address"] == "not an e-mail address"
    # events reject the same way, once per source however often the value recurs
    ing.ingest_records("app", [[event("e1", crm_id="C1", phone="154 1234 5678"), event("e2", crm_id="C1", phone="154 1234 5678")]])
    assert [r["value"] for r in store.list_rejected_identifiers(source="app")] == ["154 1234 5678"]
    # a re-run adds nothing
    before = store.conn.execute("SELECT source, type, value, reason FROM rejected_identifiers").fetchall()
    ing.ingest_records("crm", [[person("C1", crm_id="C1", phone=UNASSIGNED)]])
    assert store.conn.execute("SELECT source, type, value, reason FROM rejected_identifiers").fetchall() == before


def test_explain_says_an_identifier_was_rejected_and_why(tmp_path):
    store = open_store(tmp_path / "s.db")
    Ingestor(store).ingest_records("crm", [[person("C1", crm_id="C1", phone=UNASSIGNED)]])
    for query in (f"phone:{UNASSIGNED}", f"phone:+86 {UNASSIGNED}", UNASSIGNED):
        with pytest.raises(MotorcadeError) as exc:
            explain(store, query)
        text = str(exc.value) + (exc.value.hint or "")
        assert "was rejected" in text and "crm" in text and "assigned number range" in text, text
        assert UNASSIGNED not in text  # masked


def test_accept_unknown_ranges_keeps_well_formed_numbers(tmp_path):
    with pytest.raises(CleanError):
        clean_phone(UNASSIGNED)
    assert clean_phone(UNASSIGNED, accept_unknown_ranges=True) == "+86" + UNASSIGNED
    with pytest.raises(CleanError):  # not well-formed: still rejected
        clean_phone("12345", accept_unknown_ranges=True)
    with pytest.raises(CleanError):
        clean_phone("10012345678", accept_unknown_ranges=True)  # no mobile starts 10
    assert clean_phone("+1 999 555 0100", "US", accept_unknown_ranges=True) == "+19995550100"
    store = open_store(tmp_path / "s.db")
    guards = IdentityGuards.from_config({"phone": {"accept_unknown_ranges": True}})
    summary = Ingestor(store, guards=guards).ingest_records("crm", [[person("C1", crm_id="C1", phone=UNASSIGNED)]])
    assert summary.identifiers_dropped == 0
    assert store.person_of_identifier("phone", "+86" + UNASSIGNED) == store.person_of_identifier("crm_id", "C1")
    assert explain(store, f"phone:{UNASSIGNED}").person_id == store.person_of_identifier("crm_id", "C1")


def test_cli_lists_rejected_identifiers_masked(motorcade_project):
    Ingestor(motorcade_project.store).ingest_records("crm", [[person("C1", crm_id="C1", phone=UNASSIGNED)]])
    from motorcade.cli import build_cli

    args = ["--project", str(motorcade_project.directory), "identity", "rejected"]
    out = CliRunner().invoke(build_cli(), args)
    assert out.exit_code == 0, out.output
    assert "crm" in out.output and "phone" in out.output and "assigned number range" in out.output
    assert UNASSIGNED not in out.output
    out = CliRunner().invoke(build_cli(), ["--project", str(motorcade_project.directory), "identity", "stats"])
    assert out.exit_code == 0 and "rejected identifier values" in out.output and "assigned number range" in out.output
    out = CliRunner().invoke(build_cli(), args + ["--json", "--source", "crm"])
    (row,) = json.loads(out.output)
    assert row["type"] == "phone" and row["source"] == "crm" and UNASSIGNED not in row["value"]
    out = CliRunner().invoke(build_cli(), ["--project", str(motorcade_project.directory), "identity", "explain",
                                           f"phone:{UNASSIGNED}"])
    assert out.exit_code == 1 and "was rejected" in str(out.exception)
