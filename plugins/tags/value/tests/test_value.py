"""The value calculator on hand-made events in a real SQLite store, with exact expected figures."""

import datetime as dt

import pytest

from motorcade.model import Event
from motorcade.store import SQLiteStore
from motorcade.tags.engine import compute_tags
from motorcade_tags_value import ValueTags, quintile_cut_points, score

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def event(person, name, days_ago, **props):
    ts = AS_OF - dt.timedelta(days=days_ago)
    return Event(name=name, ts=ts, person_id=person, properties=props, source="test",
                 dedup_key=f"{person}-{name}-{days_ago}-{sorted(props.items())}")


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "value.db")
    a, b, c, d = (s.create_person() for _ in range(4))
    s.insert_events([
        event(a, "service_visit", 10, store="S1", amount=1000),
        event(a, "service_visit", 10.01, store="S1", amount=500),  # same day, a second record: one visit day
        event(a, "order", 100, store_id="S2", amount="300000"),  # store_id wins; text amounts are numbers
        event(b, "service_visit", 200, store="S1", amount=2000),
        event(c, "service_visit", 30, store="S2", amount=800),
        event(c, "service_visit", 2000, store="S2", amount=99999),  # outside the 1095-day window
        event(c, "app_login", 1),  # not a value event
        event(d, "service_visit", -1, store="S1", amount=5),  # after as_of: ignored
    ])
    s.people = (a, b, c, d)
    yield s
    s.close()


def tags(store, person):
    return {t.tag: t.value for t in store.tags_of(person)}


def test_quintile_cut_points_and_scores():
    assert quintile_cut_points([10, 30, 100, 200]) == [10, 30, 100, 200]
    assert quintile_cut_points(list(range(1, 11))) == [2, 4, 6, 8]
    assert [score(v, [2, 4, 6, 8], higher_is_better=True) for v in (1, 2, 3, 9)] == [1, 1, 2, 5]
    assert [score(v, [2, 4, 6, 8], higher_is_better=False) for v in (1, 2, 3, 9)] == [5, 4, 4, 1]


def test_rfm_with_population_quintiles(store):
    a, b, c, d = store.people
    compute_tags(store, {"value": ValueTags()}, as_of=AS_OF)
    # pairs: (a,S1) 10 days/1 day/1500, (a,S2) 100/1/300000, (b,S1) 200/1/2000, (c,S2) 30/1/800
    # recency cuts [10,30,100,200] -> R 4,2,1,3; frequency all 1 -> F 1; monetary cuts -> M 2,4,3,1
    assert tags(store, a) == {
        "rfm_recency_days": 10, "rfm_frequency": 2, "rfm_monetary": 301500, "store_count": 2,
        "top_store": "S2",  # both stores score 7/3; the tie goes to the larger spend
        "store_value_score": 2.33, "store_r_score": 2, "store_f_score": 1, "store_m_score": 4,
        "group_value_score": 2.33, "value_level": "low",
    }
    assert tags(store, b) == {
        "rfm_recency_days": 200, "rfm_frequency": 1, "rfm_monetary": 2000, "store_count": 1, "top_store": "S1",
        "store_value_score": 1.67, "store_r_score": 1, "store_f_score": 1, "store_m_score": 3,
        "group_value_score": 1.67, "value_level": "low",
    }
    assert tags(store, c)["rfm_monetary"] == 800 and tags(store, c)["store_r_score"] == 3
    assert tags(store, d) == {}


def test_configured_cut_points_weights_and_levels(store):
    a, b, c, _ = store.people
    settings = {"value": {
        "recency_cut_points": [30, 90, 180, 365], "frequency_cut_points": [1, 2, 3, 5],
        "monetary_cut_points": [1000, 5000, 20000, 100000], "store_weights": {"S1": 100.0},
        "levels": {"high": 4.0, "medium": 2.9},
    }}
    compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings=settings)
    got = tags(store, a)
    # (a,S1): R5 F1 M2 -> 8/3; (a,S2): R3 F1 M5 -> 3.0; weights: spend × store weight = 100×1500 and 300000
    assert (got["top_store"], got["store_value_score"]) == ("S2", 3.0)
    assert got["group_value_score"] == round((150000 * 8 / 3 + 300000 * 3.0) / 450000, 2) == 2.89
    assert got["value_level"] == "low"  # 2.89 < medium 2.9
    compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings={"value": {**settings["value"],
                                                                                 "store_weights": {}}})
    assert tags(store, a)["group_value_score"] == round((1500 * 8 / 3 + 300000 * 3.0) / 301500, 2) == 3.0
    assert tags(store, a)["value_level"] == "medium"
    assert tags(store, b)["store_value_score"] == round((2 + 1 + 2) / 3, 2)  # 200 days: R2; 2000: M2


