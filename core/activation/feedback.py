"""Feedback events: every outcome of a send is written back as an event on the person.

Outcomes: ``queued`` (planned for the person), ``sent`` (the provider accepted it), ``failed`` (dead
letter), and from provider receipts or tracking: ``delivered``, ``opened``, ``clicked``, ``unsubscribed``.
Each event has source ``"motorcade"``, dedup key ``<outcome>:<idempotency key>`` (a receipt that arrives
twice -- Aliyun's are not idempotent -- is stored once) and properties naming the campaign or trigger,
channel, template, run, step and rule revision, so a segment can say
``did clicked where campaign = "lapsed_recall"``. An ``unsubscribed`` outcome also records a consent
refusal for the channel (or every channel when ``properties["scope"] == "all"``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from motorcade.model import Consent, Event

FEEDBACK_SOURCE = "motorcade"
OUTCOMES = ("queued", "sent", "delivered", "failed", "opened", "clicked", "unsubscribed")


def feedback_event(send: dict[str, Any], outcome: str, at: dt.datetime, **extra: Any) -> Event:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
    properties = {
        "origin_kind": send["origin_kind"],
        "origin": send["origin"],
        send["origin_kind"]: send["origin"],  # "campaign": "lapsed_recall" or "trigger": "order_thanks"
        "channel": send["channel"],
        "template": send["template"],
        "idempotency_key": send["idempotency_key"],
        "run_id": send["run_id"],
        "step": send.get("step", 0),
        "revision": send["revision"],
        **{k: v for k, v in extra.items() if v is not None},
    }
    return Event(name=outcome, ts=at, person_id=send["person_id"], properties=properties, source=FEEDBACK_SOURCE,
                 dedup_key=f"{outcome}:{send['idempotency_key']}")


def write_feedback(store, items: Iterable[tuple[dict[str, Any], str, dt.datetime, dict[str, Any]]]) -> int:
    """Insert feedback events ``(send, outcome, at, extra properties)``; returns the number new."""
    events = [feedback_event(send, outcome, at, **extra) for send, outcome, at, extra in items]
    return store.insert_events(events) if events else 0


def record_receipt(store, idempotency_key: str | None, outcome: str, *, at: dt.datetime,
                   detail: str | None = None, scope: str | None = None, channel: str | None = None,
                   provider_message_id: str | None = None) -> bool:
    """A provider receipt or tracking hit for a send (delivered, opened, clicked, unsubscribed, failed).

    Name the send by its idempotency key, or by ``channel`` and the provider's ``provider_message_id``
    (receipts that only carry the provider's id). Returns False if the send is unknown or the receipt was
    already recorded (duplicate receipts are normal and stored once).
    """
    with store.transaction():
        if idempotency_key is not None:
            send = store.get_send(idempotency_key)
        elif channel is not None and provider_message_id is not None:
            send = store.send_by_provider_message_id(channel, provider_message_id)
        else:
            raise ValueError("record_receipt needs an idempotency key, or a channel and provider_message_id")
        if send is None:
            return False
        new = write_feedback(store, [(send, outcome, at, {"detail": detail, "scope": scope})])
        if outcome == "unsubscribed":
            channel = "*" if scope == "all" else send["channel"]
            store.set_consent(Consent(send["person_id"], channel, False, at, source="unsubscribe_event"))
        return new > 0
