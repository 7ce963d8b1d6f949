"""The reference evaluator: the rule AST over in-memory :mod:`motorcade.dsl.data`, written for clarity.

It is the oracle the SQL compilers are tested against, so it follows docs/dsl.md to the letter:

* three-valued logic (True / False / None = unknown) exactly like SQL's ``WHERE``; a person is a member
  when the segment's condition is True;
* every relative time resolves against one aware ``as_of`` instant and the project time zone;
* events after ``as_of`` are invisible.

Each node type has an ``eval_<NodeName>`` method; a node without one raises :class:`Unsupported`
naming it (never a silent wrong answer).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import zoneinfo
from typing import Any, Callable

import attrs

from motorcade.dsl import ast
from motorcade.dsl.data import CarData, Dataset, EventData, PersonData
from motorcade.dsl.format import fmt_cond, fmt_string, fmt_subject
from motorcade.errors import MotorcadeError

DEFAULT_TIMEZONE = "Asia/Shanghai"
_FIXED_SECONDS = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400}

Tri = bool | None  # True, False, or None (unknown)


class EvaluationError(MotorcadeError):
    """A rule cannot be evaluated (unknown segment, a segment cycle, a value of the wrong kind)."""


class Unsupported(EvaluationError):
    """The evaluator has no rule for this node type."""


# ---- time -------------------------------------------------------------------------------------


def get_zone(tz: str | dt.tzinfo) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz


def local_date(instant: dt.datetime, tz: dt.tzinfo) -> dt.date:
    """The calendar date of ``instant`` in the project time zone."""
    return instant.astimezone(tz).date()


def local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The instant 00:00 of ``day`` in the project time zone."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz)


def add_months(local: dt.datetime, months: int) -> dt.datetime:
    """Calendar month arithmetic on a wall-clock time; the day is clamped to the month's last day."""
    index = local.year * 12 + (local.month - 1) + months
    year, month = divmod(index, 12)
    day = min(local.day, calendar.monthrange(year, month + 1)[1])
    return local.replace(year=year, month=month + 1, day=day)


def shift(instant: dt.datetime, amount: int, unit: str, tz: dt.tzinfo) -> dt.datetime:
    """``instant + amount unit``. Minutes..weeks are fixed lengths (a day is 86 400 s); months and years
    move the wall-clock time in the project time zone by calendar months (clamped to month end)."""
    if unit in _FIXED_SECONDS:
        return instant + dt.timedelta(seconds=amount * _FIXED_SECONDS[unit])
    months = amount * (12 if unit == "years" else 1)
    local = instant.astimezone(tz)
    return add_months(local.replace(tzinfo=None), months).replace(tzinfo=tz)


def _total(numbers: list) -> int | float:
    """The sum of ``numbers`` as SQLite's ``total()`` gives it: past 64-bit integers, a float (never an error)."""
    result = sum(numbers)
    if isinstance(result, int) and not -(2**63) <= result < 2**63:
        try:
            return float(result)
        except OverflowError:
            return math.inf if result > 0 else -math.inf
    return result


