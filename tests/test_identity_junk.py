"""Junk rules per identifier type (``[identity]``): phone rules never reject CRM ids; every identifier
flagged or dropped at ingest is counted in the summary and listable."""

import json

import pytest
from click.testing import CliRunner

from motorcade.errors import ConfigError
from motorcade.identity.guards import IdentityGuards
from motorcade.sources.base import EventRecord, PersonRecord, RawIdentifier
from motorcade.sources.ingest import Ingestor
from motorcade.store import open_store


def person(key, **ids):
    return PersonRecord(source_key=key, identifiers=tuple(RawIdentifier(t, v) for t, v in ids.items()), position=key)


def order(dedup, **ids):
    return EventRecord(name="order", ts="2025-01-02 10:00:00", identifiers=tuple(RawIdentifier(t, v) for t, v in ids.items()),
                       dedup_key=dedup, position=dedup)


def test_crm_ids_of_repeated_digits_are_real_ids(tmp_path):
    store = open_store(tmp_path / "s.db")
    ing = Ingestor(store, guards=IdentityGuards.from_config({}))
    people = ing.ingest_records("crm", [[person(k, crm_id=k, phone=p) for k, p in
                                         (("111", "13912340001"), ("222", "13912340002"), ("2222", "13912340003"))]])
    assert people.flagged == 0
    orders = ing.ingest_records("orders", [[order("o1", crm_id="111"), order("o2", crm_id="2222")]])
    assert (orders.rejected, orders.events) == (0, 2)
    for key in ("111", "2222"):
        pid = store.person_of_identifier("crm_id", key)
        assert pid is not None and pid == store.person_of_identifier("phone", f"+86139123400{'01' if key == '111' else '03'}")
    # phones keep their junk rules
    assert ing.guards.junk_reason("phone", "+8613911111111") == "phone ends in 8 identical digits"
    assert ing.guards.junk_reason("phone", "+8611111111111") == "all characters the same"
    # placeholders are junk for every type
    assert ing.guards.junk_reason("crm_id", "null") == "placeholder value"
    assert ing.guards.junk_reason("crm_id", "111") is None


def test_junk_rules_are_configurable_per_type():
    guards = IdentityGuards.from_config({"junk_rules": ["placeholder", "same_character"],
                                         "phone": {"junk_rules": ["placeholder"]},
                                         "lead_id": {"junk_rules": []}})
    assert guards.junk_reason("crm_id", "111") == "all characters the same"  # the [identity] default
    assert guards.junk_reason("phone", "+8613911111111") is None  # phone: placeholders only
    assert guards.junk_reason("lead_id", "null") is None  # no rules at all
    assert guards.junk_reason("lead_id", "13800138000") is None
    assert guards.junk_reason("phone", "+8613800138000") == "junk value"  # listed values still apply
    with pytest.raises(ConfigError, match="same_charakter"):
        IdentityGuards.from_config({"phone": {"junk_rules": ["same_charakter"]}})


def test_junk_identifiers_are_counted_as_flagged_and_listed(tmp_path):
    store = open_store(tmp_path / "s.db")
    guards = IdentityGuards.from_config({"crm_id": {"junk_rules": ["placeholder", "same_character"]}})
    ing = Ingestor(store, guards=guards)
    summary = ing.ingest_records("crm", [[person("K1", crm_id="111", phone="13912340001"),
                                          person("K2", crm_id="C2", phone="13800138000")]])
    assert summary.flagged == 2  # crm_id 111 and the junk phone, flagged as they were stored
    flagged = store.list_flagged_identifiers()
    assert {(f["type"], f["value"], f["reason"], f["records"]) for f in flagged} == {
        ("crm_id", "111", "all characters the same", 1), ("phone", "+8613800138000", "junk value", 1)}
    assert store.list_flagged_identifiers(type_="phone")[0]["value"] == "+8613800138000"
    again = ing.ingest_records("crm", [[person("K1", crm_id="111", phone="13912340001")]])
    assert again.flagged == 0  # nothing new


def test_cli_lists_flagged_identifiers_masked(motorcade_project):
    store = motorcade_project.store
    Ingestor(store).ingest_records("crm", [[person("K1", crm_id="C1", phone="13800138000")]])
    from motorcade.cli import build_cli

    out = CliRunner().invoke(build_cli(), ["--project", str(motorcade_project.directory), "identity", "flagged"])
    assert out.exit_code == 0, out.output
    assert "junk value" in out.output and "13800138000" not in out.output
    out = CliRunner().invoke(build_cli(), ["--project", str(motorcade_project.directory), "identity", "flagged",
                                           "--json"])
    rows = json.loads(out.output)
    assert rows[0]["type"] == "phone" and rows[0]["reason"] == "junk value" and "138000" not in rows[0]["value"]
