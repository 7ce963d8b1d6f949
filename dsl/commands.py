"""``motorcade check``, ``motorcade fmt`` and ``motorcade test``: thin click wrappers over the library.

The root CLI adds them with ``cli.add_command``. The catalogue comes from ``ctx.obj.catalogue()`` when the
context object has one (the project), else an empty :class:`Catalogue` (names are not checked); the
default paths come from ``ctx.obj.rule_paths()`` (the project's); outside a project the paths must be named.
Exit codes: 0 ok, 1 a domain error (bad rules, failed tests), 2 usage (click's own; no project and no paths; a
named path without rule files).
"""

from __future__ import annotations

from pathlib import Path

import attrs
import click

from motorcade.dsl.check import Catalogue, check
from motorcade.dsl.errors import ERROR, DslError
from motorcade.dsl.format import format_rules
from motorcade.dsl.parser import parse_text
from motorcade.dsl.rules import TEST_SUFFIX, is_rule_file, load_rules, rule_file_paths
from motorcade.dsl.ruletest import run_rule_tests
from motorcade.errors import EXIT_DOMAIN_ERROR, ProjectNotFound, UsageError

_PATHS = click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))


def _catalogue(ctx: click.Context) -> Catalogue:
    provider = getattr(ctx.obj, "catalogue", None)
    return provider() if callable(provider) else Catalogue()


def _value_types(ctx: click.Context):
    """The project's declared value types (``ctx.obj.value_types()``), or None outside a project."""
    provider = getattr(ctx.obj, "value_types", None)
    return provider() if callable(provider) else None


def _paths(ctx: click.Context, paths, *, tests: bool = False) -> list[Path]:
    """The paths named on the command line (each must hold rule files, or rule tests for ``tests``), else the
    project's rule paths."""
    if paths:
        wanted = (lambda p: p.name.endswith(TEST_SUFFIX)) if tests else is_rule_file
        what = f"rule tests ({TEST_SUFFIX})" if tests else "rule files (.mc)"
        for path in paths:
            if not rule_file_paths([path], suffix_test=wanted):
                raise UsageError(f"no {what} in {path}", hint=f"name {what} or folders holding them")
        return list(paths)
    provider = getattr(ctx.obj, "rule_paths", None)
    if not callable(provider):
        raise UsageError("name the rule files (.mc) or folders to work on")
    try:
        return list(provider())
    except ProjectNotFound as exc:
        # outside a project, guessing (./rules, .) would report "0 files" and exit 0 for a mistyped --project
        raise UsageError(exc.message, hint="run inside a project, pass --project DIR (or set MOTORCADE_PROJECT), "
                                           "or name the rule files") from None


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def _fail(exc: DslError) -> None:
    click.echo(str(exc), err=True)
    click.echo(_count(sum(1 for d in exc.diagnostics if d.severity == ERROR), "error"), err=True)
    raise click.exceptions.Exit(EXIT_DOMAIN_ERROR)


@click.command("check")
@_PATHS
@click.pass_context
def check_command(ctx: click.Context, paths) -> None:
    """Check rule files (.mc): syntax, unknown names, segment cycles. Reports every problem; exits 1 on any error."""
    try:
        rule_set = load_rules(_paths(ctx, paths))
    except DslError as exc:
        _fail(exc)
    diagnostics = check(rule_set, _catalogue(ctx))
    relative = getattr(ctx.obj, "relative_path", None)
    for diagnostic in diagnostics:
        if callable(relative):  # paths as the operator knows them: relative to the project
            diagnostic = attrs.evolve(diagnostic, file=relative(diagnostic.file))
        click.echo(diagnostic.render())
    errors = sum(1 for d in diagnostics if d.severity == ERROR)
    warnings = len(diagnostics) - errors
    # Templates and channels the campaigns and triggers use (only for a project's own rules), in the same
    # format; a channel the rules check already called unknown is not reported a second time.
    provider = getattr(ctx.obj, "activation_problems", None)
    if not paths and callable(provider):
        unknown = {d.message.split("`")[1] for d in diagnostics if d.message.startswith("unknown channel `")}
        for diagnostic in provider(skip_channels=unknown):
            click.echo(diagnostic.render())
            if diagnostic.severity == ERROR:
                errors += 1
            else:  # an SMS that needs several segments
                warnings += 1
    provider = getattr(ctx.obj, "config_warnings", None)  # source mappings (a VIN as a person identifier)
    if not paths and callable(provider):
        for warning in provider():
            click.echo(f"warning: {warning}")
            warnings += 1
    rules = sum(len(f.rules) for f in rule_set.files)
    click.echo(f"{_count(len(rule_set.files), 'file')}, {_count(rules, 'rule')}: {_count(errors, 'error')}, "
               f"{_count(warnings, 'warning')} (revision {rule_set.revision[:12]})")
    if errors:
        raise click.exceptions.Exit(EXIT_DOMAIN_ERROR)


@click.command("fmt")
@click.option("--check", "check_only", is_flag=True, help="Do not write; exit 1 if a file is not formatted.")
@_PATHS
@click.pass_context
def fmt_command(ctx: click.Context, check_only: bool, paths) -> None:
    """Rewrite rule files (.mc) in canonical form (comments are kept)."""
    changed, problems = [], []
    for path, _name in rule_file_paths(_paths(ctx, paths)):
        text = path.read_text(encoding="utf-8")
        try:
            formatted = format_rules(parse_text(text, str(path)))
        except DslError as exc:
            problems.append(exc)
            continue
        if formatted != text:
            changed.append(path)
            if not check_only:
                path.write_text(formatted, encoding="utf-8")
    for exc in problems:
        click.echo(str(exc), err=True)
    for path in changed:
        click.echo(f"{'would reformat' if check_only else 'reformatted'} {path}")
    if problems or (check_only and changed):
        raise click.exceptions.Exit(EXIT_DOMAIN_ERROR)


@click.command("test")
@click.option("--rules", "rules_paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Rule files or directories to test (default: the .mc files next to each test file).")
@click.option("--no-coverage", is_flag=True, help="Do not print condition coverage.")
@_PATHS
@click.pass_context
def test_command(ctx: click.Context, rules_paths, no_coverage: bool, paths) -> None:
    """Run rule tests (*.test.mc); prints `N passed, N failed` and condition coverage."""
    try:
        report = run_rule_tests(_paths(ctx, paths, tests=True), rules=list(rules_paths) or None,
                                types=_value_types(ctx))
    except DslError as exc:
        _fail(exc)
    click.echo(report.render(show_coverage=not no_coverage))
    if not report.ok:
        raise click.exceptions.Exit(EXIT_DOMAIN_ERROR)


COMMANDS = (check_command, fmt_command, test_command)
