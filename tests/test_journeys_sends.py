"""The outbox rows a journey plans, pinned: keys, statuses, the rendered subjects and bodies with what each
template saw of the person (attributes, tags, car, advisor, store, origin, now, tracked links), the fallback
chain, a template that fails for one person, a person merged away in flight, and the feedback events and
links written with the sends. On SQLite and PostgreSQL.

The send path of the engine reads and renders a whole batch at once (for speed: ``python -m benchmarks
journeys``); these tests hold it to what the plain per-person path (the store's own reads,
:func:`motorcade.activation.people.template_context`) gives for the same person."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest

from motorcade.activation.people import template_context
from motorcade.activation.settings import ActivationContext
from motorcade.activation.templates import TemplateError, TemplateStore
from motorcade.activation.testing import memory_channel_plugin
from motorcade.journeys.engine import process_journey
from motorcade.model import Advisor, Car, Ownership, Store
from motorcade.project import Project
from motorcade.tags.base import TagDefinition

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)

RULES = """
segment owners { where profile.is_owner = true }
journey pin "钉住" {
  entry on entering segment owners
  first: send via text template "notice" fallback memory template "notice"
  wait 1 day
  second: send via memory template "plain"
}
"""
NOTICE = ("Subject: {{ person.name }}的保养提醒\n\n"
          "尊敬的{{ person.name }}（{{ tags.level }}），您的{{ car.brand }} {{ car.model }}（{{ car.vin }}）该保养了。"
          "顾问：{{ advisor.name }} {{ advisor.phone }}；门店：{{ store.name }}/{{ store.city }}。"
          "{{ origin.kind }}:{{ origin.name }} {{ now.strftime('%Y-%m-%d %H:%M') }} "
          "预约 {{ track('https://dealer.example/book') }} 积分{{ 100 // person.visits }}")
PLAIN = "{{ person.name }}，第二封：{{ cars | length }}辆车 {{ tags.level | default('无', true) }}"


def _config(database: str) -> str:
    return f"""
[project]
name = "t"
timezone = "Asia/Shanghai"
database = "{database}"
rules = ["rules"]

[channels.text]
[channels.memory]

