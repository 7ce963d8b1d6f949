"""Activation findings for `motorcade check`: missing templates, template fields that do not exist,
SMS bodies over the channel's length limit, channels that are not installed, schedules that cannot run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from motorcade.dsl import ast
from motorcade.errors import MotorcadeError

from .schedule import ScheduleError, validate_schedule
from .templates import TemplateError, TemplateProblem, TemplateStore, check_template


def rule_template_problems(rule, templates: TemplateStore, *, registry: Any = None, attributes: set[str] | None = None,
                           tags: set[str] | None = None, kind: str | None = None) -> list[TemplateProblem]:
    """The template problems of one campaign or trigger: a missing template, a syntax error, a name or
    field that does not exist, fixed text over the channel's length. A rule with any of them is not
    planned by `run`/`serve` (it would send empty or broken messages)."""
    kind = kind or ("campaign" if isinstance(rule, ast.Campaign) else "trigger")
    problems: list[TemplateProblem] = []
    if rule.via is None:
        return problems
    for step in rule.via.steps:
        max_length = None
        if registry is not None:
            try:
                max_length = registry.channel_class(step.channel).capabilities.max_length
            except MotorcadeError:
                pass  # a channel that is not installed is reported (and handled) on its own
        try:
            path, text = templates.source(step.template, step.channel)
        except TemplateError as exc:
            problems.append(TemplateProblem(step.template, f"{kind} {rule.name}", step.line, exc.message, exc.hint))
            continue
        problems.extend(check_template(step.template, path, text, attributes=attributes, tags=tags,
                                       max_length=max_length, channel=step.channel))
    return problems


def check_activation(rule_set, *, templates_dir: Path, registry: Any = None, attributes: set[str] | None = None,
                     tags: set[str] | None = None) -> list[TemplateProblem]:
    """Every problem found in the rule set's campaigns and triggers (an empty list when all is well).

    ``attributes`` / ``tags``: profile attributes and tag names known in the project (None: not checked).
    """
    store = TemplateStore(templates_dir)
    problems: list[TemplateProblem] = []
    rules = [*rule_set.campaigns.values(), *rule_set.triggers.values()]
    tags = None if tags is None else set(tags) | set(rule_set.tags)
    for rule in rules:
        kind = "campaign" if rule in rule_set.campaigns.values() else "trigger"
        schedule = getattr(rule, "schedule", None)
        if schedule is not None:
            try:
                validate_schedule(schedule)
            except ScheduleError as exc:
                problems.append(TemplateProblem("-", f"{kind} {rule.name}", rule.line, exc.message, exc.hint))
        if rule.via is None:
            continue
        if registry is not None:
            for step in rule.via.steps:
                try:
                    registry.channel_class(step.channel)
                except MotorcadeError as exc:
                    problems.append(TemplateProblem(step.template, f"{kind} {rule.name}", step.line, exc.message,
                                                    exc.hint))
        problems.extend(rule_template_problems(rule, store, registry=registry, attributes=attributes, tags=tags,
                                               kind=kind))
    unique = {}
    for problem in problems:
        unique.setdefault((problem.path, problem.line, problem.message), problem)
    return list(unique.values())


def known_names(store, registry, sources=None) -> tuple[set[str] | None, set[str] | None]:
    """Profile attributes and tag names known in the project, for template checks (None: none known yet):
    attributes stored on people or mapped by a configured source (``sources``: the [sources] tables), so a
    field no row has carried yet is not taken for a typo."""
    from motorcade.sources.mapping import mapped_attribute_names

    attributes = {r[0] for r in store.query(
        "SELECT DISTINCT key FROM people, json_each(people.attributes) LIMIT 10000")}
    attributes |= mapped_attribute_names(sources or {})
    tags = {d["name"] for d in store.tag_definitions()}
    for entry in registry.tag_calculators.values():
        tags.update(d.name for d in getattr(entry.obj, "produces", ()))
    return attributes or None, tags or None


def check_project(project) -> list[TemplateProblem]:
    """:func:`check_activation` for a project: its rules, templates folder, installed channels and catalogue."""
    from .settings import ActivationSettings

    settings = ActivationSettings.from_config(project.config.raw.get("activation", {}))
    registry = project.plugins.registry()
    attributes, tags = known_names(project.store, registry, project.config.sources)
    return check_activation(project.rules(), templates_dir=project.directory / settings.templates, registry=registry,
                            attributes=attributes, tags=tags)
