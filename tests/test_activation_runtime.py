"""Activation at run time: campaign runs, the outbox, guard rails, retries, triggers, feedback events.

Real SQLite project, real rule files and templates, in-memory channels registered as plugins.
Segment memberships are written with the store's ``record_segment_run`` (what the segment compiler calls).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo

import attrs
import pytest

from motorcade.activation.channel import Channel, ChannelCapabilities, DeliveryResult
from motorcade.activation.dispatcher import Dispatcher, backoff_seconds
from motorcade.activation.feedback import record_receipt
from motorcade.activation.guardrails import in_holdout
from motorcade.activation.planner import Renderer, plan_campaign, process_event_trigger, process_segment_trigger
from motorcade.activation.runner import run_once
from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import memory_channel_plugin
from motorcade.errors import MotorcadeError
from motorcade.model import Consent, Event, Identifier
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc


class Clock:
    def __init__(self, at: dt.datetime):
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, **delta) -> None:
        self.at += dt.timedelta(**delta)


def put_members(store, segment: str, ids, at: dt.datetime) -> None:
    """Make ``ids`` the segment's members (the segment stage's own writer records the enter/leave changes)."""
    store.record_segment_run(segment, ids, revision="test", as_of=at, computed_at=at, duration_ms=0, plan=None)


def add_identifier(store, person_id: int, type_: str, value: str) -> None:
    store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES (?, ?, ?)", (type_, value, person_id))


CONFIG = """
[project]
name = "t"
timezone = "Asia/Shanghai"
database = "motorcade.db"
rules = ["rules"]

[guardrails]
{guardrails}

