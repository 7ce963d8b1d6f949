"""In-memory data the reference evaluator reads: people with their attributes, tags, cars, advisors,
stores, consents and events.

This is deliberately plain: the SQL compiler's agreement tests build a :class:`Dataset`, load the
same rows into SQLite and compare results person by person.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"event time {value.isoformat()} has no time zone; give an aware datetime")
    return value


@attrs.frozen
class EventData:
    """One event of a person: ``name`` at ``ts`` (aware) with ``properties``."""

    name: str
    ts: dt.datetime = attrs.field(validator=lambda _i, _a, v: _aware(v))
    properties: dict[str, Any] = attrs.field(factory=dict)
    id: int | None = None  # optional id (rule tests refer to events by it)


@attrs.frozen
class CarData:
    """A car the person owns or owned; owned on day D iff owned_from <= D < owned_to (None = open)."""

    vin: str
    brand: str | None = None
    model: str | None = None
    model_year: int | None = None
    purchase_date: dt.date | None = None
    store_id: str | None = None
    owned_from: dt.date | None = None
    owned_to: dt.date | None = None


@attrs.define
class PersonData:
    """Everything the evaluator may look at for one person."""

    id: int
    attributes: dict[str, Any] = attrs.field(factory=dict)  # profile.x
    tags: dict[str, Any] = attrs.field(factory=dict)  # tag x
    cars: list[CarData] = attrs.field(factory=list)
    advisor_ids: set[str] = attrs.field(factory=set, converter=set)
    store_ids: set[str] = attrs.field(factory=set, converter=set)
    consents: dict[str, bool] = attrs.field(factory=dict)  # channel -> granted; "*" = every channel
    events: list[EventData] = attrs.field(factory=list)


@attrs.define
class Dataset:
    """The people to evaluate, by id."""

    people: dict[int, PersonData] = attrs.field(factory=dict)

    @classmethod
    def of(cls, *people: PersonData) -> "Dataset":
        return cls({p.id: p for p in people})
