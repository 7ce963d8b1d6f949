"""Rules that `check` passed but that crashed every `segments compute` (issue 14): an integer above 2^63,
`in last 9999999 days`, 500 nested `not`, a 1000-long `in segment` chain. `check` now refuses them with
file:line:col, a caret and a hint; a rule at the limits computes (reference evaluator and SQL on SQLite)."""

from __future__ import annotations

import datetime as dt

import pytest

from motorcade.cli import main
from motorcade.dsl.check import MAX_NESTING, check
from motorcade.dsl.errors import ERROR, DslError
from motorcade.dsl.evaluate import evaluate_segment
from motorcade.dsl.rules import rule_set_from_text
from motorcade.model import Car, Event, Ownership
from motorcade.segments.compiler import compile_condition
from motorcade.segments.dataset import load_dataset
from motorcade.segments.plan import plan_segment
from motorcade.store.sqlite import SQLiteStore

AS_OF = dt.datetime(2026, 3, 31, 12, tzinfo=dt.timezone.utc)
TZ = "Asia/Shanghai"


def chain(n: int) -> str:
    """main -> s0 -> s1 -> ... -> s(n-1): ``n`` + 1 levels of `in segment`."""
    lines = ["segment main { where in segment s0 }"]
    lines += [f"segment s{i} {{ where in segment s{i + 1} }}" for i in range(n - 1)]
    lines.append(f"segment s{n - 1} {{ where profile.age > 1 }}")
    return "\n".join(lines) + "\n"


REPORTED = {
    "an integer above 2^63": ("segment main { where profile.age > 99999999999999999999 }\n",
                              1, 36, "does not fit in 64 bits"),
    "in last 9999999 days": ("segment main { where did view in last 9999999 days }\n",
                             1, 31, "longer than a thousand years"),
    "9999999 days ago": ("segment main { where last(view) > 9999999 days ago }\n", 1, 35, "longer than a thousand"),
    "a float past 1.8e308": ("segment main { where profile.age > 1e400 }\n", 1, 36, "too large"),
    "a date of year 1": ("segment main { where did view after 0001-01-01 }\n", 1, 37, "out of range"),
    "500 nested not": ("segment main {\n  where " + "not " * 500 + "profile.age > 1\n}\n", 2, None,
                       "levels deep"),
    "a 1000-long in segment chain": (chain(1000), None, None, "levels deep counting the segments it uses"),
}


def diagnostics(text: str):
    try:
        rule_set = rule_set_from_text(text, "main.mc")
    except DslError as exc:
        return exc.diagnostics
    return [d for d in check(rule_set) if d.severity == ERROR]


@pytest.mark.parametrize("case", sorted(REPORTED))
def test_check_refuses_what_crashed_the_engine_with_a_caret_and_a_hint(case):
    text, line, column, message = REPORTED[case]
    found = diagnostics(text)
    assert found, case
    first = found[0]
    assert message in first.message
    assert first.line is not None and first.column is not None and first.hint
    if line is not None:
        assert first.line == line
    if column is not None:
        assert first.column == column
    rendered = first.render()
    assert rendered.startswith(f"main.mc:{first.line}:{first.column}: error:") and "^" in rendered
    assert len(found) <= 3  # a chain is reported once, where it passes the limit, not in every segment


def test_motorcade_check_and_segments_compute_refuse_a_1000_long_chain(motorcade_project, capsys):
    from click.testing import CliRunner

    from motorcade.cli import build_cli

    (motorcade_project.directory / "rules" / "main.mc").write_text(chain(1000), encoding="utf-8")
    directory = str(motorcade_project.directory)
    result = CliRunner().invoke(build_cli(), ["--project", directory, "check"])
    assert result.exit_code == 1, result.output
    assert "main.mc:" in result.output and "levels deep" in result.output and "^" in result.output
    assert "hint:" in result.output
    assert main(["--project", directory, "segments", "compute"]) == 1
    out = capsys.readouterr()
    assert "levels deep" in out.out + out.err and "RecursionError" not in out.out + out.err


def _alternating(n: int, leaf: str) -> str:
    for i in range(n):
        leaf = f"(profile.a > {i} {'and' if i % 2 else 'or'} {leaf})"
    return leaf


