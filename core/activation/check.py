"""Activation findings for `motorcade check`: missing templates, template fields that do not exist,
SMS bodies over the channel's length limit, channels that are not installed, schedules that cannot run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from motorcade.errors import MotorcadeError

from .schedule import ScheduleError, validate_schedule
from .templates import TemplateError, TemplateProblem, TemplateStore, check_template


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
        for step in rule.via.steps:
            max_length = None
            if registry is not None:
                try:
                    max_length = registry.channel_class(step.channel).capabilities.max_length
                except MotorcadeError as exc:
                    problems.append(TemplateProblem(step.template, f"{kind} {rule.name}", step.line, exc.message,
                                                    exc.hint))
                    continue
            try:
                path, text = store.source(step.template, step.channel)
            except TemplateError as exc:
                problems.append(TemplateProblem(step.template, f"{kind} {rule.name}", step.line, exc.message, exc.hint))
                continue
            problems.extend(check_template(step.template, path, text, attributes=attributes, tags=tags,
                                           max_length=max_length, channel=step.channel))
    unique = {}
    for problem in problems:
        unique.setdefault((problem.path, problem.line, problem.message), problem)
    return list(unique.values())


def check_project(project) -> list[TemplateProblem]:
    """:func:`check_activation` for a project: its rules, templates folder, installed channels and catalogue."""
    from .settings import ActivationSettings

    settings = ActivationSettings.from_config(project.config.raw.get("activation", {}))
    store = project.store
    attributes = {r[0] for r in store.query(
        "SELECT DISTINCT key FROM people, json_each(people.attributes) LIMIT 10000")}
    tags = {d["name"] for d in store.tag_definitions()}
    registry = project.plugins.registry()
    for entry in registry.tag_calculators.values():
        tags.update(d.name for d in getattr(entry.obj, "produces", ()))
    return check_activation(project.rules(), templates_dir=project.directory / settings.templates, registry=registry,
                            attributes=attributes or None, tags=tags or None)
