"""Simulated days for the demo's journeys (rules/journeys.mc): `motorcade run` once a day at 10:30, with
customers acting in between.

The pipeline's run stage let the lapsed owners in on day 0. Each following day some prospects leave their
contact details (``lead_submit``, which lets them into the test-drive nurture journey), people open the
journey messages they got (a click recorded through the tracking callback, ``record_receipt``), some take
a test drive, and lapsed owners come back to the workshop -- more often when a journey message reached
them, more still after a click, least in the holdout. Everything is seeded by person, so a rerun is the
same. After the last day, the rest of the 30-day goal window is filled in the same way (without running
the journeys), so the conversion against the holdout is measured over whole windows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random

DAYS = 8  # long enough for the recall journey's 7-day wait and the nurture journey's steps
LEADS_PER_DAY = 12
CLICK_RATE = 0.35  # a journey message that was delivered is opened (clicked) within a day
# daily chance of a workshop visit for a lapsed owner in the recall journey
VISIT_RATE = {"holdout": 0.004, "treatment": 0.008, "clicked": 0.03}
TEST_DRIVE_RATE = {"holdout": 0.006, "treatment": 0.012, "clicked": 0.04}


def _rng(*parts) -> random.Random:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _event(name: str, at: dt.datetime, person_id: int, key: str, **properties):
    from motorcade.model import Event

    return Event(name, at, person_id, {"simulated": True, **properties}, "demo_days", key)


def _customers_act(store, day: int, start: dt.datetime, end: dt.datetime, *, leads: bool) -> dict[str, int]:
    from motorcade.activation.feedback import record_receipt

    counts = {"leads": 0, "clicked": 0, "service_visit": 0, "test_drive": 0}
    clicked_people: set[tuple[str, int]] = set()
    for key, journey, person_id, status, updated in store.query(
            "SELECT idempotency_key, origin, person_id, status, updated_at FROM outbox WHERE origin_kind = 'journey' "
            "AND status = 'sent' AND channel != 'advisor_task'"):
        rng = _rng("click", key)
        if rng.random() < CLICK_RATE:
            at = dt.datetime.fromisoformat(updated) + dt.timedelta(hours=rng.uniform(0.5, 20))
            if start < at <= end and record_receipt(store, key, "clicked", at=at):
                counts["clicked"] += 1
    for journey, person_id in store.query(
            "SELECT json_extract(properties, '$.journey'), person_id FROM events WHERE name = 'clicked' "
            "AND json_extract(properties, '$.journey') IS NOT NULL"):
        clicked_people.add((journey, person_id))
    events = []
    for journey, person_id, entry, arm, entered_at in store.query(
            "SELECT journey, person_id, entry, arm, entered_at FROM journey_states"):
        rng = _rng(day, journey, person_id, entry)
        kind = "clicked" if (journey, person_id) in clicked_people else arm
        at = start + dt.timedelta(hours=rng.uniform(1, 23))
        if journey == "lapsed_owner_recall" and rng.random() < VISIT_RATE[kind]:
            events.append(_event("service_visit", at, person_id, f"visit-{day}-{person_id}", store_visit="demo"))
            counts["service_visit"] += 1
        elif journey == "test_drive_nurture" and rng.random() < TEST_DRIVE_RATE[kind]:
            events.append(_event("test_drive", at, person_id, f"drive-{day}-{person_id}"))
            counts["test_drive"] += 1
    if leads:
        prospects = [r[0] for r in store.query(
            "SELECT id FROM people WHERE id NOT IN (SELECT person_id FROM ownerships) ORDER BY id")]
        rng = _rng("leads", day)
        for person_id in rng.sample(prospects, min(LEADS_PER_DAY, len(prospects))):
            at = start + dt.timedelta(hours=rng.uniform(0, 23))
            events.append(_event("lead_submit", at, person_id, f"lead-{day}-{person_id}", channel="app"))
            counts["leads"] += 1
    store.insert_events(events)
    return counts


def run_days(project, as_of: dt.datetime, log) -> dict[str, int]:
    """Run the journeys over DAYS simulated days after ``as_of``; returns what the customers did."""
    from motorcade.activation.runner import run_once
    from motorcade.activation.settings import ActivationContext

    store = project.store
    totals = {"leads": 0, "clicked": 0, "service_visit": 0, "test_drive": 0, "sends": 0}
    for day in range(1, DAYS + 1):
        now = as_of + dt.timedelta(days=day)
        for key, value in _customers_act(store, day, now - dt.timedelta(days=1), now, leads=True).items():
            totals[key] += value
        ctx = ActivationContext.for_project(project, clock=lambda now=now: now, worker_id="demo-days")
        report = run_once(ctx)
        sends = sum(t["sends"] for t in report.journeys.values())
        totals["sends"] += sends
        moved = ", ".join(f"{name} {t['entered']} in / {t['steps']} steps / {t['sends']} sends"
                          for name, t in report.journeys.items())
        log(f"  day {day} ({now.date()}): {moved}; delivered {report.dispatched.get('sent', 0)}")
    # the rest of every goal window, without new journey steps
    for day in range(DAYS + 1, 31):
        start = as_of + dt.timedelta(days=day - 1)
        for key, value in _customers_act(store, day, start, start + dt.timedelta(days=1), leads=False).items():
            totals[key] += value
    return totals