def ago(amount: int, unit: str, as_of: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The instant ``N unit ago``."""
    return shift(as_of, -amount, unit, tz)


def literal_value(value: Any, tz: dt.tzinfo) -> Any:
    """A literal as the evaluator compares it: naive datetimes are local times in the project zone."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value


@attrs.frozen
class Interval:
    """Instants ``start <(=) ts <(=) end``; None = unbounded on that side."""

    start: dt.datetime | None
    start_inclusive: bool
    end: dt.datetime | None
    end_inclusive: bool

    def contains(self, ts: dt.datetime) -> bool:
        if self.start is not None and (ts < self.start or (ts == self.start and not self.start_inclusive)):
            return False
        if self.end is not None and (ts > self.end or (ts == self.end and not self.end_inclusive)):
            return False
        return True


def _point(value, as_of: dt.datetime, tz: dt.tzinfo):
    """A window bound: ("instant", aware datetime) or ("date", date)."""
    if isinstance(value, ast.Ago):
        return "instant", ago(value.amount, value.unit, as_of, tz)
    raw = value.value
    if isinstance(raw, dt.datetime):
        return "instant", literal_value(raw, tz)
    if isinstance(raw, dt.date):
        return "date", raw
    raise EvaluationError(f"a time window needs a date, a date-time or `N days ago`, not {raw!r}")


def window_interval(window, as_of: dt.datetime, tz: str | dt.tzinfo = DEFAULT_TIMEZONE) -> Interval:
    """The instants a window admits (before the ``ts <= as_of`` cap that applies to every event).

    A date D stands for the whole local day: ``since D`` starts at D 00:00, ``after D`` at (D+1) 00:00,
    ``before D`` ends before D 00:00, ``between D1 and D2`` is D1 00:00 <= ts < (D2+1) 00:00.
    """
    tz = get_zone(tz)
    if window is None:
        return Interval(None, True, None, True)
    if isinstance(window, ast.LastN):
        return Interval(ago(window.amount, window.unit, as_of, tz), True, as_of, True)
    if isinstance(window, ast.Since):
        kind, point = _point(window.point, as_of, tz)
        return Interval(point if kind == "instant" else local_midnight(point, tz), True, None, True)
    if isinstance(window, ast.After):
        kind, point = _point(window.point, as_of, tz)
        if kind == "instant":
            return Interval(point, False, None, True)
        return Interval(local_midnight(point + dt.timedelta(days=1), tz), True, None, True)
    if isinstance(window, ast.Before):
        kind, point = _point(window.point, as_of, tz)
        return Interval(None, True, point if kind == "instant" else local_midnight(point, tz), False)
    if isinstance(window, ast.BetweenTimes):
        start_kind, start = _point(window.start, as_of, tz)
        end_kind, end = _point(window.end, as_of, tz)
        if start_kind == "date":
            start = local_midnight(start, tz)
        if end_kind == "date":
            return Interval(start, True, local_midnight(end + dt.timedelta(days=1), tz), False)
        return Interval(start, True, end, True)
    raise Unsupported(f"the reference evaluator does not support window {type(window).__name__}")


def whole_years(start: dt.date, end: dt.date) -> int:
    """Completed years from ``start`` to ``end`` (a birthday count: 2020-02-29 -> 2021-02-28 is 0)."""
    years = end.year - start.year
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years


BIRTH_DATE = "birth_date"  # the profile attribute a person's `age` counts from


def person_age(person: PersonData, today: dt.date) -> int | None:
    """Whole years from the person's date of birth (``profile.birth_date``, a date) to ``today``, counted
    like a birthday (as a car's age); None without a date of birth."""
    birth = person.attributes.get(BIRTH_DATE)
    return whole_years(birth, today) if kind_of(birth) == "date" else None


def car_owned_on(car: CarData, day: dt.date) -> bool:
    return (car.owned_from is None or car.owned_from <= day) and (car.owned_to is None or day < car.owned_to)


# ---- comparing values -------------------------------------------------------------------------


def kind_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dt.datetime):
        return "instant"
    if isinstance(value, dt.date):
        return "date"
    return "other"


def compare_values(left: Any, op: str, right: Any, tz: dt.tzinfo) -> Tri:
    """SQL-like comparison. Null on either side -> None. An instant compared with a date is first
    turned into its local date. Different kinds: ``=`` is False, ``!=`` True, ordering None."""
    if left is None or right is None:
        return None
    left, right = literal_value(left, tz), literal_value(right, tz)
    left_kind, right_kind = kind_of(left), kind_of(right)
    if {left_kind, right_kind} == {"instant", "date"}:
        if left_kind == "instant":
            left = local_date(left, tz)
        else:
            right = local_date(right, tz)
        left_kind = right_kind = "date"
    if left_kind != right_kind or left_kind == "other":
        return {"=": False, "!=": True}.get(op)
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    raise Unsupported(f"unknown comparison operator {op}")


def tri_and(values) -> Tri:
    values = list(values)
    if any(v is False for v in values):
        return False
    if any(v is None for v in values):
        return None
    return True


def tri_or(values) -> Tri:
    values = list(values)
    if any(v is True for v in values):
        return True
    if any(v is None for v in values):
        return None
    return False


def tri_not(value: Tri) -> Tri:
    return None if value is None else not value


# ---- explain ----------------------------------------------------------------------------------


