"""Attribution: every model checked figure by figure on a small hand-made store against numbers worked out
in this file; the Markov removal effect against an independent absorbing-chain computation (the fundamental
matrix, with numpy); and, on generated journeys, that every model credits each conversion exactly once."""

import datetime as dt
import json
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from motorcade.errors import MotorcadeError
from motorcade.feedback import attribution as attr
from motorcade.feedback.attribution import Journey, Touch, compute_attribution
from motorcade.model import Event, Store
from motorcade.store import open_store

UTC = dt.timezone.utc
DAY = 86400
T0 = int(dt.datetime(2026, 3, 1, 2, 0, tzinfo=UTC).timestamp())
AS_OF = T0 + 60 * DAY


def _event(name, day, person_id, props=None):
    return Event(name, dt.datetime.fromtimestamp(T0 + day * DAY, UTC), person_id, props or {}, "test",
                 f"{name}:{person_id}:{day}")


@pytest.fixture
def journeys_store(tmp_path):
    """Six people (home store in brackets):

    A [SH01]: sent (recall, sms) d0, configurator_view (app) d2, test_drive (store SH02) d6, order d8
    B [SH02]: configurator_view (app) d1, order d3
    C [SH01]: sent (spring, wechat) d0                                  — no order
    D [SH01]: order d5                                                  — no touch
    E [SH02]: configurator_view (app) d-200 (outside 90 days), sent (spring, wechat) d0, order d10,
              clicked (spring, wechat) d12                              — after the order
    F [SH02]: configurator_view (app) d4                                — no order
    """
    store = open_store(tmp_path / "attribution.db")
    store.upsert_stores([Store("SH01", "上海一店", "华东集团"), Store("SH02", "上海二店", "华东集团")])
    ids = {}
    for name, home in (("A", "SH01"), ("B", "SH02"), ("C", "SH01"), ("D", "SH01"), ("E", "SH02"), ("F", "SH02")):
        ids[name] = store.create_person({"name": name})
        store.conn.execute("INSERT INTO person_relations (person_id, kind, target_id) VALUES (?, 'home_store', ?)",
                           (ids[name], home))
    a, b, c, d, e, f = (ids[k] for k in "ABCDEF")
    store.insert_events([
        _event("sent", 0, a, {"campaign": "recall", "channel": "sms"}),
        _event("configurator_view", 2, a, {"channel": "app"}),
        _event("test_drive", 6, a, {"store": "SH02"}),
        _event("order", 8, a),
        _event("configurator_view", 1, b, {"channel": "app"}),
        _event("order", 3, b),
        _event("sent", 0, c, {"campaign": "spring", "channel": "wechat"}),
        _event("order", 5, d),
        _event("configurator_view", -200, e, {"channel": "app"}),
        _event("sent", 0, e, {"campaign": "spring", "channel": "wechat"}),
        _event("order", 10, e),
        _event("clicked", 12, e, {"campaign": "spring", "channel": "wechat"}),
        _event("configurator_view", 4, f, {"channel": "app"}),
        _event("order", 90, a),  # after AS_OF: never counts
    ])
    return store, ids


def _credits(report, dimension, model):
    return {row["value"]: row[model] for row in report.rows(dimension) if row[model]}


def _decay(*ages_days, half_life=7):
    raw = [2 ** (-age / half_life) for age in ages_days]
    return [r / sum(raw) for r in raw]


def test_rule_based_models_by_touch_match_the_hand_computation(journeys_store):
    store, _ = journeys_store
    report = compute_attribution(store, conversion="order", within_days=90, as_of=AS_OF)
    assert (report.conversions, report.with_touches) == (4, 3)
    # journeys: A [sent, cfg, td] -> order; B [cfg] -> order; C [sent]; D [] -> order; E [cfg d-200] expired,
    # E [sent] -> order, E [clicked]; F [cfg]
    assert report.journeys == 8
    assert _credits(report, "touch", "first_touch") == pytest.approx(
        {"sent": 2, "configurator_view": 1, "(no touch)": 1})
    assert _credits(report, "touch", "last_touch") == pytest.approx(
        {"test_drive": 1, "configurator_view": 1, "sent": 1, "(no touch)": 1})
    assert _credits(report, "touch", "linear") == pytest.approx(
        {"sent": 1 / 3 + 1, "configurator_view": 1 / 3 + 1, "test_drive": 1 / 3, "(no touch)": 1})
    assert _credits(report, "touch", "position_based") == pytest.approx(
        {"sent": 0.4 + 1, "configurator_view": 0.2 + 1, "test_drive": 0.4, "(no touch)": 1})
    w_sent, w_cfg, w_td = _decay(8, 6, 2)  # A's touches are 8, 6 and 2 days before the order
    assert _credits(report, "touch", "time_decay") == pytest.approx(
        {"sent": w_sent + 1, "configurator_view": w_cfg + 1, "test_drive": w_td, "(no touch)": 1})


