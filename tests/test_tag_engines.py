"""The bundled tag calculators on every engine: one query definition each (motorcade.tags.query), the same
values computed on the operational store (SQLite) and on DuckDB and ClickHouse (chdb, in-process) for random
people, events, cars and ownerships; values written back to the store and to the engine's tag table."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.analytics import open_engine
from motorcade.analytics.tags import typed_row
from motorcade.model import Car, Event, Ownership
from motorcade.store import SQLiteStore
from motorcade.tags.engine import compute_tags

TZ = dt.timezone(dt.timedelta(hours=8))
AS_OF = dt.datetime(2026, 11, 20, 9, 30, tzinfo=TZ)
ENGINES = {"duckdb": "duckdb:///:memory:", "clickhouse": "chdb://"}
CALCULATORS = ("activity", "intent", "lifecycle", "quadrant", "value")
EVENT_NAMES = ("app_login", "share", "wechat_follow", "wechat_unfollow", "message_click", "lead_submit",
               "test_drive", "reservation", "configurator_view", "order", "service_visit")


def calculators() -> dict:
    out = {}
    for name in CALCULATORS:
        module = importlib.import_module(f"motorcade_tags_{name}")
        calc = next(v() for v in vars(module).values() if isinstance(v, type) and getattr(v, "name", "") == name
                    and v.__module__ == module.__name__)
        out[name] = calc
    return out


def stored_values(store) -> dict[tuple[int, str], object]:
    return {(r[0], r[1]): r[2] for r in store.query("SELECT person_id, tag, value FROM tag_values")}


def engine_values(engine) -> dict[tuple[int, str], object]:
    out = {}
    for tag, person_id, kind, num, text in engine.query(
            "SELECT tag, person_id, value_kind, value_num, value_text FROM tag_values"):
        out[(int(person_id), tag)] = (kind, None if num is None else float(num), text)
    return out


def comparable(values: dict) -> dict:
    # the operational store keeps a boolean as the integer 0 / 1, as the engine's value_kind does
    return {k: typed_row(k[1], k[0], v)[2:] for k, v in values.items()}


@st.composite
def populations(draw):
    people = draw(st.integers(1, 8))
    incomes = st.sampled_from([None, "<30万", "30-50万", "50-100万", ">100万", "other"])
    attributes = [({} if (i := draw(incomes)) is None else {"income_band": i}) for _ in range(people)]
    event = st.tuples(
        st.integers(0, people - 1), st.sampled_from(EVENT_NAMES),
        # seconds before as_of: inside and outside the windows (90 / 365 / 1095 days), and just after
        st.one_of(st.integers(-3600, 400 * 86400), st.integers(1000 * 86400, 1200 * 86400)),
        st.fixed_dictionaries({}, optional={
            "store_id": st.sampled_from(["S1", "S2", "S3"]), "store": st.sampled_from(["S2", "S9"]),
            "amount": st.one_of(st.integers(0, 600_000), st.sampled_from([17.9, 27.98, 0.125, 12.5, 0.5]))}))
    events = draw(st.lists(event, max_size=40))
    owned = draw(st.lists(st.tuples(
        st.integers(0, people - 1), st.integers(0, 4), st.one_of(st.none(), st.integers(0, 4000)),
        st.one_of(st.none(), st.integers(-400, 400)), st.one_of(st.none(), st.integers(2005, 2026)),
        st.one_of(st.none(), st.integers(0, 5000))), max_size=6))
    return attributes, events, owned


def build_store(path: Path, population) -> SQLiteStore:
    attributes, events, owned = population
    store = SQLiteStore(path)
    ids = [store.create_person(a) for a in attributes]
    today = AS_OF.date()
    with store.transaction():
        store.insert_events([Event(name=name, ts=AS_OF - dt.timedelta(seconds=ago), person_id=ids[who],
                                   properties=props, source="t", dedup_key=str(i))
                             for i, (who, name, ago, props) in enumerate(events)])
    for who, car, since_days, until_days, model_year, bought_days in owned:
        vin = f"LSVAB12345678900{car}"
        store.upsert_cars([Car(vin=vin, brand="VW", model="ID.4", model_year=model_year,
                               purchase_date=None if bought_days is None else today - dt.timedelta(days=bought_days))])
        store.add_ownership(Ownership(person_id=ids[who], vin=vin,
                                      valid_from=None if since_days is None else today - dt.timedelta(days=since_days),
                                      valid_to=None if until_days is None else today + dt.timedelta(days=until_days)))
    return store


def _needs(engine: str):
    pytest.importorskip("duckdb" if engine == "duckdb" else "chdb")


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(population=populations())
def test_every_bundled_calculator_gives_the_same_values_on_the_engine(engine_name, population):
    _needs(engine_name)
    with tempfile.TemporaryDirectory(prefix="motorcade-tag-engines-") as folder:
        store = build_store(Path(folder) / "s.db", population)
        engine = open_engine(ENGINES[engine_name])
        try:
            compute_tags(store, calculators(), as_of=AS_OF, timezone=TZ)
            on_sqlite = stored_values(store)
            results = compute_tags(store, calculators(), as_of=AS_OF, timezone=TZ, analytics=engine)
            assert [r.calculator for r in results] == ["activity", "intent", "lifecycle", "quadrant", "value"]
            assert stored_values(store) == on_sqlite  # written back: the same values
            assert engine_values(engine) == comparable(on_sqlite)  # and in the engine's own table
        finally:
            engine.close()
            store.close()


@pytest.mark.parametrize("engine_name", sorted(ENGINES))
def test_an_incremental_run_on_the_engine_recomputes_only_the_changed_people(tmp_path, engine_name):
    _needs(engine_name)
    population = ([{"income_band": "50-100万"}, {}, {}],
                  [(0, "app_login", 3600, {}), (1, "test_drive", 86400, {}),
                   (2, "service_visit", 10 * 86400, {"store_id": "S1", "amount": 300})], [])
    store = build_store(tmp_path / "s.db", population)
    engine = open_engine(ENGINES[engine_name], base_dir=tmp_path)
    try:
        calcs = {k: v for k, v in calculators().items() if k in ("activity", "intent")}
        compute_tags(store, calcs, as_of=AS_OF, timezone=TZ, analytics=engine)
        person = store.person_ids()[1]
        store.insert_events([Event(name="share", ts=AS_OF - dt.timedelta(hours=1), person_id=person, source="t",
                                   dedup_key="new")])
        results = compute_tags(store, calcs, as_of=AS_OF, timezone=TZ, analytics=engine, incremental=True)
        assert {r.calculator: (r.mode, r.people) for r in results} == {
            "activity": ("incremental", 1), "intent": ("incremental", 0)}  # a share is no intent signal
        assert stored_values(store)[(person, "activity_score")] == 3.0
        incremental = stored_values(store)
        assert engine_values(engine) == comparable(incremental)
        compute_tags(store, calcs, as_of=AS_OF, timezone=TZ)  # in full on SQLite: the same values
        assert stored_values(store) == incremental
        # health figures come from the operational store as before
        assert results[0].health["tags"]["activity_level"]["count"] == 3
    finally:
        engine.close()
        store.close()


def test_a_calculator_reading_raw_sql_still_runs_on_the_operational_store_beside_an_engine(tmp_path):
    pytest.importorskip("duckdb")
    from motorcade.tags.base import TagCalculator, TagDefinition

    class Raw(TagCalculator):
        name = "raw"
        supported_engines = ("sqlite",)
        produces = (TagDefinition("events_seen", "number", "events of the person"),)

        def compute(self, context):
            assert context.analytics is not None  # offered, but this calculator reads the store itself
            return [(int(p), "events_seen", int(n)) for p, n in context.store.query(
                "SELECT person_id, count(*) FROM events WHERE person_id IS NOT NULL GROUP BY person_id")]

    store = build_store(tmp_path / "s.db", ([{}], [(0, "app_login", 60, {}), (0, "share", 60, {})], []))
    engine = open_engine("duckdb:///:memory:")
    try:
        compute_tags(store, {"raw": Raw()}, as_of=AS_OF, analytics=engine)
        assert list(stored_values(store).values()) == [2]
        assert engine.query("SELECT value_num FROM tag_values WHERE tag = 'events_seen'") == [(2.0,)]
    finally:
        engine.close()
        store.close()


def test_the_query_is_one_tree_rendered_per_dialect():
    """The activity query as each engine gets it: the same shape, the engine's own placeholders."""
    from motorcade.tags.base import TagContext
    from motorcade.tags.query import TagQuery

    class Target:
        def __init__(self, dialect):
            self.dialect = dialect

    texts = {}
    for dialect in ("sqlite", "postgres", "duckdb", "clickhouse"):
        context = TagContext(store=Target(dialect), as_of=AS_OF, settings={}, timezone=TZ)
        q = TagQuery(context)
        from sqlglot import exp

        tree = exp.select(q.local_day("e.ts"), q.json_text("e.properties", "store_id")).from_("events AS e")
        texts[dialect] = q.sql(tree)
    assert "motorcade_utc_offset" in texts["sqlite"].lower() and "json_extract" in texts["sqlite"].lower()
    assert "jsonb_extract_path_text" in texts["postgres"].lower()
    assert "// 86400" in texts["duckdb"]  # a fixed-offset zone: plain arithmetic
    assert "JSONType" in texts["clickhouse"] and "intDiv" in texts["clickhouse"]
    with pytest.raises(Exception, match="not a property name"):
        TagQuery(TagContext(store=Target("sqlite"), as_of=AS_OF, settings={})).json_text("properties", "a') --")
    assert json  # (used by the calculators' person lists)
