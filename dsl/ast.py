"""The rule AST: frozen attrs classes built by :mod:`motorcade.dsl.parser`.

The AST is the only thing the rest of Motorcade sees (formatter, checker, reference evaluator, SQL
compilers). Every node carries the ``line`` and ``column`` (1-based) where it starts in its file; the
positions take no part in equality, so ``parse(format(ast)) == ast``.

Conditions (``Cond``) are evaluated per person ("person scope"), per car inside ``has car where``
("car scope") or per event inside ``count(E where ...)`` and ``on E where ...`` ("event scope").
"""

from __future__ import annotations

import datetime as dt
from typing import Union

import attrs


def _pos():
    return attrs.field(default=None, eq=False, repr=False, kw_only=True)


def _tuple(value):
    return tuple(value)


@attrs.frozen
class Node:
    line: int | None = _pos()
    column: int | None = _pos()


# ---- values -----------------------------------------------------------------------------------

LiteralValue = Union[str, int, float, bool, dt.date, dt.datetime]

TIME_UNITS = ("minutes", "hours", "days", "weeks", "months", "years")


@attrs.frozen
class Literal(Node):
    """A constant: string, int, float, bool, date, or datetime (naive = project time zone)."""

    value: LiteralValue


@attrs.frozen
class ListLit(Node):
    """``[lit, lit, ...]``."""

    items: tuple[Literal, ...] = attrs.field(converter=_tuple)


@attrs.frozen
class Duration(Node):
    """``N unit`` (unit normalised to the plural: minutes, hours, days, weeks, months, years)."""

    amount: int
    unit: str


@attrs.frozen
class Ago(Node):
    """``N unit ago``: the instant ``as_of - N unit``."""

    amount: int
    unit: str


Value = Union[Literal, Duration, Ago]


# ---- windows (restrict which events a behaviour condition looks at) -------------------------


@attrs.frozen
class LastN(Node):
    """``in last N unit``: as_of - N unit <= ts <= as_of."""

    amount: int
    unit: str


@attrs.frozen
class BetweenTimes(Node):
    """``between A and B`` where A, B are dates, datetimes or ``N unit ago``."""

    start: Value
    end: Value


@attrs.frozen
class Before(Node):
    """``before T``: ts earlier than T."""

    point: Value


@attrs.frozen
class After(Node):
    """``after T``: ts later than T."""

    point: Value


@attrs.frozen
class Since(Node):
    """``since T``: ts at or after T."""

    point: Value


Window = Union[LastN, BetweenTimes, Before, After, Since]

# ---- subjects (things a predicate tests) ------------------------------------------------------


@attrs.frozen
class TagRef(Node):
    """``tag NAME``: the person's value of a tag."""

    name: str


@attrs.frozen
class ProfileRef(Node):
    """``profile.NAME``: a profile attribute."""

    name: str


@attrs.frozen
class FieldRef(Node):
    """A bare name: an event property (event scope), a car field (car scope) or, in person scope,
    ``store`` / ``advisor`` (the person's store ids / advisor ids)."""

    name: str


AGG_FUNCS = ("count", "sum", "avg", "min", "max", "first", "last")


@attrs.frozen
class Aggregate(Node):
    """``func(EVENT[.prop] [where cond]) [window]``: a number (count/sum/avg/min/max) or an instant
    (first/last) computed over the person's events."""

    func: str
    event: str
    prop: str | None = None
    where: "Cond | None" = None
    window: Window | None = None


Subject = Union[TagRef, ProfileRef, FieldRef, Aggregate]

# ---- conditions -------------------------------------------------------------------------------

COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")


@attrs.frozen
class Compare(Node):
    subject: Subject
    op: str
    value: Value


@attrs.frozen
class InList(Node):
    """``subject in [...]`` / ``subject not in [...]``."""

    subject: Subject
    items: tuple[Literal, ...] = attrs.field(converter=_tuple)
    negated: bool = False