def test_incremental_with_configured_cut_points_reads_only_changed_people(store):
    a, b, c, _ = store.people
    settings = {"value": {"recency_cut_points": [30, 90, 180, 365], "frequency_cut_points": [1, 2, 3, 5],
                          "monetary_cut_points": [1000, 5000, 20000, 100000]}}
    compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings=settings)
    before_a = store.tags_of(a)
    store.insert_events([event(b, "service_visit", 5, store="S1", amount=30000)])
    result = compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings=settings, incremental=True)[0]
    assert (result.mode, result.people) == ("incremental", 1)
    assert tags(store, b)["rfm_frequency"] == 2 and tags(store, b)["rfm_monetary"] == 32000
    assert store.tags_of(a) == before_a


def test_bad_cut_points_are_a_config_error(store):
    from motorcade.tags.engine import TagError
    from motorcade.errors import ConfigError

    with pytest.raises((ConfigError, TagError), match="expected four ascending numbers"):
        compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings={"value": {"recency_cut_points": [3, 1]}})


# -- money is exact: equal spend, equal score ----------------------------------------------------------------

from decimal import Decimal
import zoneinfo

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st


def _spend_store(path, baskets):
    """A store with one person per basket; each amount an order on its own day at store S1."""
    s = SQLiteStore(path)
    people = [s.create_person() for _ in baskets]
    s.insert_events(
        Event(name="order", ts=AS_OF - dt.timedelta(days=1 + j), person_id=person,
              properties={"store": "S1", "amount": amount}, source="test", dedup_key=f"{person}-{j}")
        for person, basket in zip(people, baskets) for j, amount in enumerate(basket))
    return s, people


def test_amounts_that_add_up_to_the_same_spend_get_the_same_monetary_score(tmp_path):
    # 17.90 + 27.98 is 45.879999999999995 in binary floating point; as a cut point it put 45.88 above it
    s, (low, split, whole, mid, high) = _spend_store(tmp_path / "m.db", [[10.0], [17.90, 27.98], [45.88],
                                                                           [100.0], [200.0]])
    try:
        compute_tags(s, {"value": ValueTags()}, as_of=AS_OF)
        assert tags(s, split)["rfm_monetary"] == tags(s, whole)["rfm_monetary"] == 45.88
        assert tags(s, split)["store_m_score"] == tags(s, whole)["store_m_score"] == 2
    finally:
        s.close()


cents = st.integers(min_value=1, max_value=10_000_00)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(baskets=st.lists(st.lists(cents, min_size=1, max_size=4), min_size=1, max_size=8), data=st.data())
def test_equal_decimal_spend_always_scores_equal(tmp_path_factory, baskets, data):
    """Every basket also appears split differently (same decimal total, other amounts): both people get
    the same rfm_monetary and M score, whatever binary rounding the parts suffer."""
    resplit = []
    for basket in baskets:
        total = sum(basket)
        cut = data.draw(st.integers(min_value=0, max_value=total - 1))
        resplit.append([total - cut] + ([cut] if cut else []))
    as_amounts = [[float(Decimal(c) / 100) for c in basket] for basket in baskets + resplit]
    s, people = _spend_store(tmp_path_factory.mktemp("spend") / "m.db", as_amounts)
    try:
        compute_tags(s, {"value": ValueTags()}, as_of=AS_OF)
        n = len(baskets)
        for i in range(n):
            a, b = tags(s, people[i]), tags(s, people[n + i])
            assert a["rfm_monetary"] == b["rfm_monetary"] == float(Decimal(sum(baskets[i])) / 100)
            assert a["store_m_score"] == b["store_m_score"]
        by_total: dict[int, set[int]] = {}
        for i, basket in enumerate(baskets + resplit):
            by_total.setdefault(sum(basket), set()).add(tags(s, people[i])["store_m_score"])
        assert all(len(scores) == 1 for scores in by_total.values())
    finally:
        s.close()