def test_campaign_and_store_credits(journeys_store):
    store, _ = journeys_store
    report = compute_attribution(store, conversion="order", within_days=90, as_of=AS_OF)
    # campaigns: A [recall, -, -], B [-], E [spring]
    assert _credits(report, "campaign", "first_touch") == pytest.approx(
        {"recall": 1, "(none)": 1, "spring": 1, "(no touch)": 1})
    assert _credits(report, "campaign", "last_touch") == pytest.approx({"(none)": 2, "spring": 1, "(no touch)": 1})
    assert _credits(report, "campaign", "linear") == pytest.approx(
        {"recall": 1 / 3, "(none)": 2 / 3 + 1, "spring": 1, "(no touch)": 1})
    # stores: a touch without a store property counts at the person's home store
    # A [SH01, SH01, SH02], B [SH02], E [SH02]
    assert _credits(report, "store", "first_touch") == pytest.approx({"SH01": 1, "SH02": 2, "(no touch)": 1})
    assert _credits(report, "store", "last_touch") == pytest.approx({"SH02": 3, "(no touch)": 1})
    assert _credits(report, "store", "position_based") == pytest.approx(
        {"SH01": 0.6, "SH02": 0.4 + 2, "(no touch)": 1})


def test_markov_removal_effects_match_the_hand_computation(journeys_store):
    """Channel paths: A sms > app > (none) > conversion; B app > conversion; C wechat > null; E app > null
    (expired), wechat > conversion, wechat > null; F app > null.

    p(none) = 1, p(app) = 1/4 + 1/4 p(none) = 1/2, p(sms) = p(app) = 1/2, p(wechat) = 1/3;
    P = (1 p(sms) + 3 p(app) + 3 p(wechat)) / 7 = 3/7. Without sms: 2.5/7 (effect 1/6); without app: 1/7 (2/3);
    without (none): p(app) = 1/4, P = 2/7 (1/3); without wechat: 2/7 (1/3). Sum 3/2; three conversions had
    touches: credits 3 * effect / (3/2)."""
    store, _ = journeys_store
    report = compute_attribution(store, conversion="order", within_days=90, as_of=AS_OF)
    effects = {row["value"]: row["removal_effect"] for row in report.rows("channel") if row["value"] != "(no touch)"}
    assert effects == pytest.approx({"sms": 1 / 6, "app": 2 / 3, "(none)": 1 / 3, "wechat": 1 / 3})
    assert _credits(report, "channel", "markov") == pytest.approx(
        {"sms": 1 / 3, "app": 4 / 3, "(none)": 2 / 3, "wechat": 2 / 3, "(no touch)": 1})


def test_every_model_credits_each_conversion_once(journeys_store):
    store, _ = journeys_store
    report = compute_attribution(store, conversion="order", within_days=90, as_of=AS_OF)
    for dimension in attr.DIMENSIONS:
        for model in attr.MODELS:
            assert sum(_credits(report, dimension, model).values()) == pytest.approx(4), (dimension, model)


def test_window_store_scope_and_as_of(journeys_store):
    store, _ = journeys_store
    # a 5-day window: A keeps only the test drive (2 days before), B its view, E its send (10 days) expires
    short = compute_attribution(store, conversion="order", within_days=5, as_of=AS_OF, models=["first_touch"])
    assert _credits(short, "touch", "first_touch") == pytest.approx(
        {"test_drive": 1, "configurator_view": 1, "(no touch)": 2})
    # store view: the people whose home store is SH01 (A, C, D)
    sh01 = compute_attribution(store, conversion="order", as_of=AS_OF, store_id="SH01", models=["last_touch"])
    assert sh01.conversions == 2
    assert _credits(sh01, "touch", "last_touch") == pytest.approx({"test_drive": 1, "(no touch)": 1})
    later = compute_attribution(store, conversion="order", as_of=T0 + 100 * DAY, models=["linear"])
    assert later.conversions == 5  # A's second order (day 90) counts now, with no touch since the first
    with pytest.raises(MotorcadeError, match="known stores"):
        compute_attribution(store, store_id="NOPE", as_of=AS_OF)
    with pytest.raises(MotorcadeError, match="both the conversion and a touch"):
        compute_attribution(store, conversion="sent", as_of=AS_OF)
    for bad in (float("nan"), float("inf"), 0, 1e9):
        with pytest.raises(MotorcadeError, match="--within must be"):
            compute_attribution(store, within_days=bad, as_of=AS_OF)
    with pytest.raises(MotorcadeError, match="half-life"):
        compute_attribution(store, half_life_days=float("inf"), as_of=AS_OF)


