"""Plan choice: drive a segment from its most selective indexed condition, check the rest per candidate.

Measured on the 20M-event store (issue 4): a windowed event condition answered by seeking
``events(name, ts)`` and then checking each candidate with correlated EXISTS / COUNT lookups on
``events(person_id, name, ts)`` is 10x faster than one GROUP BY pass over all events; a tag equality
seeking ``tag_values(tag, value)`` likewise beats a set-based pass. So for a segment whose condition is
``c1 AND c2 AND ...``:

1. every conjunct that an index can answer becomes a *driver* candidate: ``did E`` / ``did any of`` /
   ``count(E [where event-fields]) >= k`` (k such that zero events fail) on ``events(name, ts)``, a tag
   ``=`` / ``in [...]`` on ``tag_values(tag, value)``, the first step of a sequence (a superset);
2. each candidate's index range is sized by the store's planner statistics (events per name and day, rows
   per tag value: :mod:`motorcade.store.stats`) or, where they do not know it, measured with a capped count
   (an index-only probe, milliseconds); a lone candidate is not sized at all;
3. the smallest range drives: ``SELECT key FROM <driver rows> WHERE ... GROUP BY key HAVING <the other
   conjuncts> ORDER BY key`` — the other conjuncts are correlated lookups run once per candidate, and
   ORDER BY repeats the grouping key so SQLite sorts at most once. An exact driver's conjunct is dropped
   from the residual; a superset's stays. When a residual conjunct reads the profile (``profile.x``), the
   candidates join ``people`` instead.

Members must be people. Once identity is settled (no merge or split waiting for ``settle_identity``)
every person id in events, ownerships, tags and consents names a row of ``people``, so the plan reads
``people`` only while a merge is pending.

Without a drivable conjunct the plan scans ``people`` with the correlated checks. Either way the answer
is the condition's exact answer; only the speed differs.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

import attrs
from sqlglot import exp

from motorcade.dsl import ast
from motorcade.dsl.evaluate import compare_values

from .compiler import (CompileError, CompiledQuery, Compiler, Scope, _event_fields_only, _mentions_car,
                       _no_person_row, and_, col, is_not_null, is_null, num, or_,
                       select_)
from .dialects import get_dialect

PROBE_CAP = 250_000
# Measured on the 20M-event store: reading a row of events(name, ts) and fetching its person_id costs
# about 4 rows of the covering tag_values(tag, value) index.
EVENT_ROW_COST = 4.0


@attrs.define
class Driver:
    """One way to produce the candidates of a conjunct from an index."""

    index: int  # position of the conjunct
    exact: bool  # candidates == the people for whom the conjunct is True
    description: str
    # (SELECT key AS person_id ... [GROUP BY key], key): one row per candidate, ordered by key when read
    rows: Callable[[Compiler], tuple[exp.Select, exp.Column]]
    probe: Callable[[Compiler, int], exp.Select]  # count of the index range it reads, up to a cap
    # the range's size from the store's planner statistics (None: not known there; probe instead)
    from_stats: Callable[[object, Compiler], int | None] = lambda store, compiler: None
    estimate: int = -1
    counted: str = ""  # how the estimate was made: "statistics" or "index rows" (a capped probe)
    row_cost: float = 1.0  # relative cost of one index row (events rows need a table lookup for person_id)
    filtered: bool = False  # rows of the range are filtered further (a where the probe does not count)

    @property
    def cost(self) -> float:
        return self.estimate * self.row_cost


def _capped_count(inner: exp.Select, cap: int) -> exp.Select:
    """``count(*)`` of ``inner``'s rows, reading at most ``cap`` of them."""
    inner = inner.limit(cap, copy=False)
    return select_(exp.Count(this=exp.Star())).from_(exp.Subquery(this=inner, alias="r"), copy=False)


