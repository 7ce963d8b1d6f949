"""parse(format(ast)) == ast for random ASTs (generated as trees, not as text).

Python's ``==`` is too weak an oracle for literals: ``True == 1 == 1.0``, ``0.0 == -0.0`` and two instants
with different UTC offsets compare equal, yet ``profile.vip = true`` and ``profile.vip = 1`` match different
people. Every round trip here therefore also compares the trees by :func:`kinded`, which keeps each literal's
kind and exact spelling (type, float sign, UTC offset).
"""

from __future__ import annotations

import datetime as dt

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motorcade.dsl import ast, format_rules, parse_text
from motorcade.dsl.format import fmt_cond, format_rule
from motorcade.dsl.parser import get_parser

KEYWORDS = {t.pattern.value.lower() for t in get_parser().terminals if t.pattern.type == "str"}
NAME_POOL = ["share", "test_drive", "order", "amount", "model", "brand", "age", "store", "advisor", "channel",
             "试驾", "车型", "x1", "_private", "lead_submit", "service_visit", "café", "Ω_score", "owner2"]
assert not KEYWORDS & {n.lower() for n in NAME_POOL}

names = st.sampled_from(NAME_POOL)
units = st.sampled_from(ast.TIME_UNITS)
amounts = st.integers(min_value=0, max_value=10_000)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m)))
dates = st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))
datetimes = st.datetimes(min_value=dt.datetime(1000, 1, 2), max_value=dt.datetime(9999, 12, 30),
                         timezones=st.none() | offsets)
texts = st.text(max_size=12)
literal_values = st.one_of(
    texts, st.integers(min_value=-(10**12), max_value=10**12), st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False), dates, datetimes,
)
literals = literal_values.map(ast.Literal)
time_points = st.one_of(st.builds(ast.Ago, amounts, units), dates.map(ast.Literal), datetimes.map(ast.Literal))
values = st.one_of(literals, st.builds(ast.Ago, amounts, units), st.builds(ast.Duration, amounts, units))
windows = st.none() | st.one_of(
    st.builds(ast.LastN, amounts, units), st.builds(ast.BetweenTimes, time_points, time_points),
    st.builds(ast.Before, time_points), st.builds(ast.After, time_points), st.builds(ast.Since, time_points),
)


def predicates(subjects):
    return st.one_of(
        st.builds(ast.Compare, subjects, st.sampled_from(ast.COMPARE_OPS), values),
        st.builds(ast.InList, subjects, st.lists(literals, max_size=3), st.booleans()),
        st.builds(ast.Between, subjects, values, values),
        st.builds(ast.IsNull, subjects, st.booleans()),
        st.builds(ast.TextMatch, subjects, st.sampled_from(["contains", "starts with"]), texts),
    )


def boolean_tree(leaves, depth):
    if depth == 0:
        return leaves
    inner = boolean_tree(leaves, depth - 1)
    return st.one_of(
        leaves,
        st.builds(ast.And, st.lists(inner, min_size=2, max_size=3)),
        st.builds(ast.Or, st.lists(inner, min_size=2, max_size=3)),
        st.builds(ast.Not, inner),
    )


field_conds = boolean_tree(predicates(names.map(ast.FieldRef)), 2)  # event or car scope
aggregates = st.one_of(
    st.builds(ast.Aggregate, st.sampled_from(["count", "first", "last"]), names, st.none(),
              st.none() | field_conds, windows),
    st.builds(ast.Aggregate, st.sampled_from(["sum", "avg", "min", "max"]), names, names,
              st.none() | field_conds, windows),
)
person_subjects = st.one_of(names.map(ast.TagRef), names.map(ast.ProfileRef),
                            st.sampled_from(["store", "advisor"]).map(ast.FieldRef), aggregates)
person_leaves = st.one_of(
    predicates(person_subjects),
    st.builds(ast.Did, names, windows, st.booleans()),
    st.builds(ast.DidAny, st.lists(names, min_size=1, max_size=3), windows),
    st.builds(ast.Sequence, st.lists(names, min_size=2, max_size=3),
              st.none() | st.builds(ast.Duration, amounts, units), windows),
    st.builds(ast.InSegment, names),
    st.builds(ast.HasCar, st.none() | field_conds),
    st.builds(ast.ConsentCond, st.sampled_from(["consented", "unsubscribed"]), names),
    st.builds(ast.Recommended, names, st.lists(texts, max_size=3)),
)
person_conds = boolean_tree(person_leaves, 3)