[activation]
backoff_base_seconds = 10
max_attempts = 3
"""

RULES = """
segment owners {{ where profile.is_owner = true }}
campaign recall "回厂" {{
  audience owners
  schedule daily at 10:00
  send to {send_to}
  {holdout}
  via {via}
}}
"""


@pytest.fixture
def setup(motorcade_project, motorcade_pm, register_plugin):
    """Build a project: setup(rules=..., guardrails=..., templates={...}, channels=[plugin, ...])."""

    def build(rules: str, *, guardrails: str = "", templates: dict[str, str] | None = None, channels=(),
              clock: Clock | None = None):
        directory = motorcade_project.directory
        (directory / "motorcade.toml").write_text(CONFIG.format(guardrails=guardrails), encoding="utf-8")
        (directory / "rules" / "main.mc").write_text(rules, encoding="utf-8")
        (directory / "templates").mkdir(exist_ok=True)
        for name, text in (templates or {"hello.txt": "您好 {{ person.name }}"}).items():
            (directory / "templates" / name).write_text(text, encoding="utf-8")
        for plugin in channels:
            register_plugin(plugin, name=plugin.channel_class.name)
        project = Project(directory, plugin_manager=motorcade_pm)
        project.__dict__["store"] = motorcade_project.store
        clock = clock or Clock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH))
        ctx = ActivationContext.for_project(project, clock=clock, worker_id="w1")
        return project, ctx, clock

    return build


def people(store, n: int, **attributes) -> list[int]:
    with store.transaction():
        return [store.create_person({"name": f"客户{i}", "is_owner": True, **attributes}) for i in range(n)]


def rules(send_to="all members", holdout="", via='memory template "hello.txt"'):
    return RULES.format(send_to=send_to, holdout=holdout, via=via.replace('.txt"', '"'))


def statuses(store) -> dict[str, str]:
    return {s["idempotency_key"]: s["status"] for s in store.list_sends(limit=100000)}


# -- the outbox ---------------------------------------------------------------------------------------


def test_campaign_run_writes_snapshot_and_outbox_once_with_deterministic_keys(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), guardrails="", channels=[memory])
    store = project.store
    ids = people(store, 5)
    put_members(store, "owners", ids, clock())
    slot = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    result = plan_campaign(ctx, "recall", slot)
    assert result["planned"] == 5
    assert plan_campaign(ctx, "recall", slot) is None  # the same slot is never planned twice
    sends = store.list_sends(limit=100)
    assert sorted(s["idempotency_key"] for s in sends) == sorted(
        f"campaign:recall:20261123T0200Z:p{pid}:s0" for pid in ids)
    assert {s["revision"] for s in sends} == {ctx.revision} and len(ctx.revision) == 64
    assert store.audience_snapshot(result["run_id"]) == {pid: "treatment" for pid in ids}
    queued = store.events_of(ids[0], name="queued")
    assert queued[0].source == "motorcade" and queued[0].properties["revision"] == ctx.revision
    assert queued[0].properties["campaign"] == "recall"
    # the rendered message is stored with the row (a retry sends the same bytes)
    assert sends[0]["payload"]["steps"][0]["body"].startswith("您好 客户")


def test_run_once_plans_the_due_slot_and_delivers_with_sent_feedback(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    ids = people(store, 3)
    put_members(store, "owners", ids, clock())
    report = run_once(ctx)
    assert report.planner and report.dispatched["sent"] == 3
    assert sorted(m.person_id for m in memory.sent) == ids
    assert set(statuses(store).values()) == {"sent"}
    sent = store.events_of(ids[1], name="sent")
    assert sent[0].properties["revision"] == ctx.revision and sent[0].properties["channel"] == "memory"
    # a second pass at the same time plans and sends nothing new
    assert run_once(ctx).dispatched["sent"] == 0 and len(memory.sent) == 3
    assert store.rule_revision_files(ctx.revision)  # the rule text behind the revision is kept


def test_new_members_only_sends_to_people_who_entered_since_the_last_run(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(send_to="new members only"), channels=[memory])
    store = project.store
    first, second = people(store, 3), people(store, 2)
    put_members(store, "owners", first, clock())
    run_once(ctx)
    clock.advance(days=1)
    put_members(store, "owners", first[1:] + second, clock())  # first[0] left, two entered
    report = run_once(ctx)
    assert report.planned_runs[0]["audience"] == 2
    assert sorted(m.person_id for m in memory.sent) == sorted(first + second)


# -- guard rails -----------------------------------------------------------------------------------------


def test_consent_opt_out_stops_the_send_with_its_reason(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    a, b, c = people(store, 3)
    with store.transaction():
        store.set_consent(Consent(a, "*", False, clock(), source="crm"))
        store.set_consent(Consent(b, "memory", False, clock(), source="unsubscribe_event"))
    put_members(store, "owners", [a, b, c], clock())
    run_once(ctx)
    by_person = {s["person_id"]: s for s in store.list_sends()}
    assert by_person[a]["status"] == "suppressed" and by_person[a]["reason"].startswith("consent: opted out of every")
    assert by_person[b]["status"] == "suppressed" and "consent: opted out for memory" in by_person[b]["reason"]
    assert by_person[c]["status"] == "sent"
    assert [m.person_id for m in memory.sent] == [c]


def test_opt_in_mode_needs_a_recorded_grant(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), guardrails='consent = "opt_in"', channels=[memory])
    store = project.store
    a, b = people(store, 2)
    with store.transaction():
        store.set_consent(Consent(a, "memory", True, clock(), source="crm"))
    put_members(store, "owners", [a, b], clock())
    run_once(ctx)
    by_person = {s["person_id"]: s for s in store.list_sends()}
    assert by_person[a]["status"] == "sent"
    assert by_person[b]["status"] == "suppressed" and "no consent recorded" in by_person[b]["reason"]


def test_quiet_hours_defer_the_send_to_the_end_of_the_window_in_the_persons_zone(setup):
    memory = memory_channel_plugin()
    clock = Clock(dt.datetime(2026, 11, 23, 22, 30, tzinfo=SH))
    text = rules().replace("daily at 10:00", "daily at 22:00")
    project, ctx, clock = setup(text, guardrails='quiet_hours = { start = "21:00", end = "09:00" }',
                                channels=[memory], clock=clock)
    store = project.store
    local, london = people(store, 1) + people(store, 1, timezone="Europe/London")
    put_members(store, "owners", [local, london], clock())
    run_once(ctx)
    by_person = {s["person_id"]: s for s in store.list_sends()}
    assert by_person[local]["status"] == "deferred"
    assert "quiet_hours: 21:00-09:00" in by_person[local]["reason"]
    assert dt.datetime.fromtimestamp(by_person[local]["not_before"], SH) == dt.datetime(2026, 11, 24, 9, 0, tzinfo=SH)
    assert by_person[london]["status"] == "sent"  # 14:30 in London
    clock.at = dt.datetime(2026, 11, 24, 8, 59, tzinfo=SH)
    assert run_once(ctx).dispatched["sent"] == 0  # still quiet: not even claimed
    clock.at = dt.datetime(2026, 11, 24, 9, 0, tzinfo=SH)
    run_once(ctx)
    assert store.get_send(by_person[local]["idempotency_key"])["status"] == "sent"


CAP_RULES = """
segment owners { where profile.is_owner = true }
campaign a { audience owners  schedule daily at 10:00  via memory template "hello" }
campaign b { audience owners  schedule daily at 10:00  via memory template "hello" }
campaign c { audience owners  schedule daily at 10:00  via memory template "hello" }
trigger receipt { on order  via memory template "hello"  transactional  reenter always }
"""


def test_frequency_cap_across_campaigns_with_transactional_exempt(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(CAP_RULES, guardrails="frequency_cap = { count = 2, days = 7 }", channels=[memory])
    store = project.store
    (pid,) = people(store, 1)
    put_members(store, "owners", [pid], clock())
    with store.transaction():
        store.insert_events([Event("order", clock() - dt.timedelta(minutes=1), pid, {"amount": 1}, "dms", "o1")])
    run_once(ctx)
    by_origin = {s["origin"]: s for s in store.list_sends()}
    assert [by_origin[o]["status"] for o in ("a", "b", "c")] == ["sent", "sent", "suppressed"]
    assert by_origin["c"]["reason"] == "frequency_cap: 2 marketing sends in the last 7 days (cap 2)"
    assert by_origin["receipt"]["status"] == "sent"  # transactional: exempt, and not counted
    # a week later the cap has room again
    clock.advance(days=8)
    run_once(ctx)
    assert sum(1 for s in store.list_sends() if s["status"] == "sent") == 5


def test_holdout_is_deterministic_recorded_in_the_snapshot_and_not_sent(setup):
    memory = memory_channel_plugin(batch_size=500)
    project, ctx, clock = setup(rules(holdout="holdout 10%"), channels=[memory])
    store = project.store
    ids = people(store, 600)
    put_members(store, "owners", ids, clock())
    report = run_once(ctx)
    snapshot = store.audience_snapshot(report.planned_runs[0]["run_id"])
    held = {pid for pid, arm in snapshot.items() if arm == "holdout"}
    assert held == {pid for pid in ids if in_holdout(pid, "recall", 10)}
    assert report.planned_runs[0]["holdout"] == len(held) and report.planned_runs[0]["audience"] == 600
    assert 30 <= len(held) <= 90  # ~10% of 600
    sends = {s["person_id"]: s for s in store.list_sends(limit=1000)}
    assert all(sends[p]["status"] == "holdout" and sends[p]["reason"].startswith("holdout") for p in held)
    assert {m.person_id for m in memory.sent} == set(ids) - held
    assert not store.events_of(next(iter(held)), name="queued")


def test_fallback_to_sms_when_the_person_has_no_wecom_identifier(setup):
    wecom = memory_channel_plugin("wecom", address_type="wecom_external_userid")
    sms = memory_channel_plugin("sms", address_type="phone", max_length=70)
    project, ctx, clock = setup(rules(via='wecom template "hello" fallback sms template "hello"'),
                                channels=[wecom, sms])
    store = project.store
    linked, unlinked, unreachable = people(store, 3)
    with store.transaction():
        add_identifier(store, linked, "wecom_external_userid", "wmABC")
        add_identifier(store, unlinked, "phone", "+8613800000001")
    put_members(store, "owners", [linked, unlinked, unreachable], clock())
    run_once(ctx)
    by_person = {s["person_id"]: s for s in store.list_sends()}
    assert [m.address for m in wecom.sent] == ["wmABC"]
    assert [m.address for m in sms.sent] == ["+8613800000001"]
    assert by_person[unlinked]["channel"] == "sms"
    assert by_person[unlinked]["reason"] == "fallback: wecom -> sms (wecom: no wecom_external_userid)"
    assert by_person[unreachable]["status"] == "suppressed"
    assert by_person[unreachable]["reason"].startswith("no channel: wecom: no wecom_external_userid; sms: no phone")


def test_channel_limits_send_window_defers_and_max_length_skips(setup):
    sms = memory_channel_plugin("sms", address_type="phone", max_length=10, send_window=("08:00", "22:00"))
    clock = Clock(dt.datetime(2026, 11, 23, 7, 0, tzinfo=SH))
    text = rules(via='sms template "hello"').replace("daily at 10:00", "daily at 07:00")
    project, ctx, clock = setup(text, templates={"hello.txt": "{{ person.code }}"}, channels=[sms], clock=clock)
    store = project.store
    short = people(store, 1, code="hi")[0]
    long = people(store, 1, code="这是一条超过十个字的短信正文内容")[0]
    with store.transaction():
        add_identifier(store, short, "phone", "+8613800000002")
        add_identifier(store, long, "phone", "+8613800000003")
    put_members(store, "owners", [short, long], clock())
    run_once(ctx)
    by_person = {s["person_id"]: s for s in store.list_sends()}
    assert by_person[short]["status"] == "deferred"
    # the window as the channel states it (a mutant of line 188 printed 22:00-22:00)
    assert by_person[short]["reason"] == ("send_window: sms sends 08:00-22:00 Asia/Shanghai, "
                                          "deferred to 2026-11-23T08:00:00+08:00")
    assert by_person[long]["status"] == "suppressed" and "accepts 10" in by_person[long]["reason"]
    clock.at = dt.datetime(2026, 11, 23, 8, 0, tzinfo=SH)
    run_once(ctx)
    assert [m.body for m in sms.sent] == ["hi"]


# -- delivery: retries, dead letters, operator retry -----------------------------------------------------


def test_transient_failures_back_off_with_jitter_then_succeed_or_go_dead(setup):
    key = "campaign:recall:20261123T0200Z:p{}:s0"
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    flaky, broken, rejected = people(store, 3)
    memory_answers = {key.format(flaky): ["transient", "sent"], key.format(broken): ["transient"] * 5,
                      key.format(rejected): ["permanent"]}
    memory2 = memory_channel_plugin("memory", answers=memory_answers)
    ctx.registry.channels["memory"].obj = memory2.channel_class  # same name, scripted answers
    put_members(store, "owners", [flaky, broken, rejected], clock())
    run_once(ctx)
    sends = {s["person_id"]: s for s in store.list_sends()}
    assert sends[flaky]["status"] == "failed" and sends[flaky]["attempts"] == 1
    wait = sends[flaky]["not_before"] - int(clock().timestamp())
    assert 5 <= wait <= 10  # base 10 s, equal jitter: [5, 10]
    assert sends[rejected]["status"] == "dead" and sends[rejected]["reason"] == "permanent: memory: permanent"
    for _ in range(4):
        clock.advance(seconds=3600)
        run_once(ctx)
    sends = {s["person_id"]: s for s in store.list_sends()}
    assert sends[flaky]["status"] == "sent" and sends[flaky]["attempts"] == 2
    assert sends[broken]["status"] == "dead" and sends[broken]["attempts"] == 3
    assert sends[broken]["reason"].startswith("retries exhausted after 3 attempts")
    assert store.events_of(broken, name="failed")
    # the operator puts the dead letters back; the same keys are delivered
    with store.transaction():
        assert store.retry_sends(status="dead") == 2
    run_once(ctx)
    assert store.get_send(key.format(rejected))["status"] == "sent"
    assert store.get_send(key.format(broken))["status"] == "failed"  # two scripted transients left
    for _ in range(2):
        clock.advance(seconds=3600)
        run_once(ctx)
    assert store.get_send(key.format(broken))["status"] == "sent"
    assert sorted(m.idempotency_key for m in memory2.sent) == sorted(key.format(p) for p in (flaky, broken, rejected))


def test_backoff_grows_exponentially_and_is_capped():
    import random

    rng = random.Random(1)
    delays = [backoff_seconds(n, base=30, cap=3600, rng=rng) for n in range(1, 10)]
    for n, delay in enumerate(delays, start=1):
        full = min(3600, 30 * 2 ** (n - 1))
        assert full / 2 <= delay <= full


def test_a_worker_whose_claim_expired_cannot_overwrite_the_new_owners_result(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    (pid,) = people(store, 1)
    put_members(store, "owners", [pid], clock())
    run_once(ctx, dispatch=False)
    slow = Dispatcher(ctx)
    claimed = slow.claim()
    assert len(claimed) == 1
    clock.advance(seconds=ctx.settings.claim_seconds + 1)
    other = ActivationContext.for_project(project, clock=clock, worker_id="w2")
    fast = Dispatcher(other)
    assert len(fast.claim()) == 1  # the expired claim is taken over, same key
    from motorcade.activation.channel import DeliveryResult

    counts = slow.record(claimed, [DeliveryResult(claimed[0]["idempotency_key"], "permanent", detail="late")])
    assert counts == {"sent": 0, "failed": 0, "dead": 0}
    assert store.get_send(claimed[0]["idempotency_key"])["claimed_by"] == "w2"


# -- triggers ----------------------------------------------------------------------------------------------

TRIGGER_RULES = """
segment vip { where tag value_tier = "vip" }
segment owners { where has car }
trigger order_thanks {
  on order where amount > 100000
  if in segment vip
  wait 10 minutes
  via memory template "thanks"
}
trigger welcome {
  on enter segment owners
  reenter once per 30 days
  via memory template "hello"
}
"""


def test_event_trigger_conditions_wait_and_high_water_mark(setup):
    memory = memory_channel_plugin()
    clock = Clock(dt.datetime(2026, 11, 23, 12, 0, tzinfo=SH))
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory], clock=clock,
                                templates={"thanks.txt": "感谢订购 {{ event.model }}", "hello.txt": "hi"})
    store = project.store
    vip, normal = people(store, 2)
    store.write_tag_values([(vip, "value_tier", "vip"), (normal, "value_tier", "normal")], tags=["value_tier"],
                           calculator="t", calculator_version="1", computed_at=clock())
    t0 = clock() - dt.timedelta(minutes=5)
    with store.transaction():
        store.insert_events([
            Event("order", t0, vip, {"amount": 300000, "model": "X5"}, "dms", "o1"),
            Event("order", t0, vip, {"amount": 500, "model": "mug"}, "dms", "o2"),
            Event("order", t0, normal, {"amount": 300000, "model": "X3"}, "dms", "o3"),
        ])
    run_once(ctx)
    (send,) = store.list_sends()
    assert send["idempotency_key"].startswith("trigger:order_thanks:e") and send["person_id"] == vip
    assert send["status"] == "planned"  # waits 10 minutes from the event: 5 more minutes
    assert send["not_before"] == int((t0 + dt.timedelta(minutes=10)).timestamp())
    clock.advance(minutes=5)
    run_once(ctx)
    assert [m.body for m in memory.sent] == ["感谢订购 X5"]
    # events already seen are not processed again; a new one is (reenter once is the default)
    with store.transaction():
        store.insert_events([Event("order", clock(), vip, {"amount": 200000, "model": "i7"}, "dms", "o4")])
    run_once(ctx)
    assert len(store.list_sends()) == 1  # fired once already for this person


def test_segment_enter_trigger_with_reentry_once_per_period(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory], templates={"thanks.txt": "x", "hello.txt": "欢迎"})
    store = project.store
    (pid,) = people(store, 1)
    put_members(store, "owners", [pid], clock())
    run_once(ctx)
    assert len(memory.sent) == 1
    for days in (1, 2):  # leaves and re-enters within 30 days: no second welcome
        clock.advance(days=1)
        put_members(store, "owners", [], clock())
        clock.advance(hours=1)
        put_members(store, "owners", [pid], clock())
        run_once(ctx)
    assert len(memory.sent) == 1
    clock.advance(days=31)
    put_members(store, "owners", [], clock())
    put_members(store, "owners", [pid], clock())
    run_once(ctx)
    assert len(memory.sent) == 2


# -- feedback ------------------------------------------------------------------------------------------------


def test_receipts_become_events_once_and_unsubscribe_records_consent(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    (pid,) = people(store, 1)
    put_members(store, "owners", [pid], clock())
    run_once(ctx)
    (send,) = store.list_sends()
    key = send["idempotency_key"]
    assert record_receipt(store, key, "delivered", at=clock())
    assert not record_receipt(store, key, "delivered", at=clock())  # duplicate receipt (Aliyun): stored once
    assert record_receipt(store, key, "clicked", at=clock())
    assert record_receipt(store, key, "unsubscribed", at=clock())
    names = [e.name for e in store.events_of(pid)]
    assert names.count("delivered") == 1 and "clicked" in names and "unsubscribed" in names
    clicked = store.events_of(pid, name="clicked")[0]
    assert clicked.properties["campaign"] == "recall" and clicked.properties["revision"] == ctx.revision
    assert [c.granted for c in store.consents_of(pid) if c.channel == "memory"] == [False]
    # a receipt that only names the provider's message id (Aliyun BizId, WeCom msgid)
    provider_id = store.get_send(key)["provider_message_id"]
    assert provider_id
    assert record_receipt(store, None, "opened", at=clock(), channel="memory", provider_message_id=provider_id)
    assert not record_receipt(store, None, "opened", at=clock(), channel="memory", provider_message_id="nope")
    assert len(store.events_of(pid, name="opened")) == 1


def test_editing_rules_or_templates_never_changes_a_planned_run(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    ids = people(store, 2)
    put_members(store, "owners", ids, clock())
    old_revision = ctx.revision
    run_once(ctx, dispatch=False)
    (project.directory / "templates" / "hello.txt").write_text("changed {{ person.name }}", encoding="utf-8")
    (project.directory / "rules" / "main.mc").write_text(rules().replace("回厂", "回厂 v2"), encoding="utf-8")
    later = ActivationContext.for_project(project, clock=clock, worker_id="w2")
    assert later.revision != old_revision
    run_once(later)
    assert sorted(m.body for m in memory.sent) == ["您好 客户0", "您好 客户1"]
    assert {s["revision"] for s in store.list_sends()} == {old_revision}
    assert {e.properties["revision"] for pid in ids for e in store.events_of(pid, name="sent")} == {old_revision}


def test_a_misconfigured_channel_stops_the_pass_and_leaves_sends_planned(setup):
    from motorcade.errors import ConfigError

    class Picky(memory_channel_plugin("picky").channel_class):
        def __init__(self, settings, context):
            raise ConfigError("channel picky: [channels.picky] has no api_key", hint="add api_key_env = ...")

    plugin = memory_channel_plugin("picky")
    project, ctx, clock = setup(rules(via='picky template "hello"'), channels=[plugin])
    ctx.registry.channels["picky"].obj = Picky
    store = project.store
    put_members(store, "owners", people(store, 2), clock())
    with pytest.raises(ConfigError, match="has no api_key"):
        run_once(ctx)
    assert set(statuses(store).values()) == {"planned"}  # nothing suppressed because of a typo in settings


@pytest.mark.parametrize("window_zone, opens", [(None, dt.datetime(2026, 11, 24, 8, 0, tzinfo=zoneinfo.ZoneInfo(
    "Europe/London"))), ("Asia/Shanghai", dt.datetime(2026, 11, 24, 8, 0, tzinfo=SH))])
def test_send_window_is_read_in_the_providers_zone_when_the_channel_names_one(setup, window_zone, opens):
    sms = memory_channel_plugin("sms", address_type="phone", send_window=("08:00", "22:00"),
                                send_window_timezone=window_zone)
    clock = Clock(dt.datetime(2026, 11, 24, 7, 0, tzinfo=SH))  # 23:00 in London the day before
    text = rules(via='sms template "hello"').replace("daily at 10:00", "daily at 07:00")
    project, ctx, clock = setup(text, channels=[sms], clock=clock)
    store = project.store
    (pid,) = people(store, 1, timezone="Europe/London")
    with store.transaction():
        add_identifier(store, pid, "phone", "+447700900000")
    put_members(store, "owners", [pid], clock())
    run_once(ctx)
    (send,) = store.list_sends()
    assert send["status"] == "deferred" and dt.datetime.fromtimestamp(send["not_before"], UTC) == opens


def test_advisor_call_tasks_through_the_advisor_task_plugin_once_per_key(setup):
    import motorcade_channels_advisor_task as advisor_task

    from motorcade.model import Advisor, Store

    plugin = type("P", (), {"channel_class": advisor_task.AdvisorTaskChannel,
                            "register_channels": staticmethod(advisor_task.register_channels)})
    project, ctx, clock = setup(rules(via='advisor_task template "call"'), channels=[plugin],
                                templates={"call.txt": "请电联{{ person.name }}，{{ car.model or '车型未知' }}已一年未回厂"})
    store = project.store
    with_advisor, prospect_a, prospect_b, without = people(store, 4)
    with store.transaction():
        store.upsert_stores([Store("SH001", "上海浦东4S店", "华东"), Store("SH002", "上海闵行4S店", "华东")])
        store.upsert_advisors([Advisor("A01", "李娜", "SH001", "service"), Advisor("A02", "王强", "SH002"),
                               Advisor("A03", "赵敏", "SH002")])
        store.set_relation(with_advisor, "service_advisor", "A01")
        store.set_relation(prospect_a, "lead_store", "SH002")  # no advisor yet: one of the store's sales team
        store.set_relation(prospect_b, "lead_store", "SH002")
    put_members(store, "owners", [with_advisor, prospect_a, prospect_b, without], clock())
    run_once(ctx)
    tasks = store.advisor_tasks(store_id="SH001")
    assert [(t["advisor_id"], t["person_id"], t["note"]) for t in tasks] == [
        ("A01", with_advisor, "请电联客户0，车型未知已一年未回厂")]
    assigned = {t["person_id"]: t["advisor_id"] for t in store.advisor_tasks(store_id="SH002")}
    assert assigned == {prospect_a: ["A02", "A03"][prospect_a % 2], prospect_b: ["A02", "A03"][prospect_b % 2]}
    by_person = {s["person_id"]: s for s in store.list_sends()}
    assert by_person[without]["reason"] == "no channel: advisor_task: no advisor_id"
    # the operator retries the sent task's key: the store keeps one task, the CSV one row
    with store.transaction():
        store.conn.execute("UPDATE outbox SET status = 'dead' WHERE person_id = ?", (with_advisor,))
        store.retry_sends(status="dead")
    run_once(ctx)
    assert len(store.advisor_tasks()) == 3
    csv_text = (project.directory / "out" / "advisor_tasks" / "SH001.csv").read_text(encoding="utf-8")
    assert csv_text.count(by_person[with_advisor]["idempotency_key"]) == 1


def test_a_campaign_whose_segment_was_never_computed_keeps_its_slot(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    ids = people(store, 2)
    report = run_once(ctx)
    assert report.errors and "segment 'owners' has never been computed" in report.errors[0]
    assert store.runs_of("campaign", "recall") == []
    put_members(store, "owners", ids, clock())
    assert run_once(ctx).dispatched["sent"] == 2


def test_event_trigger_high_water_mark_skips_other_events_and_batches(setup):
    memory = memory_channel_plugin(batch_size=500)
    project, ctx, clock = setup(TRIGGER_RULES.replace("if in segment vip\n", "").replace("wait 10 minutes\n", "")
                                .replace("on order where amount > 100000", "on order  reenter always"),
                                channels=[memory], templates={"thanks.txt": "谢谢", "hello.txt": "hi"})
    ctx.settings = type(ctx.settings)(**{**__import__("attrs").asdict(ctx.settings), "trigger_batch": 7})
    store = project.store
    (pid,) = people(store, 1)
    t = clock() - dt.timedelta(minutes=1)
    with store.transaction():
        store.insert_events([Event("page_view", t, pid, {}, "app", f"v{i}") for i in range(30)])
    run_once(ctx)
    cursor = int(store.get_activation_cursor("trigger:order_thanks:event_id"))
    assert cursor == store.max_event_id()  # no order yet, but the views are behind us
    with store.transaction():
        store.insert_events([Event("order", t, pid, {"amount": i}, "dms", f"o{i}") for i in range(20)]
                            + [Event("page_view", t, pid, {}, "app", f"w{i}") for i in range(5)])
    run_once(ctx)  # 20 orders in batches of 7: three transactions
    assert len(memory.sent) == 20 and len({m.idempotency_key for m in memory.sent}) == 20
    last_order = max(e.id for e in store.events_of(pid, name="order"))
    assert int(store.get_activation_cursor("trigger:order_thanks:event_id")) >= last_order
    run_once(ctx)  # nothing new to fire; the feedback events written meanwhile are skipped past
    assert len(memory.sent) == 20
    assert int(store.get_activation_cursor("trigger:order_thanks:event_id")) == store.max_event_id()


def _one_send_through(setup, channel):
    """A project whose campaign sends through ``channel`` (a Channel class, registered by an in-memory plugin)
    to its one owner, after one activation pass: (store, context, clock)."""
    plugin = type("P", (), {"channel_class": channel, "register_channels": staticmethod(
        __import__("motorcade").hookimpl(lambda register: register(channel)))})
    project, ctx, clock = setup(rules(via=f'{channel.name} template "hello"'), channels=[plugin])
    (pid,) = people(project.store, 1)
    put_members(project.store, "owners", [pid], clock())
    run_once(ctx)
    return project.store, ctx, clock


def test_a_channel_that_answers_nothing_or_raises_leaves_the_send_for_a_retry(setup):
    from motorcade.activation.channel import Channel, ChannelCapabilities

    class Silent(Channel):
        name = "silent"
        capabilities = ChannelCapabilities(address_type="person", batch_size=10)
        calls = 0

        def send(self, batch):
            type(self).calls += 1
            if type(self).calls == 1:
                return []  # a buggy plugin: no result at all
            raise ConnectionError("gateway unreachable")

    store, ctx, clock = _one_send_through(setup, Silent)
    (send,) = store.list_sends()
    assert send["status"] == "failed" and "channel silent returned no result" in send["reason"]
    clock.advance(hours=1)
    run_once(ctx)
    (send,) = store.list_sends()
    assert send["status"] == "failed" and "ConnectionError: gateway unreachable" in send["reason"]
    assert send["attempts"] == 2


def test_a_channel_answering_a_state_outside_the_contract_is_a_failure_named_for_it(setup):
    """`DeliveryResult` takes only sent / transient / permanent: a plugin answering "error" fails its batch with
    that named (retried, then dead-lettered as retries run out), where the dispatcher used to read any other word
    as transient (the line-355/356 mutants of core/activation/dispatcher.py in tests/MUTANTS.md)."""
    from motorcade.activation.channel import Channel, ChannelCapabilities, DeliveryResult

    with pytest.raises(ValueError, match="'status' must be in"):
        DeliveryResult("k", "error")

    class Sloppy(Channel):
        name = "sloppy"
        capabilities = ChannelCapabilities(address_type="person", batch_size=10)

        def send(self, batch):
            return [DeliveryResult(m.idempotency_key, "error") for m in batch]

    store, _ctx, _clock = _one_send_through(setup, Sloppy)
    (send,) = store.list_sends()
    assert send["status"] == "failed" and "ValueError" in send["reason"] and "'status' must be in" in send["reason"]


def test_a_slow_worker_renews_its_claim_batch_by_batch_and_never_sends_a_row_it_lost(setup):
    memory = memory_channel_plugin(batch_size=2)
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    ids = people(store, 6)
    put_members(store, "owners", ids, clock())
    run_once(ctx, dispatch=False)
    slow = Dispatcher(ctx)
    claimed = slow.claim()
    assert len(claimed) == 6
    # the first batch goes out, then the provider stalls past the claim ...
    first, rest = claimed[:2], claimed[2:]
    slow.deliver(first)
    clock.advance(seconds=ctx.settings.claim_seconds + 1)
    # ... another worker takes over the expired claims and sends them
    other = Dispatcher(ActivationContext.for_project(project, clock=clock, worker_id="w2"))
    assert other.dispatch_due()["sent"] == 4
    # the slow worker resumes: it checks ownership before each batch and sends nothing twice
    assert slow.deliver(rest) == {"sent": 0, "failed": 0, "dead": 0}
    assert sorted(m.person_id for m in memory.sent) == ids and len(memory.sent) == 6


def test_event_triggers_tags_and_segments_wait_while_a_first_bulk_load_is_unfinished(setup):
    """A first bulk load removes its duplicates (and closes up ids) only at its end: nothing that keeps
    event ids or counts events may read them before."""
    from motorcade.segments import compute_segments
    from motorcade.tags.engine import compute_tags

    memory = memory_channel_plugin()
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory],
                                templates={"thanks.txt": "感谢订购 {{ event.model }}", "hello.txt": "hi"})
    store = project.store
    (vip,) = people(store, 1)
    store.write_tag_values([(vip, "value_tier", "vip")], tags=["value_tier"], calculator="t", calculator_version="1",
                           computed_at=clock())
    with store.transaction():
        store.insert_events([Event("order", clock() - dt.timedelta(minutes=20), vip, {"amount": 300000}, "dms", "o1")])
        store.conn.execute("DROP INDEX events_dedup")  # as a killed first bulk load leaves it
    assert not store.events_deduplicated()
    run_once(ctx)
    assert store.list_sends() == [] and store.get_activation_cursor("trigger:order_thanks:event_id") is None
    with pytest.raises(MotorcadeError, match="large first event load"):
        compute_tags(store, {}, as_of=clock())
    with pytest.raises(MotorcadeError, match="large first event load"):
        compute_segments(project, ["vip"], as_of=clock())
    store.ensure_event_indexes()  # what the next ingest does first
    run_once(ctx)
    assert [s["person_id"] for s in store.list_sends()] == [vip]


# -- attempts, claim sizing, Retry-After --------------------------------------------------------------


def test_attempts_count_requests_not_claims_that_expired_before_the_send(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])  # max_attempts = 3
    store = project.store
    (pid,) = people(store, 1)
    key = f"campaign:recall:20261123T0200Z:p{pid}:s0"
    ctx.registry.channels["memory"].obj = memory_channel_plugin("memory", answers={key: ["transient"]}).channel_class
    put_members(store, "owners", [pid], clock())
    run_once(ctx, dispatch=False)
    for worker in ("a", "b", "c", "d"):  # four workers claim it and die before sending anything
        doomed = Dispatcher(ActivationContext.for_project(project, clock=clock, worker_id=worker))
        assert len(doomed.claim()) == 1
        clock.advance(seconds=ctx.settings.claim_seconds + 1)
    assert store.get_send(key)["attempts"] == 0
    run_once(ctx)  # one real request, answered "transient"
    send = store.get_send(key)
    assert send["status"] == "failed" and send["attempts"] == 1
    assert send["reason"].startswith("transient (attempt 1)")


def test_claims_are_sized_to_the_channels_rate_so_they_do_not_expire_in_the_queue(setup):
    memory = memory_channel_plugin(batch_size=5, rate_limit_per_second=2)
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    ids = people(store, 300)
    put_members(store, "owners", ids, clock())
    run_once(ctx, dispatch=False)
    claimed = Dispatcher(ctx).claim()
    # claim_seconds = 60: at 2 requests a second of 5 messages, half the claim's life sends 300 ... but
    # claim_batch (200) is the most per transaction; with claim_seconds = 10 it is 2 * 5 * 5 = 50.
    assert len(claimed) == 200
    clock.advance(seconds=ctx.settings.claim_seconds + 1)
    short = ActivationContext.for_project(project, clock=clock, worker_id="w2")
    short.settings = attrs.evolve(short.settings, claim_seconds=10)
    claimed = Dispatcher(short).claim()
    requests = -(-len(claimed) // 5)
    assert len(claimed) == 50 and requests / 2 <= short.settings.claim_seconds / 2


def test_a_retry_after_beyond_the_cap_is_capped_and_flagged(setup):
    from motorcade.activation.channel import Channel, ChannelCapabilities, DeliveryResult

    class Busy(Channel):
        name = "busy"
        capabilities = ChannelCapabilities(address_type="person", batch_size=10)

        def send(self, batch):
            return [DeliveryResult(m.idempotency_key, "transient", detail="429 slow down",
                                   retry_after=365 * 86400) for m in batch]

    plugin = type("P", (), {"channel_class": Busy, "register_channels": staticmethod(
        __import__("motorcade").hookimpl(lambda register: register(Busy)))})
    project, ctx, clock = setup(rules(via='busy template "hello"'), channels=[plugin])
    store = project.store
    (pid,) = people(store, 1)
    put_members(store, "owners", [pid], clock())
    run_once(ctx)
    (send,) = store.list_sends()
    assert send["status"] == "failed"
    assert send["not_before"] - int(clock().timestamp()) == ctx.settings.retry_after_max_seconds == 3600
    assert "provider asked to wait 31536000 s; capped at 3600 s (retry_after_max_seconds)" in send["reason"]
    assert send["payload"]["retry_after_capped"] == 31536000


def test_an_enter_trigger_sees_the_first_change_reacts_to_entries_only_and_counts_what_it_fired(setup):
    memory = memory_channel_plugin()
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory], templates={"thanks.txt": "x", "hello.txt": "欢迎"})
    messages: list[str] = []
    ctx = attrs.evolve(ctx, log=messages.append)
    store = project.store
    first, second = people(store, 2)
    # passes before the segment ever changed must not skip its very first change
    assert process_segment_trigger(ctx, "welcome") == {"changes": 0, "fired": 0, "planned": 0}
    assert process_segment_trigger(ctx, "welcome") == {"changes": 0, "fired": 0, "planned": 0}
    put_members(store, "owners", [first], clock())
    assert process_segment_trigger(ctx, "welcome") == {"changes": 1, "fired": 1, "planned": 1}
    assert messages == ["trigger welcome: 1 segment changes, fired 1"]
    clock.advance(hours=1)
    put_members(store, "owners", [second], clock())  # the first person leaves, the second enters
    assert process_segment_trigger(ctx, "welcome") == {"changes": 2, "fired": 1, "planned": 1}
    assert sorted(s["person_id"] for s in store.list_sends(limit=100)) == sorted([first, second])


def test_an_event_trigger_pass_returns_and_logs_what_it_read_fired_and_planned(setup):
    clock = Clock(dt.datetime(2026, 11, 23, 12, 0, tzinfo=SH))
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory_channel_plugin()], clock=clock,
                                templates={"thanks.txt": "x", "hello.txt": "hi"})
    messages: list[str] = []
    ctx = attrs.evolve(ctx, log=messages.append)
    store = project.store
    vip, normal = people(store, 2)
    store.write_tag_values([(vip, "value_tier", "vip"), (normal, "value_tier", "normal")], tags=["value_tier"],
                           calculator="t", calculator_version="1", computed_at=clock())
    with store.transaction():
        store.insert_events([Event("order", clock() - dt.timedelta(minutes=5), pid, {"amount": amount}, "dms", key)
                             for pid, amount, key in ((vip, 300000, "o1"), (vip, 500, "o2"), (normal, 300000, "o3"))])
    assert process_event_trigger(ctx, "order_thanks") == {"events": 3, "fired": 1, "planned": 1}
    assert messages == ["trigger order_thanks: 3 events, fired 1, planned 1"]
    assert process_event_trigger(ctx, "order_thanks") == {"events": 0, "fired": 0, "planned": 0}


@pytest.mark.parametrize("n, more", [(3, None), (4, "... and 1 more"), (6, "... and 3 more")])
def test_dead_lettered_sends_are_logged_three_by_key_then_counted(setup, n, more):
    project, ctx, clock = setup(rules(via='memory template "bad.txt"'), channels=[memory_channel_plugin()],
                                templates={"bad.txt": "{{ 1/0 }}"})
    messages: list[str] = []
    ctx = attrs.evolve(ctx, log=messages.append)
    put_members(project.store, "owners", people(project.store, n), clock())
    assert plan_campaign(ctx, "recall", clock())["planned"] == n
    named = [m for m in messages if " dead-lettered: template: " in m]
    assert len(named) == 3 and all(m.startswith("campaign recall: send campaign:recall:") for m in named)
    counted = [m for m in messages if m.startswith("... and ")]
    assert counted == ([] if more is None else
                       [f"{more} sends dead-lettered by template errors (motorcade sends list --status dead)"])


@pytest.mark.parametrize("clause, window", [("", ["21:00", "09:00"]), ("quiet hours 22:30 to 07:15", ["22:30", "07:15"]),
                                            ("quiet hours off", None), ("transactional", None),
                                            ("transactional quiet hours 22:30 to 07:15", ["22:30", "07:15"])])
def test_the_planned_send_carries_the_quiet_hours_its_rule_obeys(setup, clause, window):
    project, ctx, clock = setup(RULES.format(send_to="all members", holdout=clause, via='memory template "hello"'),
                                guardrails='quiet_hours = { start = "21:00", end = "09:00" }',
                                channels=[memory_channel_plugin()])
    put_members(project.store, "owners", people(project.store, 1), clock())
    plan_campaign(ctx, "recall", clock())
    (send,) = project.store.list_sends()
    assert send["payload"]["quiet_hours"] == window


def test_a_new_segment_trigger_ignores_changes_older_than_its_look_back(setup):
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory_channel_plugin()],
                                templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    old, recent = people(store, 2)
    put_members(store, "owners", [old], clock() - dt.timedelta(hours=25))  # before the 24-hour look-back
    put_members(store, "owners", [old, recent], clock() - dt.timedelta(hours=23))
    assert process_segment_trigger(ctx, "welcome") == {"changes": 1, "fired": 1, "planned": 1}
    assert [s["person_id"] for s in store.list_sends()] == [recent]


@pytest.mark.parametrize("missing, listed, more", [(3, 3, ""), (4, 3, " (and 1 more)"), (2, 2, "")])
def test_a_rule_with_broken_templates_names_three_problems_and_counts_the_rest(setup, missing, listed, more):
    via = " fallback ".join(f'memory template "gone{i}"' for i in range(missing))
    project, ctx, clock = setup(rules(via=via), channels=[memory_channel_plugin()])
    put_members(project.store, "owners", people(project.store, 1), clock())
    with pytest.raises(MotorcadeError) as caught:
        plan_campaign(ctx, "recall", clock())
    message = caught.value.message
    assert message.startswith("campaign 'recall' is not planned: its templates are broken: ")
    assert sum(f"gone{i}" in message for i in range(missing)) == listed
    assert message.count(" (and ") == (1 if more else 0) and (not more or message.endswith(more))
    assert project.store.list_sends() == []


def test_a_step_whose_channel_is_not_installed_says_why_and_the_next_step_is_still_rendered(setup):
    project, ctx, clock = setup(rules(via='nosuch template "hello" fallback memory template "hello"'),
                                channels=[memory_channel_plugin()])
    put_members(project.store, "owners", people(project.store, 1), clock())
    plan_campaign(ctx, "recall", clock())
    (send,) = project.store.list_sends()
    missing, rendered = send["payload"]["steps"]
    # the registry's hint (what is installed), not only "no channel named ... is installed"
    assert missing["error"].startswith("channel 'nosuch' is not installed (installed: memory")
    assert "no channel named" not in missing["error"]
    assert rendered["channel"] == "memory" and rendered["body"] == "您好 客户0" and "error" not in rendered


def test_an_event_trigger_starts_at_its_first_pass_even_before_any_event(setup):
    """The first pass fixes where the trigger starts although no event exists yet: an order loaded later with a
    time before the look-back (a late import) is still after the trigger's start, and fires."""
    project, ctx, clock = setup(TRIGGER_RULES.replace("if in segment vip\n", "").replace("wait 10 minutes\n", ""),
                                channels=[memory_channel_plugin()], templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    (pid,) = people(store, 1)
    assert process_event_trigger(ctx, "order_thanks") == {"events": 0, "fired": 0, "planned": 0}
    assert store.get_activation_cursor("trigger:order_thanks:event_id") == "0"
    with store.transaction():
        store.insert_events([Event("order", clock() - dt.timedelta(days=3), pid, {"amount": 200000}, "dms", "late")])
    assert process_event_trigger(ctx, "order_thanks") == {"events": 1, "fired": 1, "planned": 1}


def test_an_event_trigger_cursor_is_an_event_id_never_a_person_id(setup):
    project, ctx, clock = setup(TRIGGER_RULES.replace("if in segment vip\n", "").replace("wait 10 minutes\n", ""),
                                channels=[memory_channel_plugin()], templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    *_, other, pid = people(store, 9)  # person ids above every event id
    order = Event("order", clock() - dt.timedelta(minutes=5), pid, {"amount": 200000}, "dms", "o1")
    with store.transaction():
        store.insert_events([order])
    last_event = store.max_event_id()
    assert process_event_trigger(ctx, "order_thanks")["fired"] == 1
    assert int(store.get_activation_cursor("trigger:order_thanks:event_id")) == last_event < pid
    with store.transaction():
        store.insert_events([attrs.evolve(order, person_id=other, dedup_key="o2")])
    assert process_event_trigger(ctx, "order_thanks")["fired"] == 1


def test_a_dead_letter_reason_keeps_4000_characters_and_its_failed_event_500(setup):
    # five steps that each fail with a long error (a template error is cut at 1,000 characters): over 4,000 joined
    via = " fallback ".join(f'memory template "long{i}"' for i in range(5))
    project, ctx, clock = setup(rules(via=via), channels=[memory_channel_plugin()],
                                templates={f"long{i}.txt": '{{ [].index("x" * 3000) }}' for i in range(5)})
    store = project.store
    (pid,) = people(store, 1)
    put_members(store, "owners", [pid], clock())
    plan_campaign(ctx, "recall", clock())
    (send,) = store.list_sends()
    errors = [step["error"] for step in send["payload"]["steps"]]
    assert len("; ".join(errors)) > 4000
    assert send["status"] == "dead" and send["reason"] == "; ".join(errors)[:4000]
    (failed,) = store.events_of(pid, name="failed")
    assert failed.properties["detail"] == send["reason"][:500]


def test_a_new_segment_trigger_whose_changes_are_all_older_than_its_look_back_never_fires_them(setup):
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory_channel_plugin()],
                                templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    put_members(store, "owners", people(store, 2), clock() - dt.timedelta(hours=30))
    assert process_segment_trigger(ctx, "welcome") == {"changes": 0, "fired": 0, "planned": 0}
    # the first pass skipped past them for good: the next pass does not read them as new
    assert process_segment_trigger(ctx, "welcome") == {"changes": 0, "fired": 0, "planned": 0}
    assert store.list_sends() == []


def test_a_segment_trigger_fires_at_the_time_of_the_change_not_of_the_pass(setup):
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory_channel_plugin()],
                                templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    entered = clock() - dt.timedelta(hours=2)
    put_members(store, "owners", people(store, 1), entered)
    assert process_segment_trigger(ctx, "welcome")["fired"] == 1
    (send,) = store.list_sends()
    assert dt.datetime.fromisoformat(send["payload"]["fired_at"]) == entered


