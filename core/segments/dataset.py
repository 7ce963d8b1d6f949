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
import json
from typing import Iterable

import attrs

from motorcade.dsl.data import CarData, Dataset, EventData, PersonData

from .compiler import ADVISOR_RELATIONS, STORE_RELATIONS

UTC = dt.timezone.utc
_CHUNK = 500


def _date(text: str | None) -> dt.date | None:
    return None if not text else dt.date.fromisoformat(text)


def load_dataset(store, person_ids: Iterable[int] | None = None) -> Dataset:
    """Everyone (or ``person_ids``) with attributes, tags, cars owned, relations, consents and events."""
    conn = store.conn
    if person_ids is None:
        ids = [r[0] for r in conn.execute("SELECT id FROM people ORDER BY id")]
    else:
        ids = sorted(set(int(i) for i in person_ids))
    people: dict[int, PersonData] = {}
    types = store.value_types()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for pid, attributes in conn.execute(f"SELECT id, attributes FROM people WHERE id IN ({marks})", chunk):
            people[pid] = PersonData(pid, attributes=json.loads(attributes or "{}"))
        for tag, pid, value in conn.execute(
                f"SELECT tag, person_id, value FROM tag_values WHERE person_id IN ({marks})", chunk):
            if pid in people:
                people[pid].tags[tag] = value
        for row in conn.execute(
                "SELECT o.person_id, c.vin, c.brand, c.model, c.model_year, c.purchase_date, c.store_id, "
                f"o.valid_from, o.valid_to FROM ownerships o JOIN cars c ON c.vin = o.vin "
                f"WHERE o.person_id IN ({marks}) ORDER BY o.id", chunk):
            if row[0] in people:
                people[row[0]].cars.append(CarData(row[1], row[2], row[3], row[4], _date(row[5]), row[6],
                                                   _date(row[7]), _date(row[8])))
        for pid, kind, target in conn.execute(
                f"SELECT person_id, kind, target_id FROM person_relations WHERE person_id IN ({marks})", chunk):
            if pid not in people:
                continue
            if kind in STORE_RELATIONS:
                people[pid].store_ids.add(target)
            elif kind in ADVISOR_RELATIONS:
                people[pid].advisor_ids.add(target)
        from motorcade.access.scope import person_stores_sql

        pairs, pair_params = person_stores_sql()  # a rule's `scope` reads stores as access control does
        for pid in chunk:
            if pid in people:
                people[pid].scope_stores = set()
        for pid, store_id in conn.execute(f"SELECT person_id, store_id FROM ({pairs}) WHERE person_id IN ({marks})",
                                          (*pair_params, *chunk)):
            if pid in people:
                people[pid].scope_stores.add(store_id)
        for pid, channel, granted in conn.execute(
                f"SELECT person_id, channel, granted FROM consents WHERE person_id IN ({marks})", chunk):
            if pid in people:
                people[pid].consents[channel] = bool(granted)
        for eid, pid, name, ts, properties in conn.execute(
                f"SELECT id, person_id, name, ts, properties FROM events WHERE person_id IN ({marks}) "
                "ORDER BY ts, id", chunk):
            if pid in people:
                people[pid].events.append(EventData(name, dt.datetime.fromtimestamp(ts, UTC),
                                                    json.loads(properties or "{}"), eid))
    for person in people.values():
        person.attributes, person.tags = types.person(person.attributes, person.tags)
        if types.properties:
            person.events = [attrs.evolve(e, properties=types.event(e.properties)) for e in person.events]
    return Dataset(people)
