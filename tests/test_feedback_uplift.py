"""Campaign uplift against the holdout: the interval formulas on published inputs, and the report on a
real SQLite store built by hand (runs, audience snapshots, outbox rows, feedback and visit events)."""

import datetime as dt
import json
import math

import pytest

from motorcade.errors import MotorcadeError
from motorcade.feedback import stats
from motorcade.feedback.uplift import compute_uplift, is_lapsed
from motorcade.model import Car, Event, Ownership, Store
from motorcade.store import open_store

UTC = dt.timezone.utc
DAY = 86400
T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
T0_TS = int(T0.timestamp())


# ---- the textbook formulas ---------------------------------------------------------------------

# Newcombe (1998), "Interval estimation for the difference between independent proportions",
# Statistics in Medicine 17:873-890, Table II: method 1 (Wald) and method 10 (hybrid score).
NEWCOMBE_TABLE_II = [
    # x1, n1, x2, n2, wald, method 10
    (56, 70, 48, 80, (0.0575, 0.3425), (0.0524, 0.3339)),
    (9, 10, 3, 10, (0.2605, 0.9395), (0.1705, 0.8090)),
    (6, 7, 2, 7, (0.1481, 0.9947), (0.0582, 0.8062)),
    (5, 56, 0, 29, (0.0146, 0.1640), (-0.0381, 0.1926)),
]


@pytest.mark.parametrize("x1,n1,x2,n2,wald,hybrid", NEWCOMBE_TABLE_II)
def test_difference_intervals_match_newcombe_table(x1, n1, x2, n2, wald, hybrid):
    assert stats.wald_interval(x1, n1, x2, n2) == pytest.approx(wald, abs=6e-5)
    assert stats.newcombe_interval(x1, n1, x2, n2) == pytest.approx(hybrid, abs=6e-5)


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I.
    assert stats.wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=6e-5)
    assert stats.wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=6e-5)
    assert stats.wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=6e-5)
    assert stats.wilson_interval(1, 29) == pytest.approx((0.0061, 0.1718), abs=6e-5)
    assert stats.wilson_interval(0, 0) is None


def test_risk_ratio_interval_is_the_katz_log_interval():
    lower, upper = stats.risk_ratio_interval(30, 100, 20, 100)
    se = math.sqrt(1 / 30 - 1 / 100 + 1 / 20 - 1 / 100)
    assert (lower, upper) == pytest.approx((1.5 * math.exp(-1.959964 * se), 1.5 * math.exp(1.959964 * se)), rel=1e-6)
    assert (lower, upper) == pytest.approx((0.9160, 2.4564), abs=1e-4)
    assert stats.risk_ratio_interval(0, 10, 3, 10) is None
    assert stats.z_value(0.90) == pytest.approx(1.644854, abs=1e-6)


# ---- the report on a real store -----------------------------------------------------------------

def _add_run(store, run_id, started, campaign="recall"):
    store.conn.execute(
        "INSERT INTO activation_runs (id, origin_kind, origin, revision, started_at, status) "
        "VALUES (?, 'campaign', ?, 'rev1', ?, 'done')", (run_id, campaign, started.isoformat()))


def _snapshot(store, run_id, person_id, arm):
    store.conn.execute("INSERT INTO audience_snapshots (run_id, person_id, arm) VALUES (?, ?, ?)",
                       (run_id, person_id, arm))


def _outbox(store, run_id, person_id, status, campaign="recall"):
    store.conn.execute(
        "INSERT INTO outbox (idempotency_key, origin_kind, origin, run_id, person_id, channel, template, revision, "
        "status, created_at, updated_at) VALUES (?, 'campaign', ?, ?, ?, 'sms', 'recall_v1', 'rev1', ?, ?, ?)",
        (f"{run_id}:{person_id}", campaign, run_id, person_id, status, T0.isoformat(), T0.isoformat()))


def _event(name, ts, person_id, props=None, source="dms"):
    return Event(name, dt.datetime.fromtimestamp(ts, UTC), person_id, props or {}, source,
                 f"{name}:{person_id}:{ts}")


