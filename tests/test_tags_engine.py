"""The tag engine: dependency order, cycle and missing-dependency errors, value checks, settings,
provenance, health figures, the drift warning, and incremental runs touching only changed people."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from motorcade.errors import ConfigError
from motorcade.model import Event
from motorcade.store import SQLiteStore
from motorcade.tags.base import TagCalculator, TagDefinition
from motorcade.tags.engine import TagError, compute_tags, merge_settings, plan, total_variation

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def calc(name, produces, depends=(), *, values=None, events=(), version="1"):
    """A calculator class made on the fly; ``values(context)`` returns its values."""

    class Made(TagCalculator):
        pass

    Made.name = name
    Made.version = version
    Made.produces = tuple(TagDefinition(t, "string", f"tag {t}") for t in produces)
    Made.depends_on_tags = tuple(depends)
    Made.depends_on_events = tuple(events)
    Made.compute = lambda self, context: values(context) if values else []
    return Made()


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "tags.db")
    yield s
    s.close()


def by_name(*calcs):
    return {c.name: c for c in calcs}


# -- order and errors -----------------------------------------------------------------------------


def test_plan_orders_by_dependencies_whatever_the_registration_order():
    c = calc("c", ["tag_c"], ["tag_b", "tag_a"])
    b = calc("b", ["tag_b"], ["tag_a"])
    a = calc("a", ["tag_a"])
    z = calc("z", ["tag_z"])
    assert [x.name for x in plan(by_name(c, b, z, a))] == ["a", "b", "c", "z"]
    # selecting a calculator (or one of its tags) brings in everything upstream, nothing downstream
    assert [x.name for x in plan(by_name(c, b, z, a), ["tag_c"])] == ["a", "b", "c"]
    assert [x.name for x in plan(by_name(c, b, z, a), ["b"])] == ["a", "b"]


@given(st.permutations(["a", "b", "c", "d", "e"]))
@settings(max_examples=30, deadline=None)
def test_plan_is_a_topological_order_for_any_registration_order(order):
    chain = {"a": [], "b": ["tag_a"], "c": ["tag_a", "tag_b"], "d": ["tag_c"], "e": ["tag_b"]}
    calcs = {n: calc(n, [f"tag_{n}"], chain[n]) for n in order}
    names = [x.name for x in plan(calcs)]
    for n, deps in chain.items():
        for dep in deps:
            assert names.index(dep.removeprefix("tag_")) < names.index(n)


def test_a_cycle_is_an_error_naming_the_cycle():
    x = calc("x_calc", ["x"], ["z"])
    y = calc("y_calc", ["y"], ["x"])
    z = calc("z_calc", ["z"], ["y"])
    with pytest.raises(TagError) as info:
        plan(by_name(x, y, z, calc("free", ["f"])))
    assert "cycle: x_calc -> z_calc -> y_calc -> x_calc" in str(info.value)


def test_a_dependency_nobody_produces_is_an_error_naming_it():
    with pytest.raises(TagError, match="'needy' depends on tag 'ghost', which no installed calculator produces"):
        plan(by_name(calc("needy", ["n"], ["ghost"])))


def test_a_tag_produced_twice_is_an_error_naming_both():
    with pytest.raises(TagError, match="'dup' is produced by two calculators: 'one' and 'two'"):
        plan(by_name(calc("one", ["dup"]), calc("two", ["dup"])))


def test_unknown_name_suggests_the_close_one():
    with pytest.raises(TagError, match="did you mean `alpha`"):
        plan(by_name(calc("alpha", ["a"])), ["alpah"])


# -- settings -------------------------------------------------------------------------------------


def test_settings_merge_over_defaults_one_level_deep_and_reject_unknown_keys():
    c = calc("s", ["t"])
    type(c).default_settings = {"window_days": 90, "weights": {"a": 1, "b": 2}}
    assert merge_settings(c, {"weights": {"b": 5}}) == {"window_days": 90, "weights": {"a": 1, "b": 5}}
    assert merge_settings(c, None) == {"window_days": 90, "weights": {"a": 1, "b": 2}}
    with pytest.raises(ConfigError, match=r"\[tags.s\] has an unknown setting 'windows_days'"):
        merge_settings(c, {"windows_days": 30})


def test_unknown_engine_setting_is_an_error(store):
    with pytest.raises(ConfigError, match="unknown setting 'coverage_drfit'"):
        compute_tags(store, by_name(calc("a", ["t"])), as_of=AS_OF, settings={"coverage_drfit": 0.3})


# -- values and provenance ------------------------------------------------------------------------


def test_values_are_written_with_computed_at_and_version(store):
    p1, p2 = store.create_person(), store.create_person()
    up = calc("up", ["colour"], values=lambda ctx: [(p1, "colour", "red"), (p2, "colour", "blue")], version="7")
    down = calc("down", ["shout"], ["colour"], values=lambda ctx: [
        (pid, "shout", v.upper()) for pid, v in ctx.store.query(
            "SELECT person_id, value FROM tag_values WHERE tag = 'colour'")])
    results = compute_tags(store, by_name(down, up), as_of=AS_OF)
    assert [r.calculator for r in results] == ["up", "down"]
    tags = {t.tag: t for t in store.tags_of(p1)}
    assert tags["colour"].value == "red" and tags["colour"].calculator_version == "7"
    assert tags["shout"].value == "RED" and tags["shout"].calculator == "down"
    assert abs((tags["shout"].computed_at - dt.datetime.now(UTC)).total_seconds()) < 60
    assert store.tag_definitions()[0]["calculator"] in ("up", "down")


@pytest.mark.parametrize("produced, message", [
    ([(1, "level", 3)], "expected a string"),
    ([(1, "level", "huge")], "not one of 'low', 'high'"),
    ([(1, "score", 11)], r"outside the range \[0, 10\]"),
    ([(1, "score", "7")], "expected a number"),
    ([(1, "flag", 1)], "expected a boolean"),
    ([(1, "undeclared", "x")], "produced tag 'undeclared', which it does not declare"),
])
def test_values_are_checked_against_definitions(store, produced, message):
    store.create_person()

    class Checked(TagCalculator):
        name = "checked"
        produces = (TagDefinition("level", "string", "l", allowed_values=("low", "high")),
                    TagDefinition("score", "number", "s", value_range=(0, 10)),
                    TagDefinition("flag", "boolean", "f"))

        def compute(self, context):
            return produced

    with pytest.raises(TagError, match=message):
        compute_tags(store, by_name(Checked()), as_of=AS_OF)
    assert store.tag_value_count("level") == 0  # nothing half-written


_DEFINITIONS = [
    TagDefinition("s", "string", "s"), TagDefinition("level", "string", "l", allowed_values=("low", "high")),
    TagDefinition("n", "number", "n"), TagDefinition("score", "number", "s", value_range=(0, 10)),
    TagDefinition("band", "number", "b", allowed_values=(1, 2.5, True)), TagDefinition("flag", "boolean", "f"),
    TagDefinition("yes", "boolean", "y", allowed_values=(True,)), TagDefinition("day", "date", "d"),
]


class _Numbers(float):
    """A float subclass (as numpy's float64 is): not the fast path's exact type."""


@given(index=st.integers(0, len(_DEFINITIONS) - 1), value=st.one_of(
    st.integers(-3, 12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.sampled_from(
        ["low", "high", "huge", "", "2026-02-03", "2026-02-30", "7"]), st.none(), st.dates(),
    st.floats(-1, 11).map(_Numbers), st.lists(st.integers(), max_size=1)))
def test_the_per_tag_check_answers_as_the_general_check(index, value):
    """The checker built once per tag (fast for the common types) stores and refuses exactly as the general
    check does, with the same message."""
    from motorcade.tags.engine import _check_value, _value_check

    definition = _DEFINITIONS[index]
    calc = type("C", (TagCalculator,), {"name": "c", "produces": tuple(_DEFINITIONS)})()

    def outcome(check):
        try:
            stored = check()
        except TagError as exc:
            return "error", str(exc)
        return "stored", type(stored), stored

    expected = outcome(lambda: _check_value(calc, definition, 7, value))
    got = outcome(lambda: _value_check(calc, definition)(7, value))
    assert got == expected


def test_a_failing_calculator_is_reported_by_name(store):
    def boom(ctx):
        raise ZeroDivisionError("division by zero")

    with pytest.raises(TagError, match="calculator 'boom' \\(version 1\\) failed: ZeroDivisionError"):
        compute_tags(store, by_name(calc("boom", ["t"], values=boom)), as_of=AS_OF)


# -- health and drift -----------------------------------------------------------------------------


def test_health_figures_and_drift_warning(store):
    people = [store.create_person() for _ in range(10)]
    current = {"values": [(p, "level", "low") for p in people]}
    c = calc("levels", ["level"], values=lambda ctx: current["values"])
    first = compute_tags(store, by_name(c), as_of=AS_OF)[0]
    figures = first.health["tags"]["level"]
    assert figures["coverage"] == 1.0 and figures["counts"] == {"low": 10}
    assert first.warnings == ()

    # a small change: no warning
    current["values"] = [(p, "level", "high" if i == 0 else "low") for i, p in enumerate(people)]
    assert compute_tags(store, by_name(c), as_of=AS_OF)[0].warnings == ()

    # coverage falls from 100% to 40% and the mix flips: both are reported
    current["values"] = [(p, "level", "high") for p in people[:4]]
    third = compute_tags(store, by_name(c), as_of=AS_OF)[0]
    assert third.health["tags"]["level"]["coverage"] == pytest.approx(0.4)
    assert "level: coverage fell from 100.0% to 40.0%" in third.warnings
    assert any(w.startswith("level: distribution shifted (total variation 0.90)") for w in third.warnings)
    assert store.tag_runs("levels", limit=1)[0]["health"]["warnings"] == list(third.warnings)


def test_numeric_health_quartiles_and_mean_drift(store):
    people = [store.create_person() for _ in range(8)]
    data = {"shift": 0}

    class Score(TagCalculator):
        name = "score"
        produces = (TagDefinition("points", "number", "p"),)

        def compute(self, context):
            return [(p, "points", i + 1 + data["shift"]) for i, p in enumerate(people)]

    figures = compute_tags(store, by_name(Score()), as_of=AS_OF)[0].health["tags"]["points"]
    assert (figures["min"], figures["p25"], figures["p50"], figures["p75"], figures["max"]) == (1, 2, 4, 6, 8)
    assert figures["mean"] == pytest.approx(4.5)
    assert figures["std"] == pytest.approx((sum((x - 4.5) ** 2 for x in range(1, 9)) / 8) ** 0.5)
    data["shift"] = 5
    warnings = compute_tags(store, by_name(Score()), as_of=AS_OF)[0].warnings
    assert warnings and warnings[0].startswith("points: mean moved from 4.5 to 9.5")


def test_total_variation():
    assert total_variation({"a": 1.0}, {"a": 1.0}) == 0
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 0.75, "b": 0.25}) == pytest.approx(0.25)


# -- incremental ----------------------------------------------------------------------------------


def _event(person_id, name, key):
    return Event(name=name, ts=AS_OF - dt.timedelta(days=1), person_id=person_id, source="test", dedup_key=key)


def click_counter(asked: list):
    """A calculator body: clicks per person, recording which people each run was asked for."""
    def count_clicks(ctx):
        asked.append(ctx.person_ids)
        where, params = ctx.person_filter("person_id")
        return [(pid, "clicks", str(n)) for pid, n in ctx.store.query(
            f"SELECT person_id, count(*) FROM events WHERE name = 'click'{where} GROUP BY person_id", params)]

    return count_clicks


def test_incremental_run_recomputes_only_people_with_new_inputs(store):
    p1, p2, p3 = (store.create_person() for _ in range(3))
    store.insert_events([_event(p1, "click", "1"), _event(p2, "click", "2"), _event(p3, "click", "3")])
    asked = []
    count_clicks = click_counter(asked)

    clicks = calc("clicks", ["clicks"], values=count_clicks, events=("click",))
    doubled = calc("doubled", ["doubled"], ["clicks"], values=lambda ctx: [
        (pid, "doubled", v * 2) for pid, v in ctx.store.query(
            "SELECT person_id, value FROM tag_values WHERE tag = 'clicks'" + ctx.person_filter("person_id")[0],
            ctx.person_filter("person_id")[1])])
    calcs = by_name(clicks, doubled)

    first = compute_tags(store, calcs, as_of=AS_OF, incremental=True)  # no previous run: full
    assert [r.mode for r in first] == ["full", "full"] and asked == [None]
    before = {t.tag: t.computed_at for t in store.tags_of(p1)}

    store.insert_events([_event(p2, "click", "2b"), _event(p3, "view", "3b")])  # p3's event is not an input
    second = compute_tags(store, calcs, as_of=AS_OF, incremental=True)
    assert asked[-1] == frozenset({p2})
    assert [(r.mode, r.people) for r in second] == [("incremental", 1), ("incremental", 1)]
    assert {t.tag: t.value for t in store.tags_of(p2)} == {"clicks": "2", "doubled": "22"}
    assert {t.tag: t.computed_at for t in store.tags_of(p1)} == before  # untouched
    assert second[0].health["tags"]["clicks"]["count"] == 3  # health still covers everyone

    store.update_person_attributes(p1, {"city": "上海"})  # a changed person record counts as a change
    compute_tags(store, calcs, as_of=AS_OF, incremental=True)
    assert asked[-1] == frozenset({p1})

    third = compute_tags(store, calcs, as_of=AS_OF, incremental=True)  # nothing changed
    assert [(r.mode, r.people, r.rows_written) for r in third] == [("incremental", 0, 0)] * 2
    assert store.tag_value_count("clicks") == 3

    full = compute_tags(store, calcs, as_of=AS_OF)  # a full run reads everyone again
    assert full[0].mode == "full" and asked[-1] is None


def test_incremental_calculator_must_not_write_people_it_was_not_asked_for(store):
    p1, p2 = store.create_person(), store.create_person()
    greedy = calc("greedy", ["g"], values=lambda ctx: [(p1, "g", "x"), (p2, "g", "x")], events=("e",))
    compute_tags(store, by_name(greedy), as_of=AS_OF)
    store.insert_events([_event(p2, "e", "k")])
    with pytest.raises(TagError, match=f"value for person {p1} in an incremental run"):
        compute_tags(store, by_name(greedy), as_of=AS_OF, incremental=True)


def test_calculators_that_cannot_run_incrementally_run_in_full(store):
    store.create_person()
    full_only = calc("full_only", ["f"], values=lambda ctx: [], events=("e",))
    type(full_only).supports_incremental = False
    compute_tags(store, by_name(full_only), as_of=AS_OF)
    assert compute_tags(store, by_name(full_only), as_of=AS_OF, incremental=True)[0].mode == "full"


def test_an_incremental_run_where_most_people_changed_runs_in_full(store, monkeypatch):
    import motorcade.tags.engine as engine

    monkeypatch.setattr(engine, "FULL_RUN_PEOPLE", 2)
    people = [store.create_person() for _ in range(4)]
    asked = []
    count_clicks = click_counter(asked)

    calcs = by_name(calc("clicks", ["clicks"], values=count_clicks, events=("click",)))
    store.insert_events([_event(p, "click", str(p)) for p in people])
    compute_tags(store, calcs, as_of=AS_OF, incremental=True)
    store.insert_events([_event(people[0], "click", "a")])  # one of four: incremental
    assert compute_tags(store, calcs, as_of=AS_OF, incremental=True)[0].mode == "incremental"
    store.insert_events([_event(p, "click", f"b{p}") for p in people[:3]])  # three of four: in full
    [result] = compute_tags(store, calcs, as_of=AS_OF, incremental=True)
    assert result.mode == "full (most people changed)" and asked[-1] is None
    assert {p: {t.tag: t.value for t in store.tags_of(p)}["clicks"] for p in people} == \
        dict(zip(people, ["3", "2", "2", "1"]))