@attrs.define
class ExplainNode:
    """One condition as evaluated for one person: its text, result and the values it looked at."""

    text: str
    result: Tri
    seen: str | None = None
    line: int | None = None
    column: int | None = None
    children: list["ExplainNode"] = attrs.field(factory=list)

    def render(self, indent: int = 0) -> str:
        mark = {True: "PASS", False: "FAIL", None: "NULL"}[self.result]
        out = "  " * indent + f"[{mark}] {self.text}"
        if self.seen is not None:
            out += f"  (seen: {self.seen})"
        return "\n".join([out] + [c.render(indent + 1) for c in self.children])


# ---- the evaluator ----------------------------------------------------------------------------


@attrs.define
class Scope:
    """What bare names refer to: the person, and in car/event scope the car or the event."""

    person: PersonData
    car: CarData | None = None
    event: EventData | None = None


_SET_FIELDS = {"store": "store_ids", "advisor": "advisor_ids"}
_CAR_FIELDS = {"vin": "vin", "brand": "brand", "model": "model", "model_year": "model_year",
               "purchase_date": "purchase_date", "store": "store_id"}


class Evaluator:
    """Evaluates conditions of one rule set over one dataset at one ``as_of`` instant."""

    def __init__(self, rule_set, dataset: Dataset, as_of: dt.datetime, tz: str | dt.tzinfo = DEFAULT_TIMEZONE,
                 *, explain: bool = False, on_result: Callable[[Any, Tri], None] | None = None):
        if as_of.tzinfo is None:
            raise EvaluationError("as_of has no time zone", "pass an aware datetime, e.g. with tzinfo=ZoneInfo(...)")
        self.rule_set = rule_set
        self.dataset = dataset
        self.as_of = as_of
        self.tz = get_zone(tz)
        self.today = local_date(as_of, self.tz)
        self.explain = explain
        self.on_result = on_result
        self._stack: list[ExplainNode] = []
        self._seen: str | None = None
        self._segment_memo: dict[tuple[str, int], bool] = {}
        self._segment_path: list[str] = []
        self._rule_scopes: list = []  # the `scope` of each segment being evaluated (innermost last)
        self._recommendation_memo: dict[tuple[str, int], list[RecommendedItem]] = {}
        self._recommendation_path: list[str] = []

    # -- entry points --
    def segment_member(self, name: str, person: PersonData) -> bool:
        key = (name, person.id)
        if key in self._segment_memo:
            return self._segment_memo[key]
        if name in self._segment_path:
            cycle = " -> ".join(self._segment_path[self._segment_path.index(name):] + [name])
            raise EvaluationError(f"segments refer to each other in a cycle: {cycle}",
                                  "break the cycle: one of these segments must not use `in segment`")
        segment = self.rule_set.segments.get(name)
        if segment is None:
            raise EvaluationError(f"unknown segment `{name}`", "define it in a .mc file or fix the name")
        self._segment_path.append(name)
        self._rule_scopes.append(segment.scope)
        try:
            member = self.cond(segment.where, Scope(person)) is True and _in_rule_scope(segment, person)
        finally:
            self._segment_path.pop()
            self._rule_scopes.pop()
        self._segment_memo[key] = member
        return member

    def tag_store(self, tag: str) -> str | None:
        """The store whose value of ``tag`` the segment being evaluated reads (:func:`rule_tag_store`)."""
        return rule_tag_store(self._rule_scopes[-1] if self._rule_scopes else None, tag, self.dataset.store_tags)

    def cond(self, node, scope: Scope) -> Tri:
        """Evaluate a condition; records explain frames and coverage when asked to."""
        method = getattr(self, "eval_" + type(node).__name__, None)
        if method is None:
            raise Unsupported(f"the reference evaluator does not support {type(node).__name__}")
        frame = None
        if self.explain:
            frame = ExplainNode(fmt_cond(node), None, line=node.line, column=node.column)
            if self._stack:
                self._stack[-1].children.append(frame)
            self._stack.append(frame)
        self._seen = None
        try:
            result = method(node, scope)
        finally:
            if frame is not None:
                self._stack.pop()
        if frame is not None:
            frame.result = result
            frame.seen = self._seen
        self._seen = None
        if self.on_result is not None:
            self.on_result(node, result)
        return result

    def explain_cond(self, node, scope: Scope) -> ExplainNode:
        saved, self.explain, self._stack = self.explain, True, []
        root = ExplainNode("root", None)
        self._stack.append(root)
        try:
            self.cond(node, scope)
        finally:
            self.explain, self._stack = saved, []
        return root.children[0]

    # -- boolean structure --
    def eval_And(self, node, scope):  # noqa: N802 (dispatch by node class name)
        return tri_and([self.cond(item, scope) for item in node.items])

    def eval_Or(self, node, scope):  # noqa: N802
        return tri_or([self.cond(item, scope) for item in node.items])

    def eval_Not(self, node, scope):  # noqa: N802
        return tri_not(self.cond(node.item, scope))

    # -- values --
    def value(self, node) -> Any:
        if isinstance(node, ast.Literal):
            return literal_value(node.value, self.tz)
        if isinstance(node, ast.Ago):
            return ago(node.amount, node.unit, self.as_of, self.tz)
        if isinstance(node, ast.Duration):
            if node.unit == "years":
                return node.amount  # only meaningful for an `age` (whole years)
            raise EvaluationError(f"`{node.amount} {node.unit}` can only be compared with an age in years")
        raise Unsupported(f"the reference evaluator does not support value {type(node).__name__}")

    def subject(self, node, scope: Scope) -> Any:
        if isinstance(node, ast.TagRef):
            store = self.tag_store(node.name)
            if store is not None:  # a per-store tag in a store's rule: the value at that store
                return scope.person.store_tags.get(store, {}).get(node.name)
            return scope.person.tags.get(node.name)
        if isinstance(node, ast.ProfileRef):
            return scope.person.attributes.get(node.name)
        if isinstance(node, ast.FieldRef):
            if scope.event is not None:
                return scope.event.properties.get(node.name)
            if scope.car is not None:
                if node.name == "age":
                    pd = scope.car.purchase_date
                    return None if pd is None else whole_years(pd, self.today)
                if node.name in _CAR_FIELDS:
                    return getattr(scope.car, _CAR_FIELDS[node.name])
                raise EvaluationError(f"cars have no field `{node.name}`")
            if node.name in _SET_FIELDS:
                return getattr(scope.person, _SET_FIELDS[node.name])
            if node.name == "age":
                return person_age(scope.person, self.today)
            raise EvaluationError(f"unknown name `{node.name}` in a person condition",
                                  f"write `profile.{node.name}` or `tag {node.name}`")
        if isinstance(node, ast.Aggregate):
            return self.aggregate(node, scope.person)
        raise Unsupported(f"the reference evaluator does not support subject {type(node).__name__}")

    def _subject_value(self, node, scope):
        value = self.subject(node.subject, scope)
        if self.explain:
            self._seen = _show(value)
            if isinstance(node.subject, ast.TagRef) and (store := self.tag_store(node.subject.name)) is not None:
                self._seen += f" at store {store}"  # which store's value a store's rule read
        return value

    # -- predicates --
    def eval_Compare(self, node, scope):  # noqa: N802
        value = self._subject_value(node, scope)
        right = self.value(node.value)
        if isinstance(value, set):  # store / advisor: "any of the person's ids"
            if node.op == "=":
                return right in value
            if node.op == "!=":
                return right not in value
            raise EvaluationError(f"`{fmt_subject(node.subject)}` only supports =, !=, in, not in, is null")
        return compare_values(value, node.op, right, self.tz)

    def eval_InList(self, node, scope):  # noqa: N802
        value = self._subject_value(node, scope)
        items = [self.value(i) for i in node.items]
        if isinstance(value, set):
            found = any(i in value for i in items)
        elif value is None:
            return None
        else:
            found = any(compare_values(value, "=", i, self.tz) is True for i in items)
        return not found if node.negated else found

    def eval_Between(self, node, scope):  # noqa: N802
        value = self._subject_value(node, scope)
        if isinstance(value, set):
            raise EvaluationError(f"`{fmt_subject(node.subject)}` does not support between")
        return tri_and([compare_values(value, ">=", self.value(node.low), self.tz),
                        compare_values(value, "<=", self.value(node.high), self.tz)])

    def eval_IsNull(self, node, scope):  # noqa: N802
        value = self._subject_value(node, scope)
        missing = len(value) == 0 if isinstance(value, set) else value is None
        return not missing if node.negated else missing

    def eval_TextMatch(self, node, scope):  # noqa: N802
        value = self._subject_value(node, scope)
        if value is None or not isinstance(value, str):
            return None
        return node.text in value if node.op == "contains" else value.startswith(node.text)

    # -- behaviour --
    def events(self, person: PersonData, names, window, where=None) -> list[EventData]:
        """The person's events named in ``names`` inside ``window`` (and at or before as_of) for which
        ``where`` (event scope) is True, oldest first."""
        interval = window_interval(window, self.as_of, self.tz)
        picked = []
        for event in person.events:
            if event.name not in names or event.ts > self.as_of or not interval.contains(event.ts):
                continue
            if where is not None and self._quiet_cond(where, Scope(person, event=event)) is not True:
                continue
            picked.append(event)
        return sorted(picked, key=lambda e: e.ts)

    def _quiet_cond(self, node, scope):
        """Evaluate without explain frames (per-event filters would flood the explanation)."""
        saved = self.explain
        self.explain = False
        try:
            return self.cond(node, scope)
        finally:
            self.explain = saved

    def aggregate(self, node: ast.Aggregate, person: PersonData):
        events = self.events(person, {node.event}, node.window, node.where)
        if node.func == "count":
            return len(events)
        if node.func == "first":
            return events[0].ts if events else None
        if node.func == "last":
            return events[-1].ts if events else None
        numbers = [e.properties.get(node.prop) for e in events]
        numbers = [n for n in numbers if kind_of(n) == "number"]
        if node.func == "sum":
            return _total(numbers)
        if not numbers:
            return None
        if node.func == "avg":
            return sum(numbers) / len(numbers)
        if node.func == "min":
            return min(numbers)
        if node.func == "max":
            return max(numbers)
        raise Unsupported(f"unknown aggregate {node.func}")

    def eval_Did(self, node, scope):  # noqa: N802
        found = self.events(scope.person, {node.event}, node.window)
        if self.explain:
            self._seen = f"{len(found)} matching events"
        return not found if node.negated else bool(found)

    def eval_DidAny(self, node, scope):  # noqa: N802
        found = self.events(scope.person, set(node.events), node.window)
        if self.explain:
            self._seen = f"{len(found)} matching events"
        return bool(found)

    def eval_Sequence(self, node, scope):  # noqa: N802
        steps = [self.events(scope.person, {name}, node.window) for name in node.steps]
        for first in steps[0]:
            latest = first.ts
            if node.within is not None:
                limit = shift(first.ts, node.within.amount, node.within.unit, self.tz)
            else:
                limit = None
            complete = True
            for later_steps in steps[1:]:
                # earliest event of this step strictly after the previous step: greedy is optimal
                nxt = next((e for e in later_steps if e.ts > latest), None)
                if nxt is None:
                    complete = False
                    break
                latest = nxt.ts
            if complete and (limit is None or latest <= limit):
                if self.explain:
                    self._seen = f"from {first.ts.isoformat()} to {latest.isoformat()}"
                return True
        return False

    def eval_InSegment(self, node, scope):  # noqa: N802
        return self.segment_member(node.segment, scope.person)

    def eval_HasCar(self, node, scope):  # noqa: N802
        cars = [c for c in scope.person.cars if car_owned_on(c, self.today)]
        if node.where is None:
            result = bool(cars)
        else:
            result = any(self.cond(node.where, Scope(scope.person, car=car)) is True for car in cars)
        if self.explain:
            self._seen = f"{len(cars)} cars owned"
        return result

    def recommendations(self, name: str, person: PersonData) -> list["RecommendedItem"]:
        """The ranked items of recommendation ``name`` for ``person`` (per owned car, by VIN, for ``per car``)."""
        key = (name, person.id)
        if key in self._recommendation_memo:
            return self._recommendation_memo[key]
        rule = self.rule_set.recommendations.get(name)
        if rule is None:
            raise EvaluationError(f"unknown recommendation `{name}`", "define it with `recommend NAME { ... }`")
        if name in self._recommendation_path:
            cycle = " -> ".join(self._recommendation_path[self._recommendation_path.index(name):] + [name])
            raise EvaluationError(f"recommendations refer to each other in a cycle: {cycle}",
                                  "a recommendation's conditions must not depend on itself")
        self._recommendation_path.append(name)
        try:
            if rule.per_car:
                items = []
                for car in owned_cars(person, self.today):
                    truths = [self.cond(r.when, Scope(person, car=car)) is True for r in rule.rules]
                    items.extend(rank_items(rule, truths, car.vin))
            else:
                items = rank_items(rule, [self.cond(r.when, Scope(person)) is True for r in rule.rules])
        finally:
            self._recommendation_path.pop()
        self._recommendation_memo[key] = items
        return items

    def eval_Recommended(self, node, scope):  # noqa: N802
        items = {i.item for i in self.recommendations(node.recommendation, scope.person)}
        if self.explain:
            self._seen = "[" + ", ".join(sorted(items)) + "]"
        return bool(items & set(node.items)) if node.items else bool(items)

    def eval_ConsentCond(self, node, scope):  # noqa: N802
        state = consent_state(scope.person.consents, node.channel)
        if self.explain:
            self._seen = {True: "granted", False: "refused", None: "unknown"}[state]
        return state is True if node.state == "consented" else state is False


