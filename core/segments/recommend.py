"""Recommendations from the store: ``recommend NAME { when c then "item" ... }`` compiled to one SQL query.

The query has one 0 / 1 column per rule (the compiled condition, as the segment compiler writes it) and one
row per person, or per car a person owns on the as-of day for a ``per car`` recommendation. The ranking is
:func:`motorcade.dsl.evaluate.rank_items`, the reference evaluator's own: the rules' order, an item kept at
its first rank. The tests compare this with :func:`motorcade.dsl.evaluate.evaluate_recommendations` on
generated people (``tests/test_recommendations.py``).
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from sqlglot import exp

from motorcade.dsl.errors import did_you_mean
from motorcade.dsl.evaluate import RecommendedItem, rank_items
from motorcade.errors import MotorcadeError

from .compiler import Compiler, Scope, and_, col, is_null, or_, select_
from .dialects import get_dialect

_CHUNK = 500


def require_recommendation(rule_set, name: str):
    rule = rule_set.recommendations.get(name)
    if rule is None:
        raise MotorcadeError(f"unknown recommendation `{name}`", did_you_mean(name, rule_set.recommendations)
                             or f"recommendations: {', '.join(sorted(rule_set.recommendations)) or 'none'}")
    return rule


def recommendation_query(store, rule_set, name: str, as_of: dt.datetime, tz,
                         person_ids: list[int] | None = None) -> tuple[str, dict]:
    """The SQL (and its parameters) of recommendation ``name``: ``person_id, vin, rule_1, ..., rule_k``."""
    rule = require_recommendation(rule_set, name)
    dialect = get_dialect(getattr(store, "dialect", "sqlite"))
    compiler = Compiler(rule_set, as_of, tz, store.value_types(), dialect.name)
    where = []
    if person_ids is not None:
        where.append(exp.In(this=col("p", "id"), expressions=[compiler.bind(p) for p in person_ids]))
    if rule.per_car:
        today = compiler.today.isoformat()
        columns = compiler.recommendation_columns(name, Scope("p", car="c", ownership="o"))
        where += [
            or_(is_null(col("o", "valid_from")), exp.LTE(this=col("o", "valid_from"), expression=compiler.bind(today))),
            or_(is_null(col("o", "valid_to")), exp.GT(this=col("o", "valid_to"), expression=compiler.bind(today))),
        ]
        tree = (select_(col("p", "id"), col("c", "vin"), *columns)
                .from_(exp.to_table("people").as_("p"), copy=False)
                .join(exp.to_table("ownerships").as_("o"), on=exp.EQ(this=col("o", "person_id"), expression=col("p", "id")),
                      copy=False)
                .join(exp.to_table("cars").as_("c"), on=exp.EQ(this=col("c", "vin"), expression=col("o", "vin")),
                      copy=False)
                .where(and_(*where), copy=False).order_by(col("p", "id"), col("c", "vin"), copy=False))
    else:
        columns = compiler.recommendation_columns(name, Scope("p"))
        tree = select_(col("p", "id"), exp.Null(), *columns).from_(exp.to_table("people").as_("p"), copy=False)
        if where:
            tree = tree.where(and_(*where), copy=False)
        tree = tree.order_by(col("p", "id"), copy=False)
    return dialect.render(tree, compiler.params), compiler.params


def compute_recommendations(store, rule_set, name: str, as_of: dt.datetime, tz,
                            person_ids: Iterable[int] | None = None) -> dict[int, list[RecommendedItem]]:
    """``{person_id: ranked items}`` of recommendation ``name`` at ``as_of`` (people with none are left out)."""
    rule = require_recommendation(rule_set, name)
    out: dict[int, list[RecommendedItem]] = {}
    chunks = [None] if person_ids is None else [
        ids[i:i + _CHUNK] for ids in [sorted(set(int(p) for p in person_ids))] for i in range(0, len(ids), _CHUNK)]
    for chunk in chunks:
        sql, params = recommendation_query(store, rule_set, name, as_of, tz, chunk)
        seen_cars: set[tuple[int, str]] = set()
        for person_id, vin, *truths in store.query(sql, params):
            if vin is not None:
                if (person_id, vin) in seen_cars:
                    continue  # the same car owned twice on the day: one car
                seen_cars.add((person_id, vin))
            items = rank_items(rule, [t == 1 for t in truths], vin)
            if items:
                out.setdefault(person_id, []).extend(items)
    return out
