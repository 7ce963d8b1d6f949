"""Activation building blocks: schedules and cron, guard-rail windows, templates, the token cache, leases."""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motorcade.activation.guardrails import GuardRails, in_holdout, outside_window_until, window_end
from motorcade.activation.schedule import CronExpr, ScheduleError, latest_slot
from motorcade.activation.templates import TemplateError, TemplateStore, check_template
from motorcade.activation.tokens import StoreTokenCache
from motorcade.dsl import ast
from motorcade.errors import ConfigError
from motorcade.store import open_store

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc


# -- schedules ------------------------------------------------------------------------------------------


def test_daily_slot_is_today_after_the_time_and_yesterday_before_it():
    at = ast.Daily(dt.time(10, 0))
    assert latest_slot(at, dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH), SH) == dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    assert latest_slot(at, dt.datetime(2026, 11, 23, 9, 59, tzinfo=SH), SH) == dt.datetime(2026, 11, 22, 10, 0, tzinfo=SH)
    # older than the catch-up window: not run
    assert latest_slot(at, dt.datetime(2026, 11, 23, 9, 59, tzinfo=SH), SH, horizon=dt.timedelta(hours=1)) is None


def test_every_n_hours_slots_are_aligned_and_independent_of_start_time():
    every = ast.Every(6, "hours")
    a = latest_slot(every, dt.datetime(2026, 11, 23, 13, 7, tzinfo=UTC), SH)
    b = latest_slot(every, dt.datetime(2026, 11, 23, 17, 59, tzinfo=UTC), SH)
    assert a == b == dt.datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    with pytest.raises(ScheduleError, match="cron"):
        latest_slot(ast.Every(1, "months"), dt.datetime(2026, 11, 23, tzinfo=UTC), SH)


def test_one_off_runs_once_its_time_has_come():
    once = ast.Once(dt.datetime(2026, 11, 23, 10, 0))  # naive = project time zone
    assert latest_slot(once, dt.datetime(2026, 11, 23, 9, 0, tzinfo=SH), SH) is None
    assert latest_slot(once, dt.datetime(2026, 11, 23, 11, 0, tzinfo=SH), SH) == dt.datetime(2026, 11, 23, 10, 0,
                                                                                             tzinfo=SH)


def test_cron_fields_names_and_dom_dow_rule():
    weekdays = CronExpr("30 9 * * mon-fri")
    assert weekdays.matches(dt.datetime(2026, 11, 23, 9, 30))  # a Monday
    assert not weekdays.matches(dt.datetime(2026, 11, 22, 9, 30))  # Sunday
    either = CronExpr("0 0 1 * 0")  # the 1st of the month OR a Sunday (Vixie cron)
    assert either.matches(dt.datetime(2026, 11, 1)) and either.matches(dt.datetime(2026, 11, 8))
    assert not either.matches(dt.datetime(2026, 11, 9))
    assert latest_slot(ast.Cron("*/15 * * * *"), dt.datetime(2026, 11, 23, 10, 44, tzinfo=SH), SH) == \
        dt.datetime(2026, 11, 23, 10, 30, tzinfo=SH)
    for bad, message in (("* * *", "cron needs 5"), ("61 * * * *", "outside"), ("x * * * *", "not a number")):
        with pytest.raises(ScheduleError, match=message):
            CronExpr(bad)


@settings(max_examples=60, deadline=None)
@given(minute=st.integers(0, 59), hour=st.integers(0, 23), step=st.integers(1, 30),
       when=st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 1, 1)))
def test_cron_agrees_with_a_direct_reading_of_the_fields(minute, hour, step, when):
    expr = CronExpr(f"{minute} */{step} * * *")
    assert expr.matches(when) == (when.minute == minute and when.hour % step == 0)
    slot = expr.latest_at_or_before(when.replace(tzinfo=UTC), UTC, horizon=dt.timedelta(days=2))
    assert slot is not None and expr.matches(slot.replace(tzinfo=None)) and slot <= when.replace(tzinfo=UTC)


# -- guard-rail pieces ---------------------------------------------------------------------------------------


def test_quiet_window_wrapping_midnight_and_send_window():
    q = (dt.time(21), dt.time(9))
    assert window_end(dt.datetime(2026, 11, 23, 22, 0, tzinfo=SH), *q) == dt.datetime(2026, 11, 24, 9, 0, tzinfo=SH)
    assert window_end(dt.datetime(2026, 11, 24, 3, 0, tzinfo=SH), *q) == dt.datetime(2026, 11, 24, 9, 0, tzinfo=SH)
    assert window_end(dt.datetime(2026, 11, 24, 9, 0, tzinfo=SH), *q) is None
    allowed = (dt.time(8), dt.time(22))  # Tencent marketing SMS
    assert outside_window_until(dt.datetime(2026, 11, 23, 23, 0, tzinfo=SH), *allowed) == \
        dt.datetime(2026, 11, 24, 8, 0, tzinfo=SH)
    assert outside_window_until(dt.datetime(2026, 11, 23, 12, 0, tzinfo=SH), *allowed) is None


