"""Rule AST -> SQL, built as one sqlglot expression tree per rule for any of the engines.

One compiler (:class:`Compiler`; :class:`SQLiteCompiler` is it for the SQLite store), one ``c_<NodeName>``
method per condition node and a default that raises :class:`Unsupported` naming the node: never a silent
wrong answer. What differs per engine (JSON access, typeof checks, ISO text, calendar months, aggregates of
nothing, correlation depth, placeholders) is built by a small dialect class
(:mod:`motorcade.segments.dialects`): ``Compiler(..., dialect="duckdb")``, ``compile_condition(...,
dialect="postgres")``, ``plan_segment(..., dialect="clickhouse")``.

The semantics are the reference evaluator's (``motorcade.dsl.evaluate``, docs/dsl.md), to the letter:

* Conditions are three-valued (1 / 0 / NULL), like SQL's own logic, so ``AND`` / ``OR`` / ``NOT`` map
  straight onto SQL; a person is a member when the condition is 1.
* Comparisons look at the *kind* of both sides (bool, number, string, date, instant). Different kinds:
  ``=`` is false, ``!=`` true, ordering unknown (NULL); a null side gives NULL. Tag values carry their
  SQLite type, profile attributes and event properties their JSON type (``json_type``), so ``true`` and
  ``1`` stay apart the way they do in Python. Declared types (:class:`~motorcade.dsl.data.ValueTypes`, the
  store's ``value_types()``) add what storage cannot hold: ISO text in a date attribute or tag is a date,
  in a date-time attribute an instant, and 0 / 1 in a boolean tag a boolean, exactly where the loader
  (``motorcade.segments.dataset``) turns them into Python dates, instants and booleans.
* Every relative time (windows, ``N days ago``, the day a car is owned on) is resolved in Python against
  ``as_of`` and the project time zone with the evaluator's own time functions, and bound as a constant.
  Events after ``as_of`` are invisible.

Values never reach the SQL text: every literal is a named placeholder (``:v1``) with its value in
:attr:`CompiledQuery.params`. Table and column names are fixed by the compiler.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import attrs
from sqlglot import exp

from motorcade.dsl import ast
from motorcade.dsl.data import ValueTypes
from motorcade.dsl.evaluate import (EvaluationError, Unsupported, ago, get_zone, local_date, local_midnight,
                                    window_interval)

from .dialects import DIALECTS, Dialect, get_dialect

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

# person_relations kinds that make up a person's `store` and `advisor` sets (the loader uses the same).
STORE_RELATIONS = ("selling_store", "service_store", "store")
ADVISOR_RELATIONS = ("sales_advisor", "service_advisor", "advisor")
_SET_RELATIONS = {"store": STORE_RELATIONS, "advisor": ADVISOR_RELATIONS}
_CAR_COLUMNS = {"vin": ("c", "vin", "string"), "brand": ("c", "brand", "string"), "model": ("c", "model", "string"),
                "model_year": ("c", "model_year", "number"), "purchase_date": ("c", "purchase_date", "date"),
                "store": ("c", "store_id", "string")}
# The profile attribute a person's `age` counts from.
BIRTH_DATE = "birth_date"


class CompileError(EvaluationError):
    """The rule cannot be compiled (unknown segment, cycle, a value of the wrong kind)."""


# ---- small sqlglot helpers ---------------------------------------------------------------------


def col(table: str, name: str) -> exp.Column:
    return exp.column(name, table)


def num(value: int) -> exp.Literal:
    return exp.Literal.number(value)


def null() -> exp.Null:
    return exp.Null()


def func(name: str, *args) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def and_(*items) -> exp.Expression:
    items = [i for i in items if i is not None]
    if not items:
        return num(1)
    out = items[0]
    for item in items[1:]:
        out = exp.And(this=_paren(out), expression=_paren(item))
    return out


def or_(*items) -> exp.Expression:
    if not items:
        return num(0)
    out = items[0]
    for item in items[1:]:
        out = exp.Or(this=_paren(out), expression=_paren(item))
    return out


def _paren(e: exp.Expression) -> exp.Expression:
    if isinstance(e, (exp.And, exp.Or, exp.Not, exp.Case)):
        return exp.Paren(this=e)
    return e


def not_(e: exp.Expression) -> exp.Expression:
    return exp.Not(this=exp.Paren(this=e))


def case(*whens, default=None) -> exp.Case:
    node = exp.Case()
    for cond, value in whens:
        node = node.when(cond, value)
    if default is not None:
        node = node.else_(default)
    return node


def is_null(e) -> exp.Is:
    return exp.Is(this=e, expression=null())


def is_not_null(e) -> exp.Expression:
    return exp.Not(this=exp.Is(this=e, expression=null()))


def select_(*columns) -> exp.Select:
    """A SELECT of ``columns``; the builder calls below pass copy=False (sqlglot copies every argument
    by default, which made compiling deep conditions quadratic)."""
    return exp.Select(expressions=list(columns))


def in_rows(value, select: exp.Select) -> exp.In:
    """``value IN (select)``: a semi-join."""
    return exp.In(this=value, query=exp.Subquery(this=select))


def exists(select: exp.Select) -> exp.Exists:
    return exp.Exists(this=select)


_CMP = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


def cmp(op: str, left, right) -> exp.Expression:
    return _CMP[op](this=left, expression=right)


def epoch_floor(instant: dt.datetime) -> int:
    return (instant - EPOCH) // dt.timedelta(seconds=1)


def epoch_ceil(instant: dt.datetime) -> int:
    return -((EPOCH - instant) // dt.timedelta(seconds=1))


_EVENT_FIELD_NODES = (ast.Compare, ast.InList, ast.Between, ast.IsNull, ast.TextMatch, ast.And, ast.Or, ast.Not,
                      ast.FieldRef, ast.Literal, ast.Ago, ast.Duration)


def _event_fields_only(cond) -> bool:
    """Only event fields and literals: the condition reads nothing of the person."""
    return cond is None or all(isinstance(n, _EVENT_FIELD_NODES) for n in ast.walk(cond))


def _mentions_car(cond) -> bool:
    """Whether a condition inside ``has car where`` reads the car (a bare field name). Names inside an
    aggregate's event filter are event fields, and a nested ``has car`` has a car of its own."""
    if isinstance(cond, ast.FieldRef):
        return True
    if isinstance(cond, (ast.Aggregate, ast.HasCar)):
        return False
    return any(_mentions_car(child) for child in ast.children(cond))


def _no_person_row(car_cond) -> bool:
    """A ``has car where`` condition that needs no people row: no ``profile.x``, no ``in segment`` or
    ``recommendation`` (they may bring one in). A bare ``age`` there is the car's."""
    return car_cond is None or not any(isinstance(n, (ast.ProfileRef, ast.InSegment, ast.Recommended))
                                       for n in ast.walk(car_cond))


# ---- compiled output ---------------------------------------------------------------------------


