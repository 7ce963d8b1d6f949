"""Rule tags: ``tag NAME "title" = case when <condition> then <value> ... else <value> end`` in the DSL.

Operators add tags without Python. Each rule tag becomes a calculator of its own, ordered with the
plugin calculators by the tags its conditions read (``tag intent_level = "high"`` depends on the
``intent`` calculator). Every ``when`` condition is compiled to SQL by the segment compiler (the
reference evaluator is its fallback), so a rule tag costs about as much as computing its conditions as
segments. Semantics are the evaluator's: the first ``when`` that is true gives the value; otherwise the
``else`` value, if there is one; a condition that is unknown (null) is not true.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import attrs

from motorcade.dsl import ast

from .base import TagCalculator, TagContext, TagDefinition

_KIND = {bool: "boolean", int: "number", float: "number", str: "string", dt.date: "date", dt.datetime: "date"}


def _value_type(rule: ast.TagRule) -> str:
    values = [case.then.value for case in rule.cases] + ([rule.default.value] if rule.default else [])
    kinds = {_KIND[type(v)] for v in values}
    if len(kinds) != 1:
        from motorcade.errors import MotorcadeError

        raise MotorcadeError(f"rule tag {rule.name!r} (line {rule.line}) mixes value types: {', '.join(sorted(kinds))}",
                             hint="give every `then` and the `else` values of one type; `motorcade check` shows it")
    return kinds.pop()


def rule_tag_definition(rule: ast.TagRule) -> TagDefinition:
    """The catalogue entry of a rule tag: its value type and the values its cases give."""
    values = {c.then.value for c in rule.cases} | ({rule.default.value} if rule.default else set())
    return TagDefinition(rule.name, _value_type(rule), f"rule tag defined in the rules: {rule.title or rule.name}",
                         title=rule.title or "", allowed_values=tuple(sorted(values, key=repr)))


def _referenced(rule_set, root) -> tuple[set[str], set[str]]:
    """(tag names, event names) the conditions read, through referenced segments and recommendations too."""
    tags, events, seen = set(), set(), set()
    pending = [root]
    while pending:
        for node in ast.walk(pending.pop()):
            if isinstance(node, ast.TagRef):
                tags.add(node.name)
            elif isinstance(node, (ast.Did, ast.Aggregate)):
                events.add(node.event)
            elif isinstance(node, ast.DidAny):
                events.update(node.events)
            elif isinstance(node, ast.Sequence):
                events.update(node.steps)
            elif isinstance(node, ast.InSegment) and node.segment not in seen and node.segment in rule_set.segments:
                seen.add(node.segment)
                pending.append(rule_set.segments[node.segment])
            elif isinstance(node, ast.Recommended) and ("recommend", node.recommendation) not in seen \
                    and node.recommendation in rule_set.recommendations:
                seen.add(("recommend", node.recommendation))
                pending.append(rule_set.recommendations[node.recommendation])
    return tags, events


class RuleTagCalculator(TagCalculator):
    """Computes one rule tag of the project's rules."""

    supports_incremental = False  # conditions such as "in last 90 days" move with time alone

    def __init__(self, rule_set, rule: ast.TagRule, tz):
        self.rule_set = rule_set
        self.rule = rule
        self.tz = tz
        self.name = f"rule:{rule.name}"
        # the version follows the rule's text: a changed rule is a new calculator version
        from motorcade.dsl import format_rules

        text = format_rules(ast.RuleFile(rules=(rule,)))
        self.version = "rule-" + hashlib.sha256(text.encode()).hexdigest()[:12]
        self.produces = (rule_tag_definition(rule),)
        tags, events = _referenced(rule_set, rule)
        self.depends_on_tags = tuple(sorted(tags - {rule.name}))
        self.depends_on_events = tuple(sorted(events))

    def compute(self, context: TagContext):
        from motorcade.segments.compute import evaluate_members

        store = context.store
        assigned: dict[int, Any] = {}
        for index, case in enumerate(self.rule.cases):
            probe = f"__tag_{self.rule.name}_{index}"
            rule_set = attrs.evolve(self.rule_set, segments={
                **self.rule_set.segments, probe: ast.Segment(name=probe, title=None, where=case.when)})
            members, _plan, _query = evaluate_members(store, rule_set, probe, context.as_of, self.tz,
                                                      engine=context.analytics)
            for person_id in members:
                assigned.setdefault(person_id, case.then.value)
        if self.rule.default is not None:
            for person_id in store.person_ids():
                assigned.setdefault(person_id, self.rule.default.value)
        return [(person_id, self.rule.name, value) for person_id, value in assigned.items()]


def rule_tag_calculators(rule_set, tz) -> dict[str, RuleTagCalculator]:
    """One calculator per rule tag of ``rule_set``, keyed by calculator name."""
    calculators = [RuleTagCalculator(rule_set, rule, tz) for rule in rule_set.tags.values()]
    return {c.name: c for c in calculators}