def consent_state(consents: dict[str, bool], channel: str) -> bool | None:
    """Effective consent for ``channel``: a global refusal ("*" = False) wins; otherwise the channel's own
    state; otherwise the global state; otherwise unknown (None)."""
    if consents.get("*") is False:
        return False
    if channel in consents:
        return consents[channel]
    return consents.get("*")


def _show(value) -> str:
    if isinstance(value, set):
        return "[" + ", ".join(sorted(map(str, value))) + "]"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return "null" if value is None else repr(value)


# ---- public functions -------------------------------------------------------------------------


def rule_tag_store(rule_scope, tag: str, store_tags) -> str | None:
    """The store at which a rule of scope ``rule_scope`` (a ``scope`` declaration, or None for group) reads
    ``tag``: that store for a per-store tag (one of ``store_tags``) in a rule scoped to one store; None (the
    person's own value) otherwise. The compiler, the reference evaluator and explain share this answer."""
    if tag not in store_tags or rule_scope is None or rule_scope.group:
        return None
    stores = sorted(rule_scope.stores)
    if len(stores) != 1:
        raise EvaluationError(f"`tag {tag}` has a value per store, and this rule is scoped to stores "
                              f"{', '.join(stores)}: which store's value is meant?",
                              "scope the rule to one store (scope store \"CODE\"), or read a group tag")
    return stores[0]


