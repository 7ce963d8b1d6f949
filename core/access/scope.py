"""Scopes: which people a caller may see or act on.

A scope is ``group`` (everyone), one or several stores (``store:SH01,SH02``) and/or the customers of given
advisors (``advisor:A001``). A person belongs to the stores it has a relation with: a store relation
(selling, service, home or lead store) or an advisor relation, through the advisor's store. The SQL below is
the one definition of "a person's stores"; every scoped read and the DSL's ``scope`` declaration use it.
"""

from __future__ import annotations

import attrs

from ..errors import UsageError

# person_relations kinds whose target is a store code, and kinds whose target is an advisor id.
STORE_RELATION_KINDS = ("selling_store", "service_store", "store", "home_store", "lead_store")
ADVISOR_RELATION_KINDS = ("sales_advisor", "service_advisor", "advisor")


def _marks(values) -> str:
    return ", ".join("?" for _ in values)


def person_stores_sql() -> tuple[str, tuple]:
    """``SELECT person_id, store_id`` for every (person, store) pair a person belongs to."""
    sql = (f"SELECT person_id, target_id AS store_id FROM person_relations "
           f"WHERE kind IN ({_marks(STORE_RELATION_KINDS)}) "
           f"UNION SELECT r.person_id, a.store_id FROM person_relations r JOIN advisors a ON a.id = r.target_id "
           f"WHERE r.kind IN ({_marks(ADVISOR_RELATION_KINDS)})")
    return sql, STORE_RELATION_KINDS + ADVISOR_RELATION_KINDS


@attrs.frozen
class Scope:
    """Whom a grant (or a rule) covers: ``group`` (everyone), stores and advisors' own customers."""

    group: bool = False
    stores: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    advisors: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)

    @classmethod
    def everyone(cls) -> "Scope":
        return cls(group=True)

    @classmethod
    def of_stores(cls, *codes: str) -> "Scope":
        return cls(stores=frozenset(codes))

    @classmethod
    def parse(cls, text: str) -> "Scope":
        """``group``, ``store:SH01`` or ``store:SH01,SH02``, ``advisor:A001``."""
        text = text.strip()
        if text == "group":
            return cls.everyone()
        kind, _, codes = text.partition(":")
        values = frozenset(c.strip() for c in codes.split(",") if c.strip())
        if kind in ("store", "advisor") and values:
            return cls(stores=values) if kind == "store" else cls(advisors=values)
        raise UsageError(f"{text!r} is not a scope", hint="write group, store:CODE[,CODE...] or advisor:ID")

    @property
    def empty(self) -> bool:
        return not (self.group or self.stores or self.advisors)

    def union(self, other: "Scope") -> "Scope":
        if self.group or other.group:
            return Scope.everyone()
        return Scope(stores=self.stores | other.stores, advisors=self.advisors | other.advisors)

    def covers(self, other: "Scope") -> bool:
        """True when every person of ``other`` is certainly in this scope (by declaration, not by data)."""
        if self.group:
            return True
        if other.group:
            return False
        return other.stores <= self.stores and other.advisors <= self.advisors

    def __str__(self) -> str:
        if self.group:
            return "group"
        parts = []
        if self.stores:
            parts.append("store:" + ",".join(sorted(self.stores)))
        if self.advisors:
            parts.append("advisor:" + ",".join(sorted(self.advisors)))
        return " ".join(parts) or "nobody"

    def member_condition(self, person: str) -> tuple[str, tuple]:
        """A SQL condition true when the person id in expression ``person`` is in this scope: one indexed
        look-up per person (the relations' primary key), for checking a few people (a trigger's)."""
        if self.group:
            return "1", ()
        tests, params = [], []
        if self.stores:
            stores = sorted(self.stores)
            tests.append(f"(r.kind IN ({_marks(STORE_RELATION_KINDS)}) AND r.target_id IN ({_marks(stores)}))")
            params += [*STORE_RELATION_KINDS, *stores]
            tests.append(f"(r.kind IN ({_marks(ADVISOR_RELATION_KINDS)}) AND r.target_id IN "
                         f"(SELECT id FROM advisors WHERE store_id IN ({_marks(stores)})))")
            params += [*ADVISOR_RELATION_KINDS, *stores]
        if self.advisors:
            advisors = sorted(self.advisors)
            tests.append(f"(r.kind IN ({_marks(ADVISOR_RELATION_KINDS)}) AND r.target_id IN ({_marks(advisors)}))")
            params += [*ADVISOR_RELATION_KINDS, *advisors]
        if not tests:
            return "0", ()
        return (f"EXISTS (SELECT 1 FROM person_relations r WHERE r.person_id = {person} AND "
                f"({' OR '.join(tests)}))", tuple(params))

    def people_sql(self) -> tuple[str, tuple]:
        """``SELECT person_id`` of the people in this scope (not for ``group``: everyone needs no query)."""
        if self.group:
            return "SELECT id AS person_id FROM people", ()
        parts: list[str] = []
        params: list = []
        if self.stores:
            pairs, pair_params = person_stores_sql()
            parts.append(f"SELECT person_id FROM ({pairs}) WHERE store_id IN ({_marks(self.stores)})")
            params += [*pair_params, *sorted(self.stores)]
        if self.advisors:
            parts.append(f"SELECT person_id FROM person_relations WHERE kind IN ({_marks(ADVISOR_RELATION_KINDS)}) "
                         f"AND target_id IN ({_marks(self.advisors)})")
            params += [*ADVISOR_RELATION_KINDS, *sorted(self.advisors)]
        if not parts:
            return "SELECT NULL AS person_id WHERE 0", ()
        return " UNION ".join(parts), tuple(params)
