"""Segment's tracking spec, as the collector checks it: call types, required fields, sizes, time stamps.

A message is checked and normalised before it is stored; what fails is answered with the reason (and
quarantined), never stored half. The normalised message keeps Segment's field names and adds what Segment's
servers add: ``receivedAt`` (our clock), ``originalTimestamp`` (the client's ``timestamp``) and the corrected
``timestamp``::

    timestamp = receivedAt - (sentAt - originalTimestamp)

which removes the client device's clock skew when the client says when it sent the message (``sentAt``, set by
Segment's libraries per batch). Without ``sentAt`` the client's time stamp is used as it is; without either,
``receivedAt``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Mapping

CALL_TYPES = ("track", "identify", "page", "screen", "alias", "group")
MAX_MESSAGE_BYTES = 32 * 1024  # Segment: 32 KB per call / per message of a batch
MAX_BATCH_BYTES = 500 * 1024  # Segment: 500 KB per batch request
MAX_ID_LENGTH = 256
MAX_EVENT_NAME_LENGTH = 200
# Event times outside this range are refused (a device clock years off, a typo): documented in docs/collect.md.
EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.timezone.utc)
LATEST_AHEAD = dt.timedelta(days=1)
# The context fields kept with an event (traits are the person's, not the event's).
CONTEXT_KEPT = ("ip", "userAgent", "library", "app", "device", "os", "page", "screen", "locale", "timezone",
                "campaign", "network", "referrer", "channel")


class Invalid(Exception):
    """The message breaks the spec; ``reason`` says how, in words an integrator can act on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_instant(value: Any, field: str) -> dt.datetime:
    """An aware instant from ISO 8601 text (``Z`` or an offset; no offset = UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{field} must be an ISO 8601 date-time text, not {type(value).__name__}")
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Invalid(f"{field} {value[:40]!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id(message: Mapping[str, Any], field: str) -> str | None:
    value = message.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Invalid(f"{field} must be text or a whole number")
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise Invalid(f"{field} is longer than {MAX_ID_LENGTH} characters")
    return text


def _object(message: Mapping[str, Any], field: str) -> dict:
    value = message.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{field} must be a JSON object")
    return value


def normalise(message: Any, *, call_type: str | None, received_at: dt.datetime,
              batch_sent_at: Any = None, batch_context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The checked message in Segment's shape with the server's fields added (raises :class:`Invalid`).

    ``call_type``: the type the endpoint implies (``/v1/track``), or None for a batch item (its ``type``).
    """
    if not isinstance(message, dict):
        raise Invalid("a message must be a JSON object")
    kind = call_type or message.get("type")
    if kind not in CALL_TYPES:
        raise Invalid(f"type {kind!r} is not one of {', '.join(CALL_TYPES)}")
    if call_type and message.get("type") not in (None, call_type):
        raise Invalid(f"type {message.get('type')!r} sent to the {call_type} endpoint")
    user_id, anonymous_id = _id(message, "userId"), _id(message, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise Invalid("every call needs a userId or an anonymousId")
    out: dict[str, Any] = {"type": kind, "userId": user_id, "anonymousId": anonymous_id}
    if kind == "track":
        event = message.get("event")
        if not isinstance(event, str) or not event.strip():
            raise Invalid("a track call needs an event name (field 'event')")
        if len(event) > MAX_EVENT_NAME_LENGTH:
            raise Invalid(f"event name is longer than {MAX_EVENT_NAME_LENGTH} characters")
        out["event"] = event
        out["properties"] = _object(message, "properties")
    elif kind in ("page", "screen"):
        name = message.get("name")
        if name is not None and not isinstance(name, str):
            raise Invalid("name must be text")
        out["name"] = name
        out["properties"] = _object(message, "properties")
        category = message.get("category")
        if category is not None:
            out["category"] = str(category)
    elif kind == "identify":
        out["traits"] = _object(message, "traits")
    elif kind == "alias":
        previous = _id(message, "previousId")
        if previous is None or user_id is None:
            raise Invalid("an alias call needs previousId and userId")
        out["previousId"] = previous
    elif kind == "group":
        group_id = _id(message, "groupId")
        if group_id is None:
            raise Invalid("a group call needs a groupId")
        out["groupId"] = group_id
        out["traits"] = _object(message, "traits")
    context = {**(batch_context or {}), **_object(message, "context")}
    out["context"] = context
    message_id = message.get("messageId")
    if message_id is None or message_id == "":
        message_id = f"motorcade-{uuid.uuid4()}"  # the client sent none: it cannot be deduplicated
    elif not isinstance(message_id, str) or len(message_id) > MAX_ID_LENGTH:
        raise Invalid(f"messageId must be text of at most {MAX_ID_LENGTH} characters")
    out["messageId"] = message_id
    original = message.get("timestamp", message.get("originalTimestamp"))
    sent = message.get("sentAt", batch_sent_at)
    original_at = parse_instant(original, "timestamp") if original is not None else None
    sent_at = parse_instant(sent, "sentAt") if sent is not None else None
    if original_at is not None and sent_at is not None:
        timestamp = received_at - (sent_at - original_at)
    else:
        timestamp = original_at or received_at
    if not EARLIEST <= timestamp <= received_at + LATEST_AHEAD:
        raise Invalid(f"timestamp {iso(timestamp)} (after clock-skew correction) is outside "
                      f"{EARLIEST.date()} .. receivedAt + 1 day")
    out["timestamp"] = iso(timestamp)
    out["originalTimestamp"] = iso(original_at) if original_at is not None else None
    out["sentAt"] = iso(sent_at) if sent_at is not None else None
    out["receivedAt"] = iso(received_at)
    return out


def event_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a message's context kept with its event (client, device, page, campaign; not traits)."""
    return {key: context[key] for key in CONTEXT_KEPT if key in context}