@attrs.define
class CompiledQuery:
    """A SELECT returning ``person_id`` of the members, with its bound parameters."""

    tree: exp.Select
    params: dict[str, Any]
    driver: str  # a one-line description of the plan shape chosen
    dialect: str = "sqlite"  # the engine the tree was built for (motorcade.segments.dialects.DIALECTS)

    def sql(self, dialect: str | None = None, pretty: bool = False) -> str:
        """The SQL text for the engine it was compiled for (placeholders in that engine's style)."""
        if dialect is not None and get_dialect(dialect).name != get_dialect(self.dialect).name:
            raise CompileError(f"this query was compiled for {self.dialect}, not {dialect}",
                               f"compile it again with dialect={dialect!r}")
        return get_dialect(self.dialect).render(self.tree, self.params, pretty=pretty)


@attrs.define
class Typed:
    """A subject in SQL: its value, its kind (a static kind name, or an SQL expression giving one, NULL when
    missing) and an optional ``wrap`` that puts a finished predicate inside a correlated lookup."""

    value: exp.Expression
    kind: str | Any  # a static kind name, or a function kind -> SQL test "the value has this kind"
    wrap: Any = None
    is_set: str | None = None  # "store" / "advisor": the person's id set (value unused)
    # Values are only numbers and strings, stored with their own type in a column without affinity (tag
    # values): SQL's `=` / `!=` / IN with a number or string literal is then already the kind-aware one
    # (a text never equals a number), so those need no kind test.
    typed_storage: bool = False
    kinds: tuple[str, ...] = ()  # dynamic kind: the kinds the value can have (``kind(k)`` tests each)
    views: dict[str, Any] = attrs.field(factory=dict)  # kind -> the value as that kind, when not ``value``
    # kinds whose view is NULL unless the value has that kind (a typed tag column): where only TRUE matters,
    # a comparison of that view needs no kind test
    exclusive: frozenset = frozenset()

    def finish(self, predicate: exp.Expression) -> exp.Expression:
        return self.wrap(predicate) if self.wrap else predicate


@attrs.frozen
class Scope:
    """What names refer to: ``person`` is the alias of the people row; ``car`` / ``event`` the current car
    (cars joined to ownerships) or event alias in car / event scope."""

    person: str | None
    car: str | None = None
    ownership: str | None = None
    event: str | None = None
    person_key: str = "id"  # the column of ``person`` holding the person id (a driver row has no attributes)

    def person_id(self) -> exp.Column:
        return col(self.person, self.person_key)


# ---- the compiler ------------------------------------------------------------------------------


