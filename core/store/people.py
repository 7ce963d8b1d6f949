"""People, stores, advisors, cars, ownerships, person relations and consent."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Iterable

from ..model import Advisor, Car, Consent, Ownership, Person, Store
from .codec import date_text, dumps, epoch, from_date_text, from_epoch, from_iso, iso, loads, utc_now

if TYPE_CHECKING:
    from motorcade.dsl.data import ValueTypes


# Whether the consent state offered (``excluded``) replaces the one stored (``consents``), in the WHERE of an
# upsert. A refusal replaces a grant without a time of its own (read from a source that gives none) or any
# state not newer than it. A grant replaces a refusal only when it certainly came after it: its own time is
# later, or ``{after}`` (the time the same source row was read stating a refusal before it changed to this
# grant; NULL if unknown) is not before the refusal. Between grants, a dated one outranks an undated one,
# else the newer wins.
CONSENT_PRECEDENCE = (
    "CASE WHEN excluded.granted = 0 THEN (consents.granted = 1 AND consents.dated = 0) OR excluded.ts >= consents.ts "
    "WHEN consents.granted = 0 THEN (excluded.dated = 1 AND excluded.ts > consents.ts) OR consents.ts <= {after} "
    "ELSE excluded.dated > consents.dated OR (excluded.dated = consents.dated AND excluded.ts >= consents.ts) END"
)


class PeopleMixin:
    # -- people -----------------------------------------------------------------------------------

    def create_person(self, attributes: dict[str, Any] | None = None, *, at: dt.datetime | None = None) -> int:
        """Insert a new person and return their id."""
        now = iso(at or utc_now())
        cur = self.conn.execute(
            "INSERT INTO people (attributes, created_at, updated_at) VALUES (?, ?, ?)",
            (dumps(attributes or {}), now, now),
        )
        return cur.lastrowid

    def update_person_attributes(self, person_id: int, attributes: dict[str, Any], *, replace: bool = False) -> None:
        """Merge ``attributes`` into the person's (or replace them all with ``replace=True``)."""
        row = self.conn.execute("SELECT attributes FROM people WHERE id = ?", (person_id,)).fetchone()
        if row is None:
            raise KeyError(f"no person with id {person_id}")
        merged = attributes if replace else {**loads(row[0]), **attributes}
        self.conn.execute(
            "UPDATE people SET attributes = ?, updated_at = ? WHERE id = ?",
            (dumps(merged), iso(utc_now()), person_id),
        )

    def resolve_person_id(self, person_id: int) -> int:
        """Follow the merge log: the id that ``person_id`` stands for today."""
        seen = set()
        while person_id not in seen:
            seen.add(person_id)
            row = self.conn.execute("SELECT new_id FROM person_merges WHERE old_id = ?", (person_id,)).fetchone()
            if row is None:
                return person_id
            person_id = row[0]
        raise RuntimeError(f"merge log has a cycle through person {person_id}")

    def live_person_id(self, person_id: int | None) -> int | None:
        """The person ``person_id`` stands for today (following the merge log), or None when there is none.

        Writers of rows that name a person outside the identity stage (feedback events, consents,
        relations, ownerships added by hand) go through it, so every person id stored names a row of
        ``people`` once identity is settled (segment plans rely on it: ``SegmentsMixin.identity_settled``).
        """
        if person_id is None:
            return None
        live = self.resolve_person_id(person_id)
        if self.conn.execute("SELECT 1 FROM people WHERE id = ?", (live,)).fetchone() is None:
            return None
        return live

    def _require_person(self, person_id: int) -> int:
        live = self.live_person_id(person_id)
        if live is None:
            from ..errors import MotorcadeError

            raise MotorcadeError(f"no person {person_id}", hint="create the person first (ids come from One-ID)")
        return live

    def get_person(self, person_id: int) -> Person | None:
        """The person (following merges), with identifiers, or None."""
        person_id = self.resolve_person_id(person_id)
        row = self.conn.execute(
            "SELECT id, attributes, created_at FROM people WHERE id = ?", (person_id,)
        ).fetchone()
        if row is None:
            return None
        from ..model import Identifier

        identifiers = tuple(
            Identifier(t, v)
            for t, v in self.conn.execute(
                "SELECT type, value FROM identifiers WHERE person_id = ? ORDER BY type, value", (person_id,)
            )
        )
        return Person(id=row[0], attributes=loads(row[1]), identifiers=identifiers, created_at=from_iso(row[2]))

    def attribute_names(self, *, limit: int = 10000) -> set[str]:
        """Names of the profile attributes stored on people (at most ``limit`` distinct names)."""
        return {r[0] for r in self.conn.execute(
            "SELECT DISTINCT key FROM people, json_each(people.attributes) LIMIT ?", (limit,))}

    def person_ids(self) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT id FROM people ORDER BY id")]

    # -- stores, advisors, cars -------------------------------------------------------------------

    def upsert_stores(self, stores: Iterable[Store]) -> int:
        rows = [(s.id, s.name, s.group, s.city, s.brand) for s in stores]
        self.conn.executemany(
            "INSERT INTO stores (id, name, group_name, city, brand) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET name=excluded.name, group_name=excluded.group_name, "
            "city=excluded.city, brand=excluded.brand",
            rows,
        )
        return len(rows)

    def get_store(self, store_id: str) -> Store | None:
        row = self.conn.execute(
            "SELECT id, name, group_name, city, brand FROM stores WHERE id = ?", (store_id,)
        ).fetchone()
        return None if row is None else Store(*row)

    def list_stores(self) -> list[Store]:
        return [Store(*r) for r in self.conn.execute("SELECT id, name, group_name, city, brand FROM stores ORDER BY id")]

    def upsert_advisors(self, advisors: Iterable[Advisor]) -> int:
        rows = [(a.id, a.name, a.store_id, a.role, a.phone) for a in advisors]
        self.conn.executemany(
            "INSERT INTO advisors (id, name, store_id, role, phone) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET name=excluded.name, store_id=excluded.store_id, "
            "role=excluded.role, phone=excluded.phone",
            rows,
        )
        return len(rows)

    def get_advisor(self, advisor_id: str) -> Advisor | None:
        row = self.conn.execute(
            "SELECT id, name, store_id, role, phone FROM advisors WHERE id = ?", (advisor_id,)
        ).fetchone()
        return None if row is None else Advisor(*row)

    def upsert_cars(self, cars: Iterable[Car]) -> int:
        rows = [(c.vin, c.brand, c.model, c.model_year, date_text(c.purchase_date), c.store_id) for c in cars]
        self.conn.executemany(
            "INSERT INTO cars (vin, brand, model, model_year, purchase_date, store_id) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(vin) DO UPDATE SET brand=excluded.brand, model=excluded.model, "
            "model_year=coalesce(excluded.model_year, cars.model_year), "
            "purchase_date=coalesce(cars.purchase_date, excluded.purchase_date), "
            "store_id=coalesce(cars.store_id, excluded.store_id)",
            rows,
        )
        return len(rows)

    def get_car(self, vin: str) -> Car | None:
        row = self.conn.execute(
            "SELECT vin, brand, model, model_year, purchase_date, store_id FROM cars WHERE vin = ?", (vin,)
        ).fetchone()
        if row is None:
            return None
        return Car(row[0], row[1], row[2], row[3], from_date_text(row[4]), row[5])

    def add_ownership(self, ownership: Ownership) -> None:
        """Record that a person owns a car from a date. A later owner closes the previous ownership."""
        frm = date_text(ownership.valid_from)
        person_id = self._require_person(ownership.person_id)
        self.conn.execute(
            "INSERT INTO ownerships (person_id, vin, valid_from, valid_to, source) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(vin, valid_from) DO UPDATE SET person_id=excluded.person_id, "
            "valid_to=coalesce(excluded.valid_to, ownerships.valid_to), source=excluded.source",
            (person_id, ownership.vin, frm, date_text(ownership.valid_to), ownership.source),
        )
        if frm is not None:
            # The previous open ownership of this car ends when the new one starts (a used-car sale).
            self.conn.execute(
                "UPDATE ownerships SET valid_to = ? WHERE vin = ? AND valid_to IS NULL "
                "AND valid_from IS NOT NULL AND valid_from < ?",
                (frm, ownership.vin, frm),
            )

    def ownerships_of(self, person_id: int) -> list[Ownership]:
        return [
            Ownership(r[0], r[1], from_date_text(r[2]), from_date_text(r[3]), r[4])
            for r in self.conn.execute(
                "SELECT person_id, vin, valid_from, valid_to, source FROM ownerships WHERE person_id = ? "
                "ORDER BY valid_from",
                (person_id,),
            )
        ]

    def set_relation(self, person_id: int, kind: str, target_id: str, *, source: str | None = None,
                     since: dt.date | None = None) -> None:
        """Link a person to an advisor or store: kind is sales_advisor, service_advisor, selling_store, ..."""
        self.conn.execute(
            "INSERT INTO person_relations (person_id, kind, target_id, source, since) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(person_id, kind, target_id) DO UPDATE SET source=excluded.source, "
            "since=coalesce(person_relations.since, excluded.since)",
            (self._require_person(person_id), kind, target_id, source, date_text(since)),
        )

    def relations_of(self, person_id: int) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT kind, target_id FROM person_relations WHERE person_id = ? ORDER BY kind, target_id",
                (person_id,),
            )
        ]

    # -- consent ----------------------------------------------------------------------------------

    def set_consent(self, consent: Consent, *, undated: bool = False, record_id: int | None = None) -> bool:
        """Record a consent state unless the stored one takes precedence; True if the stored state changed.

        Precedence (:data:`CONSENT_PRECEDENCE`; the reliability section of the README states it for
        operators): a refusal stands until a grant certainly made after it arrives -- a grant with its own
        later time, or a source row that had stated the refusal (or stated a refusal read after it) and then
        changed to a grant. A grant without a time of its own never outranks a refusal, and a refusal
        received later beats it whatever the refusal's time.

        ``undated``: the source states the consent without a time (``consent.ts`` is when it was read).
        ``record_id`` names the source row (its identity record): the row read again unchanged states
        nothing (its first time is kept); without a record id, the same state from the same source as the
        stored one changes nothing. A consent given for a merged-away id is the surviving person's (an
        opt-out is never lost); one for an id that names nobody is not stored."""
        person_id = self.live_person_id(consent.person_id)
        if person_id is None:
            return False
        ts = epoch(consent.ts)
        after = None  # an undated grant replacing this row's refusal: certainly made after this time
        if undated and record_id is not None:
            prev = self.conn.execute(
                "SELECT granted, ts FROM consent_statements WHERE record_id = ? AND channel = ?",
                (record_id, consent.channel),
            ).fetchone()
            if prev is not None and bool(prev[0]) == consent.granted:
                return False  # the row did not change
            self.conn.execute(
                "INSERT INTO consent_statements (record_id, channel, granted, ts) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(record_id, channel) DO UPDATE SET granted = excluded.granted, ts = excluded.ts",
                (record_id, consent.channel, int(consent.granted), ts),
            )
            if prev is not None and consent.granted:
                after = prev[1]
        unchanged = ("AND (consents.granted != excluded.granted OR consents.source IS NOT excluded.source)"
                     if undated and record_id is None else "")
        cur = self.conn.execute(
            "INSERT INTO consents (person_id, channel, granted, ts, source, dated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(person_id, channel) DO UPDATE SET granted=excluded.granted, ts=excluded.ts, "
            f"source=excluded.source, dated=excluded.dated WHERE ({CONSENT_PRECEDENCE.format(after='?')}) "
            f"{unchanged}",
            (person_id, consent.channel, int(consent.granted), ts, consent.source, int(not undated), after),
        )
        return cur.rowcount > 0

    def consents_of(self, person_id: int) -> list[Consent]:
        return [
            Consent(r[0], r[1], bool(r[2]), from_epoch(r[3]), r[4])
            for r in self.conn.execute(
                "SELECT person_id, channel, granted, ts, source FROM consents WHERE person_id = ? ORDER BY channel",
                (person_id,),
            )
        ]

    # -- value types ----------------------------------------------------------------------------------

    def define_value_types(self, types: dict[str, str], *, scope: str, source: str) -> None:
        """Record the declared types (``{"birth_date": "date"}``) of the profile attributes (``scope`` =
        "attribute") or event properties ("property") that ``source`` maps with a typed column."""
        self.conn.executemany(
            "INSERT INTO value_types (scope, name, type, source) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(scope, name) DO UPDATE SET type = excluded.type, source = excluded.source",
            sorted((scope, name, kind, source) for name, kind in types.items()))

    def value_types(self) -> ValueTypes:
        """The types rules compare stored values as (:class:`motorcade.dsl.data.ValueTypes`): profile
        attributes and event properties from the sources' typed columns, tags from the tag catalogue."""
        from motorcade.dsl.data import ValueTypes

        declared: dict[str, dict[str, str]] = {"attribute": {}, "property": {}}
        for scope, name, kind in self.conn.execute("SELECT scope, name, type FROM value_types"):
            declared.setdefault(scope, {})[name] = kind
        definitions = self.conn.execute("SELECT name, type, per_store FROM tag_definitions").fetchall()
        return ValueTypes(attributes=declared["attribute"], properties=declared["property"],
                          tags={name: kind for name, kind, _ in definitions},
                          store_tags=frozenset(name for name, _, per_store in definitions if per_store))
