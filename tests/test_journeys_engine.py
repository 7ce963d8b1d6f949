"""The journey engine against a real SQLite project: entry, waits, `wait for`, branches, splits, goal, exit,
re-entry, holdout, idempotency keys, the outbox and the versioning policy."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from motorcade.activation.runner import run_once
from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import memory_channel_plugin
from motorcade.journeys.engine import process_journey
from motorcade.model import Event
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")

CONFIG = """
[project]
name = "t"
timezone = "Asia/Shanghai"
database = "motorcade.db"
rules = ["rules"]

[channels.memory]
"""

FLOW = """
segment owners { where profile.is_owner = true }
journey recall "召回" {
  entry on entering segment owners
  %(extra)s
  invite: send via memory template "hello"
  reply: wait for wecom_reply up to 7 days then {
    thanks: send via memory template "hello"
  } else {
    if profile.vip = true then {
      call: send via memory template "hello"
    } else {
      nudge: send via memory template "hello"
    }
  }
  settle: wait 3 days
  last: send via memory template "hello"
}
"""


class Clock:
    def __init__(self, at):
        self.at = at

    def __call__(self):
        return self.at

    def advance(self, **delta):
        self.at += dt.timedelta(**delta)


@pytest.fixture
def setup(motorcade_project, motorcade_pm, register_plugin):
    def build(rules: str):
        directory = motorcade_project.directory
        (directory / "motorcade.toml").write_text(CONFIG, encoding="utf-8")
        (directory / "rules" / "main.mc").write_text(rules, encoding="utf-8")
        (directory / "templates").mkdir(exist_ok=True)
        (directory / "templates" / "hello.txt").write_text("您好 {{ person.name }}", encoding="utf-8")
        register_plugin(memory_channel_plugin(), name="memory")
        project = Project(directory, plugin_manager=motorcade_pm)
        project.__dict__["store"] = motorcade_project.store
        clock = Clock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH))

        def context():
            return ActivationContext.for_project(project, clock=clock, worker_id="w1",
                                                 rule_set=project.rules(checked=False))
        return project, context, clock

    return build


def people(store, n, **attributes):
    with store.transaction():
        return [store.create_person({"name": f"客户{i}", "is_owner": True, **attributes}) for i in range(n)]


def enter_segment(store, ids, at):
    store.record_segment_run("owners", ids, revision="t", as_of=at, computed_at=at, duration_ms=0, plan=None)


def event(store, name, pid, at, key, **properties):
    store.insert_events([Event(name, at, pid, properties, "app", key)])


def sends(store):
    return sorted(s["idempotency_key"] for s in store.list_sends(limit=100000))


def where(store, pid):
    return [(s["status"], s["step"]) for s in store.journey_states_of("recall", pid)]


def test_people_move_through_waits_and_branches_with_one_key_per_step(setup):
    project, context, clock = setup(FLOW % {"extra": ""})
    store = project.store
    replier, vip, plain = people(store, 1) + people(store, 1, vip=True) + people(store, 1)
    enter_segment(store, [replier, vip, plain], clock())
    totals = process_journey(context(), "recall")
    assert totals["entered"] == 3 and totals["sends"] == 3
    assert {where(store, p)[0] for p in (replier, vip, plain)} == {("active", "reply")}
    clock.advance(days=2)
    event(store, "wecom_reply", replier, clock() - dt.timedelta(hours=1), "r1")
    process_journey(context(), "recall")  # the reply arrived: the replier moves on before the wait times out
    assert where(store, replier) == [("active", "settle")]
    assert where(store, vip) == [("active", "reply")]
    clock.advance(days=6)  # the others' wait timed out: the branch on profile.vip
    process_journey(context(), "recall")
    assert where(store, vip) == [("active", "settle")] and where(store, plain) == [("active", "settle")]
    clock.advance(days=3)
    process_journey(context(), "recall")
    assert {where(store, p)[0] for p in (replier, vip, plain)} == {("completed", "end")}
    assert sends(store) == sorted(
        [f"journey:recall:e1:p{p}:s{s}" for p in (replier, vip, plain) for s in ("invite", "last")]
        + [f"journey:recall:e1:p{replier}:sthanks", f"journey:recall:e1:p{vip}:scall",
           f"journey:recall:e1:p{plain}:snudge"])
    path = store.journey_path_of("recall", vip)
    assert [(p["step"], p["outcome"]) for p in path] == [
        ("invite", "sent"), ("reply", "timeout"), ("if@2.else.1", "then"), ("call", "sent"), ("settle", "waited"),
        ("last", "sent")]
    branch = path[2]["detail"]
    assert branch["condition"] == "profile.vip = true" and branch["result"] is True
    assert branch["seen"][0]["seen"] == "True"
    # running again changes nothing: no step runs twice, no send is planned twice
    before = (sends(store), store.journey_path_of("recall", vip))
    process_journey(context(), "recall")
    assert (sends(store), store.journey_path_of("recall", vip)) == before


def test_goal_converts_and_exit_when_exits_before_the_next_step(setup):
    project, context, clock = setup(FLOW % {"extra": "goal service_visit within 30 days\n"
                                                     "  exit when did complaint in last 30 days"})
    store = project.store
    goal, complainer, other = people(store, 3)
    enter_segment(store, [goal, complainer, other], clock())
    process_journey(context(), "recall")
    clock.advance(days=1)
    event(store, "service_visit", goal, clock(), "v1")
    event(store, "complaint", complainer, clock(), "c1")
    clock.advance(days=7)
    process_journey(context(), "recall")
    assert where(store, goal) == [("converted", "reply")]
    assert where(store, complainer) == [("exited", "reply")]
    assert where(store, other) == [("active", "settle")]
    exit_detail = store.journey_path_of("recall", complainer)[-1]
    assert exit_detail["outcome"] == "exit when" and exit_detail["detail"]["result"] is True


def test_reentry_again_after_and_holdout_and_delivery_through_the_outbox(setup):
    project, context, clock = setup(FLOW % {"extra": "reentry again after 10 days\n  holdout 30%"})
    store = project.store
    ids = people(store, 40)
    enter_segment(store, ids, clock())
    report = run_once(context())
    assert report.journeys["recall"]["entered"] == 40
    held = [p for p in ids if where(store, p)[0][0] == "holdout"]
    assert 4 <= len(held) <= 20  # 30 % of 40, drawn per person
    assert report.dispatched.get("sent") == 40 - len(held)  # the treated got the first send, through the outbox
    assert not any(f"p{p}:" in key for p in held for key in sends(store))
    # leave and come back within 10 days: not let in again; after 10 days: a second entry
    enter_segment(store, [], clock())
    clock.advance(days=5)
    enter_segment(store, ids, clock())
    process_journey(context(), "recall")
    assert len(store.journey_states_of("recall", ids[0])) == 1
    clock.advance(days=11)  # the wait for a reply timed out: the 3-day wait counts from now
    process_journey(context(), "recall")
    clock.advance(days=4)
    process_journey(context(), "recall")
    treated = [p for p in ids if p not in held]
    assert {where(store, p)[0] for p in treated} == {("completed", "end")}
    enter_segment(store, [], clock())
    enter_segment(store, ids, clock())
    process_journey(context(), "recall")
    assert {tuple(s["entry"] for s in store.journey_states_of("recall", p)) for p in ids} == {(1, 2)}


def test_people_in_flight_finish_on_the_version_they_entered(setup):
    """The versioning policy (docs/dsl.md, "Editing a journey"): an edit applies to people who enter after it."""
    project, context, clock = setup(FLOW % {"extra": ""})
    store = project.store
    early = people(store, 1)
    enter_segment(store, early, clock())
    process_journey(context(), "recall")
    rules = project.directory / "rules" / "main.mc"
    rules.write_text(rules.read_text().replace('last: send via memory template "hello"',
                                               'changed: send via memory template "hello"'))
    late = people(store, 1)
    enter_segment(store, early + late, clock())
    process_journey(context(), "recall")
    for _ in range(2):  # the wait for a reply times out, then the 3-day wait
        clock.advance(days=8)
        process_journey(context(), "recall")
    assert f"journey:recall:e1:p{early[0]}:slast" in sends(store)
    assert f"journey:recall:e1:p{late[0]}:schanged" in sends(store)
    assert f"journey:recall:e1:p{early[0]}:schanged" not in sends(store)
    versions = {s["version"] for s in store.journey_states_of("recall", early[0]) + store.journey_states_of(
        "recall", late[0])}
    assert len(versions) == 2


# ---- status, explain, the graph, conversion against the holdout ------------------------------------


def invoke(project, *args):
    from click.testing import CliRunner

    from motorcade.cli import build_cli

    return CliRunner().invoke(build_cli(), ["--project", str(project.directory), "journeys", *args])


def test_status_explain_graph_and_goal_conversion_against_the_holdout(setup, tmp_path):
    import json

    from motorcade.dsl.journey import build_flow
    from motorcade.journeys.observe import goal_conversion, journey_svg

    project, context, clock = setup(FLOW % {"extra": "holdout 50%\n  goal service_visit within 10 days"})
    store = project.store
    ids = people(store, 60, vip=True)
    enter_segment(store, ids, clock())
    process_journey(context(), "recall")
    held = [p for p in ids if where(store, p)[0][0] == "holdout"]
    treated = [p for p in ids if p not in held]
    # 2 of the held out and 6 of the treated come back to the workshop within 10 days; one treated, too late
    for pid in held[:2] + treated[:6]:
        event(store, "service_visit", pid, clock() + dt.timedelta(days=3), f"v{pid}")
    event(store, "service_visit", treated[7], clock() + dt.timedelta(days=12), "late")
    clock.advance(days=8)
    process_journey(context(), "recall")
    comparison = goal_conversion(store, project.rules().journeys["recall"], as_of=clock() + dt.timedelta(days=5),
                                 tz=SH)
    assert (comparison.treatment_n, comparison.treatment_converted) == (len(treated), 6)
    assert (comparison.holdout_n, comparison.holdout_converted) == (len(held), 2)
    assert comparison.absolute_uplift == pytest.approx(6 / len(treated) - 2 / len(held))
    # while the goal window is open, nobody counts yet
    assert goal_conversion(store, project.rules().journeys["recall"], as_of=clock(), tz=SH).treatment_n == 0

    result = invoke(project, "status", "recall", "--json", "--as-of", "2026-12-30")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["entered"] == 60 and data["holdout"] == len(held) and data["converted"] == 6
    assert data["at_step"] == {"settle": len(treated) - 6}  # the others timed out, took the vip branch
    assert {"step": "reply", "outcome": "timeout", "next": "if@2.else.1", "people": len(treated) - 6} in data["edges"]
    assert data["conversion"]["treatment"]["converted"] == 6
    html_file = tmp_path / "recall.html"
    result = invoke(project, "status", "recall", "--html", str(html_file), "--as-of", "2026-12-30")
    assert result.exit_code == 0, result.output
    assert "people now at each step:" in result.output and "uplift" in result.output
    page = html_file.read_text(encoding="utf-8")
    assert "<svg" in page and "http://www.w3.org/2000/svg" in page and "<script" not in page
    assert "src=" not in page and "href=\"http" not in page  # nothing fetched

    result = invoke(project, "explain", "recall", "--person", str(treated[10]))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "at step `settle`" in lines[0] and "treatment" in lines[0]
    assert any("reply" in line and "timeout" in line and "-> if@2.else.1" in line for line in lines)
    assert any("profile.vip = true: true" in line for line in lines)
    result = invoke(project, "explain", "recall", "--person", str(treated[0]))
    assert "reached the goal" in result.output.splitlines()[0]

    result = invoke(project, "status", "recal")
    assert result.exit_code == 1 and result.exception.hint == "did you mean `recall`?"

    flow = build_flow(project.rules().journeys["recall"])
    svg = journey_svg(flow, store.journey_edge_counts("recall"), {"settle": 3}, 60, "recall")
    assert f">timeout {len(treated) - 6}</text>" in svg  # the count on the edge reply -> timeout
    assert ">now 3</text>" in svg and ">converted 6</text>" in svg


def test_a_segment_change_stamped_after_the_clock_enters_now(setup):
    """A pinned pipeline (the demo's) runs with a clock behind the wall clock the segment stage stamps its
    changes with: those people enter at the clock's now and get their first step at once (not days later)."""
    project, context, clock = setup(FLOW % {"extra": ""})
    store = project.store
    ids = people(store, 2)
    enter_segment(store, ids, clock() + dt.timedelta(days=10))
    totals = process_journey(context(), "recall")
    assert totals["sends"] == 2
    assert {s["entered_at"] for p in ids for s in store.journey_states_of("recall", p)} == {int(clock().timestamp())}


def test_a_journey_with_a_broken_template_is_not_advanced_and_its_people_wait(setup):
    project, context, clock = setup((FLOW % {"extra": ""}).replace('last: send via memory template "hello"',
                                                                    'last: send via memory template "missing"'))
    store = project.store
    ids = people(store, 2)
    enter_segment(store, ids, clock())
    report = run_once(context())
    assert any(e.startswith("journey recall:") and "templates are broken" in e for e in report.errors)
    assert store.journey_states_of("recall", ids[0]) == [] and sends(store) == []
    (project.directory / "templates" / "missing.txt").write_text("好", encoding="utf-8")
    process_journey(context(), "recall")  # fixed: the people who entered meanwhile go on
    assert len(sends(store)) == 2


def test_a_batch_reads_its_people_as_the_store_does(setup):
    """The send flow renders a batch from one read per table (BatchReads): each person's template context
    and address equal what the store answers person by person -- tags, cars, advisor and store relations,
    identifiers, a person merged into another, a person who does not exist."""
    from motorcade.activation.people import address_of, template_context
    from motorcade.journeys.engine import BatchReads
    from motorcade.model import Advisor, Car, Ownership, Store

    project, context, clock = setup(FLOW % {"extra": ""})
    store = project.store
    ids = people(store, 5, vip=True)
    with store.transaction():
        store.upsert_stores([Store("SH001", "浦东店", "华东", "上海", "BMW")])
        store.upsert_advisors([Advisor("A1", "李顾问", "SH001", "service", "+8613800000000")])
        store.upsert_cars([Car("WBA00000000000001", "BMW", "X3", 2020, dt.date(2020, 5, 1), "SH001"),
                           Car("WBA00000000000002", "BMW", "X5", 2023, None, None)])
        store.add_ownership(Ownership(ids[0], "WBA00000000000001", dt.date(2020, 5, 1), dt.date(2023, 1, 1)))
        store.add_ownership(Ownership(ids[0], "WBA00000000000002", dt.date(2023, 1, 1)))
        store.add_ownership(Ownership(ids[1], "WBA00000000000001", dt.date(2023, 2, 1)))
        store.set_relation(ids[1], "service_advisor", "A1")
        store.set_relation(ids[2], "home_store", "SH001")
        store.write_tag_values([(ids[0], "value_level", "high"), (ids[3], "value_level", "low")],
                               tags=["value_level"], calculator="rule", calculator_version="1",
                               computed_at=clock())
        store.merge_people(ids[3], [ids[4]], reason="test")
    now = clock()
    batch = [*ids, 999999]
    reads = BatchReads(store, batch)
    for pid in batch:
        expected = template_context(store, pid, origin_kind="journey", origin="recall", now=now, tz=SH)
        got = template_context(reads, pid, origin_kind="journey", origin="recall", now=now, tz=SH)
        for part in ("recommendation",):
            expected.pop(part), got.pop(part)
        assert got == expected, pid
        for kind in ("webhook", "advisor", "phone"):
            assert address_of(reads, pid, kind) == address_of(store, pid, kind)