def _in_rule_scope(rule, person: PersonData) -> bool:
    """A segment scoped to stores (``scope store "SH01"``) holds only people of those stores."""
    scope = getattr(rule, "scope", None)
    if scope is None or scope.group:
        return True
    stores = person.scope_stores if person.scope_stores is not None else person.store_ids
    return bool(stores & set(scope.stores))


def evaluate_segment(rule_set, name: str, dataset: Dataset, as_of: dt.datetime,
                     tz: str | dt.tzinfo = DEFAULT_TIMEZONE) -> set[int]:
    """Ids of the people in segment ``name`` at ``as_of``."""
    evaluator = Evaluator(rule_set, dataset, as_of, tz)
    if name not in rule_set.segments:
        raise EvaluationError(f"unknown segment `{name}`", "check the name against `motorcade check`")
    return {pid for pid, person in dataset.people.items() if evaluator.segment_member(name, person)}


def explain_person(rule_set, name: str, dataset: Dataset, person_id: int, as_of: dt.datetime,
                   tz: str | dt.tzinfo = DEFAULT_TIMEZONE) -> ExplainNode:
    """Why person ``person_id`` is or is not in segment ``name``: a tree of conditions with the values
    seen and each one's result. The root's ``result`` is True exactly for members."""
    segment = rule_set.segments.get(name)
    if segment is None:
        raise EvaluationError(f"unknown segment `{name}`")
    person = dataset.people.get(person_id)
    if person is None:
        raise EvaluationError(f"person {person_id} is not in the data")
    evaluator = Evaluator(rule_set, dataset, as_of, tz)
    evaluator._rule_scopes.append(segment.scope)  # a store segment reads per-store tags at its store
    tree = evaluator.explain_cond(segment.where, Scope(person))
    return ExplainNode(f"segment {name}", tree.result is True, line=segment.line, column=segment.column,
                       children=[tree])


