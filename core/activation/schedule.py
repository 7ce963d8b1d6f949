"""When a scheduled campaign is due: ``daily at``, ``every N unit``, ``cron "..."`` and one-off ``at``.

Every schedule is read in the project's time zone. :func:`latest_slot` returns the most recent slot at
or before ``now``; the runner plans a run for that slot once (the run id contains the slot, so two
workers, or a worker restarted mid-run, plan the same run and the outbox keeps one copy of each send).
Slots older than the catch-up window are not run (a worker that was down for a week does not send a
week of daily campaigns at once).
"""

from __future__ import annotations

import datetime as dt

from motorcade.dsl import ast
from motorcade.errors import MotorcadeError

_UNIT_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400}
# `every N days/weeks` count from this local midnight (a Monday), so slots do not depend on when a worker started.
_EVERY_ANCHOR = dt.datetime(2024, 1, 1)

_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_CRON_NAMES = {
    3: {n: i for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                     "dec"], start=1)},
    4: {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}


class ScheduleError(MotorcadeError):
    """A schedule Motorcade cannot run (bad cron text, unsupported unit)."""


class CronExpr:
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week).

    Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b`` and the names
    ``jan..dec`` / ``sun..sat``. Day-of-week 0 and 7 are Sunday. As in Vixie cron, when both
    day-of-month and day-of-week are restricted a day matches if either does.
    """

    def __init__(self, text: str):
        self.text = text
        parts = text.split()
        if len(parts) != 5:
            raise ScheduleError(f'cron "{text}" has {len(parts)} fields; cron needs 5',
                                hint='minute hour day-of-month month day-of-week, e.g. cron "0 10 * * 1-5"')
        self.sets = [self._field(p, i) for i, p in enumerate(parts)]
        self.sets[4] = {d % 7 for d in self.sets[4]}
        self.dom_any = parts[2] == "*"
        self.dow_any = parts[4] == "*"

    def _field(self, text: str, index: int) -> set[int]:
        name, low, high = _CRON_FIELDS[index]
        names = _CRON_NAMES.get(index, {})
        values: set[int] = set()

        def number(token: str) -> int:
            token = token.lower()
            if token in names:
                return names[token]
            if not token.isdigit():
                raise ScheduleError(f'cron "{self.text}": {name} field has {token!r}, not a number',
                                    hint=f"use {low}-{high}")
            return int(token)

        for item in text.split(","):
            body, _, step_text = item.partition("/")
            step = number(step_text) if step_text else 1
            if step < 1:
                raise ScheduleError(f'cron "{self.text}": step must be at least 1 in {item!r}')
            if body == "*":
                start, end = low, high
            elif "-" in body:
                a, b = body.split("-", 1)
                start, end = number(a), number(b)
            else:
                start = number(body)
                end = high if step_text else start
            if not (low <= start <= high and low <= end <= high and start <= end):
                raise ScheduleError(f'cron "{self.text}": {name} {item!r} is outside {low}-{high}')
            values.update(range(start, end + 1, step))
        return values

    def day_matches(self, local: dt.datetime) -> bool:
        """Whether some minute of ``local``'s day can match (month, day of month, day of week)."""
        _, _, dom, month, dow = self.sets
        if local.month not in month:
            return False
        dom_ok = local.day in dom
        dow_ok = (local.isoweekday() % 7) in dow
        if self.dom_any or self.dow_any:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def matches(self, local: dt.datetime) -> bool:
        minute, hour = self.sets[0], self.sets[1]
        return local.minute in minute and local.hour in hour and self.day_matches(local)

    def latest_at_or_before(self, now: dt.datetime, tz: dt.tzinfo, *, horizon: dt.timedelta) -> dt.datetime | None:
        """The latest matching minute in (now - horizon, now], as an aware time; None if there is none.

        Days that cannot match are skipped whole, so a horizon of years costs about one step per day.
        """
        utc = dt.timezone.utc
        at = now.astimezone(utc).replace(second=0, microsecond=0)
        earliest = now - horizon
        while at > earliest:
            local = at.astimezone(tz)
            if not self.day_matches(local):
                # jump to the last minute of the previous local day (never forward, whatever DST does)
                midnight = _local(dt.datetime.combine(local.date(), dt.time(0)), tz).astimezone(utc)
                at = min(midnight, at) - dt.timedelta(minutes=1)
                continue
            if self.matches(local):
                return local
            at -= dt.timedelta(minutes=1)
        return None


