"""One query definition per tag calculator, run on whichever engine computes the tags.

A calculator builds its set-based work as a sqlglot tree with a :class:`TagQuery`: the parts every
engine writes alike are plain SQL fragments (``"e.ts >= :since"``, parsed by sqlglot, with ``:name``
placeholders), and the parts that differ — reading a JSON value, the local day of an instant, a person-id
list, a LEFT JOIN's missing row, rounding — come from the engine's dialect class
(:mod:`motorcade.segments.dialects`). The tree is rendered in the dialect of the engine the tags are
computed on: the analytics engine of ``[project] analytics`` (:attr:`TagContext.analytics`) when the
project has one, else the operational store (SQLite or PostgreSQL). One definition, every engine, the same
values (tests/test_tag_engines.py).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Mapping

from sqlglot import exp

from ..errors import ConfigError
from ..segments.dialects import get_dialect


def _plain_name(key: str, what: str) -> str:
    if not str(key).replace("_", "").isalnum():
        raise ConfigError(f"{what}: {key!r} is not a property name (letters, digits and _ only)")
    return str(key)


class TagQuery:
    """Builds one calculator's SELECT and runs it where ``context`` computes tags.

    ``what`` names the setting a JSON key comes from in errors (``"[tags.value] amount_property"``).
    """

    def __init__(self, context):
        self.context = context
        self.target = context.analytics if getattr(context, "analytics", None) is not None else context.store
        self.dialect = get_dialect(self.target.dialect)
        self.params: dict[str, Any] = {}
        self._names = itertools.count()

    # -- values enter as parameters --
    def bind(self, value: Any, name: str | None = None) -> exp.Placeholder:
        """A placeholder for ``value`` (``name`` when given, else a fresh one)."""
        if isinstance(value, bool):
            value = int(value)
        name = name or f"t{next(self._names)}"
        self.params[name] = value
        return exp.Placeholder(this=name)

    def set(self, **values: Any) -> None:
        """Bind ``values`` under their names, for ``:name`` in SQL fragments."""
        for name, value in values.items():
            self.bind(value, name)

    # -- what differs between engines (the dialect's) --
    def json_text(self, document: str, key: str, what: str = "property") -> exp.Expression:
        """The JSON value under ``key`` of the ``document`` column as text (NULL when missing)."""
        return self.dialect.json_text(exp.column(*reversed(document.split("."))), _plain_name(key, what))

    def json_number(self, document: str, key: str, what: str = "property") -> exp.Expression:
        """The JSON value under ``key`` of the ``document`` column as a float (NULL when missing)."""
        return self.dialect.json_number(exp.column(*reversed(document.split("."))), _plain_name(key, what))

    def local_day(self, column: str) -> exp.Expression:
        """The local day (days since 1970-01-01 in the project's zone) of the epoch seconds in ``column``."""
        return self.dialect.local_day(exp.column(*reversed(column.split("."))), self.context.zone_key, self.bind)

    def outer(self, value: str | exp.Expression) -> exp.Expression:
        """``value``, read through a LEFT JOIN: NULL on every engine where the joined side has no row."""
        return self.dialect.outer(exp.maybe_parse(value))

    def year_start(self, column: str) -> exp.Expression:
        return self.dialect.year_start(exp.column(*reversed(column.split("."))))

    def round_half_away(self, value: exp.Expression) -> exp.Expression:
        return self.dialect.round_half_away(value)

    def person_filter(self, column: str) -> exp.Expression | None:
        """``column IN (the people of an incremental run)``; None for a full run."""
        ids = self.context.person_ids
        if ids is None:
            return None
        if "person_ids_json" not in self.params:
            self.bind(json.dumps(sorted(ids)), "person_ids_json")
        return self.dialect.in_ids(exp.column(*reversed(column.split("."))),
                                   exp.Placeholder(this="person_ids_json"))

    def weight_of(self, column: str, weights: Mapping[str, float]) -> tuple[exp.Expression, exp.Expression]:
        """``(CASE column WHEN name THEN weight ... END, column IN (names))`` for a name -> weight table."""
        value = exp.column(*reversed(column.split(".")))
        names = [self.bind(str(name)) for name in weights]
        case = exp.Case(ifs=[exp.If(this=exp.EQ(this=value.copy(), expression=n.copy()),
                                    true=self.bind(float(w))) for n, w in zip(names, weights.values())])
        return case, exp.In(this=value.copy(), expressions=[n.copy() for n in names])

    # -- running --
    def where(self, select: exp.Select, *conditions: str | exp.Expression | None) -> exp.Select:
        """``select`` with the conditions ANDed to its WHERE (None skipped)."""
        for condition in conditions:
            if condition is not None:
                select = select.where(condition, copy=False)
        return select

    def sql(self, tree: exp.Expression) -> str:
        return self.dialect.render(tree, self.params)

    def rows(self, tree: exp.Expression) -> list[tuple]:
        """The rows of ``tree`` on the engine computing the tags."""
        return list(self.target.query(self.sql(tree), self.params))