def test_a_store_scoped_segment_trigger_skips_other_stores_people_and_goes_on(setup):
    scoped = TRIGGER_RULES.replace("segment owners {", 'segment owners {\n  scope store "SH01"').replace(
        "trigger welcome {", 'trigger welcome {\n  scope store "SH01"')
    project, ctx, clock = setup(scoped,
                                channels=[memory_channel_plugin()], templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    other, own = people(store, 2)
    with store.transaction():
        store.set_relation(other, "selling_store", "SH02")
        store.set_relation(own, "selling_store", "SH01")
    put_members(store, "owners", [other, own], clock())
    assert process_segment_trigger(ctx, "welcome") == {"changes": 2, "fired": 1, "planned": 1}
    assert [s["person_id"] for s in store.list_sends()] == [own]


def test_an_anonymous_event_is_counted_and_skipped_and_the_batch_goes_on(setup):
    project, ctx, clock = setup(TRIGGER_RULES.replace("if in segment vip\n", "").replace("wait 10 minutes\n", ""),
                                channels=[memory_channel_plugin()], templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    (pid,) = people(store, 1)
    at = clock() - dt.timedelta(minutes=5)
    with store.transaction():  # the anonymous order comes first in id order
        store.insert_events([Event("order", at, None, {"amount": 200000}, "dms", "anonymous"),
                             Event("order", at, pid, {"amount": 200000}, "dms", "known")])
    assert process_event_trigger(ctx, "order_thanks") == {"events": 2, "fired": 1, "planned": 1}
    assert [s["person_id"] for s in store.list_sends()] == [pid]


def test_a_holdout_send_is_recorded_without_rendering_its_message(setup):
    project, ctx, clock = setup(rules(holdout="holdout 50%"), channels=[memory_channel_plugin()])
    put_members(project.store, "owners", people(project.store, 20), clock())
    plan_campaign(ctx, "recall", clock())
    arms = {"holdout": 0, "treatment": 0}
    for send in project.store.list_sends():
        arms[send["payload"]["arm"]] += 1
        (step,) = send["payload"]["steps"]
        if send["payload"]["arm"] == "holdout":
            assert step == {"channel": "memory", "template": "hello", "error": "holdout: not rendered"}
        else:
            assert step["body"].startswith("您好 客户") and "error" not in step
    assert arms["holdout"] and arms["treatment"]


def test_a_new_segment_trigger_takes_a_change_exactly_at_the_start_of_its_look_back(setup):
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory_channel_plugin()],
                                templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    put_members(store, "owners", people(store, 1), clock() - dt.timedelta(hours=ctx.settings.trigger_lookback_hours))
    assert process_segment_trigger(ctx, "welcome") == {"changes": 1, "fired": 1, "planned": 1}


def test_a_store_scoped_event_trigger_skips_other_stores_people_and_goes_on(setup):
    scoped = TRIGGER_RULES.replace("if in segment vip\n", "").replace("wait 10 minutes\n", "").replace(
        "trigger order_thanks {", 'trigger order_thanks {\n  scope store "SH01"')
    project, ctx, clock = setup(scoped, channels=[memory_channel_plugin()], templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    other, own = people(store, 2)
    at = clock() - dt.timedelta(minutes=5)
    with store.transaction():
        store.set_relation(other, "selling_store", "SH02")
        store.set_relation(own, "selling_store", "SH01")
        store.insert_events([Event("order", at, pid, {"amount": 200000}, "dms", f"o{pid}") for pid in (other, own)])
    assert process_event_trigger(ctx, "order_thanks") == {"events": 2, "fired": 1, "planned": 1}
    assert [s["person_id"] for s in store.list_sends()] == [own]


def test_a_campaign_whose_channel_is_configured_but_not_loaded_is_not_planned_and_keeps_its_slot(setup):
    project, ctx, clock = setup(rules(via='wecom template "hello"'), channels=[memory_channel_plugin()])
    ctx = attrs.evolve(ctx, channel_settings={"wecom": {"corp_id": "ww1"}})  # [channels.wecom], no plugin for it
    put_members(project.store, "owners", people(project.store, 1), clock())
    with pytest.raises(MotorcadeError) as caught:
        plan_campaign(ctx, "recall", clock())
    assert caught.value.message.startswith("campaign 'recall' is not planned: channel 'wecom' is not loaded: "
                                           "motorcade.toml configures [channels.wecom]")
    assert "the slot stays due" in caught.value.hint
    assert project.store.list_sends() == [] and project.store.get_run("campaign:recall:20261123T0200Z") is None


def test_a_segment_change_that_does_not_fire_is_skipped_and_the_pass_goes_on(setup):
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory_channel_plugin()],
                                templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    again, new = people(store, 2)
    put_members(store, "owners", [again], clock())
    assert process_segment_trigger(ctx, "welcome")["fired"] == 1
    clock.advance(days=1)
    put_members(store, "owners", [], clock())
    put_members(store, "owners", [again, new], clock())  # `again` re-enters within 30 days: no firing, `new` fires
    assert process_segment_trigger(ctx, "welcome") == {"changes": 3, "fired": 1, "planned": 1}
    assert sorted(s["person_id"] for s in store.list_sends()) == [again, new]


def test_an_event_trigger_with_a_batch_of_one_handles_every_event_one_transaction_each(setup):
    project, ctx, clock = setup(TRIGGER_RULES.replace("if in segment vip\n", "").replace("wait 10 minutes\n", "")
                                .replace("on order where amount > 100000", "on order  reenter always"),
                                channels=[memory_channel_plugin()], templates={"thanks.txt": "x", "hello.txt": "hi"})
    ctx.settings = type(ctx.settings)(**{**attrs.asdict(ctx.settings), "trigger_batch": 1})
    store = project.store
    (pid,) = people(store, 1)
    with store.transaction():
        store.insert_events([Event("order", clock() - dt.timedelta(minutes=5), pid, {"amount": i}, "dms", f"o{i}")
                             for i in range(3)])
    assert process_event_trigger(ctx, "order_thanks") == {"events": 3, "fired": 3, "planned": 3}


def test_a_planned_send_names_the_first_step_of_its_chain_until_a_worker_chooses(setup):
    project, ctx, clock = setup(rules(via='memory template "hello" fallback backup template "other"'),
                                channels=[memory_channel_plugin(), memory_channel_plugin("backup")],
                                templates={"hello.txt": "hi", "other.txt": "ho"})
    put_members(project.store, "owners", people(project.store, 1), clock())
    plan_campaign(ctx, "recall", clock())
    (send,) = project.store.list_sends()
    assert (send["channel"], send["template"], send["step"]) == ("memory", "hello", 0)


def test_a_template_that_calls_track_gets_a_short_link_per_send_and_the_link_is_kept(setup):
    """The renderer hands a template its track()/open_pixel() helpers only when the template reads them
    (mutant: handed out only to templates that do not read them)."""
    template = "您好 {{ person.name }}，预约 {{ track('https://dealer.example/b') }}"
    project, ctx, clock = setup(rules(), channels=[memory_channel_plugin()], templates={"hello.txt": template})
    ctx.settings = attrs.evolve(ctx.settings, public_url="https://go.example.cn")
    store = project.store
    put_members(store, "owners", people(store, 2), clock())
    assert plan_campaign(ctx, "recall", clock())["planned"] == 2
    codes = set()
    for send in store.list_sends():
        assert send["status"] == "planned"
        (step,) = send["payload"]["steps"]
        (link,) = step["links"]
        assert link["kind"] == "link" and link["target"] == "https://dealer.example/b"
        assert step["body"].endswith(f"，预约 https://go.example.cn/s/{link['code']}")
        assert step["params"] == {"link": f"https://go.example.cn/s/{link['code']}", "link_code": link["code"]}
        assert [x["code"] for x in store.links_of_send(send["idempotency_key"])] == [link["code"]]
        codes.add(link["code"])
    assert len(codes) == 2  # one code per send


def test_a_template_removed_after_its_rule_was_checked_fails_its_step_only_and_the_fallback_still_renders(setup):
    """One renderer serves a whole pass (`run_once`), so a rule is checked once; a template that goes missing
    afterwards fails the steps that need it (dead-lettered with the reason) while the other steps render with
    the full context, and the campaign is planned. Written for the mutants of the renderer's context-names
    lookup (planner.py lines 150-156, 188): the TemplateError not caught, the loop going on after the unknown
    step, None stored for a known set (and the reverse), `or` as `and`."""
    project, ctx, clock = setup(rules(via='memory template "gone" fallback backup template "hello"'),
                                channels=[memory_channel_plugin(), memory_channel_plugin("backup")],
                                templates={"gone.txt": "再见", "hello.txt": "您好 {{ person.name }}"})
    store = project.store
    put_members(store, "owners", people(store, 1), clock())
    renderer = Renderer(ctx)
    renderer.require_sound_templates(ctx.rule_set.campaigns["recall"])
    (project.directory / "templates" / "gone.txt").unlink()
    assert plan_campaign(ctx, "recall", clock(), renderer=renderer)["planned"] == 1
    (send,) = store.list_sends()
    gone, hello = send["payload"]["steps"]
    assert gone["template_failed"]
    assert gone["error"].startswith("template: template 'gone' for channel memory not found")
    assert send["reason"] == gone["error"]
    assert hello["channel"] == "backup" and hello["body"] == "您好 客户0" and "error" not in hello


def test_planning_a_campaign_reads_its_audience_in_batches_never_person_by_person(setup):
    """A campaign's audience is read a batch of people at a time (BatchReads): on PostgreSQL every read is a
    round trip, and reading person by person made a 3,000-person campaign take 40 s. No member is read
    through the store's per-person reads, and the number of queries does not grow with the audience
    (mutants of planner.py line 287-290: a batch started never, for every person, after the first person,
    or holding nobody)."""
    project, ctx, clock = setup(rules(), channels=[memory_channel_plugin()])
    store = project.store
    ids = people(store, 600)
    put_members(store, "owners", ids, clock())
    one_by_one = []
    for name in ("get_person", "identifiers_of", "tags_of", "ownerships_of", "relations_of"):
        def counted(person_id, *args, _read=getattr(store, name), _name=name, **kwargs):
            one_by_one.append((_name, person_id))
            return _read(person_id, *args, **kwargs)
        setattr(store, name, counted)
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        assert plan_campaign(ctx, "recall", clock())["planned"] == 600
    finally:
        store.conn.set_trace_callback(None)
    assert one_by_one == []
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) < 60, f"{len(reads)} queries to plan 600 sends"
    assert {s["payload"]["steps"][0]["body"] for s in store.list_sends(limit=1000)} == {
        f"您好 客户{i}" for i in range(600)}