@given(st.integers(1, 10**9), st.floats(0, 100))
def test_holdout_draw_is_deterministic_and_monotone_in_percent(person_id, percent):
    assert in_holdout(person_id, "c", percent) == in_holdout(person_id, "c", percent)
    if in_holdout(person_id, "c", percent):
        assert in_holdout(person_id, "c", min(100.0, percent + 5))


def test_holdout_arms_have_the_size_the_percent_asks_for():
    """Mutant it catches: ``in_holdout`` answering False (or True) for everyone, which the determinism and
    monotonicity property above cannot see. 20,000 people: each arm within 5 standard deviations."""
    ids = range(1, 20_001)
    for percent in (0, 0.5, 10, 30, 50, 99, 100):
        held = sum(in_holdout(pid, "promo", percent) for pid in ids)
        p = percent / 100
        assert abs(held - len(ids) * p) <= 5 * (len(ids) * p * (1 - p)) ** 0.5, (percent, held)
    assert in_holdout(7, "promo", None) is False
    # campaigns draw independently: two 30% holdouts overlap on about 9% of people, not 30%
    both = sum(in_holdout(pid, "promo", 30) and in_holdout(pid, "recall", 30) for pid in ids)
    assert abs(both - 0.09 * len(ids)) <= 5 * (len(ids) * 0.09 * 0.91) ** 0.5


def test_guardrail_settings_errors_say_what_to_do():
    assert GuardRails.from_config({"frequency_cap": {"count": 2, "days": 7}}).cap_count == 2
    with pytest.raises(ConfigError, match="quiet_hours needs start and end"):
        GuardRails.from_config({"quiet_hours": {"start": "21:00"}})
    with pytest.raises(ConfigError, match="not a time of day"):
        GuardRails.from_config({"quiet_hours": {"start": "9pm", "end": "09:00"}})


# -- templates ------------------------------------------------------------------------------------------------


CONTEXT = {"person": {"id": 1, "name": "张伟"}, "profile": {"name": "张伟"}, "tags": {"intent_level": "high"},
           "car": {"model": "X3", "vin": "LBV1"}, "cars": [], "advisor": {"name": "李娜", "phone": "+86138"},
           "store": {"name": "浦东4S店"}, "origin": {"kind": "campaign", "name": "c"}, "event": {}, "now": None}


def test_templates_render_with_subject_per_channel_override_and_html_escaping(tmp_path):
    (tmp_path / "recall.txt").write_text("Subject: {{ store.name }} 回厂提醒\n\n{{ person.name }}，您的{{ car.model }}该保养了")
    (tmp_path / "recall.sms.txt").write_text("【浦东】{{ person.name }}您好，{{ car.model }}保养")
    (tmp_path / "card.html").write_text("<p>{{ person.name }}</p>")
    store = TemplateStore(tmp_path)
    email = store.render("recall", "email", CONTEXT)
    assert email.subject == "浦东4S店 回厂提醒" and email.body == "张伟，您的X3该保养了"
    assert store.render("recall", "sms", CONTEXT).body == "【浦东】张伟您好，X3保养"
    evil = dict(CONTEXT, person={"name": "<script>x</script>"})
    assert store.render("card", "email", evil).body == "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    with pytest.raises(TemplateError, match="not found"):
        store.render("nope", "sms", CONTEXT)