def test_configured_monetary_cut_points_compare_exact_money(tmp_path):
    s, (split, whole, above) = _spend_store(tmp_path / "m.db", [[0.1, 0.2], [0.3], [0.31]])
    try:
        # 0.1 + 0.2 = 0.30000000000000004 > 0.3 in floating point: it must not beat the cut point 0.3
        compute_tags(s, {"value": ValueTags()}, as_of=AS_OF, settings={"value": {
            "monetary_cut_points": [0.3, 1, 2, 3], "recency_cut_points": [30, 90, 180, 365],
            "frequency_cut_points": [1, 2, 3, 5]}})
        assert [tags(s, p)["store_m_score"] for p in (split, whole, above)] == [1, 1, 2]
    finally:
        s.close()


# -- local days in a zone with daylight saving time ----------------------------------------------------------

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def test_purchase_days_are_local_days_across_a_dst_change(tmp_path):
    """as_of is in summer (UTC−4); the visits are in winter (UTC−5). Days are the visits' own local days."""
    s = SQLiteStore(tmp_path / "dst.db")
    a, b = s.create_person(), s.create_person()
    at = lambda *args: dt.datetime(*args, tzinfo=NEW_YORK)  # noqa: E731
    s.insert_events(Event(name="service_visit", ts=ts, person_id=p, properties={"store": "S1", "amount": 1},
                          source="test", dedup_key=f"{p}-{i}")
                    for i, (p, ts) in enumerate([
                        (a, at(2026, 1, 5, 23, 30)), (a, at(2026, 1, 6, 0, 30)),  # two local days
                        (b, at(2026, 1, 6, 0, 30)), (b, at(2026, 1, 6, 23, 30)),  # one local day
                    ]))
    try:
        compute_tags(s, {"value": ValueTags()}, as_of=at(2026, 7, 1, 12, 0), timezone=NEW_YORK)
        assert tags(s, a)["rfm_frequency"] == 2
        assert tags(s, b)["rfm_frequency"] == 1
        # an as_of given in UTC counts the same local days: the project's zone decides, not as_of's
        compute_tags(s, {"value": ValueTags()}, as_of=at(2026, 7, 1, 12, 0).astimezone(UTC), timezone=NEW_YORK)
        assert (tags(s, a)["rfm_frequency"], tags(s, b)["rfm_frequency"]) == (2, 1)
    finally:
        s.close()


# around both 2026 changes in New York: 8 March (02:00 -> 03:00) and 1 November (02:00 -> 01:00)
_CHANGES = [int(dt.datetime(2026, 3, 8, 7, tzinfo=UTC).timestamp()), int(dt.datetime(2026, 11, 1, 6,
                                                                                         tzinfo=UTC).timestamp())]


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(visits=st.lists(st.lists(st.tuples(st.sampled_from(_CHANGES), st.integers(-3 * 86400, 3 * 86400)),
                                min_size=1, max_size=6), min_size=1, max_size=5),
       as_of_hours=st.integers(0, 24 * 60))
def test_frequency_counts_distinct_local_dates(tmp_path_factory, visits, as_of_hours):
    s = SQLiteStore(tmp_path_factory.mktemp("dst") / "dst.db")
    people = [s.create_person() for _ in visits]
    s.insert_events(Event(name="order", ts=dt.datetime.fromtimestamp(base + delta, UTC), person_id=p,
                          properties={"store": "S1", "amount": 1}, source="test", dedup_key=f"{p}-{i}")
                    for p, person_visits in zip(people, visits) for i, (base, delta) in enumerate(person_visits))
    as_of = dt.datetime(2026, 11, 5, tzinfo=UTC) + dt.timedelta(hours=as_of_hours)
    try:
        compute_tags(s, {"value": ValueTags()}, as_of=as_of, timezone=NEW_YORK)
        for p, person_visits in zip(people, visits):
            days = {dt.datetime.fromtimestamp(base + delta, NEW_YORK).date() for base, delta in person_visits}
            assert tags(s, p)["rfm_frequency"] == len(days)
    finally:
        s.close()


# -- the value per (person, store): a store's rule reads the value at its store --------------------------

_STORES = ("S1", "S2", "S3")
_CUTS = {"recency_cut_points": [30, 90, 180, 365], "frequency_cut_points": [1, 2, 3, 5],
         "monetary_cut_points": [1000, 5000, 20000, 100000]}
_STORE_RULES = """
scope store "S1"
segment s1_valued { where tag store_value_score >= 3 }
segment s1_recent { where tag store_r_score = 5 or tag store_m_score <= 2 }
scope group
segment top_valued { where tag store_value_score >= 3 }
segment uses_s1_valued { where in segment s1_valued }
"""


