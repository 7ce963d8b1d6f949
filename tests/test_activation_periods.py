"""A campaign reaches a person at most once per scheduled period, however its runs are started.

Scheduled passes (`run`, `serve`), manual runs (`run --campaign NAME`), a rerun a minute later and
several workers on one database all plan the run of the *period* the moment falls in (the latest
schedule slot at or before it; a campaign without a schedule: the local day), so they share one run id
and one idempotency key per person. Real SQLite file, real rule files, an in-memory channel.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import zoneinfo
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.activation.planner import plan_campaign
from motorcade.activation.runner import run_campaigns_now, run_once
from motorcade.activation.schedule import latest_slot
from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import KeyCountingServer, memory_channel_plugin
from motorcade.dsl.rules import rule_set_from_text
from motorcade.plugins import load_plugins
from motorcade.project import Project, init_project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 23, 1, 30, tzinfo=SH)

SCHEDULES = ["schedule daily at 02:00", "schedule every 6 hours", 'schedule cron "0 10 * * 1-5"',
             "schedule every 2 days", "schedule at 2026-11-23 09:00"]


class Clock:
    def __init__(self, at: dt.datetime):
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def build(directory: Path, schedule: str, transactional: bool, pm) -> None:
    init_project(directory, name="periods").close()
    (directory / "motorcade.toml").write_text("""
[project]
name = "periods"
timezone = "Asia/Shanghai"
rules = ["rules"]

[activation]
catch_up_hours = 24
""", encoding="utf-8")
    (directory / "rules").mkdir(exist_ok=True)
    (directory / "rules" / "main.mc").write_text(f"""
