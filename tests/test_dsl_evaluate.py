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
    assert trigger_fires(rule_set, "welcome", data, 1, segment_change=("enter", "vip"), as_of=AS_OF).fires
    assert not trigger_fires(rule_set, "welcome", data, 1, segment_change=("leave", "vip"), as_of=AS_OF).fires


# ---- laws the evaluator must obey (random people, fixed conditions) ----------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from motorcade.dsl import ast  # noqa: E402
from motorcade.dsl.evaluate import Evaluator, Scope  # noqa: E402

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
