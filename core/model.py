"""The domain model: what Motorcade knows about people, cars, advisors, stores and what happened.

All classes are attrs classes; value objects are frozen. Timestamps are timezone-aware ``datetime``
objects (stored as UTC). Person ids are integers assigned by the store; a merged person's id keeps
resolving through the merge log (see :mod:`motorcade.identity`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

# Identifier types One-ID knows about; a source may use others (they are plain strings).
IDENTIFIER_TYPES = (
    "phone",  # mobile number in E.164 (+8613812345678)
    "email",  # lower-cased e-mail address
    "wechat_openid",  # WeChat official-account openid (per app)
    "wechat_unionid",  # WeChat unionid (across the company's apps)
    "wecom_external_userid",  # WeCom external contact id
    "app_user_id",  # the brand app's user id
    "crm_id",  # CRM customer number
    "dms_customer_id",  # dealer-management-system customer number
    "lead_id",  # lead-centre id
    "national_id_hash",  # salted hash of a national id number, never the number itself
)


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"timestamp {value.isoformat()} has no time zone; Motorcade only stores aware times")
    return value.astimezone(dt.timezone.utc)


def _opt_aware(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else _aware(value)


@attrs.frozen
class Identifier:
    """One identifier of a person, e.g. ``Identifier("phone", "+8613812345678")``."""

    type: str  # one of IDENTIFIER_TYPES or a source-specific type
    value: str  # the cleaned, normalised value


@attrs.frozen
class Store:
    """A dealership (4S store or city showroom)."""

    id: str  # the store code, e.g. "SH001"
    name: str  # display name, e.g. "上海浦东宝马4S店"
    group: str  # the dealer group or region the store reports to
    city: str | None = None  # city the store is in
    brand: str | None = None  # franchise brand sold and serviced there


@attrs.frozen
class Advisor:
    """A sales or service advisor working at one store."""

    id: str  # advisor code
    name: str  # display name
    store_id: str  # the store the advisor works at
    role: str = "sales"  # "sales" or "service"
    phone: str | None = None  # work phone (E.164), used by advisor call tasks


@attrs.frozen
class Car:
    """A vehicle, identified by its VIN. Ownership is a relation, not an attribute (cars change hands)."""

    vin: str  # 17-character VIN, upper case, validated
    brand: str  # e.g. "BMW"
    model: str  # e.g. "X3"
    model_year: int | None = None  # model year
    purchase_date: dt.date | None = None  # first registration / delivery date
    store_id: str | None = None  # selling store


@attrs.frozen
class Ownership:
    """Person owns car from ``valid_from`` until ``valid_to`` (None = still owns it)."""

    person_id: int  # owner
    vin: str  # the car
    valid_from: dt.date | None  # start of ownership
    valid_to: dt.date | None = None  # end of ownership (car sold or scrapped)
    source: str | None = None  # source that reported the ownership


@attrs.frozen
class Person:
    """A stitched customer profile (the golden record)."""

    id: int  # stable person id; merged ids resolve through the merge log
    attributes: dict[str, Any] = attrs.field(factory=dict)  # profile attributes (name, gender, city, ...)
    identifiers: tuple[Identifier, ...] = ()  # every identifier linked to this person
    created_at: dt.datetime | None = attrs.field(default=None, converter=_opt_aware)  # first seen


@attrs.frozen
class Event:
    """Something a person did or that happened to them (a behaviour or feedback event)."""

    name: str  # event name, e.g. "test_drive", "service_visit", "clicked"
    ts: dt.datetime = attrs.field(converter=_aware)  # when it happened (aware, stored as UTC)
    person_id: int | None = None  # the person, once resolved by One-ID
    properties: dict[str, Any] = attrs.field(factory=dict)  # event properties (amount, store_id, vin, ...)
    source: str = "unknown"  # source name the event came from
    dedup_key: str | None = None  # unique within the source; re-ingesting the same key is a no-op
    id: int | None = None  # row id assigned by the store


@attrs.frozen
class Consent:
    """A person's consent state for one channel ("*" = every channel) at a point in time."""

    person_id: int  # the person
    channel: str  # channel name ("sms", "wecom", "email", ...) or "*"
    granted: bool  # True = opted in / may contact; False = opted out
    ts: dt.datetime = attrs.field(converter=_aware)  # when the consent state was recorded
    source: str | None = None  # where it came from (source name or "unsubscribe_event")


@attrs.frozen
class TagValue:
    """The value of one tag for one person, with provenance."""

    person_id: int  # the person
    tag: str  # tag name, e.g. "intent_level"
    value: Any  # str, int, float or bool
    computed_at: dt.datetime = attrs.field(converter=_aware)  # when it was computed
    calculator: str  # calculator (or "rule") that produced it
    calculator_version: str  # that calculator's version


@attrs.frozen
class SegmentMembership:
    """Person is in segment as computed at ``computed_at`` from rule revision ``revision``."""

    segment: str  # segment name
    person_id: int  # member
    computed_at: dt.datetime = attrs.field(converter=_aware)  # computation that last confirmed membership
    entered_at: dt.datetime = attrs.field(converter=_aware)  # first computation that found the person
    revision: str  # content hash of the rule files used


SEND_STATES = ("planned", "holdout", "suppressed", "deferred", "claimed", "sent", "failed", "dead")


@attrs.frozen
class Send:
    """One planned message in the outbox: written with the audience snapshot, claimed, sent, recorded."""

    idempotency_key: str  # deterministic: origin, run or event, person, step
    origin_kind: str  # "campaign" or "trigger"
    origin: str  # campaign or trigger name
    run_id: str  # campaign run id or triggering event id
    person_id: int  # recipient
    step: int  # step within the campaign/journey (0 for single-step)
    channel: str  # channel name
    template: str  # template name
    revision: str  # rule revision that planned this send
    status: str = "planned"  # one of SEND_STATES
    attempts: int = 0  # delivery attempts so far
    not_before: dt.datetime | None = attrs.field(default=None, converter=_opt_aware)  # earliest send
    reason: str | None = None  # why suppressed/deferred/dead (guard rail or provider answer)
    provider_message_id: str | None = None  # provider's id for the message, once sent


# Send states an operator may put back to `planned` (`motorcade sends retry --status ...`).
RETRYABLE_STATES = ("dead", "suppressed", "deferred", "failed")
