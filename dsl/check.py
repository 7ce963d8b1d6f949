"""Semantic checks of a RuleSet against the project's catalogue: unknown names (with "did you mean"),
names used in the wrong scope, segment cycles, missing clauses, and warnings for rules whose cost
is unbounded. Every finding is returned; nothing stops at the first."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import attrs

from motorcade.dsl import ast
from motorcade.dsl.errors import ERROR, WARNING, Diagnostic, did_you_mean, make


def _opt_set(value):
    return None if value is None else frozenset(value)


@attrs.frozen
class Catalogue:
    """What the project knows exists. ``None`` = unknown (that kind of name is not checked).

    ``tags`` maps tag name -> value type ("string", "number", "boolean", "date") or None for untyped.
    """

    events: frozenset[str] | None = attrs.field(default=None, converter=_opt_set)
    tags: dict[str, str | None] | None = None
    profile_attributes: frozenset[str] | None = attrs.field(default=None, converter=_opt_set)
    segments: frozenset[str] | None = attrs.field(default=None, converter=_opt_set)
    channels: frozenset[str] | None = attrs.field(default=None, converter=_opt_set)
    templates: frozenset[str] | None = attrs.field(default=None, converter=_opt_set)
    # tags the installed calculators produce: a rule tag must not take one of their names
    calculator_tags: frozenset[str] | None = attrs.field(default=None, converter=_opt_set)
    # tag -> what produces it besides rule tags ("calculator `intent`", "source `leads`"): a tag has one
    # producer, so two entries, or one and a rule tag of that name, are errors naming both
    tag_producers: dict[str, tuple[str, ...]] | None = None
    # where the producers are configured, for the message of a tag produced twice
    config_file: str = "motorcade.toml"
    # problems of the project's configuration that change what rules read: (message, hint)
    config_errors: tuple[tuple[str, str], ...] = ()
    # tags only group-wide rules may read ([access] group_tags): the group value, weighted over every store
    group_tags: frozenset[str] = attrs.field(default=frozenset(("group_value_score", "value_level")),
                                             converter=frozenset)
    # tags kept per store (``per_store``): a rule scoped to one store reads the value at that store; a rule
    # scoped to several stores cannot say which
    store_tags: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    # channels with a [channels.NAME] table in motorcade.toml (journeys warn about sends to any other)
    configured_channels: frozenset[str] | None = attrs.field(default=None, converter=_opt_set)

    @classmethod
    def from_names(cls, *, events=None, tags=None, attributes=None, segments=None, channels=None,
                   templates=None, calculator_tags=None) -> "Catalogue":
        """Build from names observed in a project; ``tags`` may be a mapping name -> type or just names.

        An empty collection counts as *unknown* (not checked), so a fresh project with no events yet
        does not flag every event name; use the constructor for an exact, possibly empty, set.
        """
        def known(names):
            return None if names is None or len(names) == 0 else names

        tags = known(tags)
        if tags is not None and not isinstance(tags, dict):
            tags = {name: None for name in tags}
        return cls(events=known(events), tags=tags, profile_attributes=known(attributes),
                   segments=known(segments), channels=known(channels), templates=known(templates),
                   calculator_tags=known(calculator_tags))


# What the engine computes (the reference evaluator and SQL on SQLite), checked here so that a rule `check`
# accepts never fails at `segments compute` (docs/dsl.md, "Limits").
MAX_INTEGER = 2**63 - 1  # SQLite integers are 64-bit
MAX_SPAN_YEARS = 1000  # a window, `N units ago`, a duration: at most a thousand years
EARLIEST_DATE, LATEST_DATE = dt.date(1000, 1, 1), dt.date(9998, 12, 31)
MAX_NESTING = 20  # levels of and / or / not, event and car subqueries and `in segment`, on any path
_PER_YEAR = {"minutes": 366 * 1440, "hours": 366 * 24, "days": 366, "weeks": 366 / 7, "months": 12, "years": 1}
_NESTS = (ast.And, ast.Or, ast.Not, ast.HasCar, ast.Aggregate, ast.Did, ast.DidAny, ast.Sequence)
_NESTING_HINT = ("write it flatter: `not not x` is `x`, `a and (b and c)` is `a and b and c`; a segment used "
                 "with `in segment` counts with every level of its own condition")

CAR_FIELDS = ("vin", "brand", "model", "model_year", "purchase_date", "store", "age")
PERSON_FIELDS = ("store", "advisor", "age")
_SET_OPS_HINT = "`store` and `advisor` support =, !=, in, not in, is null, is not null"
_LITERAL_KINDS = {bool: "boolean", int: "number", float: "number", str: "string", dt.date: "date", dt.datetime: "date"}


def _literal_kind(value) -> str:
    for typ in (bool, int, float, str, dt.datetime, dt.date):
        if isinstance(value, typ):
            return _LITERAL_KINDS[typ]
    return "other"


class _Checker:
    def __init__(self, rule_set, catalogue: Catalogue):
        self.rule_set = rule_set
        self.catalogue = catalogue
        self.diagnostics: list[Diagnostic] = []
        self.file: ast.RuleFile | None = None
        self.segment_refs: dict[str, list[ast.InSegment]] = {}
        self.tag_rule_names = set(rule_set.tags)
        self.tag_refs: dict[str, list[ast.TagRef]] = {}  # rule tag -> the rule tags its conditions read
        self.nested_roots: list[tuple[Any, Any]] = []  # (condition, file) of triggers and rule tags
        self.in_recommendation: str | None = None  # the recommendation whose conditions are being checked

    # -- reporting --
    def report(self, severity, message, node, hint=None):
        file = self.file
        self.diagnostics.append(make(severity, message, file=file.filename if file else "<rules>",
                                     source=file.source if file else "", line=getattr(node, "line", None),
                                     column=getattr(node, "column", None), hint=hint))

    def unknown(self, what: str, name: str, known, node, extra_hint: str | None = None):
        hint = did_you_mean(name, known) or extra_hint
        self.report(ERROR, f"unknown {what} `{name}`", node, hint)

    # -- names --
    def known_segments(self):
        return set(self.rule_set.segments) | set(self.catalogue.segments or ())

    def check_event(self, name: str, node):
        if self.catalogue.events is not None and name not in self.catalogue.events:
            self.unknown("event", name, self.catalogue.events, node,
                         "add the event to a source's catalogue or fix the name")

    def check_segment_name(self, name: str, node):
        if name not in self.known_segments():
            self.unknown("segment", name, self.known_segments(), node, "define it with `segment NAME { ... }`")

    def check_channel(self, name: str, node):
        if self.catalogue.channels is not None and name not in self.catalogue.channels:
            self.unknown("channel", name, self.catalogue.channels, node, "install and configure a channel plugin")

    # -- walking --
    def run(self) -> list[Diagnostic]:
        for rule_file in self.rule_set.files:
            self.file = rule_file
            for rule in rule_file.rules:
                getattr(self, "rule_" + type(rule).__name__)(rule)
        self.file = None
        self.check_scopes()
        cyclic = self.check_cycles()
        self.check_nesting(cyclic)
        self.check_producers()
        return self.diagnostics

    def check_scopes(self):
        """A store-scoped rule (``scope store "SH01"``) may use only segments scoped inside its stores, and
        no tag only the group may read ([access] group_tags)."""
        for rule_file in self.rule_set.files:
            self.file = rule_file
            for rule in rule_file.rules:
                scope = getattr(rule, "scope", None)
                if scope is None or scope.group:
                    continue
                stores = set(scope.stores)
                where = ", ".join(f'"{s}"' for s in scope.stores)
                for name, node in _segments_used(rule):
                    used = self.rule_set.segments.get(name)
                    if used is None:
                        continue  # unknown names are reported elsewhere
                    if used.scope is None or used.scope.group or not set(used.scope.stores) <= stores:
                        self.report(ERROR, f"{ast.RULE_KINDS[type(rule)]} `{rule.name}` is scoped to store "
                                           f"{where} but uses segment `{name}`, which covers "
                                           f"{'the whole group' if used.scope is None or used.scope.group else 'other stores'}",
                                    node, f'scope the segment too (`scope store {where}` in it), or define a '
                                          f'store segment for this rule')
                for node in ast.walk(rule):
                    if isinstance(node, ast.TagRef) and node.name in self.catalogue.group_tags:
                        self.report(ERROR, f"tag `{node.name}` is the group's (weighted over every store): a rule "
                                           f"scoped to store {where} may not read it", node,
                                    "read the store value instead (e.g. `tag store_value_score`), or leave the rule "
                                    "group-wide")
                    elif (isinstance(node, ast.TagRef) and node.name in self.catalogue.store_tags
                          and len(stores) > 1 and isinstance(rule, ast.Segment)):
                        self.report(ERROR, f"tag `{node.name}` has a value per store, and segment `{rule.name}` is "
                                           f"scoped to stores {where}: which store's value is meant?", node,
                                    "scope the segment to one store (a segment per store), or read a group tag")
                    elif (isinstance(node, ast.TagRef) and node.name in self.catalogue.store_tags
                          and not isinstance(rule, ast.Segment)):
                        kind = ast.RULE_KINDS[type(rule)]
                        self.report(ERROR, f"tag `{node.name}` has a value per store, and {kind} `{rule.name}` reads "
                                           f"it in its own condition, which is evaluated for the person, not at "
                                           f"store {where}", node,
                                    f"put the condition in a segment scoped to the store (`scope store {where}`) and "
                                    f"write `in segment NAME` here: a store segment reads the value at its store")
        self.file = None

    def check_producers(self):
        """A tag produced by two producers (a calculator and a source, two sources): which values would
        a rule read? Reported against the configuration, naming both."""
        for name, producers in sorted((self.catalogue.tag_producers or {}).items()):
            if len(producers) > 1:
                self.diagnostics.append(make(
                    ERROR, f"tag `{name}` is produced by both {' and '.join(producers)}",
                    file=self.catalogue.config_file, source="", line=None, column=None,
                    hint="a tag has one producer: rename the tag in the source's [sources.NAME.tags] table, or "
                         "block the calculator's plugin with MOTORCADE_BLOCK_PLUGINS"))
        for message, hint in self.catalogue.config_errors:
            self.diagnostics.append(make(ERROR, message, file=self.catalogue.config_file, source="", line=None,
                                         column=None, hint=hint))

    def rule_Segment(self, rule):  # noqa: N802
        self.segment_refs.setdefault(rule.name, [])
        self.cond(rule.where, "person", segment=rule.name)
        self.value_limits(rule.where)

    def rule_TagRule(self, rule):  # noqa: N802
        producers = (self.catalogue.tag_producers or {}).get(rule.name)
        if producers:
            self.report(ERROR, f"rule tag `{rule.name}` has the name of a tag {' and '.join(producers)} produces",
                        rule, "rename the rule tag (`motorcade tags list` shows every tag and what produces it)")
        elif self.catalogue.calculator_tags is not None and rule.name in self.catalogue.calculator_tags:
            self.report(ERROR, f"rule tag `{rule.name}` has the name of a tag an installed calculator produces",
                        rule, "rename the rule tag (`motorcade tags list` shows the calculators' tags)")
        refs = self.tag_refs.setdefault(rule.name, [])
        for case in rule.cases:
            self.cond(case.when, "person")
            self.value_limits(case.when)
            self.nested_roots.append((case.when, self.file))
            refs.extend(n for n in ast.walk(case.when) if isinstance(n, ast.TagRef) and n.name in self.tag_rule_names)
        kinds = {_literal_kind(v.value) for v in [c.then for c in rule.cases] + [rule.default] if v is not None}
        if len(kinds) > 1:
            self.report(ERROR, f"rule tag `{rule.name}` mixes value types ({', '.join(sorted(kinds))})", rule,
                        "every `then`/`else` value of a tag must have the same type")

    def rule_Recommend(self, rule):  # noqa: N802
        # per car: bare names are the car's fields, `tag`, `profile`, `did`... the owner's ("owner" scope)
        self.in_recommendation = rule.name
        try:
            for when in rule.rules:
                self.cond(when.when, "owner" if rule.per_car else "person")
                self.value_limits(when.when)
                self.nested_roots.append((when.when, self.file))
        finally:
            self.in_recommendation = None
        seen: dict[str, int] = {}
        for index, when in enumerate(rule.rules, start=1):
            if when.then.value in seen:
                self.report(WARNING, f"{when.then.value!r} is also given by rule {seen[when.then.value]} of "
                            f"`{rule.name}`: where both hold it keeps the earlier rank", when,
                            "merge the two rules with `or` if that is what you mean")
            else:
                seen[when.then.value] = index

    def rule_Funnel(self, rule):  # noqa: N802
        for step in rule.steps:
            self.check_event(step, rule)
        if rule.within is None:
            self.report(WARNING, f"funnel `{rule.name}` has no `within`: steps are joined over all history",
                        rule, "add `within N days` to bound the cost")

    def rule_Campaign(self, rule):  # noqa: N802
        if rule.audience is None:
            self.report(ERROR, f"campaign `{rule.name}` has no `audience`", rule, "add `audience SEGMENT`")
        else:
            self.check_segment_name(rule.audience, rule.clause_at("audience"))
        if rule.schedule is None:
            self.report(ERROR, f"campaign `{rule.name}` has no `schedule`", rule,
                        "add e.g. `schedule daily at 10:00` or `schedule at 2026-12-01 10:00`")
        elif isinstance(rule.schedule, ast.Cron):
            fields = rule.schedule.expr.split()
            if len(fields) != 5:
                self.report(ERROR, f"cron expression `{rule.schedule.expr}` needs 5 fields, has {len(fields)}",
                            rule.schedule, 'minute hour day-of-month month day-of-week, e.g. "0 10 * * 1"')
        elif isinstance(rule.schedule, ast.Every) and rule.schedule.amount < 1:
            self.report(ERROR, "`schedule every` needs a positive interval", rule.schedule)
        if rule.holdout is not None and not 0 <= rule.holdout < 100:
            self.report(ERROR, f"holdout {rule.holdout}% is out of range", rule.clause_at("holdout"), "use 0% to 99%")
        self.delivery(rule)

    def rule_Trigger(self, rule):  # noqa: N802
        if rule.on is None:
            self.report(ERROR, f"trigger `{rule.name}` has no `on` clause", rule,
                        "add `on EVENT [where ...]` or `on enter segment NAME`")
        elif isinstance(rule.on, ast.OnEvent):
            self.check_event(rule.on.event, rule.on)
            if rule.on.where is not None:
                self.cond(rule.on.where, "event")
                self.value_limits(rule.on.where)
                self.nested_roots.append((rule.on.where, self.file))
        else:
            self.check_segment_name(rule.on.segment, rule.on)
        if rule.condition is not None:
            self.cond(rule.condition, "person")
            self.value_limits(rule.condition)
            self.nested_roots.append((rule.condition, self.file))
        if rule.wait is not None and rule.wait.unit not in ("minutes", "hours", "days"):
            self.report(ERROR, f"`wait` takes minutes, hours or days, not {rule.wait.unit}", rule.wait)
        self.delivery(rule)

    def delivery(self, rule):
        kind = "campaign" if isinstance(rule, ast.Campaign) else "trigger"
        if rule.via is None:
            self.report(ERROR, f"{kind} `{rule.name}` has no `via` clause", rule,
                        'add e.g. `via sms template "welcome"`')
            return
        for step in rule.via.steps:
            self.check_channel(step.channel, step)
            if self.catalogue.templates is not None and step.template not in self.catalogue.templates:
                self.unknown("template", step.template, self.catalogue.templates, step,
                             "add the template to the project's templates")

    # -- journeys --
    def rule_Journey(self, rule):  # noqa: N802
        from motorcade.dsl.journey import all_steps, build_flow

        entry = rule.entry
        if entry is None:
            self.report(ERROR, f"journey `{rule.name}` has no `entry`", rule,
                        "add `entry on entering segment NAME`, `entry on EVENT` or `entry segment NAME schedule ...`")
        elif isinstance(entry, ast.EntryEvent):
            self.check_event(entry.event, entry)
            if entry.where is not None:
                self.condition_root(entry.where, "event")
        else:
            self.check_segment_name(entry.segment, entry)
            if isinstance(entry, ast.EntrySchedule) and isinstance(entry.schedule, ast.Every) \
                    and entry.schedule.amount < 1:
                self.report(ERROR, "`schedule every` needs a positive interval", entry.schedule)
        if not rule.steps:
            self.report(ERROR, f"journey `{rule.name}` has no steps", rule, 'add e.g. `send via sms template "hello"`')
        if rule.holdout is not None and not 0 <= rule.holdout < 100:
            self.report(ERROR, f"holdout {rule.holdout}% is out of range", rule.clause_at("holdout"), "use 0% to 99%")
        if rule.reentry is not None and rule.reentry.after is not None and rule.reentry.after.amount < 1:
            self.report(ERROR, "`reentry again after` needs a positive interval", rule.reentry)
        if rule.exit_when is not None:
            self.condition_root(rule.exit_when, "person")
        if rule.goal is not None:
            self.check_event(rule.goal.event, rule.goal)
            if rule.goal.where is not None:
                self.condition_root(rule.goal.where, "event")
            if rule.goal.within.amount < 1:
                self.report(ERROR, "a goal needs a positive `within`", rule.goal.within)
        labels: dict[str, ast.Node] = {}
        for step in all_steps(rule.steps):
            if step.label is not None:
                if step.label in labels:
                    self.report(ERROR, f"journey `{rule.name}` has two steps labelled `{step.label}`", step,
                                f"first at line {labels[step.label].line}; a label names one step")
                else:
                    labels[step.label] = step
            self.journey_step(rule, step)
        flow = build_flow(rule)
        reachable = flow.reachable()
        for node in flow.nodes.values():
            if node.id not in reachable:
                self.report(WARNING, f"step `{node.id}` of journey `{rule.name}` can never be reached", node.step,
                            "a step after `exit` (or after a block whose every branch exits) never runs; "
                            "remove it or move it")
        self.impossible_branches(rule)

    def condition_root(self, cond, scope: str):
        self.cond(cond, scope)
        self.value_limits(cond)
        self.nested_roots.append((cond, self.file))

    def journey_step(self, rule, step):
        if isinstance(step, ast.SendStep):
            for channel_step in step.via.steps:
                self.check_channel(channel_step.channel, channel_step)
                configured = self.catalogue.configured_channels
                if configured is not None and channel_step.channel not in configured and (
                        self.catalogue.channels is None or channel_step.channel in self.catalogue.channels):
                    self.report(WARNING, f"journey `{rule.name}` sends via `{channel_step.channel}`, which "
                                f"{self.catalogue.config_file} does not configure", channel_step,
                                f"add a [channels.{channel_step.channel}] table, or a `fallback` the person can "
                                "be reached through; until then these sends fall through or are suppressed")
                if self.catalogue.templates is not None and channel_step.template not in self.catalogue.templates:
                    self.unknown("template", channel_step.template, self.catalogue.templates, channel_step,
                                 "add the template to the project's templates")
        elif isinstance(step, (ast.WaitStep, ast.WaitForStep)):
            span = step.duration if isinstance(step, ast.WaitStep) else step.up_to
            self.value_limits(span)
            if span.unit in _PER_YEAR and span.amount > _PER_YEAR[span.unit]:
                word = "waits" if isinstance(step, ast.WaitStep) else "may wait"
                self.report(WARNING, f"this step {word} {span.amount} {span.unit}, over a year: people stay in "
                            f"journey `{rule.name}` that long", span, "shorten the wait or end the journey earlier")
            if isinstance(step, ast.WaitStep) and span.amount < 1:
                self.report(WARNING, "`wait 0 ...` does not wait", span)
            if isinstance(step, ast.WaitForStep):
                self.check_event(step.event, step)
                if step.where is not None:
                    self.condition_root(step.where, "event")
                if span.amount < 1:
                    self.report(ERROR, "`wait for` needs a positive `up to`", span,
                                "a wait for an event needs an upper bound, e.g. `up to 7 days`")
        elif isinstance(step, ast.IfStep):
            self.condition_root(step.cond, "person")
        elif isinstance(step, ast.SplitStep):
            total = sum(arm.percent for arm in step.arms)
            if total != 100:
                self.report(ERROR, f"the arms of this split add up to {total:g}%, not 100%", step,
                            "give every arm a share so that they add up to 100%")
            for arm in step.arms:
                if arm.percent <= 0:
                    self.report(WARNING, f"an arm of {arm.percent:g}% is never taken", arm,
                                "remove the arm or give it a share")

    def impossible_branches(self, rule):
        """Branches that cannot happen: an ``if`` repeating the condition an enclosing ``if`` (or the journey's
        ``exit when``) already decided, and the ``then`` of ``wait for`` the goal event (the goal ends the flow)."""
        from motorcade.dsl.format import fmt_cond

        def visit(steps, known: dict[str, tuple[bool, ast.Node, str]]):
            for step in steps:
                if isinstance(step, ast.IfStep):
                    text, truth = _polarity(step.cond, fmt_cond)
                    if text in known:
                        value, where, why = known[text]
                        value = value if truth else not value
                        dead = "else" if value else "then"
                        self.report(WARNING, f"the `{dead}` branch of this `if` can never run: {why.format(where.line)} "
                                    f"already decides `{fmt_cond(step.cond)}`", step,
                                    "remove the `if`, or test something the earlier step did not")
                    visit(step.then, {**known, text: (truth, step, "the enclosing `if` (line {})")})
                    visit(step.otherwise or (), {**known, text: (not truth, step, "the enclosing `if` (line {})")})
                elif isinstance(step, ast.WaitForStep):
                    goal = rule.goal
                    if step.then and goal is not None and goal.where is None and goal.event == step.event:
                        self.report(WARNING, f"the `then` branch of this `wait for {step.event}` can never run: "
                                    f"`{step.event}` is the journey's goal, and reaching the goal ends the journey",
                                    step, "wait for another event, or move these steps out of the journey")
                    visit(step.then or (), known)
                    visit(step.otherwise or (), known)
                elif isinstance(step, ast.SplitStep):
                    for arm in step.arms:
                        visit(arm.steps, known)

        start: dict[str, tuple[bool, ast.Node, str]] = {}
        if rule.exit_when is not None:
            text, truth = _polarity(rule.exit_when, fmt_cond)
            start[text] = (not truth, rule.clause_at("exit_when"), "`exit when` (line {}), checked before every step,")
        visit(rule.steps, start)

    # -- conditions --
    def cond(self, node, scope: str, segment: str | None = None):
        """Check a condition in ``scope`` ("person", "car" or "event")."""
        if isinstance(node, (ast.And, ast.Or)):
            for item in node.items:
                self.cond(item, scope, segment)
            return
        if isinstance(node, ast.Not):
            self.cond(node.item, scope, segment)
            return
        if isinstance(node, (ast.Compare, ast.InList, ast.Between, ast.IsNull, ast.TextMatch)):
            self.predicate(node, scope)
            return
        if scope not in ("person", "owner"):
            self.report(ERROR, f"`{_describe(node)}` cannot be used inside {_a(scope)} condition", node,
                        f"a {scope} condition only compares the {scope}'s own fields"
                        + ("; move it out of `has car where`" if scope == "car" else ""))
            return
        if isinstance(node, ast.Did):
            self.check_event(node.event, node)
            self.window(node.window)
        elif isinstance(node, ast.DidAny):
            for event in node.events:
                self.check_event(event, node)
            self.window(node.window)
        elif isinstance(node, ast.Sequence):
            for event in node.steps:
                self.check_event(event, node)
            self.window(node.window)
            if node.within is None and node.window is None:
                self.report(WARNING, "this sequence has no `within` and no time window: it is matched over "
                            "every event the person ever had (unbounded cost)", node,
                            f"add `within 14 days` or a window such as `in last 90 days`")
        elif isinstance(node, ast.InSegment):
            self.check_segment_name(node.segment, node)
            if segment is not None:
                self.segment_refs.setdefault(segment, []).append(node)
        elif isinstance(node, ast.HasCar):
            if node.where is not None:
                self.cond(node.where, "car")
        elif isinstance(node, ast.ConsentCond):
            if node.channel != "*":
                self.check_channel(node.channel, node)
        elif isinstance(node, ast.Recommended):
            self.recommended(node)

    def recommended(self, node: ast.Recommended):
        rules = self.rule_set.recommendations
        rule = rules.get(node.recommendation)
        if rule is None:
            self.unknown("recommendation", node.recommendation, rules, node,
                         "define it with `recommend NAME { when ... then \"item\" }`")
            return
        for item in node.items:
            if item not in rule.items():
                self.report(ERROR, f"recommendation `{rule.name}` never gives {item!r}", node,
                            did_you_mean(item, rule.items()) or f"its items: {', '.join(rule.items())}")
        if self.in_recommendation is not None:
            self.report(ERROR, f"recommendation `{self.in_recommendation}` reads a recommendation in its conditions",
                        node, "a recommendation's conditions use tags, events, cars and segments, not other "
                              "recommendations")

    def window(self, window):
        if window is None:
            return
        if isinstance(window, ast.BetweenTimes):
            start, end = window.start, window.end
            if (isinstance(start, ast.Literal) and isinstance(end, ast.Literal)
                    and type(start.value) is type(end.value) and _comparable(start.value, end.value)
                    and start.value > end.value):
                self.report(ERROR, "this window ends before it starts", window, "swap the two dates")
        if isinstance(window, ast.LastN) and window.amount == 0:
            self.report(WARNING, "`in last 0 ...` only matches events at exactly as_of", window)

    def predicate(self, node, scope):
        subject = node.subject
        if isinstance(subject, ast.TagRef):
            self.not_in_scope(node, scope, "tag")
            self.check_tag(subject, node)
        elif isinstance(subject, ast.ProfileRef):
            self.not_in_scope(node, scope, "profile attribute")
            attrs_known = self.catalogue.profile_attributes
            if attrs_known is not None and subject.name not in attrs_known:
                self.unknown("profile attribute", subject.name, attrs_known, subject,
                             "add the attribute to the profile schema or fix the name")
        elif isinstance(subject, ast.Aggregate):
            if scope not in ("person", "owner"):
                self.report(ERROR, f"`{subject.func}(...)` cannot be used inside {_a(scope)} condition", subject,
                            "an event's `where` compares the event's own properties")
                return
            self.aggregate(subject, node)
        elif isinstance(subject, ast.FieldRef):
            self.field(subject, node, scope)
        self.values(node)

    def not_in_scope(self, node, scope, what):
        if scope not in ("person", "owner"):
            self.report(ERROR, f"a {what} cannot be used inside {_a(scope)} condition", node,
                        f"a {scope} condition only compares the {scope}'s own fields")

    def check_tag(self, subject, node):
        tags = self.catalogue.tags
        if tags is None:
            return
        if subject.name not in tags and subject.name not in self.tag_rule_names:
            self.unknown("tag", subject.name, set(tags) | self.tag_rule_names, subject,
                         "define the tag in the tag catalogue or fix the name")
            return
        expected = tags.get(subject.name)
        if expected is None:
            return
        for value in _literals_of(node):
            kind = _literal_kind(value.value)
            if kind != expected:
                self.report(ERROR, f"tag `{subject.name}` holds {expected} values, compared with a {kind}", value,
                            f"compare with a {expected} value")

    def aggregate(self, subject: ast.Aggregate, node):
        self.check_event(subject.event, subject)
        self.window(subject.window)
        if subject.where is not None:
            self.cond(subject.where, "event")
        numeric = subject.func in ("sum", "avg", "min", "max")
        if numeric and subject.prop is None:
            self.report(ERROR, f"`{subject.func}` needs a property: `{subject.func}({subject.event}.PROPERTY)`", subject)
        if not numeric and subject.prop is not None:
            self.report(ERROR, f"`{subject.func}` counts events and takes no property", subject,
                        f"write `{subject.func}({subject.event})`")
        if isinstance(node, (ast.InList, ast.TextMatch)):
            self.report(ERROR, f"`{subject.func}(...)` is compared with =, <, >, between or is null", node)
        wants_time = subject.func in ("first", "last")
        for value in _values_of(node):
            is_time = isinstance(value, ast.Ago) or (
                isinstance(value, ast.Literal) and isinstance(value.value, (dt.date, dt.datetime)))
            if wants_time and not is_time:
                self.report(ERROR, f"`{subject.func}(...)` is a time; compare it with a date or `N days ago`", value)
            if not wants_time and not (isinstance(value, ast.Literal) and _literal_kind(value.value) == "number"):
                self.report(ERROR, f"`{subject.func}(...)` is a number; compare it with a number", value)

    def field(self, subject: ast.FieldRef, node, scope):
        name = subject.name
        if scope == "person":
            if name not in PERSON_FIELDS:
                self.report(ERROR, f"unknown name `{name}` in a person condition", subject,
                            f"write `profile.{name}` for a profile attribute or `tag {name}` for a tag")
                return
            if name == "age":  # whole years from profile.birth_date: a number
                self.age(node)
                return
            if isinstance(node, (ast.Between, ast.TextMatch)) or (
                    isinstance(node, ast.Compare) and node.op not in ("=", "!=")):
                self.report(ERROR, f"`{name}` cannot be used with this test", node, _SET_OPS_HINT)
        elif scope in ("car", "owner"):
            if name not in CAR_FIELDS:
                self.report(ERROR, f"cars have no field `{name}`", subject,
                            did_you_mean(name, CAR_FIELDS) or f"car fields: {', '.join(CAR_FIELDS)}")
                return
            for value in _values_of(node):
                if isinstance(value, ast.Duration) and (name != "age" or value.unit != "years"):
                    self.report(ERROR, f"`{value.amount} {value.unit}` can only be compared with `age` in years",
                                value, "write e.g. `age >= 5 years`")
        # event scope: any property name is allowed (properties are free-form)
        if scope not in ("car", "owner"):
            for value in _values_of(node):
                if isinstance(value, ast.Duration):
                    self.report(ERROR, "a duration can only be compared with an `age`", value,
                                "write a number, a date or `N days ago`")

    def age(self, node):
        if isinstance(node, ast.TextMatch):
            self.report(ERROR, "`age` is a number of years; compare it with a number", node, "write e.g. `age >= 30`")
        attributes = self.catalogue.profile_attributes
        if attributes is not None and "birth_date" not in attributes:
            self.report(WARNING, "`age` counts from `profile.birth_date`, which no person has", node,
                        'map a date column to the attribute birth_date: { column = "...", type = "date" }')
        for value in _values_of(node):
            if isinstance(value, ast.Duration) and value.unit != "years":
                self.report(ERROR, f"`{value.amount} {value.unit}` can only be compared with `age` in years",
                            value, "write e.g. `age >= 30 years`")
            elif isinstance(value, ast.Literal) and _literal_kind(value.value) != "number":
                self.report(ERROR, "`age` is a number of years; compare it with a number", value,
                            "write e.g. `age >= 30`")

    def values(self, node):
        if not isinstance(node.subject, ast.FieldRef):
            for value in _values_of(node):
                if isinstance(value, ast.Duration):
                    self.report(ERROR, "a duration can only be compared with an `age`", value,
                                "write a number, a date or `N days ago`")

    # -- limits --
    def value_limits(self, root):
        """Numbers, dates and spans the engine cannot compute with are errors here, not at compute time."""
        for node in ast.walk(root):
            if isinstance(node, ast.Literal):
                value = node.value
                whole = isinstance(value, int) and not isinstance(value, bool)
                if whole and not -MAX_INTEGER - 1 <= value <= MAX_INTEGER:
                    self.report(ERROR, f"the number `{value}` does not fit in 64 bits", node,
                                f"whole numbers run from {-MAX_INTEGER - 1} to {MAX_INTEGER}")
                elif isinstance(value, float) and not math.isfinite(value):
                    self.report(ERROR, "this number is too large", node, "numbers run up to about 1.8e308")
                elif isinstance(value, (dt.date, dt.datetime)):
                    day = value.date() if isinstance(value, dt.datetime) else value
                    if not EARLIEST_DATE <= day <= LATEST_DATE:
                        self.report(ERROR, f"the date {value.isoformat()} is out of range", node,
                                    f"dates run from {EARLIEST_DATE} to {LATEST_DATE}")
            elif isinstance(node, (ast.LastN, ast.Ago, ast.Duration)) and node.unit in _PER_YEAR:
                if node.amount > MAX_SPAN_YEARS * _PER_YEAR[node.unit]:
                    self.report(ERROR, f"`{node.amount} {node.unit}` is longer than a thousand years", node,
                                f"write at most {int(MAX_SPAN_YEARS * _PER_YEAR[node.unit])} {node.unit}")

    def check_nesting(self, cyclic: set[str]):
        """Conditions nested deeper than :data:`MAX_NESTING` (counting what `in segment` brings in: the
        compiled SQL inlines it) are errors: SQLite's parser and the evaluator's recursion stop there.
        Reported where the limit is first passed, once per rule (for a chain of segments, in the
        innermost segment that passes it)."""
        segments = self.rule_set.segments
        depth: dict[str, int] = {}
        over: dict[str, tuple[int, Any]] = {}  # segment -> (its depth, the node that passes the limit)
        for name in self._segment_order(cyclic):
            total, node = self._nesting(segments[name].where, depth)
            depth[name] = total
            if total > MAX_NESTING:
                over[name] = (total, node)
        for name, (total, node) in over.items():
            refs = [n.segment for n in ast.walk(segments[name].where) if isinstance(n, ast.InSegment)]
            if any(ref in over for ref in refs):
                continue  # reported in the segment it uses
            self.file = self.rule_set.file_of(segments[name])
            self._report_nesting(f"segment `{name}`", total, node)
        for root, file in self.nested_roots:
            total, node = self._nesting(root, depth)
            if total > MAX_NESTING:
                self.file = file
                self._report_nesting("this condition", total, node)
        self.file = None

    def _report_nesting(self, what, total, node):
        via = " counting the segments it uses" if isinstance(node, ast.InSegment) else ""
        self.report(ERROR, f"{what} nests conditions {total} levels deep{via} (at most {MAX_NESTING})", node,
                    _NESTING_HINT)

    def _nesting(self, root, depth: dict[str, int]) -> tuple[int, Any]:
        """The deepest nesting under ``root`` and the first node where it passes the limit (or None)."""
        deepest, first_over = 0, None
        stack = [(root, 0)]
        while stack:
            node, above = stack.pop()
            level = above + (1 if isinstance(node, _NESTS) else 0)
            if isinstance(node, ast.InSegment):
                level = above + 1 + depth.get(node.segment, 0)
            if level > MAX_NESTING and first_over is None:
                first_over = node
            deepest = max(deepest, level)
            stack.extend((child, level) for child in ast.children(node))
        return deepest, first_over

    def _segment_order(self, cyclic: set[str]) -> list[str]:
        """The rule set's segments, each after the segments it uses (those in a cycle left out)."""
        graph = {name: [ref.segment for ref in refs] for name, refs in self.segment_refs.items()}
        order, done = [], set(cyclic)
        for start in graph:
            if start in done:
                continue
            stack = [(start, iter(graph.get(start, ())))]
            entered = {start}
            while stack:
                name, targets = stack[-1]
                for target in targets:
                    if target in graph and target not in done and target not in entered:
                        entered.add(target)
                        stack.append((target, iter(graph.get(target, ()))))
                        break
                else:
                    stack.pop()
                    done.add(name)
                    order.append(name)
        return [name for name in order if name in self.rule_set.segments and name not in cyclic]

    # -- cycles --
    def check_cycles(self) -> set[str]:
        """Report cycles of segments and of rule tags; returns the segments on a cycle."""
        cyclic = self._cycles({name: [(ref.segment, ref) for ref in refs] for name, refs in self.segment_refs.items()},
                              self.rule_set.segments, "segments refer to each other in a cycle: ",
                              "one of these segments must not use `in segment` on the others")
        self._cycles({name: [(ref.name, ref) for ref in refs] for name, refs in self.tag_refs.items()},
                     self.rule_set.tags, "rule tags depend on each other in a cycle: ",
                     "one of these rule tags must not read the others")
        return cyclic

    def _cycles(self, graph: dict[str, list[tuple[str, Any]]], rules: dict, message: str, hint: str) -> set[str]:
        """Report each cycle of ``graph`` (name -> [(target, the node that refers to it)]) once; return the
        names on a cycle. Depth first without recursion (a chain of a thousand segments is fine)."""
        state: dict[str, str] = {}
        reported = set()
        on_cycle: set[str] = set()
        for start in graph:
            if state.get(start) is not None:
                continue
            state[start] = "active"
            path = [start]
            stack = [(start, iter(graph.get(start, [])))]
            while stack:
                name, edges = stack[-1]
                for target, ref in edges:
                    if state.get(target) == "active":
                        cycle = path[path.index(target):] + [target]
                        on_cycle.update(cycle)
                        key = frozenset(cycle)
                        if key not in reported:
                            reported.add(key)
                            # point at the reference that closes the cycle
                            self.file = self.rule_set.file_of(rules[name])
                            self.report(ERROR, message + " -> ".join(cycle), ref, hint)
                            self.file = None
                    elif state.get(target) is None and target in graph:
                        state[target] = "active"
                        path.append(target)
                        stack.append((target, iter(graph.get(target, []))))
                        break
                else:
                    stack.pop()
                    path.pop()
                    state[name] = "done"
        return on_cycle