def _events_driver(index, names, window, where, having, description, exact) -> Driver:
    def rows(compiler: Compiler) -> tuple[exp.Select, exp.Column]:
        e = compiler.alias("e")
        key = col(e, "person_id")
        # events name their person once resolved; a row without one is nobody's (and no group)
        condition = and_(compiler.event_filter(e, names, window, Scope(None), where), is_not_null(key.copy()))
        query = select_(exp.alias_(key.copy(), "person_id")).from_(
            exp.to_table("events").as_(e), copy=False).where(condition, copy=False).group_by(key.copy(), copy=False)
        if having is not None:
            op, k = having
            query = query.having({">=": exp.GTE, ">": exp.GT, "=": exp.EQ}[op](
                this=exp.Count(this=exp.Star()), expression=compiler.bind(k)), copy=False)
        return query, key

    def probe(compiler: Compiler, cap: int) -> exp.Select:
        e = compiler.alias("e")
        condition = compiler.event_filter(e, names, window, Scope(None), None)
        return _capped_count(select_(num(1)).from_(exp.to_table("events").as_(e), copy=False).where(condition, copy=False), cap)

    def from_stats(store, compiler: Compiler) -> int | None:
        first, last = compiler.window_epochs(window)
        if first is not None and first > last:
            return 0  # an empty window
        return store.event_range_estimate(names, first, last)

    # events(name, ts, person_id) covers the range, but its rows are many per person: weigh them more.
    return Driver(index, exact, description, rows, probe, from_stats, row_cost=EVENT_ROW_COST,
                  filtered=where is not None or having is not None)


def _tag_driver(index, tag, items, description) -> Driver:
    def condition(compiler: Compiler, t: str) -> exp.Expression:
        return and_(exp.EQ(this=col(t, "tag"), expression=compiler.bind(tag)),
                    compiler.d.tag_value_in(t, col, items, compiler.bind))

    def rows(compiler: Compiler) -> tuple[exp.Select, exp.Column]:
        t = compiler.alias("t")
        key = col(t, "person_id")
        # (tag, person_id) is the key of tag_values: one row per person, no grouping needed
        return select_(exp.alias_(key.copy(), "person_id")).from_(
            exp.to_table("tag_values").as_(t), copy=False).where(condition(compiler, t), copy=False), key

    def probe(compiler: Compiler, cap: int) -> exp.Select:
        t = compiler.alias("t")
        return _capped_count(select_(num(1)).from_(exp.to_table("tag_values").as_(t), copy=False).where(
            condition(compiler, t), copy=False), cap)

    def from_stats(store, compiler: Compiler) -> int | None:
        return store.tag_range_estimate(tag, items)

    return Driver(index, True, description, rows, probe, from_stats)


def _car_driver(index, cond) -> Driver:
    def current(compiler: Compiler, o: str) -> list[exp.Expression]:
        today = compiler.today.isoformat()
        return [
            or_(is_null(col(o, "valid_from")), exp.LTE(this=col(o, "valid_from"), expression=compiler.bind(today))),
            or_(is_null(col(o, "valid_to")), exp.GT(this=col(o, "valid_to"), expression=compiler.bind(today))),
        ]

    def rows(compiler: Compiler) -> tuple[exp.Select, exp.Column]:
        o, c = compiler.alias("o"), compiler.alias("c")
        key = col(o, "person_id")
        parts = current(compiler, o)
        query = select_(exp.alias_(key.copy(), "person_id")).from_(exp.to_table("ownerships").as_(o), copy=False)
        items = [] if cond.where is None else list(cond.where.items) if isinstance(cond.where, ast.And) else [cond.where]
        of_car = [i for i in items if _mentions_car(i)]
        of_person = [i for i in items if not _mentions_car(i)]
        if of_car:
            # The ownership row stands for the person: its person_id keys every person-scope lookup.
            scope = Scope(o, car=c, ownership=o, person_key="person_id")
            parts.extend(compiler.truth(i, scope) for i in of_car)
            query = query.join(exp.to_table("cars").as_(c), on=exp.EQ(this=col(c, "vin"), expression=col(o, "vin")),
                               copy=False)
        query = query.where(and_(*parts), copy=False).group_by(key.copy(), copy=False)
        if of_person:
            # `has car where A(car) and B(person)` is `(has car where A) and B`: B is checked once per
            # person that has such a car, not once per ownership row before the car is looked at.
            query = query.having(and_(*[compiler.truth(i, Scope(o, person_key="person_id")) for i in of_person]),
                                 copy=False)
        return query, key

    def probe(compiler: Compiler, cap: int) -> exp.Select:
        o = compiler.alias("o")
        return _capped_count(select_(num(1)).from_(exp.to_table("ownerships").as_(o), copy=False).where(
            and_(*current(compiler, o)), copy=False), cap)

    return Driver(index, True, "ownerships for has car" + (" where ..." if cond.where is not None else ""),
                  rows, probe, lambda store, compiler: store.ownership_rows(), filtered=cond.where is not None)