@pytest.fixture
def campaign_store(tmp_path):
    """150 people: 70 treatment (56 convert), 80 holdout (48 convert): Newcombe's first example."""
    store = open_store(tmp_path / "uplift.db")
    store.upsert_stores([Store("SH01", "上海一店", "华东集团"), Store("SH02", "上海二店", "华东集团")])
    _add_run(store, "run1", T0)
    events = []
    people = []
    for i in range(150):
        pid = store.create_person({"name": f"客户{i}"})
        people.append(pid)
        arm = "treatment" if i < 70 else "holdout"
        _snapshot(store, "run1", pid, arm)
        store.conn.execute("INSERT INTO person_relations (person_id, kind, target_id) VALUES (?, 'service_store', ?)",
                           (pid, "SH01" if i % 2 == 0 else "SH02"))
        converts = i < 56 if arm == "treatment" else i < 70 + 48
        if converts:
            events.append(_event("service_visit", T0_TS + (1 + i % 29) * DAY, pid))
        if arm == "treatment":
            _outbox(store, "run1", pid, "sent" if i < 66 else "failed")
            if i < 66:
                events.append(_event("sent", T0_TS + 60, pid, {"campaign": "recall", "run_id": "run1"}, "motorcade"))
    store.insert_events(events)
    return store, people


def test_uplift_matches_the_textbook_interval(campaign_store):
    store, _ = campaign_store
    report = compute_uplift(store, "recall", days=30, as_of=T0_TS + 60 * DAY)
    o = report.overall
    assert (o.treatment_n, o.treatment_converted, o.holdout_n, o.holdout_converted) == (70, 56, 80, 48)
    assert o.absolute_uplift == pytest.approx(0.2)
    assert o.absolute_interval == pytest.approx((0.0524, 0.3339), abs=6e-5)
    assert o.relative_uplift == pytest.approx(0.8 / 0.6 - 1)
    assert o.incremental == pytest.approx(14.0)
    assert o.significant is True
    wald = compute_uplift(store, "recall", days=30, method="wald", as_of=T0_TS + 60 * DAY).overall
    assert wald.absolute_interval == pytest.approx((0.0575, 0.3425), abs=6e-5)
    assert report.sends == {"outbox": {"failed": 4, "sent": 66}, "events": {"sent": 66}}
    assert report.incomplete == 0
    data = json.loads(json.dumps(report.to_dict()))
    assert data["overall"]["treatment"]["rate"] == pytest.approx(0.8)


def test_store_views_partition_the_group(campaign_store):
    store, _ = campaign_store
    group = compute_uplift(store, "recall", as_of=T0_TS + 60 * DAY)
    views = [compute_uplift(store, "recall", store_id=s, as_of=T0_TS + 60 * DAY).overall for s in ("SH01", "SH02")]
    assert sum(v.treatment_n for v in views) == group.overall.treatment_n
    assert sum(v.holdout_converted for v in views) == group.overall.holdout_converted
    assert [s for s, _ in group.by_store] == ["SH01", "SH02"]
    assert group.by_store[0][1] == views[0]
    assert compute_uplift(store, "recall", store_id="SH01", as_of=T0_TS).by_store == ()
    with pytest.raises(MotorcadeError, match="no store 'SH03'"):
        compute_uplift(store, "recall", store_id="SH03")


def test_window_edges_first_run_arm_and_open_windows(tmp_path):
    store = open_store(tmp_path / "edges.db")
    _add_run(store, "r1", T0)
    _add_run(store, "r2", T0 + dt.timedelta(days=40))
    a, b, c, d = (store.create_person() for _ in range(4))
    for pid, arm in ((a, "treatment"), (b, "treatment"), (c, "holdout"), (d, "holdout")):
        _snapshot(store, "r1", pid, arm)
    _snapshot(store, "r2", c, "treatment")  # counted once, in the arm of their first run
    store.insert_events([
        _event("service_visit", T0_TS, a),  # at the snapshot instant: not after it
        _event("service_visit", T0_TS + 30 * DAY, b),  # last second of the window: counts
        _event("service_visit", T0_TS + 30 * DAY + 1, c),  # one second late
        _event("service_visit", T0_TS + 2 * DAY, d),
    ])
    report = compute_uplift(store, "recall", days=30, as_of=T0_TS + 45 * DAY)
    o = report.overall
    assert (o.treatment_n, o.treatment_converted, o.holdout_n, o.holdout_converted) == (2, 1, 2, 1)
    assert report.incomplete == 0
    assert report.runs == ("r1", "r2")
    early = compute_uplift(store, "recall", days=30, as_of=T0_TS + 10 * DAY)  # b's visit is after as_of
    o = early.overall
    assert (o.treatment_n, o.treatment_converted, o.holdout_n, o.holdout_converted) == (2, 0, 2, 1)
    assert early.incomplete == 4 and early.runs == ("r1",)
    only_r2 = compute_uplift(store, "recall", run_id="r2", days=30).overall
    assert (only_r2.treatment_n, only_r2.holdout_n) == (1, 0)
    assert only_r2.absolute_uplift is None and only_r2.absolute_interval is None
    html = "".join(s.text or "" for s in compute_uplift(store, "recall", run_id="r2").sections())
    assert "no holdout" in html
    with pytest.raises(MotorcadeError, match="campaign 'nope' has no runs") as info:
        compute_uplift(store, "nope")
    assert "recall" in str(info.value)