def evaluate_tag(rule_set, name: str, dataset: Dataset, as_of: dt.datetime,
                 tz: str | dt.tzinfo = DEFAULT_TIMEZONE) -> dict[int, Any]:
    """Values of rule tag ``name``: the first ``when`` that is True gives the value, else the ``else``
    value; people with neither get no value (absent from the result)."""
    rule = rule_set.tags.get(name)
    if rule is None:
        raise EvaluationError(f"unknown rule tag `{name}`")
    evaluator = Evaluator(rule_set, dataset, as_of, tz)
    values = {}
    for pid, person in dataset.people.items():
        value = tag_value(evaluator, rule, person)
        if value is not None:
            values[pid] = value
    return values


def tag_value(evaluator: Evaluator, rule: ast.TagRule, person: PersonData):
    for case in rule.cases:
        if evaluator.cond(case.when, Scope(person)) is True:
            return evaluator.value(case.then)
    return None if rule.default is None else evaluator.value(rule.default)


# ---- recommendations --------------------------------------------------------------------------


@attrs.frozen
class RecommendedItem:
    """One recommended item: its ``rank`` (1 = first) for the person, or for the car ``vin`` of a ``per car``
    recommendation, and the rule that chose it (``rule``: 1-based position of its ``when``; ``line`` in the file)."""

    item: str
    rank: int
    rule: int
    line: int | None = None
    vin: str | None = None

    def to_dict(self) -> dict:
        return attrs.asdict(self)