def _by_hand(orders):
    """The store value of each (person, store) from that store's rows only, as the plugin's README states it
    (configured cut points): (R, F, M, value rounded to 0.01)."""
    out = {}
    for (person, store), rows in orders.items():
        recency = min(days for days, _ in rows)  # whole days: every order is at AS_OF's time of day
        frequency = len({days for days, _ in rows})
        cents = sum(round(amount * 100) for _, amount in rows)
        r = 1 + sum(recency < c for c in _CUTS["recency_cut_points"])
        f = 1 + sum(frequency > c for c in _CUTS["frequency_cut_points"])
        m = 1 + sum(cents > c * 100 for c in _CUTS["monetary_cut_points"])
        out[person, store] = (r, f, m, round((r + f + m) / 3, 2))
    return out


_order = st.tuples(st.sampled_from(_STORES), st.integers(1, 400), st.integers(1, 3000).map(lambda y: y * 37.5))


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(people=st.lists(st.tuples(st.lists(_order, max_size=6),
                                 st.lists(st.sampled_from(_STORES), max_size=2, unique=True)),
                       min_size=1, max_size=6))
def test_a_store_scoped_segment_reads_the_value_at_its_store(tmp_path_factory, people):
    """For random orders over several stores: a segment scoped to S1 on `store_value_score` holds exactly the
    S1 people whose value computed by hand from S1's rows alone passes -- in the compiled SQL and in the
    reference evaluator --; a group segment reads the value at the person's top store."""
    from motorcade.dsl.evaluate import evaluate_segment
    from motorcade.dsl.rules import rule_set_from_text
    from motorcade.segments.compute import evaluate_members
    from motorcade.segments.dataset import load_dataset

    s = SQLiteStore(tmp_path_factory.mktemp("stores") / "v.db")
    try:
        orders, related = {}, {}
        events = []
        for i, (bought, stores) in enumerate(people):
            pid = s.create_person()
            related[pid] = set(stores)
            for store in stores:
                s.set_relation(pid, "selling_store", store)
            for j, (store, days, amount) in enumerate(bought):
                orders.setdefault((pid, store), []).append((days, amount))
                events.append(Event(name="order", ts=AS_OF - dt.timedelta(days=days), person_id=pid,
                                    properties={"store": store, "amount": amount}, source="test",
                                    dedup_key=f"{pid}-{j}"))
        s.insert_events(events)
        compute_tags(s, {"value": ValueTags()}, as_of=AS_OF, settings={"value": dict(_CUTS)})
        hand = _by_hand(orders)
        for pid in related:  # what is stored: every store's value, and the top store's as the person's
            stored = s.store_tags_of(pid)
            assert {st_: v["store_value_score"] for st_, v in stored.items()} == {
                st_: hand[p, st_][3] for p, st_ in hand if p == pid}
            assert all((v["store_r_score"], v["store_f_score"], v["store_m_score"]) == hand[pid, st_][:3]
                       for st_, v in stored.items())
        rules = rule_set_from_text(_STORE_RULES)
        dataset = load_dataset(s)
        s1_value = {p: v[3] for (p, st_), v in hand.items() if st_ == "S1"}
        expected = {
            "s1_valued": {p for p in related if "S1" in related[p] and s1_value.get(p, 0) >= 3},
            "s1_recent": {p for p in related if "S1" in related[p] and (p, "S1") in hand
                          and (hand[p, "S1"][0] == 5 or hand[p, "S1"][2] <= 2)},
            "top_valued": {p for p in related if {t.tag: t.value for t in s.tags_of(p)}.get(
                "store_value_score", 0) >= 3},
        }
        expected["uses_s1_valued"] = expected["s1_valued"]
        for name, members in expected.items():
            compiled, plan, _ = evaluate_members(s, rules, name, AS_OF, "UTC")
            assert "reference evaluator" not in plan
            assert set(compiled) == members, (name, plan)
            assert evaluate_segment(rules, name, dataset, AS_OF, "UTC") == members, name
        from motorcade.dsl.evaluate import explain_person

        for pid in related:  # explain reads the same value, and says which store's
            if "S1" in related[pid]:
                tree = explain_person(rules, "s1_valued", dataset, pid, AS_OF, "UTC")
                assert tree.result is (pid in expected["s1_valued"])
                assert (pid, "S1") not in hand or f"{hand[pid, 'S1'][3]} at store S1" in tree.render()
        top = {p: max(v[3] for (q, _), v in hand.items() if q == p) for p in related if any(
            q == p for q, _ in hand)}
        assert {p for p in top if top[p] >= 3} == expected["top_valued"]
    finally:
        s.close()