def test_position_and_decay_weights():
    touches = [Touch(T0 + i * DAY, "sent") for i in range(5)]
    assert attr.touch_weights("position_based", touches, T0 + 5 * DAY, 7 * DAY) == pytest.approx(
        [0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4])
    assert attr.touch_weights("position_based", touches[:2], T0 + 5 * DAY, 7 * DAY) == [0.5, 0.5]
    # a touch one half-life older gets half the weight
    assert attr.touch_weights("time_decay", touches[:1] + [Touch(T0 + 7 * DAY, "x")], T0 + 7 * DAY, 7 * DAY) \
        == pytest.approx([1 / 3, 2 / 3])


def _fundamental_matrix_probability(paths, removed=None):
    """P(start -> conversion) from the absorbing chain's fundamental matrix N = (I - Q)^-1: B = N R."""
    import numpy as np

    counts = {}
    for values, converted in paths:
        chain = ["S", *values, "C" if converted else "N"]
        for x, y in zip(chain, chain[1:]):
            counts.setdefault(x, {}).setdefault(y, 0)
            counts[x][y] += 1
    transient = sorted(s for s in counts if s != removed)
    idx = {s: i for i, s in enumerate(transient)}
    q = np.zeros((len(transient), len(transient)))
    r = np.zeros(len(transient))
    for s in transient:
        total = sum(counts[s].values())
        for y, n in counts[s].items():
            if y == "C":
                r[idx[s]] += n / total
            elif y in idx:
                q[idx[s], idx[y]] += n / total
    absorbed = np.linalg.solve(np.eye(len(transient)) - q, r)
    return float(absorbed[idx["S"]])


paths_strategy = st.lists(st.tuples(st.lists(st.sampled_from("abcd"), min_size=1, max_size=5), st.booleans()),
                          min_size=1, max_size=12)


@given(paths_strategy)
def test_conversion_probability_matches_the_fundamental_matrix(paths):
    counts = attr.transition_counts(paths)
    assert attr.conversion_probability(counts) == pytest.approx(_fundamental_matrix_probability(paths), abs=1e-9)
    for removed in {v for values, _ in paths for v in values}:
        assert attr.conversion_probability(counts, removed) == pytest.approx(
            _fundamental_matrix_probability(paths, removed), abs=1e-9)


journey_strategy = st.lists(
    st.tuples(st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["sent", "clicked", "store_visit"]),
                                 st.sampled_from([None, "recall", "spring"])), max_size=4),
              st.booleans()), max_size=10)


@given(journey_strategy)
def test_credits_add_up_to_the_conversions_in_every_model(raw):
    journeys = []
    for i, (touches, converted) in enumerate(raw):
        ordered = sorted(touches, key=lambda t: t[0])
        journeys.append(Journey(i, [Touch(T0 + d * DAY, name, campaign) for d, name, campaign in ordered],
                                T0 + 31 * DAY if converted else None))
    conversions = sum(1 for j in journeys if j.converted_at is not None)
    for model in attr.MODELS:
        for dimension in ("campaign", "touch"):
            credits = attr.model_credits(journeys, model, dimension, 7 * DAY)
            assert sum(credits.values()) == pytest.approx(conversions, abs=1e-9)
            assert all(v >= 0 for v in credits.values())


def test_markov_credits_in_exact_fractions():
    """Two converting paths through one value and one through another: the removal effects by hand."""
    paths = [(["a"], True), (["a", "b"], True), (["b"], False)]
    # start->a 2/3, start->b 1/3; a->conv 1/2, a->b 1/2; b->conv 1/2, b->null 1/2
    # p(b) = 1/2; p(a) = 1/2 + 1/4 = 3/4; P = 2/3*3/4 + 1/3*1/2 = 2/3
    # without a: 1/3*1/2 = 1/6 -> effect 3/4; without b: 2/3*1/2 = 1/3 -> effect 1/2
    effects = attr.removal_effects(paths)
    assert effects == pytest.approx({"a": float(Fraction(3, 4)), "b": float(Fraction(1, 2))})


def test_cli_attribution_json_and_html(journeys_store, motorcade_project, tmp_path):
    import shutil

    from click.testing import CliRunner

    from motorcade.cli import build_cli

    store, _ = journeys_store
    store.close()
    motorcade_project.store.close()
    shutil.copy(store.path, motorcade_project.store.path)
    base = ["--project", str(motorcade_project.directory), "report", "attribution", "--as-of", "2026-04-30"]
    runner = CliRunner()
    result = runner.invoke(build_cli(), [*base, "--format", "json", "--model", "last_touch", "--model", "markov"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["models"] == ["last_touch", "markov"] and data["conversions"] == 4
    by_channel = {row["value"]: row["markov"] for row in data["by"]["channel"]}
    assert by_channel["app"] == pytest.approx(4 / 3)
    out = tmp_path / "attribution.html"
    result = runner.invoke(build_cli(), [*base, "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "By campaign" in page and "By channel" in page and "By store" in page and "<svg" in page
    result = runner.invoke(build_cli(), [*base, "--touches", "sent"])
    assert result.exit_code == 0, result.output
    assert "By touch" in result.output and "configurator_view" not in result.output