def owned_cars(person: PersonData, today: dt.date) -> list[CarData]:
    """The cars ``person`` owns on ``today``, once per VIN, by VIN."""
    cars = {c.vin: c for c in person.cars if car_owned_on(c, today)}
    return [cars[vin] for vin in sorted(cars)]


def rank_items(rule: ast.Recommend, truths, vin: str | None = None) -> list[RecommendedItem]:
    """The ranked items given which ``when`` conditions are true (in rule order): each true rule adds its
    item unless an earlier true rule gave it already."""
    out: list[RecommendedItem] = []
    seen: set[str] = set()
    for index, (when, true) in enumerate(zip(rule.rules, truths), start=1):
        if true and when.then.value not in seen:
            seen.add(when.then.value)
            out.append(RecommendedItem(when.then.value, len(out) + 1, index, when.line, vin))
    return out


def person_items(items) -> list[str]:
    """A person's items in rank order, once each (for ``per car``: the best rank over their cars, then VIN)."""
    ordered = sorted(items, key=lambda i: (i.rank, i.vin or ""))
    return list(dict.fromkeys(i.item for i in ordered))


def evaluate_recommendations(rule_set, name: str, dataset: Dataset, as_of: dt.datetime,
                             tz: str | dt.tzinfo = DEFAULT_TIMEZONE) -> dict[int, list[RecommendedItem]]:
    """The ranked items of recommendation ``name`` for every person with at least one."""
    if name not in rule_set.recommendations:
        raise EvaluationError(f"unknown recommendation `{name}`")
    evaluator = Evaluator(rule_set, dataset, as_of, tz)
    out = {}
    for pid, person in dataset.people.items():
        items = evaluator.recommendations(name, person)
        if items:
            out[pid] = items
    return out