def test_recall_rate_of_lapsed_owners(tmp_path):
    store = open_store(tmp_path / "lapsed.db")
    store.upsert_stores([Store("S1", "一店", "集团")])
    _add_run(store, "r1", T0)
    cars, owns, events = [], [], []
    # (arm, last visit days before T0 or None, ownership start days before T0 or None (no car), recalled)
    people = [
        ("treatment", 400, 900, True),   # lapsed, recalled
        ("treatment", 500, 900, False),  # lapsed
        ("treatment", None, 800, True),  # never visited, owner for 800 days: lapsed, recalled
        ("treatment", 100, 900, True),   # active owner: not lapsed
        ("treatment", None, 100, False),  # new owner: not lapsed
        ("holdout", 380, 900, False),    # lapsed
        ("holdout", 700, 2000, True),    # lapsed, recalled
        ("holdout", None, None, True),   # prospect (no car)
    ]
    for i, (arm, last, since, recalled) in enumerate(people):
        pid = store.create_person()
        _snapshot(store, "r1", pid, arm)
        if since is not None:
            vin = f"LBV00000000000{i:03d}"
            cars.append(Car(vin, "BMW", "X3", store_id="S1"))
            owns.append(Ownership(pid, vin, (T0 - dt.timedelta(days=since)).date()))
        if last is not None:
            events.append(_event("service_visit", T0_TS - last * DAY, pid))
        if recalled:
            events.append(_event("service_visit", T0_TS + 5 * DAY, pid))
    store.upsert_cars(cars)
    for ownership in owns:
        store.add_ownership(ownership)
    store.insert_events(events)
    report = compute_uplift(store, "recall", days=30, as_of=T0_TS + 90 * DAY)
    lp = report.lapsed
    assert (lp.treatment_n, lp.treatment_converted, lp.holdout_n, lp.holdout_converted) == (3, 2, 2, 1)
    assert lp.treatment_rate == pytest.approx(2 / 3)
    assert lp.absolute_interval == pytest.approx(stats.newcombe_interval(2, 3, 1, 2))
    assert is_lapsed(T0_TS, None, "", 365) is False  # an owner with no start date and no visit
    assert is_lapsed(T0_TS, None, None, 365) is False  # not an owner