# Shapes that nest as deep as `check` allows, each with the SQL it compiles to near SQLite's parser limits.
AT_THE_LIMIT = {
    "not": lambda n: "not " * n + "profile.age > 1",
    "and / or": lambda n: _alternating(n, "profile.age > 1"),
    "and / or over a subquery": lambda n: _alternating(n - 1, "did view in last 30 days"),
    "a car's conditions": lambda n: _alternating(n // 2, "has car where " + _alternating(
        n - n // 2 - 1, 'brand = "x"').replace("profile.a", "model_year")),
    "an aggregate's conditions": lambda n: _alternating(n // 2, "count(view where " + _alternating(
        n - n // 2 - 1, "amount > 1").replace("profile.a", "amount") + ") > 0"),
    "a sequence": lambda n: _alternating(n - 1, "did view then view within 1 days"),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = SQLiteStore(tmp_path_factory.mktemp("limits") / "s.db")
    with s.transaction():
        a = s.create_person({"age": 3, "a": 5})
        s.create_person({"age": 0})
        s.upsert_cars([Car("VIN1", "x", "y", 2020, None, None)])
        s.add_ownership(Ownership(a, "VIN1", None, None, "t"))
        s.insert_events([Event("view", AS_OF - dt.timedelta(hours=h), a, {"amount": 2}, "t", str(h)) for h in (1, 5)])
    yield s
    s.close()


def compute_everything(store, rule_set) -> None:
    evaluate_segment(rule_set, "main", load_dataset(store), AS_OF, TZ)
    compiled = compile_condition(rule_set, rule_set.segments["main"].where, AS_OF, TZ)
    store.query(compiled.sql(), compiled.params)
    planned = plan_segment(store, rule_set, "main", AS_OF, TZ)
    store.query(planned.sql(), planned.params)


@pytest.mark.parametrize("shape", sorted(AT_THE_LIMIT))
def test_a_rule_nested_as_deep_as_check_allows_computes_and_one_level_more_is_refused(store, shape):
    at_limit = rule_set_from_text(f"segment main {{ where {AT_THE_LIMIT[shape](MAX_NESTING)} }}\n", "main.mc")
    assert not [d for d in check(at_limit) if d.severity == ERROR]
    compute_everything(store, at_limit)
    beyond = diagnostics(f"segment main {{ where {AT_THE_LIMIT[shape](MAX_NESTING + 1)} }}\n")
    assert beyond and "levels deep" in beyond[0].message


def test_a_chain_of_segments_as_long_as_check_allows_computes(store):
    rule_set = rule_set_from_text(chain(MAX_NESTING), "main.mc")
    assert not [d for d in check(rule_set) if d.severity == ERROR]
    compute_everything(store, rule_set)
    assert "levels deep" in diagnostics(chain(MAX_NESTING + 1))[0].message


def test_numbers_and_spans_at_the_limits_compute(store):
    rule_set = rule_set_from_text(
        "segment main { where profile.age > 9223372036854775807 or profile.age < -9223372036854775808 "
        "or did view in last 366000 days or last(view) > 12000 months ago or did view after 1000-01-01 "
        "or did view before 9998-12-31 or sum(view.amount) > 1.7e308 }\n", "main.mc")
    assert not [d for d in check(rule_set) if d.severity == ERROR]
    compute_everything(store, rule_set)


def test_sum_past_64_bits_is_a_float_not_an_error(store):
    with store.transaction():
        pid = store.create_person({"age": 1})
        store.insert_events([Event("order", AS_OF, pid, {"amount": 2**63 - 1}, "t", f"big{i}") for i in range(3)])
    rule_set = rule_set_from_text("segment main { where sum(order.amount) > 1e19 }\n", "main.mc")
    compute_everything(store, rule_set)
    compiled = compile_condition(rule_set, rule_set.segments["main"].where, AS_OF, TZ)
    assert [r[0] for r in store.query(compiled.sql(), compiled.params)] == [pid]
    assert evaluate_segment(rule_set, "main", load_dataset(store), AS_OF, TZ) == {pid}
