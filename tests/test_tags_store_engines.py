"""Tag calculators and store engines: ``supported_engines`` is enforced by the tag engine (an error naming the
calculator, its plugin and the engine, before anything runs), and the context renders SQL pieces in the
store's dialect."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import motorcade
from motorcade.errors import MotorcadeError
from motorcade.model import Event
from motorcade.store import SQLiteStore
from motorcade.tags.base import TagCalculator, TagContext, TagDefinition
from motorcade.tags.engine import TagError, compute_project_tags, compute_tags

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


class OtherEngineStore(SQLiteStore):
    """A real store that says it is another engine: what a calculator meets on a PostgreSQL project."""

    dialect = "postgres"


def calculator(name: str, engines: tuple[str, ...] | None):
    class Counting(TagCalculator):
        supported_engines = engines
        produces = (TagDefinition(f"{name}_events", "number", "events of the person"),)

        def compute(self, context):
            for person_id in context.store.person_ids():
                yield person_id, f"{name}_events", len(context.store.events_of(person_id))

    Counting.name = name
    return Counting()


def calculator_plugin(*calculators):
    """An in-memory plugin object registering ``calculators``."""

    class Plugin:
        @motorcade.hookimpl
        def register_tag_calculators(self, register):
            for calc in calculators:
                register(calc)

    return Plugin()


def test_a_calculator_for_another_engine_is_refused_naming_plugin_calculator_and_engine(
        register_plugin, motorcade_project):
    register_plugin(calculator_plugin(calculator("anywhere", None), calculator("duck_only", ("duckdb",))),
                    name="duck_tags")
    store = motorcade_project.store
    store.create_person({"name": "Wei"})
    with pytest.raises(TagError) as caught:
        compute_project_tags(motorcade_project, as_of=AS_OF)
    message = str(caught.value)
    assert "tag calculator 'duck_only' (plugin 'duck_tags') runs on duckdb only" in message
    assert f"store is sqlite ({store.location})" in message
    assert "anywhere" not in message
    assert store.tag_runs("anywhere") == []  # refused before anything ran


def test_calculators_for_the_store_engine_or_any_engine_run(register_plugin, motorcade_project):
    register_plugin(calculator_plugin(calculator("anywhere", None), calculator("on_sqlite", ("sqlite", "postgres"))),
                    name="fine_tags")
    store = motorcade_project.store
    person = store.create_person({"name": "Wei"})
    store.insert_events([Event("order", AS_OF - dt.timedelta(days=1), person_id=person, source="t", dedup_key="1")])
    results = compute_project_tags(motorcade_project, as_of=AS_OF)
    assert {r.calculator for r in results} >= {"anywhere", "on_sqlite"}
    assert {t.tag: t.value for t in store.tags_of(person)} == {"anywhere_events": 1, "on_sqlite_events": 1}


class ThirdEngineStore(OtherEngineStore):
    dialect = "duckdb"


def test_the_bundled_calculators_declare_no_engine_restriction():
    """They build their queries with motorcade.tags.query (one tree, rendered per engine: tests/test_tag_engines.py),
    so they run on every store engine and analytics engine; only raw-SQL calculators declare engines."""
    import importlib

    for name in ("activity", "intent", "lifecycle", "quadrant", "value"):
        module = importlib.import_module(f"motorcade_tags_{name}")
        calc = next(v for v in vars(module).values() if isinstance(v, type) and issubclass(v, TagCalculator)
                    and v is not TagCalculator)
        assert calc.supported_engines is None, name


@pytest.mark.parametrize("column, key", [("properties", "amount"), ("e.properties", "store_id")])
def test_json_value_sql_reads_the_same_values_as_the_stored_json(tmp_path, column, key):
    store = SQLiteStore(tmp_path / "j.db")
    try:
        person = store.create_person({})
        props = [{"amount": 1200.5, "store_id": "S1"}, {"amount": 7, "store_id": None}, {"other": True}]
        store.insert_events([Event("order", AS_OF - dt.timedelta(hours=i), person_id=person, source="t",
                                   dedup_key=str(i), properties=p) for i, p in enumerate(props)])
        context = TagContext(store=store, as_of=AS_OF, settings={})
        rows = store.query(f"SELECT e.properties, {context.json_value_sql(column, key)} FROM events e ORDER BY e.id")
        assert [value for _, value in rows] == [json.loads(text).get(key) for text, _ in rows]
        with pytest.raises(ValueError, match="not a JSON key name"):
            context.json_value_sql(column, "a') OR 1=1 --")
    finally:
        store.close()


def test_context_dialect_and_person_filter_on_another_engine(tmp_path):
    store = OtherEngineStore(tmp_path / "o.db")
    try:
        full = TagContext(store=store, as_of=AS_OF, settings={})
        assert full.dialect == "postgres"
        assert full.json_value_sql("properties", "amount") != TagContext(
            store=SQLiteStore(tmp_path / "s.db"), as_of=AS_OF, settings={}).json_value_sql("properties", "amount")
        assert full.person_filter("person_id") == ("", {})  # a full run needs no filter on any engine
        some = TagContext(store=store, as_of=AS_OF, settings={}, person_ids=frozenset({2, 1}))
        assert some.person_filter("person_id") == (" AND person_id IN (SELECT motorcade_id_list(:person_ids_json))",
                                                   {"person_ids_json": "[1, 2]"})
        with pytest.raises(MotorcadeError, match="person_filter has no duckdb form"):
            TagContext(store=ThirdEngineStore(tmp_path / "t.db"), as_of=AS_OF, settings={},
                       person_ids=frozenset({1})).person_filter("person_id")
    finally:
        store.close()


def test_tag_value_pairs(tmp_path):
    store = SQLiteStore(tmp_path / "p.db")
    try:
        a, b, c = (store.create_person({}) for _ in range(3))
        store.define_tags([TagDefinition("x", "string", "x"), TagDefinition("y", "number", "y")],
                          calculator="t", calculator_version="1")
        store.write_tag_values([(c, "x", "cx"), (c, "y", 3), (a, "x", "ax"), (a, "y", 1), (b, "x", "bx")],
                               tags=["x", "y"], calculator="t", calculator_version="1", computed_at=AS_OF)
        assert store.tag_value_pairs("x", "y") == [(a, "ax", 1), (c, "cx", 3)]  # b lacks y
        assert store.tag_value_pairs("y", "x", person_ids=[c, b]) == [(c, 3, "cx")]
        assert store.tag_value_pairs("x", "y", person_ids=[]) == []
    finally:
        store.close()