def test_cli_uplift_json_and_html(campaign_store, motorcade_project, tmp_path):
    from click.testing import CliRunner

    from motorcade.cli import build_cli

    src, _ = campaign_store
    src.close()
    motorcade_project.store.close()
    import shutil

    shutil.copy(src.path, motorcade_project.store.path)
    runner = CliRunner()
    args = ["--project", str(motorcade_project.directory), "report", "uplift", "recall", "--as-of", "2026-06-01"]
    result = runner.invoke(build_cli(), [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["overall"]["absolute_uplift"] == pytest.approx(0.2)
    out = tmp_path / "uplift.html"
    result = runner.invoke(build_cli(), [*args, "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "<svg" in page and "Newcombe" in page and "+20.0 pp" in page
    result = runner.invoke(build_cli(), [*args, "--store", "SH01"])
    assert result.exit_code == 0, result.output
    assert "Treatment vs holdout" in result.output and "SH01" in result.output


# ---- generated campaigns: the counts agree with a plain-Python recomputation --------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

person_st = st.fixed_dictionaries({
    "runs": st.lists(st.tuples(st.sampled_from(["r1", "r2"]), st.sampled_from(["treatment", "holdout"])),
                     max_size=2, unique_by=lambda x: x[0]),
    "visits": st.lists(st.integers(-40 * 24, 80 * 24), max_size=4),  # hours from T0
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=st.lists(person_st, min_size=1, max_size=12), days=st.integers(1, 40),
       as_of_hours=st.integers(0, 90 * 24))
def test_arm_counts_match_an_independent_recomputation(people, days, as_of_hours):
    import tempfile
    from pathlib import Path

    starts = {"r1": T0_TS, "r2": T0_TS + 20 * DAY}
    as_of = T0_TS + as_of_hours * 3600
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "g.db")
        _add_run(store, "r1", T0)
        _add_run(store, "r2", T0 + dt.timedelta(days=20))
        expected = {"treatment": [0, 0], "holdout": [0, 0]}
        for person in people:
            pid = store.create_person()
            for run, arm in person["runs"]:
                _snapshot(store, run, pid, arm)
            store.insert_events([_event("service_visit", T0_TS + h * 3600, pid) for h in set(person["visits"])])
            runs = [r for r in person["runs"] if starts[r[0]] <= as_of]  # runs after as_of have not happened
            if runs:
                run, arm = min(runs, key=lambda r: starts[r[0]])
                t0 = starts[run]
                expected[arm][0] += 1
                expected[arm][1] += any(t0 < T0_TS + h * 3600 <= min(t0 + days * DAY, as_of)
                                        for h in person["visits"])
        if not any(p["runs"] for p in people):
            with pytest.raises(MotorcadeError):
                compute_uplift(store, "nope", days=days)
            return
        o = compute_uplift(store, "recall", days=days, as_of=as_of).overall
        store.close()
    assert (o.treatment_n, o.treatment_converted) == tuple(expected["treatment"])
    assert (o.holdout_n, o.holdout_converted) == tuple(expected["holdout"])
    (n_t, x_t), (n_h, x_h) = expected["treatment"], expected["holdout"]
    assert o.absolute_interval == stats.newcombe_interval(x_t, n_t, x_h, n_h)


# ---- --as-of bounds what the report sees --------------------------------------------------------------

def test_as_of_bounds_conversions_and_runs(campaign_store):
    """Conversions after --as-of do not count (as in retention and churn), nor do runs that start after it."""
    store, people = campaign_store
    as_of = T0_TS + 10 * DAY
    converted_by = {pid: ts for (pid, ts) in store.query(
        "SELECT person_id, min(ts) FROM events WHERE name = 'service_visit' GROUP BY person_id")}
    treated, held = people[:70], people[70:]
    report = compute_uplift(store, "recall", days=30, as_of=as_of)
    o = report.overall
    assert o.treatment_converted == sum(1 for p in treated if converted_by.get(p, as_of + 1) <= as_of) == 20
    assert o.holdout_converted == sum(1 for p in held if converted_by.get(p, as_of + 1) <= as_of)
    assert report.incomplete == 150
    _add_run(store, "later", T0 + dt.timedelta(days=20))
    extra = store.create_person()
    _snapshot(store, "later", extra, "treatment")
    assert compute_uplift(store, "recall", days=30, as_of=as_of).runs == ("run1",)
    assert compute_uplift(store, "recall", days=30, as_of=as_of).overall.treatment_n == 70
    assert compute_uplift(store, "recall", days=30, as_of=T0_TS + 60 * DAY).overall.treatment_n == 71
    with pytest.raises(MotorcadeError, match="no runs .*before"):
        compute_uplift(store, "recall", days=30, as_of=T0_TS - DAY)


def test_cli_as_of_bounds_conversions(campaign_store, motorcade_project):
    from click.testing import CliRunner
    import shutil

    from motorcade.cli import build_cli

    src, _ = campaign_store
    src.close()
    motorcade_project.store.close()
    shutil.copy(src.path, motorcade_project.store.path)
    args = ["--project", str(motorcade_project.directory), "report", "uplift", "recall", "--format", "json"]
    early = json.loads(CliRunner().invoke(build_cli(), [*args, "--as-of", "2026-03-05"]).output)
    late = json.loads(CliRunner().invoke(build_cli(), [*args, "--as-of", "2026-06-01"]).output)
    assert early["overall"]["treatment"]["converted"] < late["overall"]["treatment"]["converted"] == 56


# ---- ownership at the snapshot is decided on the local date ----------------------------------------------

def test_ownership_at_the_snapshot_uses_the_project_date(tmp_path):
    """The run starts at 02:00 UTC on 1 March: still 28 February in New York. An owner who sold the car on
    1 March (local) still owned it at the snapshot and is a lapsed owner there."""
    import zoneinfo

    new_york = zoneinfo.ZoneInfo("America/New_York")
    store = open_store(tmp_path / "tz.db")
    _add_run(store, "r1", T0)
    seller = store.create_person()
    _snapshot(store, "r1", seller, "treatment")
    store.upsert_cars([Car("LBV00000000000TZ1", "BMW", "X3")])
    store.add_ownership(Ownership(seller, "LBV00000000000TZ1", dt.date(2020, 1, 1), dt.date(2026, 3, 1)))
    report = compute_uplift(store, "recall", days=30, as_of=T0_TS + 60 * DAY, tz=new_york)
    assert report.lapsed.treatment_n == 1
    assert compute_uplift(store, "recall", days=30, as_of=T0_TS + 60 * DAY).lapsed.treatment_n == 0  # UTC project
