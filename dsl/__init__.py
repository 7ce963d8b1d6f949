"""Motorcade's rule language: segments, campaigns, triggers, rule tags, funnels and recommendations in ``.mc`` files.

The public API (see docs/dsl.md for the language and its exact semantics)::

    parse_text(text, filename) -> RuleFile        # raises DslError with every syntax error
    load_rules(paths) -> RuleSet                  # .revision, .segments, .campaigns, .triggers, .tags, .funnels,
                                                  # .recommendations
    check(rule_set, catalogue) -> list[Diagnostic]
    format_rules(rule_file) -> str                # parse_text(format_rules(f)) == f
    evaluate_segment(rule_set, name, dataset, as_of) -> set[int]
    explain_person(rule_set, name, dataset, person_id, as_of) -> ExplainNode
    evaluate_tag(rule_set, name, dataset, as_of) -> dict[int, value]
    trigger_fires(rule_set, name, dataset, person_id, event=..., ...) -> TriggerDecision
    evaluate_recommendations(rule_set, name, dataset, as_of) -> dict[int, list[RecommendedItem]]
    explain_recommendation(rule_set, name, dataset, person_id, as_of) -> ExplainNode
    run_rule_tests(paths, rules=None) -> TestReport   # .summary() == "N passed, N failed"

Click commands for the CLI live in :mod:`motorcade.dsl.commands`.
"""

from motorcade.dsl import ast
from motorcade.dsl.check import Catalogue, check
from motorcade.dsl.data import CarData, Dataset, EventData, PersonData
from motorcade.dsl.errors import Diagnostic, DslError
from motorcade.dsl.evaluate import (
    DEFAULT_TIMEZONE, EvaluationError, ExplainNode, RecommendedItem, TriggerDecision, evaluate_recommendations,
    evaluate_segment, evaluate_tag, explain_person, explain_recommendation, trigger_fires, window_interval,
)
from motorcade.dsl.format import format_rules
from motorcade.dsl.parser import parse_text
from motorcade.dsl.rules import RuleSet, load_rules, rule_set_from_text
from motorcade.dsl.ruletest import TestReport, run_rule_tests

__all__ = [
    "ast", "Catalogue", "check", "CarData", "Dataset", "EventData", "PersonData", "Diagnostic", "DslError",
    "DEFAULT_TIMEZONE", "EvaluationError", "ExplainNode", "TriggerDecision", "evaluate_segment", "evaluate_tag",
    "explain_person", "trigger_fires", "window_interval", "RecommendedItem", "evaluate_recommendations",
    "explain_recommendation", "format_rules", "parse_text", "RuleSet", "load_rules",
    "rule_set_from_text", "TestReport", "run_rule_tests",
]
