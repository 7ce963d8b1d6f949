"""In-memory data the reference evaluator reads: people with their attributes, tags, cars, advisors,
stores, consents and events.

This is deliberately plain: the SQL compiler's agreement tests build a :class:`Dataset`, load the
same rows into SQLite and compare results person by person.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import attrs

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2}")


def iso_date(text: str) -> dt.date | None:
    """The date ``text`` names when it is exactly ``YYYY-MM-DD`` (a real day), else None. This is how a
    typed date is stored (JSON and SQLite have no date type); the SQL compiler tests the same form."""
    if len(text) != 10 or not _ISO_DATE.fullmatch(text) or text < "0001":
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def iso_instant(text: str) -> dt.datetime | None:
    """The instant ``text`` names when it is exactly ``YYYY-MM-DDTHH:MM:SS+HH:MM`` (how sources store a
    date-time: with its offset, seconds resolution), else None."""
    if len(text) != 25 or not _ISO_INSTANT.fullmatch(text) or text < "1000":
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _json_typed(kind: str | None, value: Any) -> Any:
    if isinstance(value, str):
        if kind == "date":
            return iso_date(value) or value
        if kind == "datetime":
            return iso_instant(value) or value
    return value


@attrs.frozen
class ValueTypes:
    """The declared types of stored values, so a rule compares them as that type.

    JSON (profile attributes, event properties) and SQLite (tag values) keep numbers, strings and (JSON)
    booleans as they are, but store a date as ISO text and (tags) a boolean as 0 / 1. ``attributes`` and
    ``properties`` map a profile attribute or an event property to ``"date"`` or ``"datetime"`` (from the
    sources' typed columns; other declared types are stored as themselves); ``tags`` maps a tag to its type
    (``"boolean"``, ``"date"``, ...). :meth:`attribute`, :meth:`property` and :meth:`tag` turn a stored value
    into the value a rule sees; a stored value not in the type's form (``"soon"`` in a date attribute) stays
    what it is.
    """

    attributes: dict[str, str] = attrs.field(factory=dict)
    tags: dict[str, str] = attrs.field(factory=dict)
    properties: dict[str, str] = attrs.field(factory=dict)
    # tags with a value per store (``per_store``): a store-scoped rule reads the value at its store
    store_tags: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset)

    def attribute(self, name: str, value: Any) -> Any:
        return _json_typed(self.attributes.get(name), value)

    def property(self, name: str, value: Any) -> Any:
        return _json_typed(self.properties.get(name), value)

    def event(self, properties: dict[str, Any]) -> dict[str, Any]:
        """An event's properties with every value typed."""
        if not self.properties:
            return properties
        return {k: self.property(k, v) for k, v in properties.items()}

    def tag(self, name: str, value: Any) -> Any:
        kind = self.tags.get(name)
        if kind == "boolean" and type(value) is int and value in (0, 1):
            return bool(value)
        if kind == "date" and isinstance(value, str):
            return iso_date(value) or value
        return value

    def person(self, attributes: dict[str, Any], tags: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(attributes, tags)`` of one person with every value typed."""
        return ({k: self.attribute(k, v) for k, v in attributes.items()},
                {k: self.tag(k, v) for k, v in tags.items()})


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
    # the stores the person belongs to for a rule's `scope` (docs/access.md: store relations of every kind and
    # the stores of their advisors); None: the same as store_ids (rule tests give a person's stores once)
    scope_stores: set[str] | None = None
    # per-store tag values: store id -> {tag: value}; a rule scoped to a store reads a per-store tag here
    store_tags: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    consents: dict[str, bool] = attrs.field(factory=dict)  # channel -> granted; "*" = every channel
    events: list[EventData] = attrs.field(factory=list)


@attrs.define
class Dataset:
    """The people to evaluate, by id."""

    people: dict[int, PersonData] = attrs.field(factory=dict)
    # tags with a value per store (``ValueTypes.store_tags``): a store's rule reads them in PersonData.store_tags
    store_tags: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset)

    @classmethod
    def of(cls, *people: PersonData) -> "Dataset":
        return cls({p.id: p for p in people})