def _local(naive: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    return naive.replace(tzinfo=tz) if naive.tzinfo is None else naive


def latest_slot(schedule: ast.Schedule, now: dt.datetime, tz: dt.tzinfo, *,
                horizon: dt.timedelta = dt.timedelta(hours=24)) -> dt.datetime | None:
    """The most recent slot of ``schedule`` at or before ``now`` and within ``horizon`` (None if none)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    earliest = now - horizon
    if isinstance(schedule, ast.Daily):
        local_now = now.astimezone(tz)
        slot = _local(dt.datetime.combine(local_now.date(), schedule.at), tz)
        if slot > now:
            slot = _local(dt.datetime.combine(local_now.date() - dt.timedelta(days=1), schedule.at), tz)
        return slot if slot > earliest else None
    if isinstance(schedule, ast.Every):
        if schedule.unit not in _UNIT_SECONDS:
            raise ScheduleError(f"`every {schedule.amount} {schedule.unit}` is not supported",
                                hint="use minutes, hours, days or weeks, or a cron schedule for calendar months")
        if schedule.amount < 1:
            raise ScheduleError(f"`every {schedule.amount} {schedule.unit}`: the interval must be at least 1")
        period = schedule.amount * _UNIT_SECONDS[schedule.unit]
        anchor = _local(_EVERY_ANCHOR, tz)
        if schedule.unit in ("minutes", "hours"):
            anchor = _EVERY_ANCHOR.replace(tzinfo=dt.timezone.utc)  # wall-clock shifts (DST) must not skip slots
        elapsed = (now - anchor).total_seconds()
        slot = anchor + dt.timedelta(seconds=(elapsed // period) * period)
        return slot if slot > earliest else None
    if isinstance(schedule, ast.Cron):
        return CronExpr(schedule.expr).latest_at_or_before(now, tz, horizon=horizon)
    if isinstance(schedule, ast.Once):
        at = _local(schedule.at, tz)
        return at if earliest < at <= now else None
    raise ScheduleError(f"unsupported schedule {type(schedule).__name__}")


# How far back :func:`period_start` looks for a schedule's latest slot (a cron such as Feb 29 recurs
# within 8 years).
PERIOD_HORIZON = dt.timedelta(days=8 * 366)


def period_start(schedule: ast.Schedule | None, at: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The slot that opens the scheduled period ``at`` falls in; every run of a campaign is keyed by it.

    A period runs from one slot of the schedule to the next, so the latest slot at or before ``at``
    (whatever the catch-up window). A one-off ``at`` schedule has one period: its time, before or after
    it. A campaign without a schedule has one period per local day (midnight in ``tz``).
    """
    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime")
    if schedule is None:
        return _local(dt.datetime.combine(at.astimezone(tz).date(), dt.time(0)), tz)
    if isinstance(schedule, ast.Once):
        return _local(schedule.at, tz)
    slot = latest_slot(schedule, at, tz, horizon=PERIOD_HORIZON)
    if slot is None:
        raise ScheduleError(f"the schedule has no slot in the {PERIOD_HORIZON.days} days before {at.isoformat()}",
                            hint="check the cron text: it may name a day that never comes (30 February)")
    return slot


def validate_schedule(schedule: ast.Schedule) -> None:
    """Raise :class:`ScheduleError` for a schedule that can never run (bad cron text, unsupported unit)."""
    if isinstance(schedule, ast.Cron):
        CronExpr(schedule.expr)
    elif isinstance(schedule, ast.Every):
        latest_slot(schedule, dt.datetime.now(dt.timezone.utc), dt.timezone.utc)


def slot_text(slot: dt.datetime) -> str:
    """The slot as it appears in run ids: UTC, minute precision (``20261123T0200Z``)."""
    return slot.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%MZ")