def _no_profile(cond) -> bool:
    """No ``profile.x`` or ``age`` (they need the people row) and no ``in segment`` or ``recommendation`` (they may
    bring one in). A car's ``age`` counts too: telling it from a person's is not worth a plan shape."""
    return cond is None or not any(isinstance(n, (ast.ProfileRef, ast.InSegment, ast.Recommended))
                                   or (isinstance(n, ast.FieldRef) and n.name == "age") for n in ast.walk(cond))


def flatten_conjuncts(rule_set, cond, path=()) -> list:
    """The top-level ``and`` items of ``cond``, with ``in segment X`` replaced by X's own items.

    Exact at the top of a WHERE: ``in segment X and rest`` is true exactly when X's condition and rest
    are both true (a cycle is left alone; the compiler reports it)."""
    items = list(cond.items) if isinstance(cond, ast.And) else [cond]
    out = []
    for item in items:
        if (isinstance(item, ast.InSegment) and item.segment in rule_set.segments and item.segment not in path
                and _unscoped(rule_set.segments[item.segment])  # a store segment keeps its scope whole
                # inside a store's segment a per-store tag reads the store's value, in a group one the person's
                and (not path or path[0] not in rule_set.segments or _unscoped(rule_set.segments[path[0]]))):
            out.extend(flatten_conjuncts(rule_set, rule_set.segments[item.segment].where, (*path, item.segment)))
        else:
            out.append(item)
    return out


def _unscoped(segment) -> bool:
    return segment.scope is None or segment.scope.group


def drop_implied(conjuncts: list) -> list:
    """The conjuncts without those another one implies: a repeated condition (``A and A`` is ``A``) and
    a bare ``has car`` beside a ``has car where ...`` (an owned car that matches is an owned car; both
    are two-valued), which ``in segment owners and has car where ...`` produces."""
    out = []
    for item in conjuncts:
        if item in out:
            continue
        if isinstance(item, ast.HasCar) and item.where is None and any(
                isinstance(c, ast.HasCar) and c.where is not None for c in conjuncts):
            continue
        out.append(item)
    return out


def _plain(value) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _typed_tag(tag: str, types) -> bool:
    """A tag whose stored values are not what a rule compares: a boolean tag stores true as 1, a date tag
    a date as ISO text (ValueTypes.tag), so a plain literal's index range is not the tag's answer; a per-store
    tag's value in a store's rule is not in tag_values at all."""
    return types is not None and (types.tags.get(tag) in ("boolean", "date")
                                  # the value a store's rule reads is in store_tag_values, not tag_values
                                  or tag in types.store_tags)


def drivers_for(index: int, cond, types=None) -> list[Driver]:
    """The index drivers that can produce the candidates of ``cond`` (maybe none); ``types``: the store's
    declared value types."""
    if isinstance(cond, ast.Did) and not cond.negated:
        return [_events_driver(index, [cond.event], cond.window, None, None,
                               f"events(name, ts) for did {cond.event}", True)]
    if isinstance(cond, ast.DidAny):
        return [_events_driver(index, sorted(set(cond.events)), cond.window, None, None,
                               "events(name, ts) for did any of " + ", ".join(sorted(set(cond.events))), True)]
    if isinstance(cond, ast.Sequence):
        return [_events_driver(index, [cond.steps[0]], cond.window, None, None,
                               f"events(name, ts) for the first step ({cond.steps[0]}) of a sequence", False)]
    if (isinstance(cond, ast.Compare) and isinstance(cond.subject, ast.Aggregate) and cond.subject.func == "count"
            and isinstance(cond.value, ast.Literal) and _plain(cond.value.value)
            and not isinstance(cond.value.value, str) and _event_fields_only(cond.subject.where)):
        k = cond.value.value
        zero_passes = compare_values(0, cond.op, k, dt.timezone.utc)
        if zero_passes is not True and cond.op in (">=", ">", "="):
            agg = cond.subject
            return [_events_driver(index, [agg.event], agg.window, agg.where, (cond.op, k),
                                   f"events(name, ts) for count({agg.event}) {cond.op} {k}", True)]
    if isinstance(cond, ast.HasCar) and _no_profile(cond.where):
        return [_car_driver(index, cond)]
    if isinstance(cond, ast.Compare) and isinstance(cond.subject, ast.TagRef) and cond.op == "=" \
            and isinstance(cond.value, ast.Literal) and _plain(cond.value.value) \
            and not _typed_tag(cond.subject.name, types):
        return [_tag_driver(index, cond.subject.name, [cond.value.value],
                            f"tag_values(tag, value) for tag {cond.subject.name} = {cond.value.value!r}")]
    if isinstance(cond, ast.InList) and isinstance(cond.subject, ast.TagRef) and not cond.negated \
            and not _typed_tag(cond.subject.name, types):
        items = [i.value for i in cond.items if _plain(i.value)]
        # Tag values are numbers or strings: other literals (bools, dates) never equal one.
        return [_tag_driver(index, cond.subject.name, items,
                            f"tag_values(tag, value) for tag {cond.subject.name} in {items!r}")]
    return []