[activation]
public_url = "https://go.example.cn"
"""


@pytest.fixture
def pinned(motorcade_project, motorcade_pm, register_plugin, store_database):
    """A project on either store with six people who differ in what a template can see of them, run through
    the journey `pin`: the first send on day 0, the second on day 1 (person 5 merged into 6 in between)."""
    from motorcade.store import open_store

    directory = motorcade_project.directory
    (directory / "motorcade.toml").write_text(_config(store_database), encoding="utf-8")
    (directory / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
    (directory / "templates").mkdir(exist_ok=True)
    (directory / "templates" / "notice.txt").write_text(NOTICE, encoding="utf-8")
    (directory / "templates" / "plain.txt").write_text(PLAIN, encoding="utf-8")
    register_plugin(memory_channel_plugin("text", address_type="phone"), name="text")
    register_plugin(memory_channel_plugin(), name="memory")
    project = Project(directory, plugin_manager=motorcade_pm)
    store = open_store(store_database)
    project.__dict__["store"] = store
    try:
        ids = _people(store)
        store.record_segment_run("owners", ids[:5], revision="t", as_of=T0, computed_at=T0, duration_ms=0,
                                 plan=None)
        clock = {"at": T0}

        def tick():
            ctx = ActivationContext.for_project(project, clock=lambda: clock["at"], worker_id="w1",
                                                rule_set=project.rules(checked=False))
            return process_journey(ctx, "pin")

        first = tick()
        with store.transaction():
            store.merge_people(ids[5], [ids[4]], reason="test", at=T0)
        clock["at"] = T0 + dt.timedelta(days=1, minutes=1)
        second = tick()
        yield project, store, ids, (first, second)
    finally:
        project.__dict__.pop("store")
        store.close()


def _people(store) -> list[int]:
    with store.transaction():
        store.upsert_stores([Store("SH01", "上海浦东店", "华东", "上海", "BMW"), Store("SH02", "上海闵行店", "华东", "上海")])
        store.upsert_advisors([Advisor("A1", "王顾问", "SH01", "sales", "+8613800000001"),
                               Advisor("A2", "李顾问", "SH02", "sales", "+8613800000002")])
        store.upsert_cars([Car("LBV00000000000001", "BMW", "X3", 2020, dt.date(2020, 5, 1), "SH01"),
                           Car("LBV00000000000002", "BMW", "X5", 2023, dt.date(2023, 3, 1), "SH02"),
                           Car("LBV00000000000003", "MINI", "Cooper", 2015, dt.date(2015, 1, 1), "SH01")])
        ids = [store.create_person({"name": name, "is_owner": True, "visits": visits})
               for name, visits in (("张三", 4), ("李四", 5), ("王五", 10), ("赵六", 0), ("孙七", 20), ("周八", 50))]
        p1, p2, p3, p4, p5, p6 = ids
        store.add_ownership(Ownership(p1, "LBV00000000000001", dt.date(2020, 5, 1)))
        store.add_ownership(Ownership(p1, "LBV00000000000003", dt.date(2015, 1, 1)))
        store.add_ownership(Ownership(p2, "LBV00000000000003", dt.date(2010, 1, 1), dt.date(2014, 12, 31)))
        store.add_ownership(Ownership(p6, "LBV00000000000002", dt.date(2023, 3, 1)))
        store.set_relation(p1, "sales_advisor", "A1")
        store.set_relation(p2, "home_store", "SH02")  # no advisor of their own: one of the store's
        store.define_tags([TagDefinition("level", "string", "value level")], calculator="t", calculator_version="1")
        store.write_tag_values([(p1, "level", "金卡"), (p3, "level", "银卡"), (p6, "level", "白金")], tags=["level"],
                               calculator="t", calculator_version="1", computed_at=T0)
        first_identifier = store.identity_next_ids()[2]
        store.insert_identifiers([(first_identifier, "phone", "+8613900000001", p1, None),
                                  (first_identifier + 1, "phone", "+8613900000002", p2, None),
                                  (first_identifier + 2, "phone", "+8613900000004", p4, None),
                                  (first_identifier + 3, "phone", "+8613900000006", p6, None)])
    return ids


def _sends(store) -> dict[str, dict]:
    return {s["idempotency_key"]: s for s in store.list_sends(limit=1000)}


def test_the_outbox_rows_of_a_journey_are_pinned(pinned):
    project, store, ids, (first, second) = pinned
    p1, p2, p3, p4, p5, p6 = ids
    assert (first["entered"], first["sends"], second["sends"], second["completed"]) == (5, 5, 5, 5)
    sends = _sends(store)
    assert sorted(sends) == sorted(f"journey:pin:e1:p{p}:s{step}" for p in ids[:5] for step in ("first", "second"))
    by = {(s["person_id"], s["payload"]["journey_step"]): s for s in sends.values()}
    assert {k: (s["status"], s["step"], s["channel"], s["template"], s["run_id"], s["origin_kind"])
            for k, s in by.items() if k[0] == p1} == {
        (p1, "first"): ("planned", 0, "text", "notice", "journey:pin", "journey"),
        (p1, "second"): ("planned", 2, "memory", "plain", "journey:pin", "journey")}
    one = by[(p1, "first")]["payload"]
    assert {k: v for k, v in one.items() if k != "steps"} == {
        "arm": "treatment", "transactional": False, "quiet_hours": None, "journey_step": "first", "entry": 1}
    text, memory = one["steps"]
    code = re.search(r"https://go\.example\.cn/s/([0-9A-Za-z]{11})", text["body"]).group(1)
    assert text == {
        "channel": "text", "template": "notice", "address": "+8613900000001", "subject": "张三的保养提醒",
        "body": "尊敬的张三（金卡），您的BMW X3（LBV00000000000001）该保养了。顾问：王顾问 +8613800000001；"
                f"门店：上海浦东店/上海。journey:pin 2026-11-23 10:00 预约 https://go.example.cn/s/{code} 积分25",
        "store_id": "SH01", "links": [{"code": code, "kind": "link", "target": "https://dealer.example/book"}],
        "params": {"link": f"https://go.example.cn/s/{code}", "link_code": code}}
    assert memory["address"] == str(p1) and memory["store_id"] == "SH01" and "积分25" in memory["body"]
    assert memory["links"][0]["code"] != code  # each rendered step has its own codes
    # a prospect without an advisor of their own: their store's sales advisor; an ownership that ended: no car
    two = by[(p2, "first")]["payload"]["steps"][0]
    assert two["body"].startswith("尊敬的李四（），您的 （）该保养了。顾问：李顾问 +8613800000002；门店：上海闵行店/上海。")
    # no phone: the text step says so, the fallback renders
    three = by[(p3, "first")]["payload"]["steps"]
    assert three[0] == {"channel": "text", "template": "notice", "error": "no phone"}
    assert three[1]["body"].startswith("尊敬的王五（银卡），您的 （）该保养了。顾问： ；门店：/。") and three[1]["address"] == str(p3)
    # a template that fails for one person: that send is dead, with the reason; the person moves on
    four = by[(p4, "first")]
    assert four["status"] == "dead" and "ZeroDivisionError" in four["reason"]
    assert all(s.get("template_failed") for s in four["payload"]["steps"])
    assert by[(p4, "second")]["status"] == "planned"
    assert by[(p4, "second")]["payload"]["steps"][0]["body"] == "赵六，第二封：0辆车 无"
    # merged into p6 after the first send (identity not settled yet): keyed and rowed as p5; the profile is
    # p6's (the merge log is followed), tags and cars are those still stored under p5 (none), as the store reads
    five = by[(p5, "second")]
    assert five["person_id"] == p5 and five["payload"]["steps"][0]["body"] == "周八，第二封：0辆车 无"
    assert by[(p1, "second")]["payload"]["steps"][0]["body"] == "张三，第二封：2辆车 金卡"
    assert by[(p2, "second")]["payload"]["steps"][0]["body"] == "李四，第二封：0辆车 无"


def test_the_feedback_events_and_links_of_a_journeys_sends(pinned):
    project, store, ids, _ = pinned
    p1, p2, p3, p4, p5, p6 = ids
    sends = _sends(store)
    feedback = {(e.name, e.dedup_key): e for pid in ids for e in store.events_of(pid) if e.source == "motorcade"}
    # every send planned is `queued` (a dead one too), a dead one also `failed`
    assert sorted(feedback) == sorted([("queued", f"queued:{k}") for k in sends]
                                      + [("failed", f"failed:{k}") for k, s in sends.items() if s["status"] == "dead"])
    queued = feedback[("queued", f"queued:journey:pin:e1:p{p1}:sfirst")]
    assert queued.person_id == p1 and queued.ts == T0
    assert queued.properties == {
        "origin_kind": "journey", "origin": "pin", "journey": "pin", "channel": "text", "template": "notice",
        "idempotency_key": f"journey:pin:e1:p{p1}:sfirst", "run_id": "journey:pin", "step": 0,
        "revision": sends[f"journey:pin:e1:p{p1}:sfirst"]["revision"]}
    failed = feedback[("failed", f"failed:journey:pin:e1:p{p4}:sfirst")]
    assert "ZeroDivisionError" in failed.properties["detail"]
    # the person merged away: the event of the send planned after the merge is the survivor's
    assert feedback[("queued", f"queued:journey:pin:e1:p{p5}:sfirst")].person_id == p5
    assert feedback[("queued", f"queued:journey:pin:e1:p{p5}:ssecond")].person_id == p6
    for key, send in sends.items():
        for index, step in enumerate(send["payload"]["steps"]):
            for link in step.get("links") or []:
                assert f"https://go.example.cn/s/{link['code']}" in step["body"]
                stored = store.link(link["code"])
                assert (stored["idempotency_key"], stored["step"], stored["target"]) == (
                    key, index, "https://dealer.example/book")


def test_every_journey_send_renders_what_the_per_person_path_renders(pinned):
    """The batch path against the plain one: the context :func:`template_context` builds from the store for the
    person at the send's time, rendered by a fresh template store, gives the same subject and body (the link
    codes aside, which are random per render)."""
    project, store, ids, _ = pinned
    templates = TemplateStore(project.directory / "templates")
    for send in _sends(store).values():
        first = send["payload"]["journey_step"] == "first"
        if first and send["person_id"] == ids[4]:
            continue  # rendered before the person was merged away; the store reads the merged person now
        at = T0 if first else T0 + dt.timedelta(days=1, minutes=1)
        for step in send["payload"]["steps"]:
            if "body" not in step and not step.get("template_failed"):
                continue
            codes = iter(link["code"] for link in step.get("links") or [])
            context = template_context(store, send["person_id"], origin_kind="journey", origin="pin", now=at, tz=SH)
            context.update(track=lambda url: f"https://go.example.cn/s/{next(codes)}", open_pixel=lambda: "")
            try:
                rendered = templates.render(step["template"], step["channel"], context)
            except TemplateError as exc:
                assert step.get("template_failed") and exc.message in step["error"]
                continue
            assert (rendered.subject, rendered.body) == (step.get("subject"), step["body"])
