"""Funnels: the SQL computation agrees with a plain-Python recomputation on generated histories, and
hand-checked cases cover the DSL declaration, breakdowns, store views and the CLI."""

import calendar
import datetime as dt
import json
import statistics
import tempfile
import zoneinfo
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.dsl import rule_set_from_text
from motorcade.dsl.evaluate import evaluate_segment
from motorcade.feedback.funnel import FunnelSpec, compute_funnel, funnel_spec
from motorcade.errors import MotorcadeError
from motorcade.model import Event, Store
from motorcade.segments.dataset import load_dataset
from motorcade.store import open_store

UTC = dt.timezone.utc
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BASE = int(dt.datetime(2026, 5, 1, tzinfo=UTC).timestamp())
HOUR, DAY = 3600, 86400
WINDOWS = [None, (6, "hours"), (2, "days"), (1, "weeks"), (1, "months"), (2, "months")]


# ---- an independent recomputation ------------------------------------------------------------------

def window_end(start: int, within) -> int | None:
    """start + within: fixed seconds, or calendar months on the Shanghai wall clock (day clamped)."""
    if within is None:
        return None
    amount, unit = within
    if unit != "months":
        return start + amount * {"hours": HOUR, "days": DAY, "weeks": 7 * DAY}[unit]
    local = dt.datetime.fromtimestamp(start, SHANGHAI)
    year, month = divmod(local.year * 12 + local.month - 1 + amount, 12)
    day = min(local.day, calendar.monthrange(year, month + 1)[1])
    return int(local.replace(year=year, month=month + 1, day=day).timestamp())


def _of_campaign(event, campaign) -> bool:
    """With a campaign, later steps skip events that name another campaign or a trigger."""
    if campaign is None:
        return True
    props = event["props"]
    if "campaign" in props:
        return props["campaign"] == campaign
    return "origin" not in props


def reference_funnel(histories, steps, within, since=None, until=None, campaign=None, key_prop=None):
    """Per person: try every first-step event as a start, walk the history in time order taking the
    next matching event of each step strictly later than the previous one and inside the window; keep
    the deepest attempt (the earliest start on a tie)."""
    results = {}
    for person, events in histories.items():
        ordered = sorted(events, key=lambda e: (e["ts"], e["id"]))
        best = None
        for start in ordered:
            if start["name"] != steps[0]:
                continue
            if since is not None and start["ts"] < since or until is not None and start["ts"] >= until:
                continue
            if campaign is not None and start["props"].get("campaign") != campaign:
                continue
            end = window_end(start["ts"], within)
            times = [start["ts"]]
            for step in steps[1:]:
                nxt = next((e for e in ordered if e["name"] == step and e["ts"] > times[-1]
                            and (end is None or e["ts"] <= end) and _of_campaign(e, campaign)), None)
                if nxt is None:
                    break
                times.append(nxt["ts"])
            if best is None or len(times) > len(best[0]):
                best = (times, start["props"].get(key_prop) if key_prop else None)
        if best is not None:
            results[person] = best
    return results


def reference_summary(steps, attempts):
    out = []
    for k in range(len(steps)):
        reached = [times for times in attempts if len(times) > k]
        gaps = sorted(times[k] - times[k - 1] for times in reached) if k else []
        if gaps:
            mid = len(gaps) // 2
            median = gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2
        else:
            median = None
        out.append((len(reached), median))
    return out


def _check_group(group, steps, attempts):
    expected = reference_summary(steps, attempts)
    assert [(s.people, s.median_seconds_from_previous) for s in group.steps] == expected
    first = expected[0][0]
    for k, step in enumerate(group.steps[1:], start=1):
        previous = expected[k - 1][0]
        assert step.from_previous == (expected[k][0] / previous if previous else None)
        assert step.from_first == (expected[k][0] / first if first else None)


# ---- generated histories -----------------------------------------------------------------------------

event_st = st.fixed_dictionaries({
    "name": st.sampled_from("abcx"),
    "slot": st.integers(0, 160),  # on a grid (see `grid`): ties are common
    "channel": st.sampled_from(["sms", "wecom", None]),
    "origin": st.sampled_from([None, None, ("campaign", "recall"), ("campaign", "other"), ("trigger", "welcome")]),
})
histories_st = st.lists(st.lists(event_st, max_size=12), min_size=1, max_size=7)
STORE_KINDS = ["home_store", "service_store", "selling_store", "lead_store"]
relations_st = st.lists(st.tuples(st.sampled_from(STORE_KINDS + ["sales_advisor"]), st.sampled_from(["S1", "S2"])),
                        max_size=3)


