"""The reference evaluator on hand-made cases: every construct, window edges, time zones, empty histories."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from motorcade.dsl import (
    CarData, Dataset, EventData, PersonData, evaluate_segment, evaluate_tag, explain_person, trigger_fires,
)
from motorcade.dsl.evaluate import (
    EvaluationError, add_months, compare_values, consent_state, whole_years, window_interval,
)
from motorcade.dsl.parser import parse_text
from motorcade.dsl.rules import rule_set_from_text

SH = ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 6, 1, 10, 0, tzinfo=SH)


def at(*args, tz=SH) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)


def ev(name, ts, **props) -> EventData:
    return EventData(name, ts, props)


def members(condition: str, *people: PersonData, as_of=AS_OF, tz="Asia/Shanghai", extra: str = "") -> set[int]:
    rule_set = rule_set_from_text(f"segment s {{ where {condition} }}\n{extra}")
    return evaluate_segment(rule_set, "s", Dataset.of(*people), as_of, tz)


# ---- windows and their edges --------------------------------------------------------------------


def test_in_last_n_days_is_inclusive_at_exactly_n_days_ago_and_at_as_of():
    edge = AS_OF - dt.timedelta(days=90)
    people = [
        PersonData(1, events=[ev("share", edge)]),
        PersonData(2, events=[ev("share", edge - dt.timedelta(microseconds=1))]),
        PersonData(3, events=[ev("share", AS_OF)]),
        PersonData(4, events=[ev("share", AS_OF + dt.timedelta(seconds=1))]),  # after as_of: invisible
    ]
    assert members("did share in last 90 days", *people) == {1, 3}


def test_did_without_window_sees_all_history_up_to_as_of():
    people = [PersonData(1, events=[ev("share", at(2001, 1, 1))]), PersonData(2, events=[ev("share", at(2027, 1, 1))])]
    assert members("did share", *people) == {1}


def test_months_are_calendar_months_in_project_time_zone_clamped_to_month_end():
    as_of = at(2026, 3, 31, 12, 0)  # one month before is 2026-02-28 12:00 local
    people = [
        PersonData(1, events=[ev("x", at(2026, 2, 28, 12, 0))]),
        PersonData(2, events=[ev("x", at(2026, 2, 28, 11, 59))]),
    ]
    assert members("did x in last 1 month", *people, as_of=as_of) == {1}
    assert add_months(dt.datetime(2024, 2, 29, 8, 0), 12) == dt.datetime(2025, 2, 28, 8, 0)
    assert members("did x in last 1 year", *people, as_of=as_of) == {1, 2}


def test_weeks_and_hours_are_fixed_lengths():
    assert window_interval(parse_cond("did x in last 2 weeks").window, AS_OF).start == AS_OF - dt.timedelta(days=14)
    assert window_interval(parse_cond("did x in last 3 hours").window, AS_OF).start == AS_OF - dt.timedelta(hours=3)


def parse_cond(text):
    return parse_text(f"segment s {{ where {text} }}").rules[0].where


def test_date_windows_cover_whole_local_days():
    people = [
        PersonData(1, events=[ev("x", at(2026, 1, 1, 0, 0))]),      # first instant of the range
        PersonData(2, events=[ev("x", at(2026, 1, 31, 23, 59, 59))]),  # last second of the range
        PersonData(3, events=[ev("x", at(2026, 2, 1, 0, 0))]),      # next day: outside
        PersonData(4, events=[ev("x", at(2025, 12, 31, 23, 59, 59))]),
        # 2026-01-31 17:00 UTC is 2026-02-01 01:00 in Shanghai: outside
        PersonData(5, events=[ev("x", at(2026, 1, 31, 17, 0, tz=UTC))]),
    ]
    assert members("did x between 2026-01-01 and 2026-01-31", *people) == {1, 2}
    assert members("did x since 2026-02-01", *people) == {3, 5}
    assert members("did x after 2026-01-31", *people) == {3, 5}
    assert members("did x before 2026-01-01", *people) == {4}


def test_before_and_after_n_days_ago():
    boundary = AS_OF - dt.timedelta(days=30)
    people = [PersonData(1, events=[ev("x", boundary)]), PersonData(2, events=[ev("x", boundary - dt.timedelta(seconds=1))]),
              PersonData(3, events=[ev("x", boundary + dt.timedelta(seconds=1))])]
    assert members("did x before 30 days ago", *people) == {2}
    assert members("did x after 30 days ago", *people) == {3}
    assert members("did x since 30 days ago", *people) == {1, 3}


def test_datetime_window_bounds_are_inclusive_and_naive_means_project_time():
    people = [PersonData(1, events=[ev("x", at(2026, 5, 1, 10, 0))]), PersonData(2, events=[ev("x", at(2026, 5, 1, 2, 0, tz=UTC))])]
    assert members("did x between 2026-05-01 10:00 and 2026-05-01 10:00", *people) == {1, 2}
    assert members("did x between 2026-05-01 10:00+00:00 and 2026-05-01 18:00", *people) == set()


def test_time_zone_changes_day_boundaries():
    person = PersonData(1, events=[ev("x", dt.datetime(2026, 1, 31, 20, 0, tzinfo=UTC))])
    assert members("did x since 2026-02-01", person, tz="Asia/Shanghai") == {1}  # 2026-02-01 04:00 local
    assert members("did x since 2026-02-01", person, tz="UTC") == set()


# ---- behaviour ------------------------------------------------------------------------------------


def test_did_not_is_true_for_people_without_events():
    people = [PersonData(1), PersonData(2, events=[ev("service_visit", at(2026, 5, 1))]),
              PersonData(3, events=[ev("service_visit", at(2024, 5, 1))])]
    assert members("did not service_visit in last 365 days", *people) == {1, 3}
    assert members("not did service_visit in last 365 days", *people) == {1, 3}


def test_did_any_of():
    people = [PersonData(1, events=[ev("test_drive", at(2026, 5, 1))]), PersonData(2, events=[ev("share", at(2026, 5, 1))])]
    assert members("did any of [lead_submit, test_drive]", *people) == {1}


def test_count_with_event_property_filter_and_window():
    person = PersonData(1, events=[ev("share", at(2026, 5, d), channel="wechat") for d in (1, 2, 3)]
                        + [ev("share", at(2026, 5, 4), channel="app"), ev("share", at(2025, 1, 1), channel="wechat")])
    assert members('count(share where channel = "wechat") in last 90 days >= 3', person) == {1}
    assert members('count(share where channel = "wechat") in last 90 days >= 4', person) == set()
    assert members('count(share) = 5', person) == {1}
    assert members("count(share) = 0", PersonData(2)) == {2}


def test_sum_avg_min_max_ignore_non_numbers_and_empty_sets():
    person = PersonData(1, events=[ev("order", at(2026, 5, 1), amount=100), ev("order", at(2026, 5, 2), amount=300.5),
                                   ev("order", at(2026, 5, 3), amount="n/a"), ev("order", at(2026, 5, 4)),
                                   ev("order", at(2026, 5, 5), amount=True)])
    empty = PersonData(2)
    assert members("sum(order.amount) = 400.5", person, empty) == {1}
    assert members("sum(order.amount) = 0", person, empty) == {2}  # an empty sum is 0
    assert members("avg(order.amount) = 200.25", person, empty) == {1}
    assert members("min(order.amount) = 100 and max(order.amount) = 300.5", person, empty) == {1}
    assert members("avg(order.amount) is null", person, empty) == {2}  # avg/min/max of nothing is null
    assert members("not max(order.amount) > 1", person, empty) == set()  # null stays null under not


def test_first_and_last_compare_as_instants_or_local_dates():
    person = PersonData(1, events=[ev("app_open", at(2026, 1, 15, 0, 30)), ev("app_open", at(2026, 5, 20))])
    assert members("first(app_open) < 2026-01-16", person) == {1}
    assert members("first(app_open) = 2026-01-15", person) == {1}
    assert members("first(app_open) < 2026-01-15", person) == set()
    assert members("last(app_open) >= 30 days ago", person) == {1}
    assert members("last(app_open) between 2026-05-20 and 2026-05-20", person) == {1}
    assert members("first(app_open) is null", PersonData(2)) == {2}
    assert members("first(app_open) < 2030-01-01", PersonData(2)) == set()


def test_sequences_are_ordered_strictly_and_bounded_by_within():
    a, b = at(2026, 5, 1), at(2026, 5, 15)
    people = [
        PersonData(1, events=[ev("test_drive", a), ev("order", b)]),  # exactly 14 days: inside
        PersonData(2, events=[ev("test_drive", a), ev("order", b + dt.timedelta(seconds=1))]),
        PersonData(3, events=[ev("order", a), ev("test_drive", b)]),  # wrong order
        PersonData(4, events=[ev("test_drive", a), ev("order", a)]),  # same instant is not "then"
        # an early test drive far away and a later one close: the later one counts
        PersonData(5, events=[ev("test_drive", at(2025, 1, 1)), ev("test_drive", at(2026, 5, 10)), ev("order", b)]),
    ]
    assert members("did test_drive then order within 14 days", *people) == {1, 5}
    assert members("did test_drive then order", *people) == {1, 2, 5}
    assert members("did test_drive then order in last 10 days", *people) == set()
    three = PersonData(6, events=[ev("a", at(2026, 5, 1)), ev("b", at(2026, 5, 2)), ev("c", at(2026, 5, 3))])
    assert members("did a then b then c within 2 days", three) == {6}
    assert members("did a then c then b", three) == set()


# ---- profile, tags, relations, consent --------------------------------------------------------------


def test_comparisons_use_three_valued_logic():
    people = [PersonData(1, tags={"level": "high"}), PersonData(2, tags={"level": "low"}), PersonData(3)]
    assert members('tag level = "high"', *people) == {1}
    assert members('tag level != "high"', *people) == {2}  # null != "high" is unknown, not true
    assert members('not tag level = "high"', *people) == {2}
    assert members('tag level = "high" or tag level is null', *people) == {1, 3}
    assert members('tag level in ["high", "mid"]', *people) == {1}
    assert members('tag level not in ["high", "mid"]', *people) == {2}
    assert members("tag level is not null", *people) == {1, 2}


def test_values_of_different_kinds_are_never_equal():
    people = [PersonData(1, attributes={"x": 1}), PersonData(2, attributes={"x": True}), PersonData(3, attributes={"x": "1"})]
    assert members("profile.x = 1", *people) == {1}
    assert members("profile.x = true", *people) == {2}
    assert members('profile.x != 1', *people) == {2, 3}
    assert members("profile.x > 0", *people) == {1}  # ordering across kinds is unknown
    assert compare_values("a", "<", 1, SH) is None
    assert compare_values(1, "=", 1.0, SH) is True


def test_between_contains_starts_with_and_unicode():
    people = [PersonData(1, attributes={"score": 60, "nickname": "爱车的小王", "phone": "+8621123"}),
              PersonData(2, attributes={"score": 100.5, "nickname": 5}),
              PersonData(3, attributes={"city": "上海"})]
    assert members("profile.score between 60 and 100", *people) == {1}
    assert members('profile.nickname contains "车"', *people) == {1}
    assert members('profile.phone starts with "+8621"', *people) == {1}
    assert members('profile.city = "上海"', *people) == {3}
    assert members('not profile.nickname contains "车"', *people) == set()  # 5 is not text: unknown


def test_dates_in_attributes_compare_with_date_literals_and_relative_times():
    people = [PersonData(1, attributes={"birthday": dt.date(1990, 5, 1)}),
              PersonData(2, attributes={"registered": at(2026, 5, 30, 1, 0)})]
    assert members("profile.birthday < 2000-01-01", *people) == {1}
    assert members("profile.registered >= 7 days ago", *people) == {2}
    assert members("profile.registered = 2026-05-30", *people) == {2}


def test_store_and_advisor_are_sets():
    people = [PersonData(1, store_ids={"SH001", "BJ001"}, advisor_ids={"A1"}), PersonData(2, store_ids={"GZ001"}), PersonData(3)]
    assert members('store in ["SH001", "SH002"]', *people) == {1}
    assert members('store = "GZ001"', *people) == {2}
    assert members('store not in ["SH001"]', *people) == {2, 3}
    assert members("advisor is null", *people) == {2, 3}
    assert members('advisor != "A1"', *people) == {2, 3}


def test_has_car_looks_at_cars_owned_on_the_as_of_date():
    today = AS_OF.date()
    people = [
        PersonData(1, cars=[CarData("V1", "BMW", "X5", 2019, dt.date(2021, 6, 1), "SH001")]),  # exactly 5 years
        PersonData(2, cars=[CarData("V2", "BMW", "X5", 2019, dt.date(2021, 6, 2), "SH001")]),  # one day short
        PersonData(3, cars=[CarData("V3", "BMW", "X3", 2015, dt.date(2015, 1, 1), "SH001", owned_to=today)]),  # sold today
        PersonData(4, cars=[CarData("V4", "BMW", "X3", 2015, dt.date(2015, 1, 1), "BJ001", owned_from=today)]),
        PersonData(5, cars=[CarData("V5", "MINI", "Cooper")]),
    ]
    assert members('has car where age >= 5 years and model in ["X3", "X5"]', *people) == {1, 4}
    assert members("has car", *people) == {1, 2, 4, 5}
    assert members('has car where store = "SH001" and brand = "BMW"', *people) == {1, 2}
    assert members("has car where purchase_date < 2020-01-01", *people) == {4}
    assert members("has car where age is null", *people) == {5}
    assert members("not has car", *people, PersonData(6)) == {3, 6}
    assert whole_years(dt.date(2020, 2, 29), dt.date(2021, 2, 28)) == 0
    assert whole_years(dt.date(2020, 2, 29), dt.date(2021, 3, 1)) == 1


def test_consent_states():
    people = [PersonData(1, consents={"sms": True}), PersonData(2, consents={"sms": False}),
              PersonData(3, consents={"*": True}), PersonData(4, consents={"*": False, "sms": True}), PersonData(5)]
    assert members("consented to sms", *people) == {1, 3}
    assert members("unsubscribed from sms", *people) == {2, 4}
    assert members("not unsubscribed from sms", *people) == {1, 3, 5}
    assert consent_state({}, "wecom") is None


def test_in_segment_and_cycles():
    people = [PersonData(1, cars=[CarData("V1")], tags={"tier": "gold"}), PersonData(2, cars=[CarData("V2")]), PersonData(3)]
    extra = "segment owners { where has car }"
    assert members('in segment owners and tag tier = "gold"', *people, extra=extra) == {1}
    assert members("not in segment owners", *people, extra=extra) == {3}
    with pytest.raises(EvaluationError, match="cycle: s -> t -> s"):
        members("in segment t", *people, extra="segment t { where in segment s }")
    with pytest.raises(EvaluationError, match="unknown segment `nope`"):
        members("in segment nope", *people)


def test_empty_dataset_and_unknown_segment():
    assert members("did x") == set()
    with pytest.raises(EvaluationError):
        evaluate_segment(rule_set_from_text("segment a { where did x }"), "b", Dataset(), AS_OF)
    with pytest.raises(EvaluationError, match="no time zone"):
        evaluate_segment(rule_set_from_text("segment a { where did x }"), "a", Dataset(), dt.datetime(2026, 1, 1))


# ---- explain, rule tags, triggers -----------------------------------------------------------------


def test_explain_person_shows_values_and_results():
    rule_set = rule_set_from_text('segment s { where tag level = "high" and count(share) in last 90 days >= 3 }')
    person = PersonData(7, tags={"level": "high"}, events=[ev("share", at(2026, 5, 1))])
    tree = explain_person(rule_set, "s", Dataset.of(person), 7, AS_OF)
    assert tree.result is False
    text = tree.render()
    assert "[FAIL] segment s" in text
    assert "[PASS] tag level = \"high\"  (seen: 'high')" in text
    assert "[FAIL] count(share) in last 90 days >= 3  (seen: 1)" in text


def test_rule_tags_take_the_first_matching_case():
    rule_set = rule_set_from_text('''
        tag tier = case
          when count(order) >= 2 then "gold"
          when (did order) then "silver"
        end
        tag flagged = case when profile.vip = true then true else false end
    ''')
    people = [PersonData(1, events=[ev("order", at(2026, 1, 1)), ev("order", at(2026, 2, 1))]),
              PersonData(2, events=[ev("order", at(2026, 1, 1))]), PersonData(3, attributes={"vip": True})]
    assert evaluate_tag(rule_set, "tier", Dataset.of(*people), AS_OF) == {1: "gold", 2: "silver"}
    assert evaluate_tag(rule_set, "flagged", Dataset.of(*people), AS_OF) == {1: False, 2: False, 3: True}


def test_trigger_fires_on_matching_event_with_condition_and_reentry():
    rule_set = rule_set_from_text('''
        segment vip { where tag tier = "gold" }
        trigger thanks { on order where amount > 100000 if in segment vip via sms template "t" }
        trigger again { on order reenter once per 7 days via sms template "t" }
        trigger always { on order reenter always via sms template "t" }
        trigger welcome { on enter segment vip via sms template "w" }
    ''')
    big = ev("order", at(2026, 5, 30, 12), amount=150000)
    small = ev("order", at(2026, 5, 30, 12), amount=100000)
    data = Dataset.of(PersonData(1, tags={"tier": "gold"}, events=[big]), PersonData(2, events=[big]))
    assert trigger_fires(rule_set, "thanks", data, 1, event=big).fires
    assert not trigger_fires(rule_set, "thanks", data, 1, event=small).fires  # > is strict
    assert trigger_fires(rule_set, "thanks", data, 2, event=big).reason == "`if` condition is not true"
    assert not trigger_fires(rule_set, "thanks", data, 1, event=ev("share", big.ts)).fires
    assert not trigger_fires(rule_set, "thanks", data, 1, event=big, previous_firings=[at(2020, 1, 1)]).fires
    assert trigger_fires(rule_set, "always", data, 1, event=big, previous_firings=[big.ts]).fires
    week_ago = big.ts - dt.timedelta(days=7)
    assert trigger_fires(rule_set, "again", data, 1, event=big, previous_firings=[week_ago]).fires
    assert not trigger_fires(rule_set, "again", data, 1, event=big,
                             previous_firings=[week_ago + dt.timedelta(seconds=1)]).fires
    # long before the period: fires again (line 842 survivor: `t > since` as `t != since`)
    assert trigger_fires(rule_set, "again", data, 1, event=big, previous_firings=[week_ago - dt.timedelta(days=30)]).fires
    assert trigger_fires(rule_set, "welcome", data, 1, segment_change=("enter", "vip"), as_of=AS_OF).fires
    assert not trigger_fires(rule_set, "welcome", data, 1, segment_change=("leave", "vip"), as_of=AS_OF).fires


# ---- laws the evaluator must obey (random people, fixed conditions) ----------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from motorcade.dsl import ast  # noqa: E402
from motorcade.dsl.evaluate import (  # noqa: E402
    Evaluator, RecommendedItem, Scope, TriggerDecision, evaluate_recommendations, explain_recommendation, person_items,
)

_instants = st.integers(min_value=-400 * 86400, max_value=86400).map(lambda s: AS_OF + dt.timedelta(seconds=s))
_values = st.none() | st.integers(-3, 3) | st.sampled_from(["a", "b", "车"]) | st.booleans() | st.just(1.5)
_people = st.builds(
    PersonData, st.just(1),
    attributes=st.dictionaries(st.sampled_from(["x", "y"]), _values, max_size=2),
    tags=st.dictionaries(st.sampled_from(["t"]), _values, max_size=1),
    events=st.lists(st.builds(EventData, st.sampled_from(["a", "b"]), _instants,
                              st.dictionaries(st.just("n"), _values, max_size=1)), max_size=6),
)
_leaves = [parse_cond(text) for text in (
    "profile.x = 1", "profile.y > 0", 'tag t in ["a", 1]', "profile.x between -1 and 2", "did a in last 90 days",
    'tag t contains "车"', "count(b where n >= 1) >= 1", "avg(a.n) < 1", "profile.y is null",
    "did a then b within 30 days",
)]


@settings(max_examples=150, deadline=None)
@given(_people, st.sampled_from(_leaves), st.sampled_from(_leaves))
def test_logic_laws_hold(person, left, right):
    evaluator = Evaluator(None, Dataset.of(person), AS_OF)

    def value(cond):
        return evaluator.cond(cond, Scope(person))

    assert value(ast.Not(ast.Not(left))) == value(left)
    assert value(ast.Not(ast.And((left, right)))) == value(ast.Or((ast.Not(left), ast.Not(right))))
    assert value(ast.Not(ast.Or((left, right)))) == value(ast.And((ast.Not(left), ast.Not(right))))
    assert value(ast.And((left, right))) == value(ast.And((right, left)))


@settings(max_examples=150, deadline=None)
@given(_people, st.integers(0, 400), st.sampled_from(["days", "weeks", "months", "hours"]))
def test_equivalent_forms_agree(person, amount, unit):
    evaluator = Evaluator(None, Dataset.of(person), AS_OF)

    def value(text):
        return evaluator.cond(parse_cond(text), Scope(person))

    window = f"{amount} {unit}"
    assert value(f"did a in last {window}") == value(f"did a since {window} ago")
    assert value(f"did not a in last {window}") == (not value(f"did a in last {window}"))
    assert value(f"did a in last {window}") == value(f"count(a) in last {window} >= 1")
    assert value(f"did any of [a, b] in last {window}") == value(f"did a in last {window} or did b in last {window}")
    assert value(f"did a before {window} ago") == (value(f"first(a) < {window} ago") is True)  # null -> not true
    assert value('tag t not in ["a", 1]') == value('not tag t in ["a", 1]')
    assert value("profile.x between -1 and 2") == value("profile.x >= -1 and profile.x <= 2")


# ---- tests added for the mutation run of dsl/evaluate.py (issue #24) --------------------------------
# Each names the survivors it kills; tests/MUTANTS.md lists the ones that cannot change behaviour.


def test_a_sum_too_large_for_a_float_is_infinite_with_the_sign_of_the_sum():
    """Past 64 bits SQLite's total() gives a float; past the largest float an infinity of the sum's sign, never an
    error (line 84–85 survivors: the comparison, the sign, the caught exception)."""
    huge = 10**400
    people = [PersonData(1, events=[ev("order", at(2026, 5, 1), amount=huge)]),
              PersonData(2, events=[ev("order", at(2026, 5, 1), amount=-huge)]),
              PersonData(3, events=[ev("order", at(2026, 5, 1), amount=5)])]
    assert members("sum(order.amount) > 1000", *people) == {1}
    assert members("sum(order.amount) < -1000", *people) == {2}
    evaluator = Evaluator(None, Dataset.of(*people), AS_OF)
    totals = [evaluator.aggregate(parse_cond("sum(order.amount) > 0").subject, p) for p in people]
    assert totals == [float("inf"), float("-inf"), 5]


def test_explain_shows_consent_states_sets_and_dates_as_seen():
    """What explain prints for consent (granted / refused / unknown), a set of stores and a date (survivors on
    the explain-only lines 604 and 620)."""
    rule_set = rule_set_from_text('segment s { where consented to sms and store = "SH01" and profile.born < 2000-01-01 }')
    people = [PersonData(1, consents={"sms": True}, store_ids={"SH02", "SH01"}, attributes={"born": dt.date(1990, 5, 1)}),
              PersonData(2, consents={"sms": False}), PersonData(3)]
    data = Dataset.of(*people)
    granted = explain_person(rule_set, "s", data, 1, AS_OF).render()
    assert granted.splitlines() == [
        "[PASS] segment s",
        '  [PASS] consented to sms and store = "SH01" and profile.born < 2000-01-01',
        "    [PASS] consented to sms  (seen: granted)",
        '    [PASS] store = "SH01"  (seen: [SH01, SH02])',
        "    [PASS] profile.born < 2000-01-01  (seen: 1990-05-01)",
    ]
    assert "[FAIL] consented to sms  (seen: refused)" in explain_person(rule_set, "s", data, 2, AS_OF).render()
    assert "[FAIL] consented to sms  (seen: unknown)" in explain_person(rule_set, "s", data, 3, AS_OF).render()


def test_a_store_segment_holds_the_people_of_its_store_and_reads_per_store_tags_there():
    """``scope store``: a person belongs to the store through ``scope_stores`` when the data gives them (their
    relations and advisors' stores), else through ``store_ids``; a per-store tag is read at the rule's one store,
    and a rule scoped to two stores cannot say which value it means (survivors on lines 636, 640, 648)."""
    rules = rule_set_from_text('scope store "SH01"\nsegment sh01 { where tag score >= 4 }\n'
                               'scope store "SH01", "SH02"\nsegment both { where tag score >= 4 }\n'
                               'scope store "SH01", "SH02"\nsegment both_any { where did x }\n')
    people = [
        PersonData(1, tags={"score": 5}, store_tags={"SH01": {"score": 4}, "SH02": {"score": 1}}, store_ids={"SH01"}),
        PersonData(2, tags={"score": 5}, store_tags={"SH01": {"score": 2}, "SH02": {"score": 5}}, store_ids={"SH01"}),
        # an advisor's store makes person 3 one of SH01's people although no store relation says so
        PersonData(3, tags={"score": 1}, store_tags={"SH01": {"score": 9}}, scope_stores={"SH01"}),
        # scope_stores, when given, is the whole answer: store_ids do not add to it
        PersonData(4, tags={"score": 9}, store_tags={"SH01": {"score": 9}}, store_ids={"SH01"}, scope_stores={"SH03"}),
        PersonData(5, events=[ev("x", at(2026, 5, 1))], store_ids={"SH02"}),
        PersonData(6, events=[ev("x", at(2026, 5, 1))], store_ids={"SH03"}),
    ]
    data = Dataset(Dataset.of(*people).people, store_tags={"score"})
    assert evaluate_segment(rules, "sh01", data, AS_OF) == {1, 3}
    assert evaluate_segment(rules, "both_any", data, AS_OF) == {5}
    with pytest.raises(EvaluationError, match="scoped to stores SH01, SH02: which store's value is meant"):
        evaluate_segment(rules, "both", data, AS_OF)
    assert "(seen: 4 at store SH01)" in explain_person(rules, "sh01", data, 1, AS_OF).render()


RECOMMEND = '''
recommend service per car {
  when age >= 3 years then "major"
  when age >= 1 years then "minor"
  when brand = "MINI" then "tyres"
}
recommend offer {
  when tag intent = "high" then "drive"
  when profile.vip = true then "brochure"
  when tag intent in ["high", "mid"] then "brochure"
}
segment wants_brochure { where recommendation offer includes any of ["brochure", "tyres"] }
segment any_offer { where has recommendation offer }
segment any_service { where has recommendation service }
'''


def _recommend_people():
    """1: a 4-year-old BMW (VA), a new MINI (VB), a sold 10-year-old car (VC); intent high; vip unknown (the
    second `offer` rule is null for them). 2: a 2-year-old BMW and a car with no data (every `service` rule is
    null for it); intent mid; not vip. 3: nothing. 4: intent high
    and vip: their third rule is true but `brochure` was given by the second already."""
    today = AS_OF.date()
    return Dataset.of(
        PersonData(1, tags={"intent": "high"}, cars=[
            CarData("VB", "MINI", "Cooper", 2026, today - dt.timedelta(days=100)),
            CarData("VA", "BMW", "X3", 2021, dt.date(2022, 1, 10)),
            CarData("VC", "BMW", "X5", 2015, dt.date(2016, 1, 1), owned_to=dt.date(2025, 1, 1))]),
        PersonData(2, tags={"intent": "mid"}, attributes={"vip": False},
                   cars=[CarData("VD", "BMW", "X1", 2023, dt.date(2024, 2, 1)), CarData("VE")]),  # VE: all null
        PersonData(3),
        PersonData(4, tags={"intent": "high"}, attributes={"vip": True}),
    )


def _ranked(result):
    return {pid: [(i.item, i.rank, i.rule, i.vin) for i in items] for pid, items in result.items()}


def test_the_evaluator_ranks_recommended_items_per_car_and_per_person():
    """Each true `when` adds its item unless an earlier true one gave it; ranks count from 1 in rule order;
    a `per car` recommendation ranks per owned car, by VIN; people with no item are left out (survivors on
    lines 572–589, 730–733 and 746–752)."""
    rules = rule_set_from_text(RECOMMEND)
    data = _recommend_people()
    assert _ranked(evaluate_recommendations(rules, "service", data, AS_OF)) == {
        1: [("major", 1, 1, "VA"), ("minor", 2, 2, "VA"), ("tyres", 1, 3, "VB")],  # VC was sold
        2: [("minor", 1, 2, "VD")],
    }
    assert _ranked(evaluate_recommendations(rules, "offer", data, AS_OF)) == {
        1: [("drive", 1, 1, None), ("brochure", 2, 3, None)],
        2: [("brochure", 1, 3, None)],
        4: [("drive", 1, 1, None), ("brochure", 2, 2, None)],
    }
    line = next(r.line for r in rules.recommendations["offer"].rules if r.then.value == "drive")
    assert evaluate_recommendations(rules, "offer", data, AS_OF)[4][0].to_dict() == {
        "item": "drive", "rank": 1, "rule": 1, "line": line, "vin": None}
    assert evaluate_segment(rules, "wants_brochure", data, AS_OF) == {1, 2, 4}
    assert evaluate_segment(rules, "any_offer", data, AS_OF) == {1, 2, 4}
    assert evaluate_segment(rules, "any_service", data, AS_OF) == {1, 2}
    with pytest.raises(EvaluationError, match="unknown recommendation `nope`"):
        evaluate_recommendations(rules, "nope", data, AS_OF)


def test_a_persons_items_are_best_rank_first_then_by_vin_once_each():
    """``person_items`` orders by rank, then VIN, whatever order the items come in (line 739 survivor)."""
    items = [RecommendedItem("wash", 1, 1, None, "VZ"), RecommendedItem("tyres", 2, 2, None, "VA"),
             RecommendedItem("oil", 1, 3, None, "VA"), RecommendedItem("wash", 2, 1, None, "VA")]
    assert person_items(items) == ["oil", "wash", "tyres"]


def test_recommendations_that_depend_on_themselves_are_a_cycle_error():
    rules = rule_set_from_text('recommend a { when recommendation b includes "x" then "x" }\n'
                               'recommend b { when has recommendation a then "y" }\n')
    with pytest.raises(EvaluationError, match=r"recommendations refer to each other in a cycle: a -> b -> a"):
        evaluate_recommendations(rules, "a", Dataset.of(PersonData(1)), AS_OF)


def test_explain_recommendation_says_which_rule_gave_each_item():
    """Per person and per car: a node per rule that passes when its condition is true, seen = the rank it gave,
    or that an earlier rule gave the item (survivors on lines 597–599 and 763–790)."""
    rules = rule_set_from_text(RECOMMEND)
    data = _recommend_people()
    offer = explain_recommendation(rules, "offer", data, 4, AS_OF)
    assert offer.render().splitlines() == [
        "[PASS] recommend offer  (seen: [drive, brochure])",
        '  [PASS] when … then "drive"  (seen: rank 1)',
        '    [PASS] tag intent = "high"  (seen: \'high\')',
        '  [PASS] when … then "brochure"  (seen: rank 2)',
        "    [PASS] profile.vip = true  (seen: True)",
        '  [PASS] when … then "brochure"  (seen: item given by an earlier rule)',
        '    [PASS] tag intent in ["high", "mid"]  (seen: \'high\')',
    ]
    assert (offer.line, offer.column) == (rules.recommendations["offer"].line, rules.recommendations["offer"].column)
    unknown_vip = explain_recommendation(rules, "offer", data, 1, AS_OF).render().splitlines()
    assert unknown_vip[3:5] == ['  [FAIL] when … then "brochure"', "    [NULL] profile.vip = true  (seen: null)"]
    nothing = explain_recommendation(rules, "offer", data, 3, AS_OF)
    assert nothing.result is False and nothing.seen == "[]"
    service = explain_recommendation(rules, "service", data, 1, AS_OF)
    assert service.render().splitlines() == [
        "[PASS] recommend service per car  (seen: [major, tyres, minor])",
        "  [PASS] car VA  (seen: [major, minor])",
        '    [PASS] when … then "major"  (seen: rank 1)',
        "      [PASS] age >= 3 years  (seen: 4)",
        '    [PASS] when … then "minor"  (seen: rank 2)',
        "      [PASS] age >= 1 year  (seen: 4)",
        '    [FAIL] when … then "tyres"',
        "      [FAIL] brand = \"MINI\"  (seen: 'BMW')",
        "  [PASS] car VB  (seen: [tyres])",
        '    [FAIL] when … then "major"',
        "      [FAIL] age >= 3 years  (seen: 0)",
        '    [FAIL] when … then "minor"',
        "      [FAIL] age >= 1 year  (seen: 0)",
        '    [PASS] when … then "tyres"  (seen: rank 1)',
        "      [PASS] brand = \"MINI\"  (seen: 'MINI')",
    ]
    assert explain_recommendation(rules, "service", data, 3, AS_OF).render() == \
        "[FAIL] recommend service per car  (seen: [])"
    in_segment = explain_person(rules, "wants_brochure", data, 1, AS_OF).render()
    assert '(seen: [brochure, drive])' in in_segment
    for name, pid in (("nope", 1), ("offer", 99)):
        with pytest.raises(EvaluationError, match="unknown recommendation|not in the data"):
            explain_recommendation(rules, name, data, pid, AS_OF)


def test_minutes_and_years_windows_have_their_exact_length():
    """`in last N minutes` is N × 60 s; `in last 1 year` is 12 calendar months back (survivors on lines 30 and 73)."""
    people = [PersonData(1, events=[ev("x", AS_OF - dt.timedelta(minutes=90))]),
              PersonData(2, events=[ev("x", AS_OF - dt.timedelta(minutes=90, seconds=1))]),
              PersonData(3, events=[ev("x", at(2025, 6, 1, 10, 0))]),   # exactly one year before AS_OF
              PersonData(4, events=[ev("x", at(2025, 5, 31, 10, 0))]),  # a year and a day
              PersonData(5, events=[ev("x", at(2025, 7, 1, 10, 0))])]   # eleven months
    assert members("did x in last 90 minutes", *people) == {1}
    assert members("did x in last 1 year", *people) == {1, 2, 3, 5}
    assert members("did x in last 12 months", *people) == {1, 2, 3, 5}


def test_explain_shows_a_sum_as_the_engine_keeps_it_an_integer_within_64_bits_a_float_past_them():
    """Sums stay integers from -2⁶³ to 2⁶³ - 1 and become floats outside, as SQLite's total() (line 81 survivors)."""
    rule_set = rule_set_from_text("segment s { where sum(order.amount) > 0 }")
    sums = {1: 5, 2: -5, 3: 2**63 - 1, 4: 2**63, 5: -(2**63), 6: -(2**63) - 1}
    people = [PersonData(pid, events=[ev("order", at(2026, 5, 1), amount=total - 1), ev("order", at(2026, 5, 2), amount=1)])
              for pid, total in sums.items()]
    data = Dataset.of(*people)
    seen = {pid: explain_person(rule_set, "s", data, pid, AS_OF).children[0].seen for pid in sums}
    assert seen == {1: "5", 2: "-5", 3: "9223372036854775807", 4: "9.223372036854776e+18",
                    5: "-9223372036854775808", 6: "-9.223372036854776e+18"}
    assert members("sum(order.amount) = 9223372036854775807", *people) == {3}


def test_age_counts_from_a_date_of_birth_and_is_unknown_for_any_other_value():
    """A person's `age` needs `profile.birth_date` to be a date; text, a number, a date-time or a boolean give an
    unknown age (line 178 survivors)."""
    people = [PersonData(1, attributes={"birth_date": dt.date(1996, 6, 1)}),  # 30 today
              PersonData(2, attributes={"birth_date": dt.date(1996, 6, 2)}),  # 30 tomorrow
              PersonData(3, attributes={"birth_date": "1990-01-01"}), PersonData(4, attributes={"birth_date": 1990}),
              PersonData(5, attributes={"birth_date": at(1990, 1, 1)}), PersonData(6, attributes={"birth_date": True}),
              PersonData(7)]
    assert members("age >= 30", *people) == {1}
    assert members("age is null", *people) == {3, 4, 5, 6, 7}


def test_a_car_is_owned_from_its_first_day_until_the_day_it_is_sold():
    today = AS_OF.date()
    day = dt.timedelta(days=1)
    people = [PersonData(1, cars=[CarData("V1", owned_from=today - day)]),
              PersonData(2, cars=[CarData("V2", owned_from=today + day)]),
              PersonData(3, cars=[CarData("V3", owned_from=today - 9 * day, owned_to=today + day)]),
              PersonData(4, cars=[CarData("V4", owned_from=today - 9 * day, owned_to=today - day)])]
    assert members("has car", *people) == {1, 3}


def test_a_date_compared_with_an_instant_compares_local_dates_whichever_side_it_is_on():
    """`profile.d >= 7 days ago` with a date attribute: the instant 7 days ago becomes its local date (line 212–215)."""
    week_ago = (AS_OF - dt.timedelta(days=7)).date()
    people = [PersonData(1, attributes={"d": week_ago}), PersonData(2, attributes={"d": week_ago - dt.timedelta(days=1)}),
              PersonData(3, attributes={"d": at(2026, 5, 25, 0, 30)})]
    assert members("profile.d >= 7 days ago", *people) == {1}  # person 3's instant is before 10:00 that day
    assert members("profile.d = 2026-05-25", *people) == {1, 3}
    assert compare_values(dt.date(2026, 5, 25), "=", dt.datetime(2026, 5, 24, 16, 30, tzinfo=UTC), SH) is True


def test_values_of_another_kind_are_equal_to_nothing_and_unordered():
    """A list or a dict in the data is of no comparable kind: `=` False, `!=` True, ordering unknown (line 201, 217)."""
    people = [PersonData(1, attributes={"x": ["a"]}), PersonData(2, attributes={"x": {"a": 1}}), PersonData(3, attributes={"x": "a"})]
    assert members('profile.x = "a"', *people) == {3}
    assert members('profile.x != "a"', *people) == {1, 2}
    assert members('profile.x < "b"', *people) == {3}
    assert compare_values(["a"], "=", ["a"], SH) is False
    assert compare_values(["a"], "<", ["b"], SH) is None


def test_store_and_advisor_refuse_orderings_and_between():
    people = [PersonData(1, store_ids={"SH01"})]
    for condition in ('store < "SH02"', 'store > "SH00"', 'store >= "SH01"', 'advisor <= "A"', 'store between "A" and "Z"'):
        with pytest.raises(EvaluationError, match="only supports =, !=, in, not in, is null|does not support between"):
            members(condition, *people)


def test_unknown_names_are_errors_not_nulls():
    """A car field or a person name the evaluator does not know raises, whether it sorts before or after `age`;
    an age compared with days instead of years too (line 395, 412 and 420 survivors)."""
    people = [PersonData(1, cars=[CarData("V1", "BMW")])]
    with pytest.raises(EvaluationError, match="cars have no field `a`"):
        members("has car where a = 1", *people)
    for name in ("a", "zzz"):
        with pytest.raises(EvaluationError, match=f"unknown name `{name}` in a person condition"):
            members(f"{name} = 1", *people)
    with pytest.raises(EvaluationError, match="`5 days` can only be compared with an age in years"):
        members("has car where age >= 5 days", *people)


def test_a_store_rule_reads_store_tags_at_the_innermost_rules_store_and_other_tags_as_they_are():
    """A store segment that uses another store's segment: each reads the per-store tag at its own store; an
    ordinary tag is read as it is in a store's rule; a group rule reads the person's own value (lines 341, 633)."""
    rules = rule_set_from_text('segment top { where tag score >= 4 }\n'  # a `scope` line holds for the rules below it
                               'scope store "SH01"\nsegment sh01 { where tag score >= 4 }\n'
                               'scope store "SH02"\nsegment sh02_and_sh01 { where tag score >= 4 and in segment sh01 }\n'
                               'scope store "SH02"\nsegment sh02_gold { where tag tier = "gold" }\n'
                               'scope store "SH01", "SH02"\nsegment both_gold { where tag tier = "gold" }\n')
    people = [PersonData(1, tags={"score": 1, "tier": "gold"}, store_tags={"SH01": {"score": 4}, "SH02": {"score": 5}},
                         store_ids={"SH01", "SH02"}),
              PersonData(2, tags={"score": 9}, store_tags={"SH01": {"score": 5}, "SH02": {"score": 1}},
                         store_ids={"SH01", "SH02"}),
              # high at SH02 only: sh02_and_sh01's own test passes, the inner sh01 (read at SH01) does not
              PersonData(3, store_tags={"SH01": {"score": 2}, "SH02": {"score": 5}}, store_ids={"SH01", "SH02"})]
    data = Dataset(Dataset.of(*people).people, store_tags={"score"})
    assert evaluate_segment(rules, "sh02_and_sh01", data, AS_OF) == {1}
    assert evaluate_segment(rules, "sh02_gold", data, AS_OF) == {1}
    assert evaluate_segment(rules, "both_gold", data, AS_OF) == {1}
    assert evaluate_segment(rules, "top", data, AS_OF) == {2}
    assert evaluate_tag(rule_set_from_text('tag high = case when tag score >= 4 then true else false end'),
                        "high", data, AS_OF) == {1: False, 2: True, 3: False}


def test_explain_says_what_each_behaviour_condition_saw_and_keeps_event_filters_out():
    """The seen values of did, did any of, a sequence, has car, and a null root; the per-event `where` of a count
    adds no nodes (survivors on lines 494, 524, 530, 551, 565, 674)."""
    rule_set = rule_set_from_text(
        'segment s { where did a in last 90 days and did any of [a, b] and did a then b within 2 days and has car\n'
        '  and count(a where n = 1) >= 1 }\n'
        'segment unknown { where tag level = "high" }')
    person = PersonData(1, cars=[CarData("V1")], events=[ev("a", at(2026, 5, 1), n=1), ev("b", at(2026, 5, 2)),
                                                         ev("a", at(2026, 5, 3))])
    tree = explain_person(rule_set, "s", Dataset.of(person), 1, AS_OF)
    lines = tree.render().splitlines()
    assert lines[2:] == [
        "    [PASS] did a in last 90 days  (seen: 2 matching events)",
        "    [PASS] did any of [a, b]  (seen: 3 matching events)",
        "    [PASS] did a then b within 2 days  (seen: from 2026-05-01T00:00:00+08:00 to 2026-05-02T00:00:00+08:00)",
        "    [PASS] has car  (seen: 1 cars owned)",
        "    [PASS] count(a where n = 1) >= 1  (seen: 1)",
    ]
    assert tree.result is True
    unknown = explain_person(rule_set, "unknown", Dataset.of(person), 1, AS_OF)
    assert unknown.result is False and unknown.children[0].result is None


def test_first_and_last_of_three_events_are_the_oldest_and_the_newest():
    person = PersonData(1, events=[ev("x", at(2026, 5, d)) for d in (3, 1, 2)])
    assert members("last(x) = 2026-05-03 and first(x) = 2026-05-01", person) == {1}


def test_an_event_filter_that_is_unknown_for_an_event_leaves_it_out():
    person = PersonData(1, events=[ev("x", at(2026, 5, 1), n=1), ev("x", at(2026, 5, 2)), ev("x", at(2026, 5, 3), n=2)])
    assert members("count(x where n >= 1) = 2 and count(x where n < 2) = 1", person) == {1}


def test_trigger_edges_other_events_unknown_conditions_and_firings_at_as_of():
    """Survivors on lines 825–842: an event whose name sorts before the trigger's; an event `where` or an `if`
    that is null; another segment's change (or none); a previous firing exactly at as_of counts, a later one
    does not."""
    rule_set = rule_set_from_text('''
        trigger thanks { on order where amount > 100 via sms template "t" }
        trigger gold { on order if tag tier = "gold" via sms template "t" }
        trigger welcome { on enter segment vip via sms template "w" }
        segment vip { where did order }
    ''')
    order = ev("order", at(2026, 5, 30, 12), amount=150)
    data = Dataset.of(PersonData(1, tags={"tier": "gold"}, events=[order]), PersonData(2, events=[order]))
    for name in ("lead", "share"):  # sorting before and after `order`
        assert trigger_fires(rule_set, "thanks", data, 1, event=ev(name, order.ts, amount=150)) == \
            TriggerDecision(False, "not a `order` event")
    assert trigger_fires(rule_set, "thanks", data, 1, event=ev("order", order.ts)) == \
        TriggerDecision(False, "event does not match `where`")
    assert trigger_fires(rule_set, "gold", data, 2, event=order) == TriggerDecision(False, "`if` condition is not true")
    assert trigger_fires(rule_set, "gold", data, 1, event=order).fires
    for change in (("enter", "other"), ("enter", "zzz"), None):
        assert not trigger_fires(rule_set, "welcome", data, 1, segment_change=change, as_of=AS_OF).fires
    assert trigger_fires(rule_set, "welcome", data, 1, segment_change=("enter", "vip"), as_of=AS_OF).fires
    assert not trigger_fires(rule_set, "thanks", data, 1, event=order, previous_firings=[order.ts]).fires
    assert trigger_fires(rule_set, "thanks", data, 1, event=order,
                         previous_firings=[order.ts + dt.timedelta(seconds=1)]).fires


def test_a_date_time_bound_is_that_instant_not_its_whole_day():
    """`between T1 and T2` with date-times: the window is exactly T1..T2, not the days they fall on (line 155,
    157 survivors)."""
    people = [PersonData(1, events=[ev("x", at(2026, 5, 1, 9, 0))]), PersonData(2, events=[ev("x", at(2026, 5, 1, 11, 0))]),
              PersonData(3, events=[ev("x", at(2026, 5, 1, 13, 0))])]
    assert members("did x between 2026-05-01 10:00 and 2026-05-01 12:00", *people) == {2}
    assert members("did x between 2026-05-01 10:00 and 2026-05-01", *people) == {2, 3}
    assert members("did x between 2026-05-01 and 2026-05-01 12:00", *people) == {1, 2}


@pytest.mark.parametrize("op, below, equal, above", [
    ("=", False, True, False), ("!=", True, False, True), ("<", True, False, False),
    ("<=", True, True, False), (">", False, False, True), (">=", False, True, True)])
def test_each_comparison_on_a_smaller_an_equal_and_a_larger_value(op, below, equal, above):
    """Every operator against 1 < 2 = 2 < 3 (the line 222 survivor: `!=` as `>` agrees whenever the left side is
    the larger one)."""
    people = [PersonData(1, attributes={"n": 1}), PersonData(2, attributes={"n": 2}), PersonData(3, attributes={"n": 3})]
    expected = {pid for pid, truth in ((1, below), (2, equal), (3, above)) if truth}
    assert members(f"profile.n {op} 2", *people) == expected
    assert [compare_values(n, op, "2", SH) for n in ("1", "2", "3")] == [below, equal, above]


def test_starts_with_is_not_contains():
    """Line 475 survivor: `starts with` read as `contains`."""
    people = [PersonData(1, attributes={"phone": "+8621123"}), PersonData(2, attributes={"phone": "021+8621"})]
    assert members('profile.phone starts with "+8621"', *people) == {1}
    assert members('profile.phone contains "+8621"', *people) == {1, 2}
