"""The store functions that replaced SQL text in the stages (catalogue, activation check, uplift, identity undo,
segment explain, the evaluator's dataset): each one's contract on a real store."""

from __future__ import annotations

import datetime as dt

import pytest

from motorcade.model import Car, Consent, Event, Ownership
from motorcade.store import open_store
from motorcade.tags.base import TagDefinition

UTC = dt.timezone.utc
AT = dt.datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "named.db")
    yield s
    s.close()


def test_attribute_names(store):
    assert store.attribute_names() == set()
    store.create_person({"name": "Wei", "city": "Shanghai"})
    store.create_person({"name": "Li", "income_band": "high"})
    assert store.attribute_names() == {"name", "city", "income_band"}
    assert len(store.attribute_names(limit=2)) == 2


def test_run_origins(store):
    for run_id, kind, origin in [("r1", "campaign", "winback"), ("r2", "campaign", "anniversary"),
                                 ("r3", "campaign", "winback"), ("r4", "trigger", "welcome")]:
        store.create_run(run_id, origin_kind=kind, origin=origin, revision="x", scheduled_for=None, started_at=AT)
    assert store.run_origins("campaign") == ["anniversary", "winback"]
    assert store.run_origins("trigger") == ["welcome"]
    assert store.run_origins("journey") == []


def test_identifier_flag_reason(store):
    store.insert_identifiers([(1, "phone", "13761982345", None, None), (2, "phone", "10000000000", None, "junk")])
    assert store.identifier_flag_reason(1) == (True, None)
    assert store.identifier_flag_reason(2) == (True, "junk")
    assert store.identifier_flag_reason(99) == (False, None)


def test_explain_query_is_the_indented_plan_and_refuses_writes(store):
    lines = store.explain_query("SELECT person_id FROM events WHERE name = :name AND person_id IN "
                                "(SELECT id FROM people WHERE attributes IS NOT NULL)", {"name": "order"})
    assert "events" in lines[0] and not lines[0].startswith(" ")  # the top level, not indented
    subquery = next(i for i, line in enumerate(lines) if "SUBQUERY" in line)
    assert lines[subquery + 1] == "  SCAN people"  # a step inside the subquery, one level deeper
    with pytest.raises(ValueError):
        store.explain_query("DELETE FROM events")


def test_person_rule_rows(store):
    wei = store.create_person({"name": "Wei"})
    li = store.create_person({"name": "Li"})
    store.upsert_cars([Car("VIN1", "Volvo", "XC60", 2022, dt.date(2022, 3, 1), None)])
    store.add_ownership(Ownership(wei, "VIN1", dt.date(2022, 3, 1), None, "dms"))
    store.set_relation(wei, "selling_store", "S1")
    store.set_consent(Consent(wei, "sms", True, AT, "crm"))
    store.define_tags([TagDefinition("level", "string", "l")], calculator="t", calculator_version="1")
    store.write_tag_values([(wei, "level", "high")], tags=["level"], calculator="t", calculator_version="1",
                           computed_at=AT)
    store.insert_events([Event("order", AT, person_id=wei, source="t", dedup_key="2", properties={"amount": 5}),
                         Event("visit", AT - dt.timedelta(days=1), person_id=wei, source="t", dedup_key="1"),
                         Event("visit", AT, person_id=li, source="t", dedup_key="3")])
    rows = store.person_rule_rows([wei, 12345])
    assert rows["people"] == [(wei, {"name": "Wei"})]
    assert rows["tags"] == [(wei, "level", "high")]
    assert rows["cars"] == [(wei, "VIN1", "Volvo", "XC60", 2022, "2022-03-01", None, "2022-03-01", None)]
    assert rows["relations"] == [(wei, "selling_store", "S1")]
    assert rows["consents"] == [(wei, "sms", True)]
    assert [(name, ts, props) for _, pid, name, ts, props in rows["events"]] == [
        ("visit", int((AT - dt.timedelta(days=1)).timestamp()), {}), ("order", int(AT.timestamp()), {"amount": 5})]
    assert store.person_rule_rows([]) == {k: [] for k in rows}