def explain_recommendation(rule_set, name: str, dataset: Dataset, person_id: int, as_of: dt.datetime,
                           tz: str | dt.tzinfo = DEFAULT_TIMEZONE) -> ExplainNode:
    """Why person ``person_id`` gets each item (or none): per car for ``per car``, one node per rule with its
    condition tree. A rule's node passes when its condition is true; ``seen`` says the rank it gave, or that an
    earlier rule gave the item already."""
    rule = rule_set.recommendations.get(name)
    if rule is None:
        raise EvaluationError(f"unknown recommendation `{name}`")
    person = dataset.people.get(person_id)
    if person is None:
        raise EvaluationError(f"person {person_id} is not in the data")
    evaluator = Evaluator(rule_set, dataset, as_of, tz)

    def rules_node(label: str, scope: Scope, vin: str | None) -> ExplainNode:
        trees = [evaluator.explain_cond(r.when, scope) for r in rule.rules]
        ranked = {i.rule: i for i in rank_items(rule, [t.result is True for t in trees], vin)}
        children = []
        for index, (when, tree) in enumerate(zip(rule.rules, trees), start=1):
            if index in ranked:
                seen = f"rank {ranked[index].rank}"
            elif tree.result is True:
                seen = "item given by an earlier rule"
            else:
                seen = None
            children.append(ExplainNode(f"when … then {fmt_string(when.then.value)}", tree.result is True, seen,
                                        when.line, when.column, [tree]))
        items = [i.item for i in sorted(ranked.values(), key=lambda i: i.rank)]
        return ExplainNode(label, bool(items), "[" + ", ".join(items) + "]", children=children)

    if rule.per_car:
        cars = owned_cars(person, evaluator.today)
        children = [rules_node(f"car {car.vin}", Scope(person, car=car), car.vin) for car in cars]
        items = person_items(evaluator.recommendations(name, person))
        return ExplainNode(f"recommend {name} per car", bool(items), "[" + ", ".join(items) + "]",
                           rule.line, rule.column, children)
    node = rules_node(f"recommend {name}", Scope(person), None)
    node.line, node.column = rule.line, rule.column
    return node


@attrs.frozen
class TriggerDecision:
    fires: bool
    reason: str


def trigger_fires(rule_set, name: str, dataset: Dataset, person_id: int, *, event: EventData | None = None,
                  segment_change: tuple[str, str] | None = None, as_of: dt.datetime | None = None,
                  previous_firings: tuple[dt.datetime, ...] | list = (),
                  tz: str | dt.tzinfo = DEFAULT_TIMEZONE,
                  on_result: Callable[[Any, Tri], None] | None = None) -> TriggerDecision:
    """Whether trigger ``name`` fires for a person, given the event that happened (``event``) or the
    segment change (``("enter" | "leave", segment)``). ``as_of`` defaults to the event's time; the ``if``
    condition is evaluated at ``as_of``. ``previous_firings`` (times this trigger fired for this person)
    apply the re-entry rule; without a ``reenter`` clause the rule is ``reenter once``."""
    rule = rule_set.triggers.get(name)
    if rule is None:
        raise EvaluationError(f"unknown trigger `{name}`")
    person = dataset.people.get(person_id)
    if person is None:
        raise EvaluationError(f"person {person_id} is not in the data")
    if as_of is None:
        if event is None:
            raise EvaluationError("give as_of when no event is given")
        as_of = event.ts
    evaluator = Evaluator(rule_set, dataset, as_of, tz, on_result=on_result)
    on = rule.on
    if isinstance(on, ast.OnEvent):
        if event is None or event.name != on.event:
            return TriggerDecision(False, f"not a `{on.event}` event")
        if on.where is not None and evaluator.cond(on.where, Scope(person, event=event)) is not True:
            return TriggerDecision(False, "event does not match `where`")
    elif isinstance(on, ast.OnSegment):
        if segment_change != (on.change, on.segment):
            return TriggerDecision(False, f"not an {on.change} of segment `{on.segment}`")
    else:
        raise EvaluationError(f"trigger `{name}` has no `on` clause")
    if rule.condition is not None and evaluator.cond(rule.condition, Scope(person)) is not True:
        return TriggerDecision(False, "`if` condition is not true")
    reentry = rule.reentry or ast.Reentry("once")
    previous = [t for t in previous_firings if t <= as_of]
    if reentry.kind == "once" and previous:
        return TriggerDecision(False, "already fired once (reenter once)")
    if reentry.kind == "once per":
        since = shift(as_of, -reentry.every.amount, reentry.every.unit, evaluator.tz)
        if any(t > since for t in previous):
            return TriggerDecision(False, "fired within the re-entry period")
    return TriggerDecision(True, "fires")