class Compiler:
    """Compiles segment conditions of one rule set at one ``as_of`` for one engine (``dialect``: a name in
    :data:`~motorcade.segments.dialects.DIALECTS`, default SQLite). One tree per rule; the dialect builds the
    few pieces that differ per engine."""

    def __init__(self, rule_set, as_of: dt.datetime, tz="Asia/Shanghai", types: ValueTypes | None = None,
                 dialect: str | Dialect | None = None, property_columns: frozenset[str] = frozenset()):
        if as_of.tzinfo is None:
            raise CompileError("as_of has no time zone", "pass an aware datetime")
        self.d = get_dialect(dialect)
        self.dialect = self.d.name
        self.rule_set = rule_set
        self.types = types or ValueTypes()  # declared types of attributes and tags (the store's value_types)
        # event property keys the engine keeps in typed columns (AnalyticsEngine.property_columns)
        self.property_columns = frozenset(property_columns)
        self.as_of = as_of
        self.tz = get_zone(tz)
        self.today = local_date(as_of, self.tz)
        self.params: dict[str, Any] = {}
        self._names = itertools.count(1)
        self._aliases = itertools.count(1)
        self._segment_path: list[str] = []
        self._recommendation_path: list[str] = []
        self._truth_subject = None  # a tag subject whose lookup may take the EXISTS form (see truth)
        self._truth_predicate = False  # that lookup's predicate may be its truth form (see truth)
        self._rule_scopes: list = []  # the `scope` of each segment being compiled (innermost last; None: group)

    # -- truth values (1 / 0 on SQLite, TRUE / FALSE where the engine has booleans) --
    def T(self) -> exp.Expression:  # noqa: N802
        return self.d.true()

    def F(self) -> exp.Expression:  # noqa: N802
        return self.d.false()

    def unknown(self) -> exp.Expression:
        """NULL as a truth value (typed where the engine must know a CASE of only NULLs is a boolean)."""
        return self.d.unknown()

    def coalesce_false(self, e) -> exp.Expression:
        return exp.Coalesce(this=e, expressions=[self.F()])

    def inner_scope(self, scope: Scope, row: str, **kw) -> Scope:
        """The scope inside a subquery over ``row`` (an ownership or an event, which has ``person_id``). Where
        the engine resolves correlated columns only from the enclosing query, the person is read from
        that row instead of the outer people row (the same person: the subquery is correlated on it)."""
        if self.d.correlate_innermost:
            kw.update(person=row, person_key="person_id")
        return attrs.evolve(scope, **kw)

    # -- parameters and aliases --
    def bind(self, value: Any) -> exp.Placeholder:
        """A named placeholder for ``value`` (the only way a value enters the SQL)."""
        if isinstance(value, bool):
            value = int(value)
        name = f"v{next(self._names)}"
        self.params[name] = value
        return exp.Placeholder(this=name)

    def alias(self, prefix: str) -> str:
        return f"{prefix}{next(self._aliases)}"

    # -- entry points --
    def segment_condition(self, name: str, scope: Scope) -> exp.Expression:
        """The condition of segment ``name`` (three-valued), with cycle detection."""
        segment = self.rule_set.segments.get(name)
        if segment is None:
            raise CompileError(f"unknown segment `{name}`", "define it in a .mc file or fix the name")
        if name in self._segment_path:
            cycle = " -> ".join(self._segment_path[self._segment_path.index(name):] + [name])
            raise CompileError(f"segments refer to each other in a cycle: {cycle}",
                               "break the cycle: one of these segments must not use `in segment`")
        self._segment_path.append(name)
        self._rule_scopes.append(segment.scope)
        try:
            condition = self.cond(segment.where, scope)
        finally:
            self._segment_path.pop()
            self._rule_scopes.pop()
        if segment.scope is not None and not segment.scope.group:
            condition = and_(condition, self._in_stores(list(segment.scope.stores), scope))
        return condition

    def _in_stores(self, stores: list[str], scope: Scope) -> exp.Expression:
        """True when the person belongs to one of ``stores`` as a rule's `scope` reads it (docs/access.md:
        a store relation of any kind, or an advisor of the store): ``motorcade.access.scope``."""
        from motorcade.access.scope import ADVISOR_RELATION_KINDS, STORE_RELATION_KINDS

        r, a = self.alias("r"), self.alias("a")
        direct = exists(select_(num(1)).from_(exp.to_table("person_relations").as_(r), copy=False).where(and_(
            exp.EQ(this=col(r, "person_id"), expression=scope.person_id()),
            exp.In(this=col(r, "kind"), expressions=[self.bind(k) for k in STORE_RELATION_KINDS]),
            exp.In(this=col(r, "target_id"), expressions=[self.bind(s) for s in stores])), copy=False))
        r2 = self.alias("r")
        via_advisor = exists(select_(num(1)).from_(exp.to_table("person_relations").as_(r2), copy=False).join(
            exp.to_table("advisors").as_(a), on=exp.EQ(this=col(a, "id"), expression=col(r2, "target_id")),
            copy=False).where(and_(
                exp.EQ(this=col(r2, "person_id"), expression=scope.person_id()),
                exp.In(this=col(r2, "kind"), expressions=[self.bind(k) for k in ADVISOR_RELATION_KINDS]),
                exp.In(this=col(a, "store_id"), expressions=[self.bind(s) for s in stores])), copy=False))
        return or_(direct, via_advisor)

    def truth(self, node, scope: Scope) -> exp.Expression:
        """``node`` where only TRUE matters: a top-level conjunct of a plan, where FALSE and NULL both leave
        the person out. The result is true exactly where ``cond`` is; it may be 0 where ``cond`` is NULL.

        A tag predicate then becomes ``EXISTS (row with the predicate true)`` instead of a scalar lookup
        of its three-valued result, which SQLite answers faster.
        """
        if isinstance(node, ast.And):
            return and_(*[self.truth(i, scope) for i in node.items])
        if isinstance(node, (ast.Compare, ast.InList, ast.Between, ast.TextMatch)) and isinstance(node.subject, ast.TagRef):
            self._truth_subject = node.subject
            # in a set plan the predicate inside the tag's semi-join may drop its CASE too: true exactly where
            # the CASE is (not for `!=` / `not in`, which a value of another kind satisfies)
            self._truth_predicate = self.d.set_plans and not (
                (isinstance(node, ast.Compare) and node.op == "!=") or (isinstance(node, ast.InList) and node.negated)
                or isinstance(node, ast.TextMatch))
            try:
                return self.cond(node, scope)
            finally:
                self._truth_subject = None
                self._truth_predicate = False
        if self.d.set_plans:
            semi = self.semi_join(node, scope)
            if semi is not None:
                return semi
            if (isinstance(node, ast.Compare) and node.op in ("=", "<", "<=", ">", ">=")
                    and isinstance(node.value, ast.Literal) and (isinstance(node.subject, ast.ProfileRef) or (
                        isinstance(node.subject, ast.FieldRef) and scope.event is not None))):
                return self._compare_truth(node, scope)
        return self.cond(node, scope)

    def _compare_truth(self, node, scope: Scope) -> exp.Expression:
        """A JSON value compared with a literal where only TRUE matters: ``kind_1 AND test_1 OR ...`` over the
        kinds that compare with the literal (the CASE of :meth:`compare` is TRUE exactly there). Plain
        conjunctions, which a column store pushes into its scan (``p_amount_kind = 'number' AND
        p_amount_num >= 500000``) where it evaluates a CASE row by row."""
        kind, value = self.literal(node.value)
        return self._truth_of_kinds(self.subject(node.subject, scope), node.op, kind, value)

    # -- set forms (column stores: docs/compiler.md, "Plan choice per engine") --
    def semi_join(self, node, scope: Scope) -> exp.Expression | None:
        """``node`` where only TRUE matters, as a semi-join (``person IN (uncorrelated SELECT person_id
        ...)``) or an anti-join (``NOT IN``) instead of a correlated per-person check; None when ``node``
        has no such form. Exact: each form is true exactly where the condition is.

        A column store answers these as one hash join over the rows of the named events (tag, consents,
        ownerships) instead of one lookup per person."""
        person = scope.person_id()
        if isinstance(node, ast.Not) and isinstance(node.item, ast.Did) and not node.item.negated:
            node = ast.Did(node.item.event, node.item.window, negated=True)
        if isinstance(node, (ast.Did, ast.DidAny)):
            names = [node.event] if isinstance(node, ast.Did) else sorted(set(node.events))
            rows = self.person_rows(names, node.window)
            if isinstance(node, ast.Did) and node.negated:
                return not_(in_rows(person, rows))
            return in_rows(person, rows)
        counted = self.count_test(node)
        if counted is not None:
            agg, op, k, zero_passes = counted
            if not _event_fields_only(agg.where):
                return None
            rows = self.person_rows([agg.event], agg.window, agg.where)
            rows = rows.group_by(rows.expressions[0].copy(), copy=False)
            count = exp.Count(this=exp.Star())
            if zero_passes:  # people without such events are members: leave out those where the count fails
                return not_(in_rows(person, rows.having(not_(cmp(op, count, self.bind(k))), copy=False)))
            return in_rows(person, rows.having(cmp(op, count, self.bind(k)), copy=False))
        if isinstance(node, ast.ConsentCond):
            # consent_state: a global refusal wins, then the channel's own row, then the global one; rows
            # are unique per (person, channel), so as sets of people:
            #   consented    = not refused(*) and (granted(C) or (granted(*) and no row for C))
            #   unsubscribed = refused(*) or refused(C)
            # each built once (the outer rows probe two hashed sets, as a hand-written query does)
            def rows(channels: list[str], granted: int | None = None) -> exp.Select:
                k = self.alias("k")
                test = (exp.EQ(this=col(k, "channel"), expression=self.bind(channels[0])) if len(channels) == 1
                        else exp.In(this=col(k, "channel"), expressions=[self.bind(c) for c in channels]))
                if granted is not None:
                    test = and_(test, exp.EQ(this=col(k, "granted"), expression=num(granted)))
                return select_(col(k, "person_id")).from_(exp.to_table("consents").as_(k), copy=False).where(
                    test, copy=False)

            if node.state == "consented":
                # granted(*) and no row for C, reading the C rows of only the people granted at `*` (few, as a
                # rule; an anti-join over every C row cost more than the rest of the query: docs/compiler.md)
                if self.d.grouped_default_consent:  # their `*` and C rows all granted: C not refused
                    by_default = rows(sorted({"*", node.channel}))
                    key = by_default.expressions[0]
                    by_default = (by_default.where(in_rows(key.copy(), rows(["*"], 1)), copy=False)
                                  .group_by(key.copy(), copy=False)
                                  .having(exp.EQ(this=exp.Min(this=col(key.table, "granted")), expression=num(1)),
                                          copy=False))
                else:  # granted at `*` and not among those of them with a C row
                    own = rows([node.channel])
                    own = own.where(in_rows(own.expressions[0].copy(), rows(["*"], 1)), copy=False)
                    by_default = rows(["*"], 1)
                    by_default = by_default.where(not_(in_rows(by_default.expressions[0].copy(), own)), copy=False)
                either = exp.Union(this=rows([node.channel], 1), expression=by_default, distinct=False)
                return and_(not_(in_rows(person, rows(["*"], 0))), in_rows(person.copy(), either))
            return in_rows(person, rows(sorted({"*", node.channel}), 0))
        if isinstance(node, ast.HasCar) and _no_person_row(node.where):
            return in_rows(person, self.owner_rows(node))
        return None

    @staticmethod
    def count_test(node):
        """``(aggregate, op, k, whether 0 passes)`` of ``count(E ...) op k`` with a plain number ``k``; else None."""
        from motorcade.dsl.evaluate import compare_values

        if (isinstance(node, ast.Compare) and isinstance(node.subject, ast.Aggregate) and node.subject.func == "count"
                and isinstance(node.value, ast.Literal) and isinstance(node.value.value, (int, float))
                and not isinstance(node.value.value, bool)):
            k = node.value.value
            return node.subject, node.op, k, compare_values(0, node.op, k, dt.timezone.utc) is True
        return None

    def person_rows(self, names, window, where=None) -> exp.Select:
        """``SELECT person_id FROM events`` named ``names`` in ``window`` (``where`` true): one row per event,
        for ``IN`` (a GROUP BY there made ClickHouse aggregate what the semi-join hashes anyway: measured)."""
        e = self.alias("e")
        return (select_(col(e, "person_id")).from_(exp.to_table("events").as_(e), copy=False)
                .where(and_(self.event_filter(e, names, window, Scope(None), where), is_not_null(col(e, "person_id"))),
                       copy=False))

    def owner_rows(self, node) -> exp.Select:
        """``SELECT person_id`` of the people who have a car now for which ``node.where`` holds: the car's own
        conditions per ownership row, the others (which do not read the car) once per owner."""
        o, c = self.alias("o"), self.alias("c")
        key = col(o, "person_id")
        parts = self.current_ownership(o)
        where = node.where
        items = [] if where is None else list(where.items) if isinstance(where, ast.And) else [where]
        of_car = [i for i in items if _mentions_car(i)]
        of_person = [i for i in items if not _mentions_car(i)]
        query = select_(key.copy()).from_(exp.to_table("ownerships").as_(o), copy=False)
        if of_car:
            query = query.join(exp.to_table("cars").as_(c), on=exp.EQ(this=col(c, "vin"), expression=col(o, "vin")),
                               copy=False)
            parts.extend(self.truth(i, Scope(o, car=c, ownership=o, person_key="person_id")) for i in of_car)
        query = query.where(and_(*parts), copy=False)
        if of_person:
            return query.group_by(key.copy(), copy=False).having(
                and_(*[self.truth(i, Scope(o, person_key="person_id")) for i in of_person]), copy=False)
        # one row per owner: DISTINCT, which ClickHouse answers in the table's person order (GROUP BY took
        # 2.4x as long there for 400,000 owners: measured; DuckDB the same either way)
        return query.distinct(copy=False)

    def current_ownership(self, o: str) -> list[exp.Expression]:
        """The ownership row ``o`` holds on the as-of local date."""
        today = self.today.isoformat()
        return [or_(is_null(col(o, "valid_from")), exp.LTE(this=col(o, "valid_from"), expression=self.bind(today))),
                or_(is_null(col(o, "valid_to")), exp.GT(this=col(o, "valid_to"), expression=self.bind(today)))]

    def cond(self, node, scope: Scope) -> exp.Expression:
        method = getattr(self, "c_" + type(node).__name__, None)
        if method is None:
            raise Unsupported(f"unsupported: {type(node).__name__} (the {self.dialect} compiler has no rule for it)")
        return method(node, scope)

    # -- boolean structure --
    def c_And(self, node, scope):  # noqa: N802 (dispatch by node class name)
        return and_(*[self.cond(i, scope) for i in node.items])

    def c_Or(self, node, scope):  # noqa: N802
        return or_(*[self.cond(i, scope) for i in node.items])

    def c_Not(self, node, scope):  # noqa: N802
        return not_(self.cond(node.item, scope))

    # -- values --
    def literal(self, node) -> tuple[str, Any]:
        """``(kind, python value)`` of a value node, as the evaluator sees it."""
        if isinstance(node, ast.Literal):
            value = node.value
            if isinstance(value, bool):
                return "bool", value
            if isinstance(value, (int, float)):
                return "number", value
            if isinstance(value, str):
                return "string", value
            if isinstance(value, dt.datetime):
                return "instant", value if value.tzinfo else value.replace(tzinfo=self.tz)
            if isinstance(value, dt.date):
                return "date", value
            raise Unsupported(f"unsupported: literal {value!r}")
        if isinstance(node, ast.Ago):
            return "instant", ago(node.amount, node.unit, self.as_of, self.tz)
        if isinstance(node, ast.Duration):
            if node.unit == "years":
                return "number", node.amount
            raise CompileError(f"`{node.amount} {node.unit}` can only be compared with an age in years")
        raise Unsupported(f"unsupported: value {type(node).__name__}")

    # -- subjects --
    def subject(self, node, scope: Scope) -> Typed:
        if isinstance(node, ast.TagRef):
            t = self.alias("t")
            declared = self.types.tags.get(node.name)
            value, stored, views = self.d.tag_kind(t, col)

            def kind(k, value=value):
                # tag values are numbers or strings; a boolean tag's 0 / 1 are booleans, a date tag's ISO
                # text is a date (ValueTypes.tag)
                if declared == "boolean" and k in ("bool", "number"):
                    flag = and_(stored("integer"), exp.In(this=views.get("number", value), expressions=[num(0), num(1)]))
                    return flag if k == "bool" else and_(stored("number"), not_(flag))
                if declared == "date" and k in ("date", "string"):
                    text = views.get("string", value)
                    day = and_(stored("string"), self.d.iso_date(text, self.coalesce_false))
                    return day if k == "date" else and_(stored("string"),
                                                        not_(self.d.iso_date(text, self.coalesce_false)))
                if k not in ("number", "string"):
                    return self.F()
                return stored(k)

            kinds = ("number", "string") + {"boolean": ("bool",), "date": ("date",)}.get(declared, ())

            tag = self.bind(node.name)
            person = scope.person_id()
            only_truth = self._truth_subject is node
            if only_truth:
                self._truth_subject = None

            at_store = self.tag_store(node.name)
            table = "tag_values" if at_store is None else "store_tag_values"
            store_key = None if at_store is None else self.bind(at_store)

            def wrap(predicate, t=t, tag=tag, person=person, table=table, store_key=store_key):
                # One lookup on the (tag, person_id) key -- (tag, store_id, person_id) for a per-store tag in a
                # store's rule --; no row = missing = NULL.
                key = and_(exp.EQ(this=col(t, "tag"), expression=tag), exp.EQ(this=col(t, "person_id"), expression=person))
                if only_truth and self.d.set_plans:  # the same as a semi-join on the tag's rows
                    where = and_(exp.EQ(this=col(t, "tag"), expression=tag), predicate)
                    if store_key is not None:
                        where = and_(where, exp.EQ(this=col(t, "store_id"), expression=store_key.copy()))
                    return in_rows(person, select_(col(t, "person_id")).from_(
                        exp.to_table(table).as_(t), copy=False).where(where, copy=False))
                if store_key is not None:
                    key = and_(key, exp.EQ(this=col(t, "store_id"), expression=store_key))
                if only_truth:  # only TRUE matters (see truth): the row exists and the predicate holds
                    return exists(select_(num(1)).from_(exp.to_table(table).as_(t), copy=False).where(
                        and_(key, predicate), copy=False))
                return exp.Subquery(this=select_(predicate).from_(exp.to_table(table).as_(t), copy=False).where(
                    key, copy=False))

            # with a declared boolean or date type, `= 1` / `= "2026-01-01"` must not match a true / a date
            special = {"boolean": "number", "date": "string"}.get(declared)
            return Typed(value, kind, wrap, typed_storage=self.d.typed_tag_storage and declared not in ("boolean", "date"),
                         kinds=kinds, views=views, exclusive=frozenset(self.d.exclusive_tag_views) - {special})
        if isinstance(node, ast.ProfileRef):
            if scope.person_key != "id":
                raise Unsupported("unsupported: ProfileRef outside a people row (plan error)")
            return self._json(col(scope.person, "attributes"), node.name, self.types.attributes.get(node.name))
        if isinstance(node, ast.FieldRef):
            if scope.event is not None:
                return self._json(col(scope.event, "properties"), node.name, self.types.properties.get(node.name),
                                  event=scope.event)
            if scope.car is not None:
                if node.name == "age":
                    pd = col(scope.car, "purchase_date")
                    return Typed(case((is_null(pd), null()), default=self._whole_years(pd)), "number")
                if node.name in _CAR_COLUMNS:
                    _, column, kind = _CAR_COLUMNS[node.name]
                    return Typed(col(scope.car, column), kind)
                raise CompileError(f"cars have no field `{node.name}`")
            if node.name in _SET_RELATIONS:
                return Typed(null(), "set", is_set=node.name)
            if node.name == "age":
                return self._person_age(scope)
            raise CompileError(f"unknown name `{node.name}` in a person condition",
                               f"write `profile.{node.name}` or `tag {node.name}`")
        if isinstance(node, ast.Aggregate):
            return self.aggregate(node, scope)
        raise Unsupported(f"unsupported: subject {type(node).__name__}")

    def tag_store(self, tag: str) -> str | None:
        """The store whose value of ``tag`` the rule being compiled reads: for a per-store tag
        (``ValueTypes.store_tags``) in a segment scoped to one store, that store; else None (the person's
        value). A per-store tag in a rule scoped to several stores is ambiguous: an error."""
        from motorcade.dsl.evaluate import rule_tag_store

        return rule_tag_store(self._rule_scopes[-1] if self._rule_scopes else None, tag, self.types.store_tags)

    def _json(self, document: exp.Expression, key: str, declared: str | None = None, event: str | None = None
              ) -> Typed:
        """A JSON value's subject; ``declared`` "date" / "datetime": ISO text in that form is a date / an
        instant (ValueTypes.attribute), other text stays a string. ``event``: the alias of the event row
        when ``document`` is its properties (read from typed columns where the engine has them)."""
        value, json_kind_is, views = self.json_parts(document, key, event)
        text = views.get("string", value)
        typed = {"date": ("date", self.d.iso_date), "datetime": ("instant", self.d.iso_instant)}.get(declared)

        def kind(k):
            if typed is not None and k in (typed[0], "string"):
                form = typed[1](text, self.coalesce_false)
                return and_(json_kind_is("string"), form if k == typed[0] else not_(form))
            test = json_kind_is(k)
            return self.F() if test is None else test

        kinds = ("bool", "number", "string", "other")
        views = dict(views)
        if typed is not None:
            kinds += (typed[0],)
            if typed[0] == "instant":  # compared as epoch seconds, like events.ts
                views["instant"] = self.d.instant_epoch(text)
            elif text is not value:
                views["date"] = text
        return Typed(value, kind, kinds=kinds, views=views)

    def json_parts(self, document, key: str, event: str | None = None):
        """The dialect's ``json_parts``; for an event property the engine materialised, its typed columns."""
        if event is not None and key in self.property_columns:
            return self.d.property_parts(event, col, key)
        return self.d.json_parts(self.bind, document, key)

    def _person_age(self, scope: Scope) -> Typed:
        """A person's ``age``: whole years from the date attribute ``birth_date`` to the local date of as_of,
        counted like a birthday (as a car's); NULL when the person has no such date."""
        if scope.person_key != "id":
            raise Unsupported("unsupported: a person's age outside a people row (plan error)")
        if self.types.attributes.get(BIRTH_DATE) != "date":
            return Typed(null(), "number")  # not a declared date: no person has a date of birth
        birth = self._json(col(scope.person, "attributes"), BIRTH_DATE, "date")
        day = birth.views.get("date", birth.value)
        return Typed(case((birth.kind("date"), self._whole_years(day)), default=null()), "number")

    def _whole_years(self, day: exp.Expression) -> exp.Expression:
        """Whole years from ``day`` (ISO text) to today: the birthday rule (02-29 -> 02-28 is not a year)."""
        before_birthday = exp.GT(this=func("substr", day, num(6), num(5)),
                                 expression=self.bind(self.today.strftime("%m-%d")))
        return exp.Sub(this=exp.Sub(this=self.bind(self.today.year),
                                    expression=exp.Cast(this=func("substr", day, num(1), num(4)),
                                                        to=exp.DataType.build("INTEGER"))),
                       expression=self.d.as_int(before_birthday))

    # -- events --
    def event_filter(self, e: str, names, window, scope: Scope, where=None) -> exp.Expression:
        """The person's events named ``names`` in ``window`` (and at or before as_of) where ``where`` is True."""
        ts = col(e, "ts")
        parts = []
        if scope.person is not None:  # None: every person's events (a plan's driver)
            parts.append(exp.EQ(this=col(e, "person_id"), expression=scope.person_id()))
        names = list(names)
        if len(names) == 1:
            parts.append(exp.EQ(this=col(e, "name"), expression=self.bind(names[0])))
        else:
            parts.append(exp.In(this=col(e, "name"), expressions=[self.bind(n) for n in names]))
        parts.extend(self.window_bounds(ts, window))
        if where is not None:
            inner = self.inner_scope(scope, e, event=e) if scope.person is not None else attrs.evolve(scope, event=e)
            # an event counts where the condition is TRUE: a set (uncorrelated) filter takes the truth form,
            # which a column store pushes into its scan; inside a correlated per-person aggregate the
            # three-valued form stays (ClickHouse's decorrelation then gives max() of no rows as 0, not NULL)
            parts.append(self.truth(where, inner) if scope.person is None else self.cond(where, inner))
        return and_(*parts)

    def window_epochs(self, window) -> tuple[int | None, int]:
        """``(first, last)`` epoch seconds an event's ``ts`` may have: the evaluator's interval capped at
        as_of (``first`` None: no lower bound)."""
        interval = window_interval(window, self.as_of, self.tz)
        low, low_incl = interval.start, interval.start_inclusive
        high, high_incl = self.as_of, True
        if interval.end is not None and (interval.end < high or (interval.end == high and not interval.end_inclusive)):
            high, high_incl = interval.end, interval.end_inclusive
        first = None
        if low is not None:
            first = epoch_ceil(low) if low_incl else epoch_floor(low) + 1
        last = epoch_floor(high) if high_incl else epoch_ceil(high) - 1
        return first, last

    def window_bounds(self, ts: exp.Expression, window) -> list[exp.Expression]:
        """Integer bounds on ``ts`` (epoch seconds) equal to the evaluator's interval and the as_of cap."""
        first, last = self.window_epochs(window)
        bounds = []
        if first is not None:
            bounds.append(exp.GTE(this=ts, expression=self.bind(first)))
        bounds.append(exp.LTE(this=ts, expression=self.bind(last)))
        return bounds

    def aggregate(self, node: ast.Aggregate, scope: Scope) -> Typed:
        e = self.alias("e")
        where = self.event_filter(e, [node.event], node.window, scope, node.where)
        source = exp.to_table("events").as_(e)
        if node.func == "count":
            value = exp.Subquery(this=select_(exp.Count(this=exp.Star())).from_(source, copy=False).where(where, copy=False))
            return Typed(self.d.scalar(value, "count"), "number")
        if node.func in ("first", "last"):
            agg = exp.Min if node.func == "first" else exp.Max
            value = exp.Subquery(this=select_(agg(this=col(e, "ts"))).from_(source, copy=False).where(where, copy=False))
            return Typed(value, "instant")
        if node.prop is None:
            raise CompileError(f"{node.func}({node.event}) needs a property: {node.func}({node.event}.amount)")
        value, kind_is, views = self.json_parts(col(e, "properties"), node.prop, e)
        prop = views.get("number", value)
        where = and_(where, kind_is("number"))
        if node.func == "sum":
            agg = self.d.total(prop)
        elif node.func == "avg":
            agg = exp.Avg(this=prop)
        elif node.func == "min":
            agg = exp.Min(this=prop)
        elif node.func == "max":
            agg = exp.Max(this=prop)
        else:
            raise Unsupported(f"unsupported: aggregate {node.func}")
        return Typed(self.d.scalar(exp.Subquery(this=select_(agg).from_(source, copy=False).where(where, copy=False)),
                                   node.func), "number")

    # -- comparisons (the evaluator's compare_values) --
    def compare(self, subject: Typed, op: str, kind: str, value: Any) -> exp.Expression:
        """Three-valued ``subject op value`` for a literal of ``kind``."""
        v = subject.value
        if subject.typed_storage and op in ("=", "!=") and kind in ("number", "string"):
            return cmp(op, v, self.bind(value))  # NULL when missing; a value of another kind is unequal
        mismatch = {"=": self.F(), "!=": self.T()}.get(op, self.unknown())
        if isinstance(subject.kind, str):
            matched = self._matched(subject.kind, v, op, kind, value)
            if matched is None:
                return case((is_null(v), self.unknown()), default=mismatch)
            return matched
        if self._truth_predicate and op != "!=":  # only TRUE matters (truth)
            return self._truth_of_kinds(subject, op, kind, value)
        # dynamic kind (tags, JSON): NULL when missing; for each kind the value can have that compares with
        # the literal's, the comparison when it has that kind; else mismatch
        matches = [(k, self._matched(k, subject.views.get(k, v), op, kind, value)) for k in subject.kinds]
        matches = [(k, matched) for k, matched in matches if matched is not None]
        return case((is_null(v), self.unknown()), *[(subject.kind(k), matched) for k, matched in matches],
                    default=mismatch)

    def _truth_of_kinds(self, subject: Typed, op: str, kind: str, value: Any) -> exp.Expression:
        """``subject op value`` of a dynamic-kind subject where only TRUE matters: an OR, over the kinds the
        value can have that compare with the literal's ``kind``, of that kind's comparison (FALSE when none
        does). True exactly where the three-valued CASE of :meth:`compare` is."""
        parts = []
        for k in subject.kinds:
            matched = self._matched(k, subject.views.get(k, subject.value), op, kind, value)
            if matched is not None:
                parts.append(self._of_kind(subject, k, matched))
        return or_(*parts) if parts else self.F()

    @staticmethod
    def _of_kind(subject: Typed, k: str, test: exp.Expression) -> exp.Expression:
        """``test`` (of the value as kind ``k``) where only TRUE matters: with the kind test, unless the
        view of ``k`` is NULL for every other kind."""
        return test if k in subject.exclusive else and_(subject.kind(k), test)

    def _matched(self, static: str, v, op: str, kind: str, value: Any) -> exp.Expression | None:
        """``v op value`` when the subject's value ``v`` has kind ``static`` (brought to the literal's kind
        ``kind`` where the evaluator does so); None = kinds differ."""
        if static == "instant" and kind == "date":
            return self._instant_vs_date(v, op, value)
        if static == "instant" and kind == "instant":
            return self._instant_vs_instant(v, op, value)
        if static == "date" and kind == "instant":
            return cmp(op, v, self.bind(local_date(value, self.tz).isoformat()))
        if static == "date" and kind == "date":
            return cmp(op, v, self.bind(value.isoformat()))
        if kind in ("date", "instant") or static in ("date", "instant"):
            return None
        if static != kind:
            return None
        if kind == "bool":
            return cmp(op, v, self.bind(int(value)))
        return cmp(op, v, self.bind(value))

    def _instant_vs_instant(self, v, op: str, instant: dt.datetime) -> exp.Expression:
        lo, hi = epoch_floor(instant), epoch_ceil(instant)
        if op == "<":
            return exp.LT(this=v, expression=self.bind(hi))
        if op == "<=":
            return exp.LTE(this=v, expression=self.bind(lo))
        if op == ">":
            return exp.GT(this=v, expression=self.bind(lo))
        if op == ">=":
            return exp.GTE(this=v, expression=self.bind(hi))
        if lo != hi:  # a fractional instant never equals a whole-second timestamp
            return case((is_null(v), self.unknown()), default=self.F() if op == "=" else self.T())
        return cmp(op, v, self.bind(lo))

    def _instant_vs_date(self, v, op: str, day: dt.date) -> exp.Expression:
        """Compare the local date of an epoch timestamp with ``day`` as a range of instants."""
        start = epoch_ceil(local_midnight(day, self.tz))
        end = epoch_ceil(local_midnight(day + dt.timedelta(days=1), self.tz))
        if op == "=":
            return and_(exp.GTE(this=v, expression=self.bind(start)), exp.LT(this=v, expression=self.bind(end)))
        if op == "!=":
            return or_(exp.LT(this=v, expression=self.bind(start)), exp.GTE(this=v, expression=self.bind(end)))
        if op == "<":
            return exp.LT(this=v, expression=self.bind(start))
        if op == "<=":
            return exp.LT(this=v, expression=self.bind(end))
        if op == ">":
            return exp.GTE(this=v, expression=self.bind(end))
        return exp.GTE(this=v, expression=self.bind(start))

    def _set_member(self, which: str, ids: list, scope: Scope) -> exp.Expression:
        """True when one of the person's store / advisor ids is in ``ids`` (ids are strings)."""
        ids = [i for i in ids if isinstance(i, str)]
        if not ids:
            return self.F()
        r = self.alias("r")
        kinds = _SET_RELATIONS[which]
        return exists(select_(num(1)).from_(exp.to_table("person_relations").as_(r), copy=False).where(and_(
            exp.EQ(this=col(r, "person_id"), expression=scope.person_id()),
            exp.In(this=col(r, "kind"), expressions=[self.bind(k) for k in kinds]),
            exp.In(this=col(r, "target_id"), expressions=[self.bind(i) for i in ids])), copy=False))

    # -- predicates --
    def c_Compare(self, node, scope):  # noqa: N802
        kind, value = self.literal(node.value)
        if (scope.car is not None and scope.event is None and isinstance(node.subject, ast.FieldRef)
                and node.subject.name == "age" and kind == "number" and type(value) is int
                and 1 <= self.today.year - value - 1 and self.today.year - value <= 9999):
            return self._car_age(scope.car, node.op, value)
        subject = self.subject(node.subject, scope)
        if subject.is_set:
            if node.op == "=":
                return self._set_member(subject.is_set, [value], scope)
            if node.op == "!=":
                return not_(self._set_member(subject.is_set, [value], scope))
            raise CompileError(f"`{subject.is_set}` only supports =, !=, in, not in, is null")
        return subject.finish(self.compare(subject, node.op, kind, value))

    def _car_age(self, car: str, op: str, years: int) -> exp.Expression:
        """``age op years`` as a comparison of the purchase date (ISO text) with today ``years`` years back:
        a car is at least N whole years old exactly when it was bought on or before that day. NULL when
        the purchase date is missing, like the age itself; and an index on purchase_date can answer it."""
        pd = col(car, "purchase_date")

        def day(n: int) -> exp.Placeholder:  # today, n years back, as ISO text
            return self.bind(f"{self.today.year - n:04d}-{self.today:%m-%d}")

        def at_least(n: int) -> exp.Expression:
            return exp.LTE(this=pd, expression=day(n))

        def younger(n: int) -> exp.Expression:
            return exp.GT(this=pd, expression=day(n))

        return {">=": lambda: at_least(years), ">": lambda: at_least(years + 1), "<": lambda: younger(years),
                "<=": lambda: younger(years + 1), "=": lambda: and_(at_least(years), younger(years + 1)),
                "!=": lambda: or_(younger(years), at_least(years + 1))}[op]()

    def c_InList(self, node, scope):  # noqa: N802
        subject = self.subject(node.subject, scope)
        items = [self.literal(i) for i in node.items]
        if subject.is_set:
            found = self._set_member(subject.is_set, [v for _, v in items], scope)
            return not_(found) if node.negated else found
        found = self._in_list(subject, items)
        if found is not None:  # NULL when the value is missing, like the general form below
            return subject.finish(not_(found) if node.negated else found)
        if not items:
            found = self.F()
        else:
            found = or_(*[self.coalesce_false(self.compare(subject, "=", k, v)) for k, v in items])
        result = case((is_null(subject.value), self.unknown()), default=not_(found) if node.negated else found)
        return subject.finish(result)

    def _in_list(self, subject: Typed, items: list[tuple[str, Any]]) -> exp.Expression | None:
        """``value IN (...)`` per kind: a value equals only the items of its own kind. None when an item or
        the subject is a date or instant (those compare through their own conversions)."""
        static = subject.kind if isinstance(subject.kind, str) else None
        if static in ("date", "instant") or any(k in ("date", "instant") for k, _ in items):
            return None
        v = subject.value
        by_kind: dict[str, list] = {}
        for k, value in items:
            by_kind.setdefault(k, []).append(value)

        def member(k: str) -> exp.Expression:
            return self.d.in_list(subject.views.get(k, v), [self.bind(x) for x in by_kind[k]])

        if static is not None:
            if static in by_kind:
                return member(static)
            return case((is_null(v), self.unknown()), default=self.F())
        if subject.typed_storage and by_kind and set(by_kind) <= {"number", "string"}:
            plain = [x for k in ("number", "string") for x in by_kind.get(k, ())]
            return exp.In(this=v, expressions=[self.bind(x) for x in plain])
        if self._truth_predicate:  # only TRUE matters (truth): a missing value's IN is NULL or 0, not TRUE
            parts = [self._of_kind(subject, k, exp.In(this=subject.views.get(k, v),
                                                      expressions=[self.bind(x) for x in by_kind[k]]))
                     for k in by_kind if k in subject.kinds]
            return or_(*parts) if parts else self.F()
        whens = [(is_null(v), self.unknown())] + [(subject.kind(k), member(k)) for k in by_kind if k in subject.kinds]
        return case(*whens, default=self.F())

    def c_Between(self, node, scope):  # noqa: N802
        subject = self.subject(node.subject, scope)
        if subject.is_set:
            raise CompileError(f"`{subject.is_set}` does not support between")
        low_kind, low = self.literal(node.low)
        high_kind, high = self.literal(node.high)
        return subject.finish(and_(self.compare(subject, ">=", low_kind, low),
                                   self.compare(subject, "<=", high_kind, high)))

    def c_IsNull(self, node, scope):  # noqa: N802
        subject = self.subject(node.subject, scope)
        if subject.is_set:
            r = self.alias("r")
            has_any = exists(select_(num(1)).from_(exp.to_table("person_relations").as_(r), copy=False).where(and_(
                exp.EQ(this=col(r, "person_id"), expression=scope.person_id()),
                exp.In(this=col(r, "kind"), expressions=[self.bind(k) for k in _SET_RELATIONS[subject.is_set]])), copy=False))
            return has_any if node.negated else not_(has_any)
        test = is_not_null(subject.value) if node.negated else is_null(subject.value)
        if subject.wrap:
            # no row at all is missing too: the lookup gives NULL, which counts as "is null"
            looked_up = subject.finish(test)
            return self.coalesce_false(looked_up) if node.negated else exp.Coalesce(this=looked_up, expressions=[self.T()])
        return test

    def c_TextMatch(self, node, scope):  # noqa: N802
        subject = self.subject(node.subject, scope)
        if subject.is_set:
            return self.unknown()
        v = subject.views.get("string", subject.value)
        text = self.bind(node.text)
        test = self.d.contains(v, text) if node.op == "contains" else self.d.starts_with(v, text)
        if isinstance(subject.kind, str):
            result = test if subject.kind == "string" else self.unknown()
        else:
            result = case((subject.kind("string"), test), default=self.unknown())
        return subject.finish(result)

    # -- behaviour --
    def _events_exist(self, names, window, scope: Scope) -> exp.Expression:
        e = self.alias("e")
        return exists(select_(num(1)).from_(exp.to_table("events").as_(e), copy=False).where(
            self.event_filter(e, names, window, scope), copy=False))

    def c_Did(self, node, scope):  # noqa: N802
        found = self._events_exist([node.event], node.window, scope)
        return not_(found) if node.negated else found

    def c_DidAny(self, node, scope):  # noqa: N802
        return self._events_exist(sorted(set(node.events)), node.window, scope)

    def c_Sequence(self, node, scope):  # noqa: N802
        within = months = None
        if node.within is not None:
            seconds = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400}.get(node.within.unit)
            if seconds is not None:
                within = node.within.amount * seconds
            elif node.within.unit in ("months", "years") and getattr(self.tz, "key", None):
                # calendar units move each first step's own wall clock: the store's motorcade_add_months
                months = node.within.amount * (12 if node.within.unit == "years" else 1)
            else:
                raise Unsupported(f"unsupported: Sequence within {node.within.unit} (calendar units per event)")
        aliases = [self.alias("s") for _ in node.steps]

        def bound(a: str) -> exp.Expression | None:  # step ``a`` no later than first + within
            if within is not None:
                return exp.LTE(this=col(a, "ts"), expression=exp.Add(this=col(aliases[0], "ts"),
                                                                    expression=self.bind(within)))
            if months is not None:
                return exp.LTE(this=col(a, "ts"), expression=self.d.add_months(self.bind, col(aliases[0], "ts"),
                                                                               months, self.tz.key))
            return None

        if self.d.correlate_innermost:
            # One join of the steps on the person, correlated once: the engine resolves correlated
            # columns only from the enclosing query, so nested EXISTS cannot reach the first step.
            parts = [self.event_filter(aliases[0], [node.steps[0]], node.window, scope)]
            select = select_(num(1)).from_(exp.to_table("events").as_(aliases[0]), copy=False)
            for i in range(1, len(node.steps)):
                a = aliases[i]
                select = select.join(exp.to_table("events").as_(a), on=exp.EQ(
                    this=col(a, "person_id"), expression=col(aliases[0], "person_id")), copy=False)
                parts.append(self.event_filter(a, [node.steps[i]], node.window, Scope(None)))
                parts.append(exp.GT(this=col(a, "ts"), expression=col(aliases[i - 1], "ts")))
                parts.append(bound(a))
            return exists(select.where(and_(*parts), copy=False))
        # Innermost first: step i+1 strictly after step i, every step no later than first + within.
        inner = None
        for i in range(len(node.steps) - 1, -1, -1):
            a = aliases[i]
            parts = [self.event_filter(a, [node.steps[i]], node.window, scope)]
            if i > 0:
                parts.append(exp.GT(this=col(a, "ts"), expression=col(aliases[i - 1], "ts")))
                parts.append(bound(a))
            if inner is not None:
                parts.append(inner)
            inner = exists(select_(num(1)).from_(exp.to_table("events").as_(a), copy=False).where(and_(*parts), copy=False))
        return inner

    def c_InSegment(self, node, scope):  # noqa: N802
        # Membership is two-valued: the referenced condition is True or the person is not a member.
        return self.coalesce_false(self.segment_condition(node.segment, Scope(scope.person, person_key=scope.person_key)))

    def c_HasCar(self, node, scope):  # noqa: N802
        o, c = self.alias("o"), self.alias("c")
        today = self.today.isoformat()
        parts = [
            exp.EQ(this=col(o, "person_id"), expression=scope.person_id()),
            or_(is_null(col(o, "valid_from")), exp.LTE(this=col(o, "valid_from"), expression=self.bind(today))),
            or_(is_null(col(o, "valid_to")), exp.GT(this=col(o, "valid_to"), expression=self.bind(today))),
        ]
        select = (select_(num(1)).from_(exp.to_table("ownerships").as_(o), copy=False)
                  .join(exp.to_table("cars").as_(c), on=exp.EQ(this=col(c, "vin"), expression=col(o, "vin")), copy=False))
        if node.where is not None:
            inner = self.inner_scope(scope, o, car=c, ownership=o, event=None)
            if inner.person_key != "id" and not _no_person_row(node.where):
                # the person's attributes (`profile.x`) where the person is read from the ownership row: the
                # owner's people row joined in (the same person), still correlated on the enclosing query only
                pp = self.alias("pp")
                select = select.join(exp.to_table("people").as_(pp),
                                     on=exp.EQ(this=col(pp, "id"), expression=col(o, "person_id")), copy=False)
                inner = attrs.evolve(inner, person=pp, person_key="id")
            parts.append(self.cond(node.where, inner))
        return exists(select.where(and_(*parts), copy=False))

    # -- recommendations (docs/dsl.md): `recommendation R includes "x"` holds when a rule of R that gives "x"
    # holds for the person (for one car they own, for `per car`): earlier rules only decide the rank.
    def c_Recommended(self, node, scope):  # noqa: N802
        rule = self.rule_set.recommendations.get(node.recommendation)
        if rule is None:
            raise CompileError(f"unknown recommendation `{node.recommendation}`",
                               "define it with `recommend NAME { ... }`")
        if node.recommendation in self._recommendation_path:
            cycle = " -> ".join(self._recommendation_path[self._recommendation_path.index(node.recommendation):]
                                + [node.recommendation])
            raise CompileError(f"recommendations refer to each other in a cycle: {cycle}",
                               "a recommendation's conditions must not depend on itself")
        conds = [r.when for r in rule.rules if not node.items or r.then.value in node.items]
        if not conds:
            return self.F()
        either = conds[0] if len(conds) == 1 else ast.Or(conds)
        self._recommendation_path.append(node.recommendation)
        try:
            if rule.per_car:
                return self.c_HasCar(ast.HasCar(either), Scope(scope.person, person_key=scope.person_key))
            return self.coalesce_false(self.cond(either, Scope(scope.person, person_key=scope.person_key)))
        finally:
            self._recommendation_path.pop()

    def recommendation_columns(self, name: str, scope: Scope) -> list[exp.Expression]:
        """One 0 / 1 column per rule of recommendation ``name``: whether its condition is true in ``scope`` (the
        person, or a car and its owner for ``per car``)."""
        rule = self.rule_set.recommendations[name]
        self._recommendation_path.append(name)
        try:
            return [self.coalesce_false(self.cond(r.when, scope)) for r in rule.rules]
        finally:
            self._recommendation_path.pop()

    def c_ConsentCond(self, node, scope):  # noqa: N802
        def granted(channel):
            k = self.alias("k")
            return exp.Subquery(this=select_(col(k, "granted")).from_(exp.to_table("consents").as_(k), copy=False).where(
                and_(exp.EQ(this=col(k, "person_id"), expression=scope.person_id()),
                     exp.EQ(this=col(k, "channel"), expression=self.bind(channel))), copy=False))

        own = granted(node.channel)
        # consent_state: a global refusal wins, then the channel's own state, then the global state.
        state = case((exp.EQ(this=granted("*"), expression=num(0)), num(0)),
                     (is_not_null(own), granted(node.channel)),
                     default=granted("*"))
        return self.coalesce_false(exp.EQ(this=state, expression=num(1 if node.state == "consented" else 0)))


