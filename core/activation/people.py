"""What activation reads about one person: template context, trigger-evaluation data, addresses, time zone."""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Any

from motorcade.dsl.data import CarData, EventData, PersonData

# Channels whose address is the person id itself (the receiver looks the person up).
PERSON_ADDRESS_TYPES = ("webhook", "person", "person_id")
# Channels that address the person's advisor (the address is the advisor id).
ADVISOR_ADDRESS_TYPES = ("advisor", "advisor_id")


def person_timezone(attributes: dict[str, Any], default: dt.tzinfo) -> dt.tzinfo:
    """The person's IANA time zone (profile attribute ``timezone``), else the project's."""
    name = attributes.get("timezone")
    if isinstance(name, str) and name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return default


def _advisor_and_store(store, person_id: int) -> tuple[Any, Any]:
    relations = store.relations_of(person_id)
    advisor = None
    for kind in ("sales_advisor", "service_advisor"):
        for rel_kind, target in relations:
            if rel_kind == kind and advisor is None:
                advisor = store.get_advisor(target)
    shop = None
    # the store the person deals with: preferred (CRM), then where the car is serviced, then where it was sold
    store_kinds = ["home_store", "service_store", "selling_store", "lead_store"]
    store_kinds += sorted({k for k, _ in relations if k.endswith("store") and k not in store_kinds})
    for kind in store_kinds:
        for rel_kind, target in relations:
            if rel_kind == kind and shop is None:
                shop = store.get_store(target)
    if shop is None and advisor is not None:
        shop = store.get_store(advisor.store_id)
    if advisor is None and shop is not None:
        # a prospect without an advisor of their own: one of the store's sales advisors, the same one every
        # time for the same person (a stable share of the store's new leads per advisor)
        candidates = store.advisor_ids_of_store(shop.id, "sales")
        if candidates:
            advisor = store.get_advisor(candidates[person_id % len(candidates)])
    return advisor, shop


class Recommendation(str):
    """``{{ recommendation.NAME }}``: the person's top item (empty text when there is none), with ``items`` (ranked,
    once each), ``ranked`` (one dict per item and car: item, rank, rule, line, vin) and ``for_car(vin)``."""

    def __new__(cls, ranked: list):
        from motorcade.dsl.evaluate import person_items

        items = person_items(ranked)
        self = super().__new__(cls, items[0] if items else "")
        self.items = items
        self.ranked = [r.to_dict() for r in ranked]
        return self

    def for_car(self, vin: str) -> list[str]:
        """The items of one car (by rank) of a ``per car`` recommendation."""
        return [r["item"] for r in sorted(self.ranked, key=lambda r: r["rank"]) if r["vin"] == vin]


class Recommendations(dict):
    """The ``recommendation`` root: computed for the person on first use of each name (the compiled rules at
    ``now``); an unknown name is an error, as `motorcade check` reports it."""

    def __init__(self, store, rule_set, person_id: int, now: dt.datetime, tz: dt.tzinfo):
        super().__init__()
        self._source = (store, rule_set, person_id, now, tz)

    def __missing__(self, name: str) -> Recommendation:
        from motorcade.segments.recommend import compute_recommendations

        store, rule_set, person_id, now, tz = self._source
        if rule_set is None or name not in rule_set.recommendations:
            raise KeyError(name)
        ranked = compute_recommendations(store, rule_set, name, now, tz, [person_id]).get(person_id, [])
        self[name] = value = Recommendation(ranked)
        return value