segment owners {{ where profile.is_owner = true }}
campaign recall {{
  audience owners
  {schedule}
  via memory template "hello"
  quiet hours off
  {"transactional" if transactional else ""}
}}
""", encoding="utf-8")
    (directory / "templates").mkdir(exist_ok=True)
    (directory / "templates" / "hello.txt").write_text("您好 {{ person.name }}", encoding="utf-8")


def period_of(schedule_text: str, at: dt.datetime) -> dt.datetime:
    """The period a moment falls in, computed from the schedule alone (not from what was planned)."""
    if schedule_text.startswith("schedule at "):
        return dt.datetime.fromisoformat(schedule_text.removeprefix("schedule at ")).replace(tzinfo=SH)
    rules = rule_set_from_text(f"segment s {{ where profile.x = 1 }} campaign c {{ audience s {schedule_text} }}")
    return latest_slot(rules.campaigns["c"].schedule, at, SH, horizon=dt.timedelta(days=30))


ACTIONS = st.lists(
    st.tuples(st.sampled_from(["scheduled", "manual", "manual", "join", "advance"]), st.integers(0, 1),
              st.sampled_from([1, 1, 7, 45, 180, 400, 900])),
    min_size=2, max_size=18)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(schedule=st.sampled_from(SCHEDULES), transactional=st.booleans(), actions=ACTIONS)
def test_interleaved_scheduled_and_manual_runs_on_two_connections_send_once_per_period(
        schedule, transactional, actions):
    memory = memory_channel_plugin()
    pm = load_plugins(entry_points=False)
    pm.register(memory, name="memory")
    clock = Clock(START)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "p"
        build(directory, schedule, transactional, pm)
        projects = [Project(directory, plugin_manager=pm), Project(directory, plugin_manager=pm)]
        contexts = [ActivationContext.for_project(p, clock=clock, worker_id=f"w{i}") for i, p in enumerate(projects)]
        store = projects[0].store
        members: list[int] = []

        def join(n: int) -> None:
            with store.transaction():
                members.extend(store.create_person({"name": f"客户{len(members) + i}", "is_owner": True})
                               for i in range(n))
            store.record_segment_run("owners", members, revision="t", as_of=clock(), computed_at=clock(),
                                     duration_ms=0, plan=None)

        join(3)
        delivered: dict[str, dt.datetime] = {}
        try:
            for action, worker, minutes in actions:
                ctx = contexts[worker]
                if action == "advance":
                    clock.at += dt.timedelta(minutes=minutes)
                elif action == "join":
                    join(1 + minutes % 3)
                elif action == "scheduled":
                    run_once(ctx)
                else:  # what `motorcade run --campaign recall` does
                    run_campaigns_now(ctx, ["recall"])
                    run_once(ctx)
                for message in memory.sent:
                    delivered.setdefault(message.idempotency_key, clock())  # delivered during this action
            per_period: dict[tuple[int, dt.datetime], list[str]] = {}
            for message in memory.sent:
                period = period_of(schedule, delivered[message.idempotency_key])
                per_period.setdefault((message.person_id, period), []).append(message.idempotency_key)
            twice = {k: v for k, v in per_period.items() if len(v) > 1}
            assert not twice, f"sent twice in one period: {twice}"
        finally:
            for project in projects:
                project.close()


def test_a_manual_run_after_the_scheduled_slot_sends_nothing_new_in_that_period(tmp_path):
    """The reported case: `daily at 02:00` ran, then `run --campaign recall` at 17:37 and again at 17:38."""
    memory = memory_channel_plugin()
    pm = load_plugins(entry_points=False)
    pm.register(memory, name="memory")
    directory = tmp_path / "p"
    build(directory, "schedule daily at 02:00", True, pm)
    clock = Clock(dt.datetime(2026, 11, 23, 2, 0, tzinfo=SH))
    project = Project(directory, plugin_manager=pm)
    ctx = ActivationContext.for_project(project, clock=clock, worker_id="w")
    store = project.store
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(4)]
    store.record_segment_run("owners", ids, revision="t", as_of=clock(), computed_at=clock(), duration_ms=0, plan=None)
    assert run_once(ctx).dispatched["sent"] == 4
    clock.at = dt.datetime(2026, 11, 23, 17, 37, tzinfo=SH)
    assert plan_campaign(ctx, "recall", clock()) is None  # the library entry point keys by the period too
    results = run_campaigns_now(ctx, ["recall"])
    assert results == [{"campaign": "recall", "run_id": "campaign:recall:20261122T1800Z", "planned": 0,
                        "note": "already planned for this period (the slot at 2026-11-23 02:00 CST)"}]
    clock.at += dt.timedelta(minutes=1)
    run_campaigns_now(ctx, ["recall"])
    run_once(ctx)
    assert len(memory.sent) == 4
    assert {s["run_id"] for s in store.list_sends(limit=100)} == {"campaign:recall:20261122T1800Z"}
    # the next day's slot is a new period
    clock.at = dt.datetime(2026, 11, 24, 2, 0, tzinfo=SH)
    run_once(ctx)
    assert len(memory.sent) == 8
    project.close()


def test_a_manual_run_before_the_slot_is_the_run_of_the_current_period(tmp_path):
    """`every 6 hours`: a manual run at 05:00 is the 02:00 period's run; the 08:00 slot is the next period."""
    memory = memory_channel_plugin()
    pm = load_plugins(entry_points=False)
    pm.register(memory, name="memory")
    directory = tmp_path / "p"
    build(directory, "schedule every 6 hours", False, pm)
    clock = Clock(dt.datetime(2026, 11, 23, 5, 0, tzinfo=SH))
    project = Project(directory, plugin_manager=pm)
    ctx = ActivationContext.for_project(project, clock=clock, worker_id="w")
    store = project.store
    with store.transaction():
        ids = [store.create_person({"name": "客户", "is_owner": True})]
    store.record_segment_run("owners", ids, revision="t", as_of=clock(), computed_at=clock(), duration_ms=0, plan=None)
    [result] = run_campaigns_now(ctx, ["recall"])
    assert result["run_id"] == "campaign:recall:20261122T1800Z" and result["planned"] == 1
    run_once(ctx)
    clock.at = dt.datetime(2026, 11, 23, 7, 59, tzinfo=SH)
    run_once(ctx)
    assert len(memory.sent) == 1
    clock.at = dt.datetime(2026, 11, 23, 8, 0, tzinfo=SH)
    run_once(ctx)
    assert len(memory.sent) == 2
    project.close()