titles = st.none() | texts
times = st.builds(dt.time, st.integers(0, 23), st.integers(0, 59))
vias = st.builds(ast.Via, st.lists(st.builds(ast.ChannelStep, names, texts), min_size=1, max_size=3))
quiet = st.none() | st.builds(ast.QuietHours, times, times) | st.just(ast.QuietHours(None, None))
schedules = st.none() | st.one_of(
    st.builds(ast.Daily, times), st.builds(ast.Every, amounts, units), st.builds(ast.Cron, texts),
    st.builds(ast.Once, datetimes),
)
rules = st.one_of(
    st.builds(ast.Segment, names, titles, person_conds),
    st.builds(ast.Campaign, names, titles, st.none() | names, schedules, st.sampled_from([None, "all", "new"]),
              st.none() | st.integers(0, 100) | st.floats(0, 100, allow_nan=False), st.none() | vias,
              st.booleans(), quiet),
    st.builds(ast.Trigger, names, titles,
              st.none() | st.builds(ast.OnEvent, names, st.none() | field_conds)
              | st.builds(ast.OnSegment, st.sampled_from(["enter", "leave"]), names),
              st.none() | person_conds, st.none() | st.builds(ast.Duration, amounts, units),
              st.none() | st.sampled_from([ast.Reentry("once"), ast.Reentry("always")])
              | st.builds(ast.Reentry, st.just("once per"), st.builds(ast.Duration, amounts, units)),
              st.none() | vias, st.booleans(), quiet),
    st.builds(ast.TagRule, names, titles, st.lists(st.builds(ast.CaseWhen, person_conds, literals), min_size=1,
                                                   max_size=3), st.none() | literals),
    st.builds(ast.Funnel, names, titles, st.lists(names, min_size=2, max_size=4),
              st.none() | st.builds(ast.Duration, amounts, units), st.none() | names),
    st.builds(ast.Recommend, names, titles, st.booleans(),
              st.lists(st.builds(ast.RecommendWhen, person_conds, texts.map(ast.Literal)), min_size=1, max_size=3)),
)
rule_files = st.builds(ast.RuleFile, st.lists(rules, max_size=3))


def kinded(node):
    """``node`` as nested tuples in which every literal carries its kind and exact value: equal exactly when
    the trees say the same thing (``True``, ``1`` and ``1.0`` differ; so do ``0.0``/``-0.0`` and
    ``08:00+08:00``/``00:00+00:00``)."""
    if attrs.has(type(node)):
        return (type(node).__name__,
                *(kinded(getattr(node, f.name)) for f in attrs.fields(type(node)) if f.eq))
    if isinstance(node, (list, tuple)):
        return tuple(kinded(item) for item in node)
    if isinstance(node, float):
        return ("float", repr(node))  # repr keeps the sign of zero and every digit
    if isinstance(node, (dt.datetime, dt.date, dt.time)):
        return (type(node).__name__, node.isoformat())  # isoformat keeps the UTC offset
    return (type(node).__name__, node)


def assert_same_kinds(parsed, original, text):
    assert parsed == original, text
    assert kinded(parsed) == kinded(original), text


@settings(max_examples=300, deadline=None)
@given(rule_files)
def test_parse_of_format_is_identity(rule_file):
    """Mutant it catches: the formatter writing ``true`` as ``1`` (``parse(format(x)) == x`` alone passed)."""
    text = format_rules(rule_file)
    assert_same_kinds(parse_text(text, "generated.mc"), rule_file, text)


SAME_UNDER_EQ = [True, 1, 1.0, False, 0, 0.0, -0.0,
                 dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))),
                 dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.timezone.utc),
                 dt.datetime(2025, 12, 31, 19, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
                 dt.datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(minutes=-30)))]


@pytest.mark.parametrize("value", SAME_UNDER_EQ, ids=repr)
def test_literals_python_calls_equal_keep_their_kind_and_offset(value):
    """``true``/``1``/``1.0``, ``0.0``/``-0.0`` and offset-equal instants: each comes back as itself, in
    every place a literal can stand."""
    literal = ast.Literal(value)
    segment = ast.Segment("s", None, ast.And((
        ast.Compare(ast.ProfileRef("vip"), "=", literal),
        ast.InList(ast.TagRef("level"), (literal, ast.Literal("x")), False),
        ast.Between(ast.ProfileRef("age"), literal, literal))))
    tag = ast.TagRule("t", None, (ast.CaseWhen(ast.Did("order"), literal),), literal)
    rule_file = ast.RuleFile((segment, tag))
    text = format_rules(rule_file)
    assert_same_kinds(parse_text(text), rule_file, text)
    others = [v for v in SAME_UNDER_EQ if v is not value and kinded(v) != kinded(value)]
    assert all(kinded(ast.Literal(v)) != kinded(literal) for v in others)  # the oracle tells them apart


@settings(max_examples=100, deadline=None)
@given(rule_files)
def test_format_is_idempotent(rule_file):
    text = format_rules(rule_file)
    assert format_rules(parse_text(text)) == text


@settings(max_examples=100, deadline=None)
@given(person_conds)
def test_positions_of_parsed_conditions_point_into_the_source(cond):
    text = format_rule(ast.Segment("s", None, cond))
    lines = text.split("\n")
    parsed = parse_text(text).rules[0]
    for node in ast.walk(parsed):
        if isinstance(node, ast.Node) and node.line is not None:
            assert 1 <= node.line <= len(lines)
            assert 1 <= node.column <= len(lines[node.line - 1])
    # the top condition starts right after `where `
    assert lines[parsed.where.line - 1][parsed.where.column - 1:].startswith(fmt_cond(parsed.where)[:5])


def test_precedence_not_binds_tighter_than_and_than_or():
    rule = parse_text("segment s { where not did a and did b or did c }").rules[0]
    assert rule.where == ast.Or((ast.And((ast.Not(ast.Did("a")), ast.Did("b"))), ast.Did("c")))
    rule = parse_text("segment s { where did a AND (did b Or did c) }").rules[0]
    assert rule.where == ast.And((ast.Did("a"), ast.Or((ast.Did("b"), ast.Did("c")))))


def test_has_car_is_parenthesised_when_something_follows():
    cond = ast.And((ast.HasCar(ast.Compare(ast.FieldRef("age"), ">=", ast.Duration(5, "years"))), ast.Did("x")))
    text = format_rule(ast.Segment("s", None, cond))
    assert "(has car where age >= 5 years)" in text
    assert parse_text(text).rules[0].where == cond