@attrs.frozen
class Between(Node):
    """``subject between low and high`` (inclusive both ends)."""

    subject: Subject
    low: Value
    high: Value


@attrs.frozen
class IsNull(Node):
    """``subject is null`` / ``subject is not null``."""

    subject: Subject
    negated: bool = False


@attrs.frozen
class TextMatch(Node):
    """``subject contains "x"`` / ``subject starts with "x"`` (case-sensitive)."""

    subject: Subject
    op: str  # "contains" | "starts with"
    text: str


@attrs.frozen
class And(Node):
    items: tuple["Cond", ...] = attrs.field(converter=_tuple)


@attrs.frozen
class Or(Node):
    items: tuple["Cond", ...] = attrs.field(converter=_tuple)


@attrs.frozen
class Not(Node):
    item: "Cond"


@attrs.frozen
class Did(Node):
    """``did E [window]`` / ``did not E [window]``."""

    event: str
    window: Window | None = None
    negated: bool = False


@attrs.frozen
class DidAny(Node):
    """``did any of [A, B] [window]``."""

    events: tuple[str, ...] = attrs.field(converter=_tuple)
    window: Window | None = None


@attrs.frozen
class Sequence(Node):
    """``did A then B [then C] [within N unit] [window]``."""

    steps: tuple[str, ...] = attrs.field(converter=_tuple)
    within: Duration | None = None
    window: Window | None = None


@attrs.frozen
class InSegment(Node):
    """``in segment NAME``."""

    segment: str


@attrs.frozen
class HasCar(Node):
    """``has car [where cond]`` (cond in car scope)."""

    where: "Cond | None" = None


@attrs.frozen
class ConsentCond(Node):
    """``consented to CHANNEL`` (state == granted) / ``unsubscribed from CHANNEL`` (state == refused)."""

    state: str  # "consented" | "unsubscribed"
    channel: str


Predicate = Union[Compare, InList, Between, IsNull, TextMatch]
Cond = Union[Predicate, And, Or, Not, Did, DidAny, Sequence, InSegment, HasCar, ConsentCond]

# ---- campaign and trigger parts ---------------------------------------------------------------


@attrs.frozen
class ChannelStep(Node):
    channel: str
    template: str


@attrs.frozen
class Via(Node):
    """``via CH template "t" fallback CH template "u" ...``: try each step in order."""

    steps: tuple[ChannelStep, ...] = attrs.field(converter=_tuple)


@attrs.frozen
class QuietHours(Node):
    """``quiet hours 21:00 to 09:00`` (start None and end None = ``quiet hours off``)."""

    start: dt.time | None
    end: dt.time | None


@attrs.frozen
class Daily(Node):
    at: dt.time


@attrs.frozen
class Every(Node):
    amount: int
    unit: str


@attrs.frozen
class Cron(Node):
    expr: str


@attrs.frozen
class Once(Node):
    at: dt.datetime


Schedule = Union[Daily, Every, Cron, Once]


@attrs.frozen
class OnEvent(Node):
    event: str
    where: Cond | None = None


@attrs.frozen
class OnSegment(Node):
    change: str  # "enter" | "leave"
    segment: str


@attrs.frozen
class Reentry(Node):
    """``reenter once`` | ``reenter once per N unit`` | ``reenter always``."""

    kind: str  # "once" | "once per" | "always"
    every: Duration | None = None


# ---- rules ------------------------------------------------------------------------------------


def _clause_at(rule, clause: str) -> "Node":
    """A node standing for where ``clause`` of a campaign or trigger is written (the rule if unknown)."""
    for name, line, column in rule.clause_positions or ():
        if name == clause:
            return Node(line=line, column=column)
    return rule


def _rule_pos():
    return attrs.field(default=None, eq=False, repr=False, kw_only=True)


@attrs.frozen
class ScopeDecl(Node):
    """``scope store "SH01", "SH02"`` (``stores``) or ``scope group`` (no stores): whose people a rule covers."""

    stores: tuple[str, ...] = attrs.field(default=(), converter=_tuple)

    @property
    def group(self) -> bool:
        return not self.stores