def _build(tmp: Path, people, relations, grid):
    store = open_store(tmp / "funnel.db")
    store.upsert_stores([Store("S1", "一店", "集团"), Store("S2", "二店", "集团")])
    histories, homes = {}, {}
    for events, rels in zip(people, relations):
        pid = store.create_person()
        for kind, target in rels:
            store.set_relation(pid, kind, target)
        # the home store: the first kind present in this order, its smallest target
        homes[pid] = next((min(t for k, t in rels if k == kind) for kind in STORE_KINDS
                           if any(k == kind for k, _ in rels)), None)
        rows = []
        for n, e in enumerate(events):
            props = {"channel": e["channel"]} if e["channel"] else {}
            if e["origin"]:
                kind, name = e["origin"]
                props.update({"origin_kind": kind, "origin": name, kind: name})
            ts = BASE + e["slot"] * grid
            rows.append(Event(e["name"], dt.datetime.fromtimestamp(ts, UTC), pid, props, "gen", f"{pid}-{n}"))
        store.insert_events(rows)
        stored = store.events_of(pid)
        histories[pid] = [{"name": s.name, "ts": int(s.ts.timestamp()), "id": s.id, "props": s.properties}
                          for s in stored]
    return store, histories, homes


def _sequence_rules(steps, within):
    """Segments `reach_k { where did s1 then ... then sk [within N unit] }` for k >= 2."""
    clause = "" if within is None else f" within {within[0]} {within[1]}"
    return "\n".join(f"segment reach_{k} {{ where did {' then '.join(steps[:k])}{clause} }}"
                      for k in range(2, len(steps) + 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=histories_st,
    relations=st.lists(relations_st, min_size=7, max_size=7),
    steps=st.lists(st.sampled_from("abc"), min_size=2, max_size=4),
    within=st.sampled_from(WINDOWS),
    grid=st.sampled_from([1800, 3 * DAY + 7 * HOUR]),  # half hours, or ~3 days (month ends, 16 months)
    since_slot=st.none() | st.integers(0, 160),
)
def test_funnel_matches_an_independent_recomputation(people, relations, steps, within, grid, since_slot):
    since = None if since_slot is None else BASE + since_slot * grid
    with tempfile.TemporaryDirectory() as tmp:
        store, histories, homes = _build(Path(tmp), people, relations, grid)
        spec = FunnelSpec("gen", steps, within)
        report = compute_funnel(store, spec, since=since, tz=SHANGHAI)
        expected = reference_funnel(histories, steps, within, since=since)
        _check_group(report.total, steps, [times for times, _ in expected.values()])

        by_channel = compute_funnel(store, spec, since=since, by="channel", tz=SHANGHAI)
        expected_keys = reference_funnel(histories, steps, within, since=since, key_prop="channel")
        groups = {}
        for times, key in expected_keys.values():
            groups.setdefault("(none)" if key is None else key, []).append(times)
        assert {g.key for g in by_channel.groups} == set(groups)
        for group in by_channel.groups:
            _check_group(group, steps, groups[group.key])
        assert sum(g.entered for g in by_channel.groups) == by_channel.total.entered

        one_campaign = compute_funnel(store, spec, since=since, campaign="recall", tz=SHANGHAI)
        expected_campaign = reference_funnel(histories, steps, within, since=since, campaign="recall")
        _check_group(one_campaign.total, steps, [times for times, _ in expected_campaign.values()])

        for store_id in ("S1", "S2"):
            view = compute_funnel(store, spec, since=since, store_id=store_id, tz=SHANGHAI)
            mine = {p: h for p, h in histories.items() if homes[p] == store_id}
            expected_view = reference_funnel(mine, steps, within, since=since)
            _check_group(view.total, steps, [times for times, _ in expected_view.values()])

        if since is None:
            # step k is reached exactly by the people for whom `did s1 then ... then sk within N` holds
            rules = rule_set_from_text(_sequence_rules(steps, within))
            dataset = load_dataset(store)
            as_of = dt.datetime.fromtimestamp(BASE + 200 * grid, UTC)
            paths = store.funnel_paths(steps, within=within, zone="Asia/Shanghai")
            for k in range(2, len(steps) + 1):
                reached = {p[0] for p in paths if p[1 + k] is not None}
                assert reached == evaluate_segment(rules, f"reach_{k}", dataset, as_of, SHANGHAI), k
        store.close()


# ---- hand-checked cases --------------------------------------------------------------------------------

RULES = '''
funnel recall_funnel "保客召回" { steps sent, clicked, lead_submit, service_visit within 14 days by channel }
'''


def _ev(name, day, pid, n, **props):
    return Event(name, dt.datetime.fromtimestamp(BASE + int(day * DAY), UTC), pid, props, "t", f"{pid}-{n}")


@pytest.fixture
def recall_store(tmp_path):
    store = open_store(tmp_path / "recall.db")
    store.upsert_stores([Store("SH01", "上海一店", "集团"), Store("SH02", "上海二店", "集团")])
    p = [store.create_person() for _ in range(5)]
    for pid, home in zip(p, ["SH01", "SH01", "SH02", "SH02", "SH01"]):
        store.set_relation(pid, "service_store", home)
    store.insert_events([
        # p0: the whole funnel in 10 days by sms
        _ev("sent", 0, p[0], 0, channel="sms", campaign="recall"), _ev("clicked", 1, p[0], 1),
        _ev("lead_submit", 2, p[0], 2), _ev("service_visit", 10, p[0], 3),
        # p1: clicks but the visit comes on day 15: outside the 14-day window
        _ev("sent", 0, p[1], 0, channel="sms", campaign="recall"), _ev("clicked", 0.5, p[1], 1),
        _ev("lead_submit", 3, p[1], 2), _ev("service_visit", 15, p[1], 3),
        # p2: wecom; clicked before the send does not count; clicks again after
        _ev("clicked", -1, p[2], 0), _ev("sent", 0, p[2], 1, channel="wecom", campaign="recall"),
        _ev("clicked", 1, p[2], 4, origin="other", campaign="other"), _ev("clicked", 2, p[2], 2),
        # p3: wecom, another campaign; sent only
        _ev("sent", 0, p[3], 0, channel="wecom", campaign="other"),
        # p4: never sent
        _ev("clicked", 1, p[4], 0), _ev("service_visit", 2, p[4], 1),
    ])
    store.conn.executemany("INSERT INTO segment_members (segment, person_id, entered_at, computed_at, revision) "
                           "VALUES (?, ?, 'x', 'x', 'r')", [("lapsed", p[0]), ("lapsed", p[1]), ("vip", p[0])])
    return store, p


def test_declared_funnel_with_window_and_breakdown(recall_store):
    store, _ = recall_store
    spec = funnel_spec(rule_set_from_text(RULES), "recall_funnel")
    assert spec == FunnelSpec("recall_funnel", ("sent", "clicked", "lead_submit", "service_visit"), (14, "days"),
                              "channel", "保客召回")
    report = compute_funnel(store, spec)
    assert [s.people for s in report.total.steps] == [4, 3, 2, 1]
    assert report.total.steps[1].from_previous == pytest.approx(0.75)
    assert report.total.steps[3].from_first == pytest.approx(0.25)
    assert report.total.steps[1].median_seconds_from_previous == DAY  # 1 d, 0.5 d, 2 d
    assert report.total.steps[3].median_seconds_from_previous == 8 * DAY
    groups = {g.key: [s.people for s in g.steps] for g in report.groups}
    assert groups == {"sms": [2, 2, 2, 1], "wecom": [2, 1, 0, 0]}
    assert [g.key for g in report.groups] == ["sms", "wecom"]

    longer = compute_funnel(store, FunnelSpec("x", spec.steps, (15, "days")))
    assert [s.people for s in longer.total.steps] == [4, 3, 2, 2]
    assert [s.people for s in compute_funnel(store, spec, campaign="recall").total.steps] == [3, 3, 2, 1]
    other = compute_funnel(store, FunnelSpec("o", ["sent", "clicked"], (1, "days")), campaign="recall")
    assert [s.people for s in other.total.steps] == [3, 2]  # p2's click on day 1 was another campaign's
    assert [s.people for s in compute_funnel(store, spec, store_id="SH02").total.steps] == [2, 1, 0, 0]
    by_store = compute_funnel(store, spec, by="store")
    assert {g.key: g.entered for g in by_store.groups} == {"SH01": 2, "SH02": 2}
    by_segment = compute_funnel(store, spec, by="segment")
    assert {g.key: [s.people for s in g.steps] for g in by_segment.groups} == {
        "lapsed": [2, 2, 2, 1], "vip": [1, 1, 1, 1], "(none)": [2, 1, 0, 0]}
    since = compute_funnel(store, spec, since=BASE + 1, until=BASE + 30 * DAY)
    assert since.total.entered == 0


def test_window_in_months_uses_calendar_months_clamped_to_the_month_end(tmp_path):
    store = open_store(tmp_path / "m.db")
    a, b = store.create_person(), store.create_person()
    sent = dt.datetime(2026, 1, 31, 10, 0, tzinfo=SHANGHAI)
    store.insert_events([
        Event("sent", sent, a, {}, "t", "1"),
        Event("service_visit", dt.datetime(2026, 2, 28, 10, 0, tzinfo=SHANGHAI), a, {}, "t", "2"),  # last instant in
        Event("sent", sent, b, {}, "t", "3"),
        Event("service_visit", dt.datetime(2026, 2, 28, 10, 0, 1, tzinfo=SHANGHAI), b, {}, "t", "4"),  # 1 s late
    ])
    one_month = compute_funnel(store, FunnelSpec("m", ["sent", "service_visit"], (1, "months")), tz=SHANGHAI)
    assert one_month.total.steps[1].people == 1
    a_year = compute_funnel(store, FunnelSpec("y", ["sent", "service_visit"], (1, "years")), tz=SHANGHAI)
    assert a_year.total.steps[1].people == 2
    # the same second is not "then"
    c = store.create_person()
    store.insert_events([Event("sent", sent, c, {}, "t", "5"), Event("clicked", sent, c, {}, "t", "6")])
    assert compute_funnel(store, FunnelSpec("s", ["sent", "clicked"])).total.steps[1].people == 0


def test_unknown_funnel_and_store_are_explained(recall_store):
    store, _ = recall_store
    with pytest.raises(MotorcadeError, match="no funnel named 'recal_funnel'") as info:
        funnel_spec(rule_set_from_text(RULES), "recal_funnel")
    assert "recall_funnel" in str(info.value)
    with pytest.raises(MotorcadeError, match="no store 'SH9'"):
        compute_funnel(store, FunnelSpec("f", ["sent", "clicked"]), store_id="SH9")
    with pytest.raises(MotorcadeError, match="cannot break a funnel down"):
        compute_funnel(store, FunnelSpec("f", ["sent", "clicked"]), by="a.b")


def test_cli_funnel_from_the_project_rules(recall_store, motorcade_project, tmp_path):
    import shutil

    from click.testing import CliRunner

    from motorcade.cli import build_cli

    store, _ = recall_store
    store.close()
    motorcade_project.store.close()
    shutil.copy(store.path, motorcade_project.store.path)
    (motorcade_project.directory / "rules" / "funnels.mc").write_text(RULES, encoding="utf-8")
    runner = CliRunner()
    base = ["--project", str(motorcade_project.directory), "report", "funnel"]
    result = runner.invoke(build_cli(), [*base, "recall_funnel", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [s["people"] for s in data["total"]["steps"]] == [4, 3, 2, 1]
    result = runner.invoke(build_cli(), [*base, "recall_funnel"])
    assert result.exit_code == 0, result.output
    assert "lead_submit" in result.output and "Breakdown by channel" in result.output
    out = tmp_path / "f.html"
    result = runner.invoke(build_cli(), [*base, "--steps", "sent,clicked", "--within", "1", "--format", "html",
                                         "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "<svg" in out.read_text(encoding="utf-8")
    result = runner.invoke(build_cli(), [*base, "nope"])
    assert isinstance(result.exception, MotorcadeError) and "no funnel named 'nope'" in str(result.exception)


def test_window_in_months_follows_the_wall_clock_across_a_dst_change(tmp_path):
    """Sent 10:00 on 15 February in New York (UTC−5): one month later is 10:00 on 15 March (UTC−4), the
    rule language's `within 1 months`."""
    new_york = zoneinfo.ZoneInfo("America/New_York")
    store = open_store(tmp_path / "dst.db")
    a, b = store.create_person(), store.create_person()
    sent = dt.datetime(2026, 2, 15, 10, 0, tzinfo=new_york)
    store.insert_events([
        Event("sent", sent, a, {}, "t", "1"),
        Event("service_visit", dt.datetime(2026, 3, 15, 10, 0, tzinfo=new_york), a, {}, "t", "2"),  # last instant in
        Event("sent", sent, b, {}, "t", "3"),
        Event("service_visit", dt.datetime(2026, 3, 15, 10, 0, 1, tzinfo=new_york), b, {}, "t", "4"),  # 1 s late
    ])
    spec = FunnelSpec("m", ["sent", "service_visit"], (1, "months"))
    assert compute_funnel(store, spec, tz=new_york).total.steps[1].people == 1
    rules = rule_set_from_text(_sequence_rules(["sent", "service_visit"], (1, "months")))
    assert evaluate_segment(rules, "reach_2", load_dataset(store), dt.datetime(2026, 12, 1, tzinfo=UTC),
                            new_york) == {a}
