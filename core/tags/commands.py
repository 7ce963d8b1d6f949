"""CLI commands of the tags stage (added to the root CLI by motorcade.cli): ``motorcade tags ...``."""

from __future__ import annotations

import json
import sys

import click

from ..as_of import as_of_option


def _state():
    return click.get_current_context().find_root().obj


def _parse_as_of(value: str | None, project):
    from ..as_of import parse_as_of

    return parse_as_of(value, project.timezone)


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def _distribution(figures: dict) -> str:
    if "counts" in figures:
        total = sum(figures["counts"].values()) or 1
        return " · ".join(f"{value} {n / total:.0%}" for value, n in list(figures["counts"].items())[:4])
    if "p50" in figures:
        return (f"p50 {_number(figures['p50'])} (IQR {_number(figures['p25'])}–{_number(figures['p75'])}, "
                f"range {_number(figures['min'])}–{_number(figures['max'])})")
    return "-"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


@click.group(name="tags")
def tags_group() -> None:
    """Compute tags and inspect the tag catalogue and its health."""


@tags_group.command(name="compute")
@click.argument("names", nargs=-1)
@click.option("--incremental", is_flag=True,
              help="Recompute only people whose inputs changed since each calculator's last run.")
@as_of_option()
@click.option("--json", "as_json", is_flag=True, help="Print the run results as JSON.")
def compute_command(names: tuple[str, ...], incremental: bool, as_of: str | None, as_json: bool) -> None:
    """Compute tags: all calculators, or NAMES (calculators or tags) and what they depend on."""
    from .engine import compute_project_tags, imported_tags, plan, project_calculators

    project = _state().project
    moment = _parse_as_of(as_of, project)
    # the installed plugins' calculators and the rules' own tags (rule:NAME): rule tags need no plugin
    calculators = project_calculators(project)
    if not calculators:
        raise click.ClickException("no tag calculators are installed and the rules define no rule tag; install "
                                   "a plugin under plugins/tags/ or write `tag NAME = case ... end` in a rule file")
    planned = plan(calculators, names or None, imported=imported_tags(project))
    if as_json or not sys.stderr.isatty():  # no bar frames in piped output or under --json
        results = compute_project_tags(project, names or None, incremental=incremental, as_of=moment,
                                       calculators=calculators)
    else:
        # The bar counts calculators *finished*: one step when the next starts, the last when all are done, so
        # it reaches the end when the work does (not when the last calculator starts).
        with click.progressbar(length=len(planned), label="Computing tags", file=sys.stderr,
                               item_show_func=lambda c: c.name if c else "") as bar:
            started = []

            def progress(calc) -> None:
                if started:
                    bar.update(1)
                started.append(calc)
                bar.update(0, calc)

            results = compute_project_tags(project, names or None, incremental=incremental, as_of=moment,
                                           progress=progress, calculators=calculators)
            bar.update(len(planned) - bar.pos)
    if as_json:
        click.echo(json.dumps([
            {"calculator": r.calculator, "version": r.version, "mode": r.mode, "people": r.people,
             "rows_written": r.rows_written, "seconds": round(r.seconds, 3), "warnings": list(r.warnings)}
            for r in results], ensure_ascii=False, indent=2))
        return
    for r in results:
        who = "everyone" if r.people is None else f"{r.people:,} changed people"
        click.echo(f"{r.calculator} v{r.version}: {r.rows_written:,} values for {who} ({r.mode}) "
                   f"in {r.seconds:.2f}s")
        for warning in r.warnings:
            click.secho(f"  warning: {warning}", fg="yellow")


def tag_catalogue(project) -> list[dict]:
    """Every tag the installed calculators, the rules and the sources produce: tag, title, type, values,
    description, calculator, version, plugin, depends_on (what `tags list` and the console show)."""
    from .engine import plan, project_calculators

    registry = project.plugins.registry()
    calculators = project_calculators(project)
    order = {c.name: i for i, c in enumerate(plan(calculators))}
    rows = []
    for calc in sorted(calculators.values(), key=lambda c: order[c.name]):
        for d in calc.produces:
            values = (list(d.allowed_values) if d.allowed_values is not None else
                      list(d.value_range) if d.value_range is not None else None)
            rows.append({"tag": d.name, "title": d.title, "type": d.type, "values": values,
                         "description": d.description, "calculator": calc.name, "version": calc.version,
                         "plugin": registry.tag_calculators[calc.name].plugin
                         if calc.name in registry.tag_calculators else "rules",
                         "depends_on": list(calc.depends_on_tags) + list(calc.depends_on_events)})
    from ..sources.mapping import source_tag_definitions
    from . import imported

    for source, settings in project.config.sources.items():  # tags imported from other systems
        definitions = source_tag_definitions(source, settings)
        for d in definitions:
            values = (list(d.allowed_values) if d.allowed_values is not None else
                      list(d.value_range) if d.value_range is not None else None)
            rows.append({"tag": d.name, "title": d.title, "type": d.type, "values": values,
                         "description": d.description, "calculator": imported.producer(source),
                         "version": imported.version(definitions), "plugin": f"source {source}", "depends_on": []})
    return rows


@tags_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(as_json: bool) -> None:
    """The tag catalogue: every tag the installed calculators, the rules and the sources produce, with type, values
    and description."""
    rows = tag_catalogue(_state().project)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Tags")
    for column in ("tag", "title", "type", "values", "calculator", "description"):
        table.add_column(column)
    for r in rows:
        values = r["values"]
        shown = "" if values is None else (" / ".join(map(str, values)) if r["type"] != "number" or
                                           len(values) != 2 else f"{values[0]}–{values[1]}")
        table.add_row(r["tag"], r["title"], r["type"], shown, f"{r['calculator']} v{r['version']}",
                      r["description"])
    console = Console()
    console.print(table) if console.is_terminal else Console(width=160).print(table)


@tags_group.command(name="health")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--stale-hours", default=48.0, show_default=True,
              help="Mark tags computed longer ago than this as stale.")
def health_command(as_json: bool, stale_hours: float) -> None:
    """Tag health: coverage, value distribution, freshness, and drift since the previous run."""
    from .engine import health_report

    project = _state().project
    rows = health_report(project.store)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    if not rows:
        click.echo("No tag has been computed yet: run `motorcade tags compute`.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Tag health ({project.config.name})")
    for column in ("tag", "calculator", "coverage", "values", "distribution", "computed", "status"):
        table.add_column(column)
    warnings = []
    for r in rows:
        stale = r["age_seconds"] > stale_hours * 3600
        status = "drift" if r["warnings"] else ("stale" if stale else "ok")
        style = {"drift": "yellow", "stale": "red", "ok": "green"}[status]
        table.add_row(r["tag"], f"{r['calculator']} v{r['version']}", f"{r['coverage']:.1%}", f"{r['count']:,}",
                      _distribution(r["figures"]), f"{_age(r['age_seconds'])} ({r['mode']})",
                      f"[{style}]{status}[/{style}]")
        warnings.extend(r["warnings"])
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # piped or captured: do not squeeze the table into 80 columns
    console.print(table)
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


COMMANDS = [tags_group]