def plan_segment(store, rule_set, name: str, as_of: dt.datetime, tz="Asia/Shanghai", *,
                 force_scan: bool = False, settled: bool | None = None, dialect: str | None = None) -> CompiledQuery:
    """The plan for segment ``name``: a SELECT of ``person_id`` (sorted) and its parameters.

    ``dialect``: the engine to compile for (default: the store's ``dialect``; a name in
    :data:`motorcade.segments.dialects.DIALECTS`).
    ``settled``: whether the store's identity is settled (default: ask the store). Run the plan and
    its query in one :meth:`read_snapshot` so the answer holds for the rows the query reads.

    A segment whose condition is ``A or B or ...`` where every alternative has an indexed condition
    is the UNION of one driven plan per alternative (a person is a member when one of them is true);
    otherwise the whole condition is planned as a conjunction.
    """
    segment = rule_set.segments.get(name)
    if segment is None:
        raise CompileError(f"unknown segment `{name}`", "define it in a .mc file or fix the name")
    types = store.value_types()  # declared types of attributes and tags: dates, date-times, booleans
    dialect = get_dialect(dialect or getattr(store, "dialect", "sqlite")).name
    # event properties the engine keeps in typed columns (an analytics engine's; none on a store)
    columns = getattr(store, "property_columns", None)
    compiler = Compiler(rule_set, as_of, tz, types, dialect, property_columns=columns() if columns else frozenset())
    compiler._segment_path.append(name)
    compiler._rule_scopes.append(segment.scope)  # which store's value a per-store tag reads
    if settled is None:
        settled = store.identity_settled()
    where = segment.where
    if not force_scan and compiler.d.set_plans:
        # column stores: set shapes, no probes (docs/compiler.md, "Plan choice per engine")
        items = where.items if isinstance(where, ast.Or) else [where]
        branches = [_set_plan(compiler, store, drop_implied(flatten_conjuncts(rule_set, item, (name,))), settled)
                    for item in items]
        if len(branches) == 1:
            select, key, description = branches[0]
            return CompiledQuery(select.order_by(key.copy(), copy=False), compiler.params, description, dialect)
        return _union(compiler, branches, dialect)
    if not force_scan and isinstance(where, ast.Or):
        branches = []
        for item in where.items:
            conjuncts = drop_implied(flatten_conjuncts(rule_set, item, (name,)))
            chosen = _choose_driver(store, rule_set, as_of, tz, conjuncts, types, dialect)
            if chosen is None:
                break
            branches.append(_driven(compiler, conjuncts, chosen, settled))
        else:
            return _union(compiler, branches, dialect)
    conjuncts = drop_implied(flatten_conjuncts(rule_set, where, (name,)))
    chosen = None if force_scan else _choose_driver(store, rule_set, as_of, tz, conjuncts, types, dialect)
    if chosen is None:
        residual = [compiler.truth(c, Scope("p")) for c in conjuncts]
        select = select_(exp.alias_(col("p", "id"), "person_id")).from_(exp.to_table("people").as_("p"), copy=False)
        if residual:
            select = select.where(and_(*residual), copy=False)
        select = select.order_by(col("p", "id"), copy=False)
        return CompiledQuery(select, compiler.params, "scan people; check every condition per person", dialect)
    select, key, description = _driven(compiler, conjuncts, chosen, settled)
    return CompiledQuery(select.order_by(key.copy(), copy=False), compiler.params, description, dialect)


