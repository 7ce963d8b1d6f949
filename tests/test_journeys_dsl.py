"""Journeys in the rule language: parse, caret errors, `fmt` round trip (generated ASTs), `check`."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motorcade.dsl import ast, format_rules, parse_text
from motorcade.dsl.check import Catalogue, check
from motorcade.dsl.errors import DslError
from motorcade.dsl.journey import END, build_flow
from motorcade.dsl.parser import get_parser
from motorcade.dsl.rules import rule_set_from_text

RECALL = '''\
journey lapsed_owner_recall "流失车主召回" {
  entry on entering segment lapsed
  holdout 10%
  reentry again after 90 days
  exit when unsubscribed from sms
  goal service_visit within 30 days
  invite: send via wecom template "recall_invite" fallback sms template "recall_sms"
  reply: wait for wecom_reply up to 7 days then {
    thanks: send via wecom template "recall_booking"
  } else {
    if tag value_level = "high" then {
      call: send via advisor_task template "book_service_visit"
    } else {
      sms: send via sms template "recall_sms"
    }
  }
  wait 3 days
  wait until 10:00
  split 50% {
    send via email template "a"
  } / 50% {
    exit
  }
}
'''

SEGMENT = 'segment lapsed { where not did service_visit in last 365 days }\n'


def test_a_journey_parses_into_its_parts():
    journey = parse_text(RECALL).rules[0]
    assert isinstance(journey, ast.Journey)
    assert journey.entry == ast.EntrySegment("lapsed")
    assert journey.holdout == 10
    assert journey.reentry == ast.JourneyReentry("again after", ast.Duration(90, "days"))
    assert journey.goal == ast.Goal("service_visit", None, ast.Duration(30, "days"))
    kinds = [type(step).__name__ for step in journey.steps]
    assert kinds == ["SendStep", "WaitForStep", "WaitStep", "WaitUntilStep", "SplitStep"]
    reply = journey.steps[1]
    assert reply.label == "reply" and reply.up_to == ast.Duration(7, "days")
    assert reply.then[0].label == "thanks" and isinstance(reply.otherwise[0], ast.IfStep)
    assert journey.steps[3].at == dt.time(10, 0)
    assert [arm.percent for arm in journey.steps[4].arms] == [50, 50]


def test_the_flow_graph_joins_blocks_to_the_step_after_them():
    flow = build_flow(parse_text(RECALL).rules[0])
    assert flow.start == "invite"
    assert flow.nodes["reply"].edges == {"event": "thanks", "timeout": "if@2.else.1"}
    assert flow.nodes["thanks"].edges == {"next": "wait@3"}
    assert flow.nodes["sms"].edges == {"next": "wait@3"}
    assert flow.nodes["split@5"].edges == {"arm1": "send@5.arm1.1", "arm2": "exit@5.arm2.1"}
    assert flow.nodes["send@5.arm1.1"].edges == {"next": END}
    assert flow.nodes["exit@5.arm2.1"].edges == {}


def test_format_of_the_example_is_the_example_and_parses_back():
    parsed = parse_text(RECALL)
    assert format_rules(parsed) == RECALL
    assert parse_text(format_rules(parsed)) == parsed


@pytest.mark.parametrize("text, line, column, words", [
    ("journey j {\n  entry on x\n  wait for reply then { exit }\n}\n", 3, 18, "needs an upper bound"),
    ("journey j {\n  entry on x\n  wait for reply where a = 1\n}\n", 4, 1, "needs an upper bound"),
    ("journey j {\n  if did x { exit }\n}\n", 2, 12, "`then { ... }`"),
    ("journey j {\n  split 50% { exit } / 50% {}\n", 3, 1, "journey `j` (line 1) is not closed"),
    ("journey j {\n  send via sms\n}\n", 3, 1, "expected `template`"),
])
def test_syntax_errors_point_at_the_mistake_with_a_caret(text, line, column, words):
    with pytest.raises(DslError) as caught:
        parse_text(text, "flows.mc")
    message = str(caught.value)
    assert f"flows.mc:{line}:{column}:" in message
    assert words in message
    assert "^" in message


# ---- round trip over generated journeys ---------------------------------------------------------

KEYWORDS = {t.pattern.value.lower() for t in get_parser().terminals if t.pattern.type == "str"}
NAME_POOL = ["share", "test_drive", "order", "amount", "wecom_reply", "试驾", "x1", "_p", "service_visit", "Ω"]
assert not KEYWORDS & {n.lower() for n in NAME_POOL}
names = st.sampled_from(NAME_POOL)
units = st.sampled_from(ast.TIME_UNITS)
durations = st.builds(ast.Duration, st.integers(0, 500), units)
texts = st.text(max_size=8)
literals = st.one_of(texts, st.integers(-1000, 1000), st.booleans(), st.dates()).map(ast.Literal)
windows = st.none() | st.builds(ast.LastN, st.integers(0, 400), units)
person_leaves = st.one_of(
    st.builds(ast.Did, names, windows, st.booleans()),
    st.builds(ast.Sequence, st.lists(names, min_size=2, max_size=3), st.none() | durations, windows),
    st.builds(ast.Compare, names.map(ast.TagRef), st.sampled_from(ast.COMPARE_OPS), literals),
    st.builds(ast.InSegment, names),
    st.builds(ast.HasCar, st.none() | st.builds(ast.Compare, names.map(ast.FieldRef), st.just("="), literals)),
    st.builds(ast.ConsentCond, st.sampled_from(["consented", "unsubscribed"]), names),
)


def conds(leaves):
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(ast.Not, inner), st.lists(inner, min_size=2, max_size=3).map(ast.And),
        st.lists(inner, min_size=2, max_size=3).map(ast.Or)), max_leaves=4)


person_conds = conds(person_leaves)
event_conds = conds(st.builds(ast.Compare, names.map(ast.FieldRef), st.sampled_from(ast.COMPARE_OPS), literals))
labels = st.none() | names
vias = st.builds(ast.Via, st.lists(st.builds(ast.ChannelStep, names, texts), min_size=1, max_size=2))
times = st.builds(dt.time, st.integers(0, 23), st.integers(0, 59))
percents = st.integers(0, 100) | st.floats(0, 100, allow_nan=False).map(lambda f: round(f, 2))


def steps_of(depth):
    simple = st.one_of(
        st.builds(ast.SendStep, labels, vias), st.builds(ast.WaitStep, labels, durations),
        st.builds(ast.WaitUntilStep, labels, times), st.builds(ast.ExitStep, labels))
    if depth == 0:
        return st.lists(simple, max_size=3)
    inner = steps_of(depth - 1)
    compound = st.one_of(
        st.builds(ast.WaitForStep, labels, names, st.none() | event_conds, durations, st.none() | inner,
                  st.none() | inner),
        st.builds(ast.IfStep, labels, person_conds, inner, st.none() | inner),
        st.builds(ast.SplitStep, labels, st.lists(st.builds(ast.SplitArm, percents, inner), min_size=2, max_size=3)))
    return st.lists(st.one_of(simple, compound), max_size=3)


entries = st.none() | st.one_of(
    st.builds(ast.EntrySegment, names), st.builds(ast.EntryEvent, names, st.none() | event_conds),
    st.builds(ast.EntrySchedule, names, st.one_of(st.builds(ast.Daily, times), st.builds(ast.Every, st.integers(1, 9),
                                                                                       units))))
reentries = st.none() | st.one_of(
    st.just(ast.JourneyReentry("once")), st.just(ast.JourneyReentry("while not in journey")),
    st.builds(ast.JourneyReentry, st.just("again after"), durations))
journeys = st.builds(
    ast.Journey, names, st.none() | texts, entry=entries, holdout=st.none() | st.integers(0, 99),
    reentry=reentries, exit_when=st.none() | person_conds,
    goal=st.none() | st.builds(ast.Goal, names, st.none() | person_conds.filter(lambda c: True) | event_conds,
                               durations),
    steps=steps_of(2))


@settings(max_examples=150, deadline=None)
@given(st.lists(journeys, min_size=1, max_size=2).map(ast.RuleFile))
def test_parse_of_format_is_identity_for_journeys(rule_file):
    text = format_rules(rule_file)
    parsed = parse_text(text)
    assert parsed == rule_file, text
    assert format_rules(parsed) == text


# ---- check ------------------------------------------------------------------------------------


def _check(text, catalogue=None):
    return [(d.severity, d.message, d.line) for d in check(rule_set_from_text(SEGMENT + text), catalogue)]


def test_the_example_checks_clean_against_a_catalogue_that_knows_its_names():
    catalogue = Catalogue(channels={"wecom", "sms", "advisor_task", "email"},
                          configured_channels={"wecom", "sms", "advisor_task", "email"})
    assert _check(RECALL, catalogue) == []


def test_check_finds_unreachable_steps_after_exit_and_after_blocks_that_always_exit():
    found = _check('''journey j {
  entry on entering segment lapsed
  send via sms template "a"
  exit
  late: send via sms template "b"
}
journey k {
  entry on entering segment lapsed
  if did order then { exit } else { exit }
  never: wait 1 day
}
''')
    messages = [m for _, m, _ in found]
    assert "step `late` of journey `j` can never be reached" in messages
    assert "step `never` of journey `k` can never be reached" in messages
    assert all(severity == "warning" for severity, _, _ in found)


def test_check_finds_branches_that_cannot_both_happen():
    found = _check('''journey j {
  entry on entering segment lapsed
  exit when did order in last 30 days
  goal service_visit within 30 days
  if did order in last 30 days then {
    send via sms template "a"
  }
  if tag level = "high" then {
    if not tag level = "high" then { send via sms template "b" }
  }
  wait for service_visit up to 7 days then { send via sms template "c" }
}
''')
    messages = [m for _, m, _ in found]
    assert any(m.startswith("the `then` branch of this `if` can never run: `exit when`") for m in messages)
    assert any(m.startswith("the `then` branch of this `if` can never run: the enclosing `if`") for m in messages)
    assert any("`wait for service_visit` can never run" in m for m in messages)


def test_check_warns_about_sends_to_channels_the_project_does_not_configure():
    found = _check('journey j {\n  entry on entering segment lapsed\n  send via wecom template "a" fallback sms '
                   'template "b"\n}\n', Catalogue(channels={"wecom", "sms"}, configured_channels={"sms"}))
    assert found == [("warning", "journey `j` sends via `wecom`, which motorcade.toml does not configure", 4)]


def test_check_reports_missing_entry_bad_split_duplicate_labels_and_long_waits():
    found = _check('''journey j {
  a: wait 2 years
  split 30% { a: exit } / 30% { }
  wait for reply up to 0 days
}
''')
    messages = [m for _, m, _ in found]
    assert "journey `j` has no `entry`" in messages
    assert "the arms of this split add up to 60%, not 100%" in messages
    assert "journey `j` has two steps labelled `a`" in messages
    assert "this step waits 2 years, over a year: people stay in journey `j` that long" in messages
    assert "`wait for` needs a positive `up to`" in messages


def test_journey_names_are_unique_and_names_are_checked():
    with pytest.raises(DslError, match="journey `j` is defined twice"):
        rule_set_from_text('journey j { entry on x exit }\njourney j { entry on x exit }\n')
    found = _check('journey j {\n  entry on entering segment lapsd\n  exit\n}\n')
    assert found[0][1] == "unknown segment `lapsd`"
