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
            problems.append(TemplateProblem(step.template, f"{kind} {rule.name}", step.line, exc.message, exc.hint,
                                            column=step.column))
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
                problems.append(TemplateProblem("-", f"{kind} {rule.name}", schedule.line or rule.line, exc.message,
                                                exc.hint, column=schedule.column))
        if rule.via is None:
            continue
        if registry is not None:
            for step in rule.via.steps:
                try:
                    registry.channel_class(step.channel)
                except MotorcadeError as exc:
                    problems.append(TemplateProblem(step.template, f"{kind} {rule.name}", step.line, exc.message,
                                                    exc.hint, column=step.column))
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

    attributes = store.attribute_names()
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


def activation_diagnostics(problems: list[TemplateProblem], rule_set, project_dir: Path,
                           *, skip_channels: set[str] = frozenset()) -> list:
    """The problems as `check`'s diagnostics: file:line:col relative to the project, the line with a caret, a
    hint. A problem about a rule points into its rule file (at the clause); one about a template file into
    that file. ``skip_channels``: channels `check` already reported as unknown (reported once, not twice)."""
    from motorcade.dsl.errors import ERROR, make

    def relative(path: str) -> str:
        try:
            return str(Path(path).resolve().relative_to(Path(project_dir).resolve()))
        except ValueError:
            return path

    rule_files = {}
    for rule_file in rule_set.files:
        for rule in rule_file.rules:
            kind = "campaign" if isinstance(rule, ast.Campaign) else "trigger" if isinstance(rule, ast.Trigger) else None
            if kind:
                rule_files[f"{kind} {rule.name}"] = rule_file
    out = []
    for problem in problems:
        if problem.message.startswith("no channel named ") and any(f"'{c}'" in problem.message for c in skip_channels):
            continue
        rule_file = rule_files.get(problem.path)
        if rule_file is not None:
            file, source = relative(rule_file.filename), rule_file.source
        else:
            file = relative(problem.path)
            try:
                source = Path(problem.path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                source = ""
        line = problem.line
        column = problem.column
        if column is None and line:
            text = source.split("\n")[line - 1] if 0 < line <= len(source.split("\n")) else ""
            column = len(text) - len(text.lstrip()) + 1
        prefix = str(Path(project_dir).resolve()) + "/"
        out.append(make(ERROR, problem.message.replace(prefix, ""), file=file, source=source, line=line,
                        column=column, hint=problem.hint.replace(prefix, "") if problem.hint else None))
    return out