def _union(compiler: Compiler, branches: list, dialect: str) -> CompiledQuery:
    """One plan per alternative of a top-level ``or``, their UNION (a person is a member when one holds)."""
    union = branches[0][0]
    for select, _key, _description in branches[1:]:
        union = exp.Union(this=union, expression=select, distinct=True)
    u = compiler.alias("u")
    tree = select_(exp.alias_(col(u, "person_id"), "person_id")).from_(
        exp.Subquery(this=union, alias=u), copy=False).order_by(col(u, "person_id"), copy=False)
    description = "union of one plan per alternative: " + " | ".join(d for _, _, d in branches)
    return CompiledQuery(tree, compiler.params, description, dialect)


def _positive_events(compiler: Compiler, cond):
    """``(names, window, where, op, k)`` of a conjunct that one GROUP BY person_id over events answers —
    ``did E``, ``did any of``, ``count(E [where event fields]) op k`` where a count of 0 fails — else None
    (``op`` None: at least one event)."""
    if isinstance(cond, ast.Did) and not cond.negated:
        return [cond.event], cond.window, None, None, None
    if isinstance(cond, ast.DidAny):
        return sorted(set(cond.events)), cond.window, None, None, None
    counted = compiler.count_test(cond)
    if counted is not None and not counted[3] and _event_fields_only(counted[0].where):
        agg, op, k, _ = counted
        return [agg.event], agg.window, agg.where, op, k
    return None


def _events_group(compiler: Compiler, conditions: list) -> tuple[exp.Select, exp.Column]:
    """One scan of the events the ``conditions`` name, grouped by person, each condition a test on its own
    conditional count in HAVING: ``SELECT person_id FROM events WHERE <any of them> GROUP BY person_id
    HAVING count_1 >= 3 AND count_2 >= 1``. A coarse filter (every name, the widest window) comes first
    so the engine's sort key / zone maps skip the other events."""
    e = compiler.alias("e")
    key = col(e, "person_id")
    names = sorted({n for names, *_ in conditions for n in names})
    windows = [compiler.window_epochs(window) for _, window, *_ in conditions]
    coarse = [exp.In(this=col(e, "name"), expressions=[compiler.bind(n) for n in names]), is_not_null(key.copy())]
    if all(first is not None for first, _ in windows):
        coarse.append(exp.GTE(this=col(e, "ts"), expression=compiler.bind(min(first for first, _ in windows))))
    coarse.append(exp.LTE(this=col(e, "ts"), expression=compiler.bind(max(last for _, last in windows))))
    low = min(first for first, _ in windows) if all(first is not None for first, _ in windows) else None
    high = max(last for _, last in windows)

    def own_filter(names, window, where, bounds):
        # the coarse filter already bounds the time: a condition over the same window tests only its names
        if bounds == (low, high):
            test = (exp.EQ(this=col(e, "name"), expression=compiler.bind(names[0])) if len(names) == 1 else
                    exp.In(this=col(e, "name"), expressions=[compiler.bind(n) for n in names]))
            if where is None:
                return test
            return and_(test, compiler.truth(where, Scope(None, event=e)))
        return compiler.event_filter(e, names, window, Scope(None), where)

    filters = [own_filter(c[0], c[1], c[2], w) for c, w in zip(conditions, windows)]
    query = select_(exp.alias_(key.copy(), "person_id")).from_(exp.to_table("events").as_(e), copy=False)
    tests = []
    if len(conditions) == 1:
        query = query.where(and_(*coarse[1:], filters[0]) if len(names) == len(conditions[0][0]) else
                            and_(*coarse, filters[0]), copy=False)
        op, k = conditions[0][3], conditions[0][4]
        if op is not None:
            tests.append(cmp_count(op, exp.Count(this=exp.Star()), compiler.bind(k)))
    else:
        query = query.where(and_(*coarse, or_(*filters)), copy=False)
        for (_n, _w, _where, op, k), f in zip(conditions, filters):
            counted = exp.Sum(this=case_when(f, num(1), num(0)))
            tests.append(cmp_count(op or ">=", counted, compiler.bind(1 if op is None else k)))
    query = query.group_by(key.copy(), copy=False)
    if tests:
        query = query.having(and_(*tests), copy=False)
    return query, key


