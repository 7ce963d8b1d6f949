"""Load people from the store into the reference evaluator's in-memory :class:`Dataset`.

Used by ``motorcade explain SEGMENT --person ID`` (the evaluator explains one person) and by the tests
that compare the compiled SQL with the evaluator on the same rows. The mapping is the one the compiler
assumes: tag values keep their SQLite type, attributes and event properties are JSON, ``store`` /
``advisor`` are the person's relation targets of the kinds in ``STORE_RELATIONS`` / ``ADVISOR_RELATIONS``.
Typed values (a date attribute or property stored as ISO text, a boolean tag stored as 0 / 1) are turned into their
type by the store's :meth:`value_types`, as the compiler reads them.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

import attrs

from motorcade.dsl.data import CarData, Dataset, EventData, PersonData

from .compiler import ADVISOR_RELATIONS, STORE_RELATIONS

UTC = dt.timezone.utc


def _date(text: str | None) -> dt.date | None:
    return None if not text else dt.date.fromisoformat(text)


def load_dataset(store, person_ids: Iterable[int] | None = None) -> Dataset:
    """Everyone (or ``person_ids``) with attributes, tags, cars owned, relations, consents and events."""
    ids = store.person_ids() if person_ids is None else sorted(set(int(i) for i in person_ids))
    types = store.value_types()
    rows = store.person_rule_rows(ids)
    people = {pid: PersonData(pid, attributes=attributes) for pid, attributes in rows["people"]}
    for pid, tag, value in rows["tags"]:
        if pid in people:
            people[pid].tags[tag] = value
    for pid, store_id, tag, value in rows.get("store_tags", ()):
        if pid in people:
            people[pid].store_tags.setdefault(store_id, {})[tag] = types.tag(tag, value)
    for row in rows["cars"]:
        if row[0] in people:
            people[row[0]].cars.append(CarData(row[1], row[2], row[3], row[4], _date(row[5]), row[6],
                                               _date(row[7]), _date(row[8])))
    for pid, kind, target in rows["relations"]:
        if pid not in people:
            continue
        if kind in STORE_RELATIONS:
            people[pid].store_ids.add(target)
        elif kind in ADVISOR_RELATIONS:
            people[pid].advisor_ids.add(target)
    for pid in people:
        people[pid].scope_stores = set()
    for pid, store_id in rows["scope_stores"]:  # a rule's `scope` reads stores as access control does
        if pid in people:
            people[pid].scope_stores.add(store_id)
    for pid, channel, granted in rows["consents"]:
        if pid in people:
            people[pid].consents[channel] = granted
    for eid, pid, name, ts, properties in rows["events"]:
        if pid in people:
            people[pid].events.append(EventData(name, dt.datetime.fromtimestamp(ts, UTC), properties, eid))
    for person in people.values():
        person.attributes, person.tags = types.person(person.attributes, person.tags)
        if types.properties:
            person.events = [attrs.evolve(e, properties=types.event(e.properties)) for e in person.events]
    return Dataset(people, store_tags=types.store_tags)