def _scope_field():
    return attrs.field(default=None, kw_only=True)


def _scope_from_file():
    # True when the rule took its scope from a `scope` line at the top of its file (how `fmt` writes it back)
    return attrs.field(default=False, eq=False, repr=False, kw_only=True)


@attrs.frozen
class Segment(Node):
    name: str
    title: str | None
    where: Cond
    end_line: int | None = _rule_pos()
    scope: ScopeDecl | None = _scope_field()
    scope_from_file: bool = _scope_from_file()


@attrs.frozen
class Campaign(Node):
    name: str
    title: str | None = None
    audience: str | None = None
    schedule: Schedule | None = None
    send_to: str | None = None  # "all" | "new"
    holdout: float | int | None = None  # percent 0..100
    via: Via | None = None
    transactional: bool = False
    quiet_hours: QuietHours | None = None
    end_line: int | None = _rule_pos()
    # (clause, line, column) of each clause as written, for messages that point at the clause itself
    clause_positions: tuple[tuple[str, int, int], ...] = _rule_pos()
    scope: ScopeDecl | None = _scope_field()
    scope_from_file: bool = _scope_from_file()

    def clause_at(self, clause: str) -> "Node":
        return _clause_at(self, clause)


@attrs.frozen
class Trigger(Node):
    name: str
    title: str | None = None
    on: OnEvent | OnSegment | None = None
    condition: Cond | None = None
    wait: Duration | None = None
    reentry: Reentry | None = None
    via: Via | None = None
    transactional: bool = False
    quiet_hours: QuietHours | None = None
    end_line: int | None = _rule_pos()
    # (clause, line, column) of each clause as written, for messages that point at the clause itself
    clause_positions: tuple[tuple[str, int, int], ...] = _rule_pos()
    scope: ScopeDecl | None = _scope_field()
    scope_from_file: bool = _scope_from_file()

    def clause_at(self, clause: str) -> "Node":
        return _clause_at(self, clause)


@attrs.frozen
class CaseWhen(Node):
    when: Cond
    then: Literal


@attrs.frozen
class TagRule(Node):
    """``tag NAME "title" = case when c then v ... [else v] end``: a tag computed by rule."""

    name: str
    title: str | None
    cases: tuple[CaseWhen, ...] = attrs.field(converter=_tuple)
    default: Literal | None = None
    end_line: int | None = _rule_pos()


@attrs.frozen
class Funnel(Node):
    """``funnel NAME { steps a, b, c [within N unit] [by prop] }`` (syntax only; computed elsewhere)."""

    name: str
    title: str | None
    steps: tuple[str, ...] = attrs.field(converter=_tuple)
    within: Duration | None = None
    by: str | None = None
    end_line: int | None = _rule_pos()


Rule = Union[Segment, Campaign, Trigger, TagRule, Funnel]

RULE_KINDS = {Segment: "segment", Campaign: "campaign", Trigger: "trigger", TagRule: "tag", Funnel: "funnel"}


@attrs.frozen
class RuleFile:
    """One parsed ``.mc`` file. ``source`` and ``comments`` are kept for error messages and ``fmt``."""

    rules: tuple[Rule, ...] = attrs.field(converter=_tuple)
    filename: str = attrs.field(default="<text>", eq=False)
    source: str = attrs.field(default="", eq=False, repr=False)
    comments: tuple[tuple[int, str], ...] = attrs.field(default=(), eq=False, repr=False, converter=_tuple)


def children(node) -> list:
    """Direct child nodes of ``node`` (AST nodes only), in field order; for generic walks."""
    out = []
    for field in attrs.fields(type(node)):
        if not field.eq:
            continue
        value = getattr(node, field.name)
        if isinstance(value, Node):
            out.append(value)
        elif isinstance(value, tuple):
            out.extend(v for v in value if isinstance(v, Node))
    return out


def walk(node):
    """Yield ``node`` and every node below it, depth first (without recursion: a rule may nest deeply)."""
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))