def cmp_count(op: str, count: exp.Expression, k: exp.Expression) -> exp.Expression:
    return {">=": exp.GTE, ">": exp.GT, "=": exp.EQ, "<": exp.LT, "<=": exp.LTE, "!=": exp.NEQ}[op](
        this=count, expression=k)


def case_when(test: exp.Expression, then: exp.Expression, default: exp.Expression) -> exp.Case:
    return exp.Case(ifs=[exp.If(this=test, true=then)], default=default)


def _set_plan(compiler: Compiler, store, conjuncts: list, settled: bool) -> tuple[exp.Select, exp.Column, str]:
    """The plan of ``conjuncts`` for a column store (dialects with ``set_plans``): the conditions on
    events that one grouped scan answers drive (``GROUP BY person_id HAVING`` one conditional count per
    condition); without them, the tag / ownership condition the planner statistics say is smallest (no
    probe: a semi-join on a column store costs about the same whichever set drives), else ``people``.
    Every other condition is a semi-join or anti-join (``Compiler.semi_join``), or, without a set form,
    the per-person check."""
    grouped = [(i, _positive_events(compiler, c)) for i, c in enumerate(conjuncts)]
    grouped = [(i, g) for i, g in grouped if g is not None]
    if grouped:
        rows, key = _events_group(compiler, [g for _, g in grouped])
        used = {i for i, _ in grouped}
        names = sorted({n for _, g in grouped for n in g[0]})
        description = (f"one scan of events ({', '.join(names)}) grouped by person for {len(grouped)} "
                       "condition(s)")
    else:
        candidates = [d for i, c in enumerate(conjuncts) for d in drivers_for(i, c, store.value_types())
                      if d.exact and "ownerships" not in d.description]
        # a car's own conditions per ownership row, the owner's once per owner (Compiler.owner_rows)
        candidates += [Driver(i, True, "ownerships for has car" + (" where ..." if c.where is not None else ""),
                              lambda compiler, c=c: (compiler.owner_rows(c), None), lambda compiler, cap: None,
                              lambda store, compiler: store.ownership_rows())
                       for i, c in enumerate(conjuncts) if isinstance(c, ast.HasCar) and _no_person_row(c.where)]
        for driver in candidates if len(candidates) > 1 else ():  # a lone candidate drives unsized
            estimate = driver.from_stats(store, compiler)
            driver.estimate = -1 if estimate is None else estimate
        known = [d for d in candidates if d.estimate >= 0]
        if known:
            chosen = min(known, key=lambda d: d.cost)
        elif candidates:
            chosen = min(candidates, key=lambda d: ("tag_values" not in d.description, "ownerships" in d.description))
        else:
            chosen = None
        if chosen is None:
            p = "p"
            checks = [compiler.truth(c, Scope(p)) for c in conjuncts]
            select = select_(exp.alias_(col(p, "id"), "person_id")).from_(exp.to_table("people").as_(p), copy=False)
            if checks:
                select = select.where(and_(*checks), copy=False)
            return select, col(p, "id"), "scan people; semi-joins for the conditions that have one"
        rows, key = chosen.rows(compiler)
        if key is None:  # owner_rows: its first column is the person
            key = rows.expressions[0].copy()
        used = {chosen.index}
        description = f"from {chosen.description}"
    rest = [c for i, c in enumerate(conjuncts) if i not in used]
    description += f"; {len(rest)} other condition(s) as semi-joins / anti-joins / per-person checks"
    # the checks read only the person: before the grouping (measured: probing each row's person against a
    # hashed set is cheaper than grouping rows of people the set then drops)
    return _checked(compiler, rows, key, rest, settled, description, before_grouping=True)