def template_context(store, person_id: int, *, origin_kind: str, origin: str, now: dt.datetime, tz: dt.tzinfo,
                     event_properties: dict[str, Any] | None = None, rule_set=None,
                     roots: frozenset[str] | None = None) -> dict[str, Any]:
    """The names a template sees for this person (see :mod:`motorcade.activation.templates`).

    ``roots``: only these names are needed (:meth:`TemplateStore.roots` of the templates to render); the
    others are left out and their reads skipped. ``store`` is always there (a send records its id)."""
    want_person, want_tags, want_cars, want_advisor, want_recommendation = _wanted(roots)
    context: dict[str, Any] = {}
    if want_person:
        person = store.get_person(person_id)
        attributes = dict(person.attributes) if person else {}
        context.update(person={**attributes, "id": person_id}, profile=attributes)
    if want_tags:
        context["tags"] = {t.tag: t.value for t in store.tags_of(person_id)}
    cars = _cars(store, person_id, now.astimezone(tz).date()) if want_cars else None
    advisor, shop = _advisor_and_store(store, person_id)
    if shop is None:  # the store of the newest car
        if cars is None:
            cars = _cars(store, person_id, now.astimezone(tz).date())
        if cars and cars[0]["store_id"]:
            shop = store.get_store(cars[0]["store_id"])
    if want_cars:
        context.update(car=cars[0] if cars else None, cars=cars)
    if want_advisor:
        context["advisor"] = None if advisor is None else {
            "id": advisor.id, "name": advisor.name, "phone": advisor.phone, "store_id": advisor.store_id,
            "role": advisor.role}
    context["store"] = None if shop is None else {"id": shop.id, "name": shop.name, "group": shop.group,
                                                  "city": shop.city, "brand": shop.brand}
    context.update(origin={"kind": origin_kind, "name": origin}, event=event_properties or {},
                   now=now.astimezone(tz))
    if want_recommendation:
        context["recommendation"] = Recommendations(store, rule_set, person_id, now, tz)
    return context


@functools.lru_cache(maxsize=256)
def _wanted(roots: frozenset[str] | None) -> tuple[bool, bool, bool, bool, bool]:
    """Which parts of the context ``roots`` needs: person/profile, tags, car/cars, advisor, recommendation."""
    return tuple(roots is None or not roots.isdisjoint(names) for names in (
        ("person", "profile"), ("tags",), ("car", "cars"), ("advisor",), ("recommendation",)))


def _cars(store, person_id: int, today: dt.date) -> list[dict[str, Any]]:
    """The person's cars owned ``today``, newest ownership first."""
    cars = []
    for ownership in store.ownerships_of(person_id):
        if ownership.valid_to is not None and ownership.valid_to <= today:
            continue
        car = store.get_car(ownership.vin)
        if car is not None:
            cars.append({"vin": car.vin, "brand": car.brand, "model": car.model, "model_year": car.model_year,
                         "purchase_date": car.purchase_date, "store_id": car.store_id,
                         "_since": ownership.valid_from or dt.date.min})
    cars.sort(key=lambda c: c.pop("_since"), reverse=True)
    return cars


def address_of(store, person_id: int, address_type: str) -> str | None:
    """Where a channel with this address type reaches the person (None = the person has none)."""
    if address_type in PERSON_ADDRESS_TYPES:
        return str(person_id)
    if address_type in ADVISOR_ADDRESS_TYPES:
        advisor, _ = _advisor_and_store(store, person_id)
        return None if advisor is None else advisor.id
    values = store.identifiers_of(person_id, address_type)
    return values[0] if values else None


def consent_map(store, person_id: int) -> dict[str, bool]:
    return {c.channel: c.granted for c in store.consents_of(person_id)}


def person_data(store, person_id: int, *, as_of: dt.datetime) -> PersonData:
    """The person as the DSL's reference evaluator sees them (for trigger conditions)."""
    person = store.get_person(person_id)
    attributes = dict(person.attributes) if person else {}
    cars = []
    for ownership in store.ownerships_of(person_id):
        car = store.get_car(ownership.vin)
        if car is None:
            continue
        cars.append(CarData(vin=car.vin, brand=car.brand, model=car.model, model_year=car.model_year,
                            purchase_date=car.purchase_date, store_id=car.store_id,
                            owned_from=ownership.valid_from, owned_to=ownership.valid_to))
    relations = store.relations_of(person_id)
    # typed values (a date attribute or property stored as ISO text, a boolean tag as 0 / 1) as segments read them
    types = store.value_types()
    events = [EventData(e.name, e.ts, types.event(dict(e.properties)), id=e.id) for e in store.events_of(person_id)
              if e.ts <= as_of]
    attributes, tags = types.person(attributes, {t.tag: t.value for t in store.tags_of(person_id)})
    return PersonData(
        id=person_id,
        attributes=attributes,
        tags=tags,
        cars=cars,
        advisor_ids={t for k, t in relations if k.endswith("advisor")},
        store_ids={t for k, t in relations if k.endswith("store")},
        consents=consent_map(store, person_id),
        events=events,
    )