def test_a_full_batch_of_events_moves_the_cursor_to_its_last_event_id_never_a_person_id(setup):
    """With a full batch (``trigger_batch`` events) the next batch starts after the batch's last event id; a
    person id (mutant ``events[-1][1]``; here above every event id) would skip the events in between."""
    project, ctx, clock = setup(TRIGGER_RULES.replace("if in segment vip\n", "").replace("wait 10 minutes\n", ""),
                                channels=[memory_channel_plugin()], templates={"thanks.txt": "x", "hello.txt": "hi"})
    ctx.settings = attrs.evolve(ctx.settings, trigger_batch=1)
    store = project.store
    *_, other, pid = people(store, 9)  # person ids above every event id
    order = Event("order", clock() - dt.timedelta(minutes=5), pid, {"amount": 200000}, "dms", "o1")
    with store.transaction():
        store.insert_events([order])
    assert process_event_trigger(ctx, "order_thanks")["fired"] == 1
    assert int(store.get_activation_cursor("trigger:order_thanks:event_id")) == store.max_event_id() < pid
    with store.transaction():
        store.insert_events([attrs.evolve(order, person_id=other, dedup_key="o2")])
    assert process_event_trigger(ctx, "order_thanks")["fired"] == 1
    assert sorted(s["person_id"] for s in store.list_sends()) == [other, pid]