def test_the_sandbox_refuses_python_internals(tmp_path):
    (tmp_path / "evil.txt").write_text("{{ person.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError, match="cannot render"):
        TemplateStore(tmp_path).render("evil", "sms", CONTEXT)


def test_check_reports_unknown_fields_with_suggestions_and_sms_length(tmp_path):
    text = "{{ persn.name }} {{ car.modle }} {{ tags.intent_levl }} {{ profile.name }} {% for c in cars %}{{ c.vin }}{% endfor %}"
    problems = check_template("t", tmp_path / "t.txt", text, attributes={"name"}, tags={"intent_level"})
    messages = [str(p) for p in problems]
    assert any("unknown name `persn`" in m and "did you mean `person`" in m for m in messages)
    assert any("`car.modle` does not exist" in m and "car.model" in m for m in messages)
    assert any("`tags.intent_levl` does not exist" in m for m in messages)
    assert len(problems) == 3  # profile.name and the loop variable are fine
    long = check_template("s", tmp_path / "s.txt", "很长的固定文字" * 12 + "{{ person.name }}", max_length=70,
                          channel="sms")
    assert len(long) == 1 and "84 characters of fixed text; sms accepts at most 70" in str(long[0])


# -- the shared token cache -------------------------------------------------------------------------------------


def test_token_cache_is_shared_and_refreshed_by_one_worker(tmp_path):
    path = tmp_path / "t.db"
    open_store(path).close()
    fetches = []
    barrier = threading.Barrier(6)
    tokens = []

    def fetch():
        fetches.append(1)
        return f"token-{len(fetches)}", 7200

    def worker():
        store = open_store(path)
        cache = StoreTokenCache(store)
        barrier.wait()
        tokens.append(cache.get_or_refresh("wecom:corp1:app1", fetch))
        store.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fetches == [1] and set(tokens) == {"token-1"}
    store = open_store(path)
    cache = StoreTokenCache(store)
    assert not cache.invalidate("wecom:corp1:app1", "some-older-token")  # never drops someone's fresh token
    assert cache.invalidate("wecom:corp1:app1", "token-1")
    assert cache.get_or_refresh("wecom:corp1:app1", fetch) == "token-2"


def test_token_cache_refreshes_before_the_provider_expiry(tmp_path):
    store = open_store(tmp_path / "t.db")
    now = [dt.datetime(2026, 11, 23, tzinfo=UTC)]
    cache = StoreTokenCache(store, clock=lambda: now[0])
    calls = iter([("a", 7200), ("b", 7200)])
    assert cache.get_or_refresh("k", lambda: next(calls)) == "a"
    now[0] += dt.timedelta(seconds=6800)  # 7200 s less the 300 s margin has not passed
    assert cache.get_or_refresh("k", lambda: next(calls)) == "a"
    now[0] += dt.timedelta(seconds=200)
    assert cache.get_or_refresh("k", lambda: next(calls)) == "b"


# -- leases ----------------------------------------------------------------------------------------------------------


def test_a_lease_has_one_holder_until_it_expires(tmp_path):
    store = open_store(tmp_path / "l.db")
    t0 = dt.datetime(2026, 11, 23, tzinfo=UTC)
    assert store.acquire_lease("scheduler", "a", ttl_seconds=60, now=t0)
    assert not store.acquire_lease("scheduler", "b", ttl_seconds=60, now=t0 + dt.timedelta(seconds=59))
    assert store.acquire_lease("scheduler", "a", ttl_seconds=60, now=t0 + dt.timedelta(seconds=30))  # renew
    assert store.acquire_lease("scheduler", "b", ttl_seconds=60, now=t0 + dt.timedelta(seconds=91))
    store.release_lease("scheduler", "a")  # not the holder: no effect
    assert store.lease_holder("scheduler", now=t0 + dt.timedelta(seconds=100)) == "b"


def test_advisor_tasks_are_idempotent_on_the_key(tmp_path):
    store = open_store(tmp_path / "a.db")
    row = {"idempotency_key": "k1", "advisor_id": "A1", "store_id": "SH001", "person_id": 7, "note": "回访",
           "created_at": dt.datetime(2026, 11, 23, tzinfo=UTC)}
    with store.transaction():
        assert store.add_advisor_tasks([row]) == 1
        assert store.add_advisor_tasks([row, {**row, "idempotency_key": "k2"}]) == 1
    assert [t["idempotency_key"] for t in store.advisor_tasks(store_id="SH001")] == ["k1", "k2"]


class FakeClock:
    """Monotonic seconds that only move when the code under test sleeps."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_paces_requests_on_an_injected_clock():
    from motorcade.activation.dispatcher import RateLimiter

    clock = FakeClock()
    limiter = RateLimiter(50, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        limiter.wait(1)
    assert clock.now == pytest.approx(1000.2)  # the first goes at once, then 10 intervals of 20 ms
    assert clock.sleeps == pytest.approx([0.02] * 10)
    limiter.wait(5)  # a request that counts as five takes five slots
    limiter.wait(1)
    assert clock.now == pytest.approx(1000.2 + 0.02 + 0.1)
    clock.now += 10  # idle: the bucket does not save up a burst
    before = clock.now
    limiter.wait(1)
    limiter.wait(1)
    assert clock.now == pytest.approx(before + 0.02)
    before = clock.now + 10
    clock.now = before
    limiter.wait()  # no count: one request (a mutant of line 58 made it none, and the next went at once)
    limiter.wait()
    assert clock.now == pytest.approx(before + 0.02)
    unlimited = RateLimiter(None, clock=clock, sleep=clock.sleep)
    sleeps = len(clock.sleeps)
    for _ in range(1000):
        unlimited.wait(1)
    assert len(clock.sleeps) == sleeps


@pytest.mark.parametrize("origin", [0.0, 0.5, -50.0])
def test_a_rate_limiters_first_request_goes_at_once_whatever_the_clocks_origin(origin):
    """A monotonic clock's origin is arbitrary (an injected one may start at 0 or below): the first request
    never waits, the second waits one interval. Before the fix the bucket started at 0.0, so a clock below 0
    waited until 0 (mutants of line 55 moved that start to 1.0 or -1.0)."""
    from motorcade.activation.dispatcher import RateLimiter

    clock = FakeClock(start=origin)
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    limiter.wait(1)
    assert clock.sleeps == [] and clock.now == origin
    limiter.wait(1)
    assert clock.sleeps == pytest.approx([0.1])