class SQLiteCompiler(Compiler):
    """The compiler for the SQLite store (``Compiler(..., dialect="sqlite")``)."""


def property_keys(rule_set) -> list[str]:
    """The event property keys the rule set's conditions read (``count(E where amount >= ...)``,
    ``sum(E.amount)``) that an engine can keep in typed columns (dialects.PROPERTY_KEY_RE), sorted."""
    import re

    from .dialects import PROPERTY_KEY_RE

    keys = set()
    roots = [s.where for s in rule_set.segments.values()] + [
        r.when for rec in rule_set.recommendations.values() for r in rec.rules]
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, ast.Aggregate):
                if node.prop:
                    keys.add(node.prop)
                if node.where is not None:
                    keys.update(n.name for n in ast.walk(node.where) if isinstance(n, ast.FieldRef))
    return sorted(k for k in keys if re.match(PROPERTY_KEY_RE, k))


def compile_condition(rule_set, cond, as_of: dt.datetime, tz="Asia/Shanghai",
                      types: ValueTypes | None = None, dialect: str | Dialect | None = None) -> CompiledQuery:
    """``SELECT p.id FROM people p WHERE <cond>`` (one full pass; used by tests and explain --person) for
    ``dialect`` (a name in :data:`~motorcade.segments.dialects.DIALECTS`; default SQLite)."""
    compiler = Compiler(rule_set, as_of, tz, types, dialect)
    where = compiler.cond(cond, Scope("p"))
    tree = (select_(exp.alias_(col("p", "id"), "person_id")).from_(exp.to_table("people").as_("p"), copy=False)
            .where(where, copy=False).order_by(col("p", "id"), copy=False))
    return CompiledQuery(tree, compiler.params, "scan people", compiler.dialect)