def test_a_trigger_firing_is_recorded_as_a_planned_run_of_one_person(setup):
    """Each firing is a run of its own (`motorcade runs` lists it): one person in its audience and snapshot
    (mutants of planner.py line 331: audience_size 0 or 2)."""
    project, ctx, clock = setup(TRIGGER_RULES.replace("if in segment vip\n", "").replace("wait 10 minutes\n", ""),
                                channels=[memory_channel_plugin()], templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    (pid,) = people(store, 1)
    fired_at = clock() - dt.timedelta(minutes=5)
    with store.transaction():
        store.insert_events([Event("order", fired_at, pid, {"amount": 200000}, "dms", "o1")])
    assert process_event_trigger(ctx, "order_thanks")["fired"] == 1
    (send,) = store.list_sends()
    run = store.get_run(send["run_id"])
    assert (run["origin_kind"], run["origin"], run["status"], run["audience_size"]) == (
        "trigger", "order_thanks", "planned", 1)
    assert store.audience_snapshot(send["run_id"]) == {pid: "treatment"}


def test_a_campaign_not_in_the_rules_is_refused_naming_the_revision_as_sends_list_shows_it(setup):
    """The message names the rules' revision by its first 12 characters, as `motorcade sends list` shows a
    send's revision (mutants of planner.py line 252: 11 or 13 characters)."""
    from motorcade.activation.planner import PlanningError

    project, ctx, clock = setup(rules(), channels=[memory_channel_plugin()])
    with pytest.raises(PlanningError) as caught:
        plan_campaign(ctx, "recal", clock())
    assert caught.value.message == f"no campaign named 'recal' in the rules (revision {ctx.revision[:12]})"
    assert len(ctx.revision) == 64 and project.store.list_sends() == []


def test_a_rule_whose_templates_have_only_warnings_is_planned(setup):
    """`motorcade check`'s warnings (here: an SMS that needs two segments, each billed) do not stop a rule; only
    its errors do (mutant of planner.py line 130: `severity >= "error"` takes the warnings for errors)."""
    from motorcade.activation.check import check_project

    text = "尊敬的车主" * 16  # 80 characters: two SMS segments
    project, ctx, clock = setup(rules(via='sms template "hello"'),
                                channels=[memory_channel_plugin("sms", address_type="phone")],
                                templates={"hello.txt": text})
    store = project.store
    (pid,) = people(store, 1)
    add_identifier(store, pid, "phone", "+8613800000000")
    put_members(store, "owners", [pid], clock())
    assert [(p.template, p.severity) for p in check_project(project)] == [("hello", "warning")]
    assert plan_campaign(ctx, "recall", clock())["planned"] == 1
    (send,) = store.list_sends()
    assert send["status"] == "planned" and send["payload"]["steps"][0]["body"] == text


def test_a_segment_trigger_cursor_is_a_change_id_never_a_person_id(setup):
    """The high-water mark of a segment trigger is the last change id it read (mutant of planner.py line 439:
    the changes' person ids, here above every change id, which would skip the changes in between)."""
    project, ctx, clock = setup(TRIGGER_RULES, channels=[memory_channel_plugin()],
                                templates={"thanks.txt": "x", "hello.txt": "hi"})
    store = project.store
    *_, other, pid = people(store, 9)  # person ids above every change id
    put_members(store, "owners", [pid], clock())
    assert process_segment_trigger(ctx, "welcome")["fired"] == 1
    cursor = int(store.get_activation_cursor("trigger:welcome:segment_change_id"))
    assert cursor == store.last_segment_change_id("owners") < pid
    clock.advance(minutes=1)
    put_members(store, "owners", [pid, other], clock())
    assert process_segment_trigger(ctx, "welcome") == {"changes": 1, "fired": 1, "planned": 1}
    assert sorted(s["person_id"] for s in store.list_sends()) == [other, pid]

# -- the dispatcher: what its mutation run (issue #24) found no test for ---------------------------------------


def channel_plugin(cls):
    """A plugin object registering the channel class ``cls`` (for the fixture's ``channels=[...]``)."""
    return type("P", (), {"channel_class": cls, "register_channels": staticmethod(
        __import__("motorcade").hookimpl(lambda register: register(cls)))})


def test_backoff_keeps_half_of_any_delay_fixed_also_odd_and_fractional_ones():
    """Equal jitter waits between half the delay and all of it, whatever the base: the `delay // 2` mutant
    (line 42) retries a 1 s delay after 0 s, against the docstring's "never zero"."""

    class Lowest:
        def uniform(self, low, high):
            return low

    class Highest:
        def uniform(self, low, high):
            return high

    for base in (1, 3, 0.5, 7.5):
        for attempts in (0, 1, 2, 3):  # 0 (no attempt yet) waits as long as the first (a mutant of line 40: half)
            full = min(20, base * 2 ** max(0, attempts - 1))
            assert backoff_seconds(attempts, base=base, cap=20, rng=Lowest()) == full / 2
            assert backoff_seconds(attempts, base=base, cap=20, rng=Highest()) == full


def test_the_run_reports_what_it_claimed_sent_retried_and_dead_lettered(setup):
    """`run_once(...).dispatched` counts every outcome from zero (mutants of lines 360 and 383 miscounted)."""
    key = "campaign:recall:20261123T0200Z:p{}:s0"
    project, ctx, clock = setup(rules(), channels=[memory_channel_plugin()])
    store = project.store
    ok, flaky, rejected = people(store, 3)
    ctx.registry.channels["memory"].obj = memory_channel_plugin("memory", answers={
        key.format(flaky): ["transient", "sent"], key.format(rejected): ["permanent"]}).channel_class
    put_members(store, "owners", [ok, flaky, rejected], clock())
    assert run_once(ctx).dispatched == {"claimed": 3, "sent": 1, "failed": 1, "dead": 1}
    clock.advance(hours=1)
    assert run_once(ctx).dispatched == {"claimed": 1, "sent": 1, "failed": 0, "dead": 0}
    assert run_once(ctx).dispatched == {"claimed": 0, "sent": 0, "failed": 0, "dead": 0}


def test_every_result_of_a_batch_is_recorded_and_long_provider_answers_are_cut_where_documented(setup):
    """A dead letter in the middle of a batch does not keep the rest of it from being recorded (the `break`
    mutant of line 362 left them claimed); reasons keep 4,000 characters of the provider's answer and the
    `failed` event 500 (lines 359, 361, 375)."""

    class Verbose(Channel):
        name = "verbose"
        capabilities = ChannelCapabilities(address_type="person", batch_size=10)

        def send(self, batch):
            answers = ["permanent", "transient", "sent"]
            return [DeliveryResult(m.idempotency_key, status, detail=status[0].upper() * 5000,
                                   provider_message_id="id" if status == "sent" else None)
                    for m, status in zip(batch, answers)]

    project, ctx, clock = setup(rules(via='verbose template "hello"'), channels=[channel_plugin(Verbose)])
    store = project.store
    rejected, flaky, ok = people(store, 3)
    put_members(store, "owners", [rejected, flaky, ok], clock())
    assert run_once(ctx).dispatched == {"claimed": 3, "sent": 1, "failed": 1, "dead": 1}
    sends = {s["person_id"]: s for s in store.list_sends()}
    assert sends[rejected]["status"] == "dead" and sends[rejected]["reason"] == ("permanent: " + "P" * 5000)[:4000]
    (failed,) = store.events_of(rejected, name="failed")
    assert failed.properties["detail"] == "P" * 500
    assert sends[flaky]["status"] == "failed"
    assert sends[flaky]["reason"] == ("transient (attempt 1): " + "T" * 5000)[:4000]
    assert sends[ok]["status"] == "sent" and sends[ok]["provider_message_id"] == "id"


def test_a_channel_that_fails_to_close_does_not_hide_the_runs_outcome(setup):
    """close() raising after the pass (a provider session already gone) is swallowed: the report of what
    was sent comes back (the mutant of line 105 let the error escape from run_once)."""
    closed = []

    class Leaky(Channel):
        name = "leaky"
        capabilities = ChannelCapabilities(address_type="person", batch_size=10)

        def send(self, batch):
            return [DeliveryResult(m.idempotency_key, "sent") for m in batch]

        def close(self):
            closed.append(True)
            raise ConnectionResetError("session already closed by the provider")

    project, ctx, clock = setup(rules(via='leaky template "hello"'), channels=[channel_plugin(Leaky)])
    store = project.store
    put_members(store, "owners", people(store, 2), clock())
    assert run_once(ctx).dispatched["sent"] == 2
    assert closed == [True] and set(statuses(store).values()) == {"sent"}


def test_a_service_only_channel_takes_transactional_sends_and_marketing_falls_back(setup):
    """A channel with `marketing_allowed = False` (WeChat OA templates) is skipped for marketing, with the
    reason in the fallback, and used for transactional sends (the mutant of line 175 swapped the two)."""
    service = memory_channel_plugin("service", marketing_allowed=False)
    memory = memory_channel_plugin()
    text = """
segment owners { where profile.is_owner = true }
campaign promo { audience owners  schedule daily at 10:00  via service template "hello" fallback memory template "hello" }
campaign notice { audience owners  schedule daily at 10:00  via service template "hello" fallback memory template "hello"
  transactional }
"""
    project, ctx, clock = setup(text, channels=[service, memory])
    store = project.store
    (pid,) = people(store, 1)
    put_members(store, "owners", [pid], clock())
    run_once(ctx)
    by_origin = {s["origin"]: s for s in store.list_sends()}
    assert by_origin["promo"]["status"] == "sent" and by_origin["promo"]["channel"] == "memory"
    assert by_origin["promo"]["reason"] == ("fallback: service -> memory "
                                            "(service: service notifications only, this send is marketing)")
    assert by_origin["notice"]["status"] == "sent" and by_origin["notice"]["channel"] == "service"
    assert [m.metadata["origin"] for m in service.sent] == ["notice"]
    assert [m.metadata["origin"] for m in memory.sent] == ["promo"]


def test_a_channel_that_takes_one_message_a_request_gets_claims_its_rate_can_send_in_half_a_claim(setup):
    """batch_size 1 at 2 requests a second with claim_seconds = 10: 10 messages a claim, not 20 (the mutant of
    line 204 counted at least two messages a request)."""
    project, ctx, clock = setup(rules(), channels=[memory_channel_plugin(batch_size=1, rate_limit_per_second=2)])
    store = project.store
    put_members(store, "owners", people(store, 30), clock())
    run_once(ctx, dispatch=False)
    ctx.settings = attrs.evolve(ctx.settings, claim_seconds=10)
    assert len(Dispatcher(ctx).claim()) == 10


def test_a_channel_at_its_claim_quota_does_not_hold_back_other_channels_sends(setup):
    """The rate-limited channel's rows sort first; once its quota is claimed the claim goes on to the other
    channel's rows (the `break` mutant of line 227 stopped there and left them for a later claim)."""
    slow = memory_channel_plugin("slow", batch_size=1, rate_limit_per_second=1)
    text = """
segment owners { where profile.is_owner = true }
campaign a_slow { audience owners  schedule daily at 10:00  via slow template "hello" }
campaign b_fast { audience owners  schedule daily at 10:00  via memory template "hello" }
"""
    project, ctx, clock = setup(text, channels=[slow, memory_channel_plugin()])
    store = project.store
    put_members(store, "owners", people(store, 8), clock())
    run_once(ctx, dispatch=False)
    ctx.settings = attrs.evolve(ctx.settings, claim_seconds=10)  # slow: 1 request a second for 5 s
    claimed = Dispatcher(ctx).claim()
    assert sorted(s["origin"] for s in claimed) == ["a_slow"] * 5 + ["b_fast"] * 8


def test_dispatch_due_makes_at_most_max_rounds_claims(setup):
    """`max_rounds=N` is N claims of `claim_batch` rows (mutants of lines 384-386 made one more or fewer)."""
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    put_members(store, "owners", people(store, 7), clock())
    run_once(ctx, dispatch=False)
    ctx.settings = attrs.evolve(ctx.settings, claim_batch=2)
    dispatcher = Dispatcher(ctx)
    assert dispatcher.dispatch_due(max_rounds=1) == {"claimed": 2, "sent": 2, "failed": 0, "dead": 0}
    assert dispatcher.dispatch_due(max_rounds=2) == {"claimed": 4, "sent": 4, "failed": 0, "dead": 0}
    assert dispatcher.dispatch_due() == {"claimed": 1, "sent": 1, "failed": 0, "dead": 0}
    assert len(memory.sent) == 7


class RecordingStop(threading.Event):
    """`serve`'s stop event, keeping the timeout of every wait on it (the rate limiter waits on it)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(timeout)


def test_a_rate_limited_channel_gets_its_requests_no_faster_than_its_limit(setup):
    """5 requests a second, one message each: the fourth request goes out 0.6 s after the first at the
    earliest (the mutant of line 284 counted each request as none and sent them all at once), and no pause
    is longer than one interval (one request is one slot: the `wait(2)` mutant paused 0.4 s). Run as `serve`
    runs it, with a stop event (the wait is the event's: the mutant of line 68 waited for hours)."""
    times: list[float] = []

    class Paced(Channel):
        name = "paced"
        capabilities = ChannelCapabilities(address_type="person", batch_size=1, rate_limit_per_second=5)

        def send(self, batch):
            times.append(time.monotonic())
            return [DeliveryResult(m.idempotency_key, "sent") for m in batch]

    project, ctx, clock = setup(rules(via='paced template "hello"'), channels=[channel_plugin(Paced)])
    store = project.store
    put_members(store, "owners", people(store, 4), clock())
    run_once(ctx, dispatch=False)
    ctx.stop = RecordingStop()
    watchdog = threading.Timer(10, ctx.stop.set)  # a pacing wait that never ends fails the test, not hangs it
    watchdog.start()
    started = time.monotonic()
    try:
        assert Dispatcher(ctx).dispatch_due()["sent"] == 4
    finally:
        watchdog.cancel()
    assert len(times) == 4 and times[-1] - started >= 3 / 5
    # each pause runs to the previous request's start + 0.2 s, and the clock is past that start already
    assert ctx.stop.waits and max(ctx.stop.waits) <= 1 / 5 + 0.001


@pytest.fixture
def stoppable(setup):
    """A project whose channel `hang` (one message a request) signals `entered` when a request starts and
    answers `sent` only when `answer` is set (or after 5 s); the context has a stop event, a log and a
    grace of 0.2 s. Returns (project, ctx, entered, answer, log)."""
    entered, answer = threading.Event(), threading.Event()

    class Hang(Channel):
        name = "hang"
        capabilities = ChannelCapabilities(address_type="person", batch_size=1)

        def send(self, batch):
            entered.set()
            answer.wait(5)
            return [DeliveryResult(m.idempotency_key, "sent") for m in batch]

    project, ctx, clock = setup(rules(via='hang template "hello"'), channels=[channel_plugin(Hang)])
    log: list[str] = []
    ctx.stop, ctx.log = threading.Event(), log.append
    ctx.settings = attrs.evolve(ctx.settings, stop_grace_seconds=0.2)
    yield project, ctx, entered, answer, log
    answer.set()


def test_a_stop_during_a_hanging_request_leaves_that_batch_claimed_and_gives_the_others_back(stoppable):
    """In-process version of tests/test_activation_shutdown.py (whose `serve` subprocess coverage does not
    see): the batch in flight may have reached the provider, so it stays claimed with its attempt counted and
    is re-sent with the same key once its claim expires; the batches not started are released, with no
    attempt. Mutants: line 291 (`index + 0`, `index - 1`: the wrong batches released), 304 (`stop is not
    None`: no stop noticed while the provider hangs), 319 (`done.wait` negated: a slow answer read as none)."""
    project, ctx, entered, answer, log = stoppable
    store = project.store
    ids = people(store, 3)
    put_members(store, "owners", ids, ctx.now())
    run_once(ctx, dispatch=False)
    log.clear()  # the planner's line
    dispatcher = Dispatcher(ctx)
    claimed = dispatcher.claim()
    assert len(claimed) == 3
    threading.Thread(target=lambda: entered.wait(5) and ctx.stop.set(), daemon=True).start()
    assert dispatcher.deliver(claimed) == {"sent": 0, "failed": 0, "dead": 0}
    assert ctx.stop.is_set()
    # the request still hanging cannot keep the process from exiting (the mutant of line 317 made its thread
    # a non-daemon one: `serve` would wait for the provider's own timeout after SIGTERM)
    hanging = [t for t in threading.enumerate() if t.name == "motorcade-send"]
    assert hanging and all(t.daemon for t in hanging)
    sends = {s["idempotency_key"]: s for s in store.list_sends()}
    first, *rest = [sends[s["idempotency_key"]] for s in claimed]
    assert (first["status"], first["claimed_by"], first["attempts"]) == ("claimed", "w1", 1)
    assert [(s["status"], s["claimed_by"], s["attempts"]) for s in rest] == [("planned", None, 0)] * 2
    assert log == ["stopping: 1 sends of channel hang still in flight after 0.2 s stay claimed (re-sent with "
                   "the same key when the claim expires)", "stopping: released 2 claimed sends that were not sent yet"]


def test_a_provider_slower_than_the_stop_grace_is_waited_for_while_no_stop_is_asked(stoppable):
    """The grace period counts from a stop, not from the request: an answer after 0.5 s (grace 0.2 s) is
    recorded (mutants of lines 319 and 320 abandoned it or read it as no answer)."""
    project, ctx, entered, answer, log = stoppable
    store = project.store
    put_members(store, "owners", people(store, 1), ctx.now())
    threading.Thread(target=lambda: entered.wait(5) and (time.sleep(0.5), answer.set()), daemon=True).start()
    assert run_once(ctx).dispatched["sent"] == 1
    assert set(statuses(store).values()) == {"sent"} and not [line for line in log if "stopping" in line]


def test_a_claim_that_guard_rails_stopped_entirely_is_followed_by_the_next_due_rows_in_the_same_pass(setup):
    """Two opted-out people fill the first claim (claim_batch 2) and nothing is claimed; more rows are due, so
    the pass goes on and sends them (the mutant of line 390 looked for due rows with LIMIT 0 and stopped)."""
    memory = memory_channel_plugin()
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    ids = people(store, 5)
    with store.transaction():
        for pid in ids[:2]:  # their keys sort first: the first claim holds only them
            store.set_consent(Consent(pid, "*", False, clock(), source="crm"))
    put_members(store, "owners", ids, clock())
    run_once(ctx, dispatch=False)
    ctx.settings = attrs.evolve(ctx.settings, claim_batch=2)
    assert Dispatcher(ctx).dispatch_due() == {"claimed": 3, "sent": 3, "failed": 0, "dead": 0}
    assert sorted(m.person_id for m in memory.sent) == ids[2:]


def test_the_run_summarises_guard_rail_stops_one_line_per_rule(setup):
    """`report.stopped` counts sends per status and rule, without the time a deferral runs to (mutants of
    line 238 kept only that time, or dropped the reason)."""
    clock = Clock(dt.datetime(2026, 11, 23, 22, 30, tzinfo=SH))
    text = rules().replace("daily at 10:00", "daily at 22:00")
    project, ctx, clock = setup(text, guardrails='quiet_hours = { start = "21:00", end = "09:00" }',
                                channels=[memory_channel_plugin()], clock=clock)
    store = project.store
    ids = people(store, 3)
    with store.transaction():
        store.set_consent(Consent(ids[0], "*", False, clock(), source="crm"))
    put_members(store, "owners", ids, clock())
    assert run_once(ctx).stopped == {"deferred: quiet_hours: 21:00-09:00 Asia/Shanghai": 2,
                                     "suppressed: consent: opted out of every channel": 1}


def test_a_channel_that_raises_while_serve_runs_it_fails_the_batch_with_its_own_error(setup):
    """Under `serve` (a stop event) the request runs in a thread that hands the plugin's exception back: the
    send is a transient failure naming it (the mutant of line 312 lost it and reported a KeyError)."""

    class Broken(Channel):
        name = "broken"
        capabilities = ChannelCapabilities(address_type="person", batch_size=10)

        def send(self, batch):
            raise ConnectionError("gateway unreachable")

    project, ctx, clock = setup(rules(via='broken template "hello"'), channels=[channel_plugin(Broken)])
    store = project.store
    put_members(store, "owners", people(store, 1), clock())
    ctx.stop = threading.Event()
    assert run_once(ctx).dispatched == {"claimed": 1, "sent": 0, "failed": 1, "dead": 0}
    (send,) = store.list_sends()
    assert send["status"] == "failed"
    assert send["reason"] == "transient (attempt 1): channel broken raised ConnectionError: gateway unreachable"


def test_a_stop_waits_up_to_the_grace_for_the_request_in_flight_and_records_its_answer(stoppable):
    """Grace 5 s; the provider answers 0.3 s after the stop: that batch is recorded as sent, the batches not
    started are given back (the mutant of line 322 gave up at the stop without waiting)."""
    project, ctx, entered, answer, log = stoppable
    ctx.settings = attrs.evolve(ctx.settings, stop_grace_seconds=5)
    store = project.store
    put_members(store, "owners", people(store, 3), ctx.now())
    run_once(ctx, dispatch=False)
    log.clear()  # the planner's line
    dispatcher = Dispatcher(ctx)
    claimed = dispatcher.claim()

    def stop_then_answer():
        entered.wait(5)
        ctx.stop.set()
        time.sleep(0.3)
        answer.set()

    threading.Thread(target=stop_then_answer, daemon=True).start()
    assert dispatcher.deliver(claimed) == {"sent": 1, "failed": 0, "dead": 0}
    sends = {s["idempotency_key"]: s for s in store.list_sends()}
    assert [sends[s["idempotency_key"]]["status"] for s in claimed] == ["sent", "planned", "planned"]
    assert log == ["stopping: released 2 claimed sends that were not sent yet"]


@pytest.mark.parametrize("retry_after", [60, 3600])
def test_a_retry_after_up_to_the_cap_is_obeyed_without_being_flagged_as_capped(setup, retry_after):
    """A Retry-After below or exactly at retry_after_max_seconds is not cut: no "capped" note, no flag on the
    payload (mutants of line 369, `>=` and `!=`, flagged them)."""

    class Busy(Channel):
        name = "busy"
        capabilities = ChannelCapabilities(address_type="person", batch_size=10)

        def send(self, batch):
            return [DeliveryResult(m.idempotency_key, "transient", detail="429", retry_after=retry_after)
                    for m in batch]

    project, ctx, clock = setup(rules(via='busy template "hello"'), channels=[channel_plugin(Busy)])
    store = project.store
    put_members(store, "owners", people(store, 1), clock())
    run_once(ctx)
    (send,) = store.list_sends()
    assert send["not_before"] - int(clock().timestamp()) == retry_after  # above the backoff's 5-10 s
    assert send["reason"] == "transient (attempt 1): 429" and "retry_after_capped" not in send["payload"]


def test_a_step_whose_channel_is_gone_or_whose_body_is_too_long_falls_back_to_the_next_step(setup):
    """A channel uninstalled after planning, then one whose length limit the body exceeds: both are skipped with
    their reasons and the chain's last step sends (the `break` mutants of lines 173 and 180 gave up instead)."""
    sms = memory_channel_plugin("sms", address_type="phone", max_length=3)
    memory = memory_channel_plugin()
    project, ctx, clock = setup(
        rules(via='gone template "hello" fallback sms template "hello" fallback memory template "hello"'),
        channels=[memory_channel_plugin("gone"), sms, memory])
    store = project.store
    (pid,) = people(store, 1)
    with store.transaction():
        add_identifier(store, pid, "phone", "+8613800000001")
    put_members(store, "owners", [pid], clock())
    run_once(ctx, dispatch=False)
    del ctx.registry.channels["gone"]  # its plugin was uninstalled since
    run_once(ctx)
    (send,) = store.list_sends()
    assert send["status"] == "sent" and send["channel"] == "memory" and [m.person_id for m in memory.sent] == [pid]
    assert send["reason"] == ("fallback: gone -> memory (gone: no channel named 'gone' is installed; "
                              "sms: body is 6 characters, the channel accepts 3)") and not sms.sent


def test_a_claim_holds_for_claim_seconds_against_other_workers(setup):
    """Another worker cannot take a claimed send until `claim_seconds` have passed (the mutant of line 230
    set the claim to expire `claim_seconds` ago)."""
    project, ctx, clock = setup(rules(), channels=[memory_channel_plugin()])
    store = project.store
    put_members(store, "owners", people(store, 1), clock())
    run_once(ctx, dispatch=False)
    assert len(Dispatcher(ctx).claim()) == 1
    other = Dispatcher(ActivationContext.for_project(project, clock=clock, worker_id="w2"))
    assert other.claim() == []
    clock.advance(seconds=ctx.settings.claim_seconds - 1)
    assert other.claim() == []
    clock.advance(seconds=2)
    assert len(other.claim()) == 1


def test_a_worker_that_lost_one_batch_still_sends_the_batches_it_owns(setup):
    """w2 takes over the first of w1's two expired batches; w1 skips that one and sends the second (the `break`
    mutant of line 282 stopped at the lost batch and left the second claimed)."""
    memory = memory_channel_plugin(batch_size=2)
    project, ctx, clock = setup(rules(), channels=[memory])
    store = project.store
    ids = people(store, 4)
    put_members(store, "owners", ids, clock())
    run_once(ctx, dispatch=False)
    slow = Dispatcher(ctx)
    claimed = slow.claim()
    assert [s["person_id"] for s in claimed] == ids
    clock.advance(seconds=ctx.settings.claim_seconds + 1)
    other = Dispatcher(ActivationContext.for_project(project, clock=clock, worker_id="w2"))
    taken = other.claim(limit=2)
    assert [s["person_id"] for s in taken] == ids[:2]
    assert slow.deliver(claimed) == {"sent": 2, "failed": 0, "dead": 0}
    assert [m.person_id for m in memory.sent] == ids[2:]
    assert other.deliver(taken)["sent"] == 2 and sorted(m.person_id for m in memory.sent) == ids


def test_lowering_max_attempts_dead_letters_a_send_already_past_the_new_limit(setup):
    """A send with 3 failed attempts under max_attempts 10, then the operator lowers it to 2: its next failure
    is its last (the mutant of line 354 waited for attempts to equal the limit, so it was retried forever)."""
    project, ctx, clock = setup(rules(), channels=[memory_channel_plugin()])
    store = project.store
    (pid,) = people(store, 1)
    key = f"campaign:recall:20261123T0200Z:p{pid}:s0"
    ctx.registry.channels["memory"].obj = memory_channel_plugin("memory", answers={key: ["transient"] * 9}).channel_class
    ctx.settings = attrs.evolve(ctx.settings, max_attempts=10)
    put_members(store, "owners", [pid], clock())
    for _ in range(3):
        run_once(ctx)
        clock.advance(hours=1)
    assert (store.get_send(key)["status"], store.get_send(key)["attempts"]) == ("failed", 3)
    ctx.settings = attrs.evolve(ctx.settings, max_attempts=2)
    assert run_once(ctx).dispatched == {"claimed": 1, "sent": 0, "failed": 0, "dead": 1}
    send = store.get_send(key)
    assert send["status"] == "dead" and send["reason"] == "retries exhausted after 4 attempts: memory: transient"


def test_sends_of_a_channel_configured_but_not_loaded_wait_one_backoff_and_the_problem_is_named_once(setup):
    """Planned while the plugin worked; at dispatch `[channels.memory]` is configured but nothing provides it:
    each send is deferred by backoff_base_seconds (the mutant of line 167 deferred it into the past, so the
    pass claimed it again and again) and the operator sees the problem once (line 165)."""
    project, ctx, clock = setup(rules(), channels=[memory_channel_plugin()])
    store = project.store
    put_members(store, "owners", people(store, 2), clock())
    run_once(ctx, dispatch=False)
    del ctx.registry.channels["memory"]
    ctx = attrs.evolve(ctx, channel_settings={"memory": {}})
    dispatcher = Dispatcher(ctx)
    assert dispatcher.dispatch_due(max_rounds=3) == {"claimed": 0, "sent": 0, "failed": 0, "dead": 0}
    problem = ("channel 'memory' is not loaded: motorcade.toml configures [channels.memory] but no installed plugin "
               "provides it; install its plugin (`motorcade plugins` lists what is installed)")
    assert dispatcher.problems == [problem]
    for send in store.list_sends():
        assert send["status"] == "deferred" and send["reason"] == f"channel_not_loaded: {problem}"
        assert send["not_before"] - int(clock().timestamp()) == ctx.settings.backoff_base_seconds == 10


def test_a_body_exactly_as_long_as_the_channel_accepts_is_sent(setup):
    """max_length is the longest body accepted, not the first refused (the mutant of line 178 skipped it)."""
    sms = memory_channel_plugin("sms", address_type="phone", max_length=6)  # "您好 客户0" is 6 characters
    project, ctx, clock = setup(rules(via='sms template "hello"'), channels=[sms])
    store = project.store
    (pid,) = people(store, 1)
    with store.transaction():
        add_identifier(store, pid, "phone", "+8613800000001")
    put_members(store, "owners", [pid], clock())
    run_once(ctx)
    assert [m.body for m in sms.sent] == ["您好 客户0"]


def test_a_very_slow_channel_declaring_batch_size_0_still_gets_one_message_a_claim(setup):
    """0.01 requests a second: half a 60 s claim is under one request, and batch_size 0 means 1 (as the sender
    reads it); a claim still takes one message, or the channel's sends would never go (mutants of lines 203
    and 204 made the quota 0)."""
    slow = memory_channel_plugin(batch_size=0, rate_limit_per_second=0.01)
    project, ctx, clock = setup(rules(), channels=[slow])
    store = project.store
    put_members(store, "owners", people(store, 3), clock())
    run_once(ctx, dispatch=False)
    dispatcher = Dispatcher(ctx)
    claimed = dispatcher.claim()
    assert len(claimed) == 1
    assert dispatcher.deliver(claimed)["sent"] == 1 and len(slow.sent) == 1


def test_a_batch_with_the_provider_is_claimed_for_another_claim_seconds_so_no_other_worker_takes_it(setup):
    """Claimed at 10:00:00, handed to the channel at 10:00:59 (the claim renewed to 10:01:59); while the provider
    works, at 10:01:29, another worker claims nothing (the mutant of line 278 renewed it to 09:59:59)."""
    box: dict = {}

    class Watched(Channel):
        name = "watched"
        capabilities = ChannelCapabilities(address_type="person", batch_size=10)

        def send(self, batch):
            box["clock"].advance(seconds=30)
            box["seen"] = box["other"].claim()
            return [DeliveryResult(m.idempotency_key, "sent") for m in batch]

    project, ctx, clock = setup(rules(via='watched template "hello"'), channels=[channel_plugin(Watched)])
    store = project.store
    put_members(store, "owners", people(store, 2), clock())
    run_once(ctx, dispatch=False)
    box["clock"] = clock
    box["other"] = Dispatcher(ActivationContext.for_project(project, clock=clock, worker_id="w2"))
    dispatcher = Dispatcher(ctx)
    claimed = dispatcher.claim()
    clock.advance(seconds=ctx.settings.claim_seconds - 1)
    assert dispatcher.deliver(claimed)["sent"] == 2
    assert box["seen"] == [] and set(statuses(store).values()) == {"sent"}