def _cli(directory: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": "webhook", "MOTORCADE_PROJECT": str(directory)}
    return subprocess.Popen([sys.executable, "-m", "motorcade.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_manual_and_scheduled_runs_in_several_processes_send_each_person_one_key(tmp_path):
    """Real processes at once: two `run --campaign blast`, one `run --once`; then reruns a minute apart
    are simulated by running again. The receiver sees one key per person, one request per key."""
    with KeyCountingServer() as server:
        directory = tmp_path / "p"
        (directory / "rules").mkdir(parents=True)
        (directory / "templates").mkdir()
        slot = (dt.datetime.now(SH) - dt.timedelta(minutes=3)).strftime("%H:%M")
        (directory / "motorcade.toml").write_text(f"""
[project]
name = "procs"
timezone = "Asia/Shanghai"

[channels.webhook]
url = "{server.url}"
secret = "s"
batch_size = 10
""", encoding="utf-8")
        (directory / "rules" / "r.mc").write_text(f"""
segment everyone {{ where profile.is_owner = true }}
campaign blast {{ audience everyone  schedule daily at {slot}  via webhook template "n"  transactional }}
""", encoding="utf-8")
        (directory / "templates" / "n.txt").write_text("{{ person.name }}", encoding="utf-8")
        project = Project(directory)
        store = project.store
        with store.transaction():
            ids = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(60)]
        now = dt.datetime.now(UTC)
        store.record_segment_run("everyone", ids, revision="t", as_of=now, computed_at=now, duration_ms=0, plan=None)
        procs = [_cli(directory, "run", "--campaign", "blast"), _cli(directory, "run", "--campaign", "blast"),
                 _cli(directory, "run", "--once")]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()
        again = _cli(directory, "run", "--campaign", "blast")
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err.decode()
        assert "already planned for this period" in out.decode()
        deliveries, _ = server.snapshot()
        assert len(deliveries) == 60 and set(deliveries.values()) == {1}
        assert len({s["run_id"] for s in store.list_sends(limit=1000)}) == 1
        project.close()


def test_period_start_finds_rare_cron_slots_quickly_and_one_off_and_unscheduled_periods():
    import time

    from motorcade.activation.schedule import period_start

    def schedule(text):
        return rule_set_from_text(f"segment s {{ where profile.x = 1 }} campaign c {{ audience s {text} }}"
                                  ).campaigns["c"].schedule

    at = dt.datetime(2027, 6, 15, 12, 0, tzinfo=SH)
    started = time.monotonic()
    assert period_start(schedule('schedule cron "0 10 29 2 *"'), at, SH) == dt.datetime(2024, 2, 29, 10, 0, tzinfo=SH)
    assert period_start(schedule('schedule cron "30 9 1 * *"'), at, SH) == dt.datetime(2027, 6, 1, 9, 30, tzinfo=SH)
    assert time.monotonic() - started < 2
    once = schedule("schedule at 2027-07-01 10:00")
    assert period_start(once, at, SH) == period_start(once, at + dt.timedelta(days=30), SH) == dt.datetime(
        2027, 7, 1, 10, 0, tzinfo=SH)
    assert period_start(None, at, SH) == dt.datetime(2027, 6, 15, 0, 0, tzinfo=SH)
    ny = zoneinfo.ZoneInfo("America/New_York")  # a cron slot on the day DST starts
    assert period_start(schedule('schedule cron "30 1 * * *"'), dt.datetime(2027, 3, 14, 12, 0, tzinfo=ny), ny) == \
        dt.datetime(2027, 3, 14, 1, 30, tzinfo=ny)