def _choose_driver(store, rule_set, as_of, tz, conjuncts, types=None, dialect="sqlite") -> Driver | None:
    """The candidate driver with the smallest index range among ``conjuncts`` (None: none drivable)."""
    candidates = [d for i, c in enumerate(conjuncts) for d in drivers_for(i, c, types)]
    if not candidates:
        return None
    # Probe the usually selective ranges first (tag values, then events, then ownerships).
    candidates.sort(key=lambda d: ("tag_values" not in d.description, "ownerships" in d.description))
    # A lone candidate drives without being counted: there is nothing to compare its range with.
    if len(candidates) > 1:
        # The planner statistics first (no index read); ranges they do not know are probed.
        stats = Compiler(rule_set, as_of, tz, types, dialect)
        for driver in candidates:
            estimate = driver.from_stats(store, stats)
            if estimate is not None:
                driver.estimate, driver.counted = estimate, "statistics"
        known = [d.cost for d in candidates if d.estimate >= 0]
        best_cost = float(min([PROBE_CAP, *known]))
        for driver in candidates:
            if driver.estimate >= 0:
                continue
            # Count only as far as could still beat the cheapest driver so far: probing reads at most
            # about one cap of index entries in all.
            cap = max(1, min(PROBE_CAP, int(best_cost / driver.row_cost) + 1))
            probe = Compiler(rule_set, as_of, tz, types, dialect)
            query = driver.probe(probe, cap)
            driver.estimate = store.query(get_dialect(dialect).render(query, probe.params), probe.params)[0][0]
            driver.counted = "index rows"
            best_cost = min(best_cost, driver.cost)
    # Cheapest range first; on a tie prefer exact drivers (their conjunct needs no re-check).
    # Capped ranges tie: then a driver with its own filter (`has car where ...`, `count(E where ...)`)
    # yields fewer candidates than one without.
    return min(candidates, key=lambda d: (d.cost, not d.filtered, not d.exact))


def _driven(compiler: Compiler, conjuncts: list, chosen: Driver, settled: bool
            ) -> tuple[exp.Select, exp.Column, str]:
    """``(SELECT person_id ..., key to order by, description)`` of ``conjuncts`` driven from ``chosen``."""
    rest = [c for i, c in enumerate(conjuncts) if i != chosen.index or not chosen.exact]
    driver_sql, key = chosen.rows(compiler)
    if chosen.estimate < 0:
        size = "the only indexed condition"
    elif chosen.counted == "statistics":
        size = f"~{chosen.estimate} rows by the planner statistics"
    else:
        size = f"~{chosen.estimate}{'+' if chosen.estimate * chosen.row_cost >= PROBE_CAP else ''} index rows"
    description = (f"drive from {chosen.description} ({size}); "
                   f"check the other {len(rest)} condition(s) per candidate")
    return _checked(compiler, driver_sql, key, rest, settled, description)


def _checked(compiler: Compiler, driver_sql: exp.Select, key: exp.Column, rest: list, settled: bool,
             description: str, before_grouping: bool = False) -> tuple[exp.Select, exp.Column, str]:
    """``driver_sql`` (one row per candidate, keyed by ``key``) with the ``rest`` of the conditions checked
    (``before_grouping``: in its WHERE even when it groups: they read only the person)."""
    if all(_no_profile(c) for c in rest):
        # One query over the driver's rows: the other conditions are checked once per candidate (in
        # HAVING when the driver groups its rows by person, else in WHERE), and ORDER BY repeats the
        # grouping key so SQLite sorts once (or not at all when the index is in person order).
        checks = [compiler.truth(c, Scope(key.table, person_key="person_id")) for c in rest]
        if not settled:
            # A merge or split waits for settle_identity: rows may still name a person id that is gone.
            checks.append(exp.Exists(this=select_(num(1)).from_(exp.to_table("people").as_("p"), copy=False).where(
                exp.EQ(this=col("p", "id"), expression=key.copy()), copy=False)))
        select = driver_sql
        if checks:
            if select.args.get("group") and not before_grouping:
                select = select.having(and_(*checks), copy=False)
            else:
                select = select.where(and_(*checks), copy=False)
        return select, key, description
    # CROSS JOIN keeps the driver outermost: SQLite never reorders it, and would otherwise scan people
    # in id order to save the final sort (the other engines: an inner join; they choose the order).
    p = compiler.alias("p")
    source = exp.Subquery(this=driver_sql, alias=compiler.alias("d"))
    select = select_(exp.alias_(col(p, "id"), "person_id")).from_(source, copy=False).join(
        exp.to_table("people").as_(p), on=exp.EQ(this=col(p, "id"), expression=col(source.alias, "person_id")),
        join_type=compiler.d.driver_join, copy=False)
    if rest:
        select = select.where(and_(*[compiler.truth(c, Scope(p)) for c in rest]), copy=False)
    return select, col(p, "id"), description