def _polarity(cond, fmt_cond) -> tuple[str, bool]:
    """``(text of the condition without its outer nots, whether an even number of nots was removed)``."""
    truth = True
    while isinstance(cond, ast.Not):
        cond, truth = cond.item, not truth
    return fmt_cond(cond), truth


def _comparable(a, b) -> bool:
    """Two dates, or two date-times both with or both without a UTC offset."""
    return not isinstance(a, dt.datetime) or (a.tzinfo is None) == (b.tzinfo is None)


def _a(scope: str) -> str:
    return f"an {scope}" if scope[0] in "aeiou" else f"a {scope}"


def _values_of(node) -> list:
    if isinstance(node, ast.Compare):
        return [node.value]
    if isinstance(node, ast.Between):
        return [node.low, node.high]
    if isinstance(node, ast.InList):
        return list(node.items)
    return []


def _literals_of(node) -> list:
    values = _values_of(node)
    if isinstance(node, ast.TextMatch):
        return [ast.Literal(node.text, line=node.line, column=node.column)]
    return [v for v in values if isinstance(v, ast.Literal)]


def _describe(node) -> str:
    from motorcade.dsl.format import fmt_cond

    text = fmt_cond(node)
    return text if len(text) <= 40 else text[:37] + "..."


def _segments_used(rule) -> list[tuple[str, Any]]:
    """``(segment name, node)`` of every segment a rule uses: its audience, its trigger or journey entry segment,
    `in segment`."""
    used = []
    if isinstance(rule, ast.Campaign) and rule.audience:
        used.append((rule.audience, rule.clause_at("audience")))
    if isinstance(rule, ast.Trigger) and isinstance(rule.on, ast.OnSegment):
        used.append((rule.on.segment, rule.on))
    if isinstance(rule, ast.Journey) and isinstance(rule.entry, (ast.EntrySegment, ast.EntrySchedule)):
        used.append((rule.entry.segment, rule.entry))
    used += [(node.segment, node) for node in ast.walk(rule) if isinstance(node, ast.InSegment)]
    return used


def check(rule_set, catalogue: Catalogue | None = None) -> list[Diagnostic]:
    """Every error and warning about ``rule_set``, in file order (cycles last)."""
    return _Checker(rule_set, catalogue or Catalogue()).run()
