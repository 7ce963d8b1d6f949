"""CLI commands of journeys (added to the root CLI by motorcade.cli): `motorcade journeys status|explain`."""

from __future__ import annotations

import json

import click

from motorcade.as_of import as_of_option, parse_as_of
from motorcade.cli_types import PERSON_ID


@click.group()
def journeys() -> None:
    """Journeys: people per step, conversion against the holdout, why a person is where they are."""


@journeys.command()
@click.argument("name")
@as_of_option("Count goal conversions whose window closed by then.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), default=None,
              help="Also write an HTML page with the journey drawn as a graph with counts.")
@click.pass_obj
def status(state, name: str, as_of: str | None, as_json: bool, html_out: str | None) -> None:
    """People per step, entered / completed / exited / converted, and goal conversion against the holdout.

    A store user's figures count only their own people (a group journey's too)."""
    from .observe import journey_sections, journey_status

    project = state.project
    rule_set = project.rules()
    moment = parse_as_of(as_of, project.timezone)
    result = journey_status(project.store, rule_set, name, as_of=moment, tz=project.timezone)
    if as_json:
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, default=str))
    else:
        click.echo(result.render())
    if html_out:
        from pathlib import Path

        from motorcade.feedback.html import render_report

        sections = [s for s in journey_sections(project.store, rule_set, as_of=moment, tz=project.timezone)
                    if s.title.split(" ")[1] == name]
        Path(html_out).write_text(render_report(f"Journey {name}", sections), encoding="utf-8")
        if not as_json:
            click.echo(f"HTML: {html_out}")


@journeys.command()
@click.argument("name")
@click.option("--person", "person_id", type=PERSON_ID, required=True, help="The person's id (as in `explain`).")
@click.pass_obj
def explain(state, name: str, person_id: int) -> None:
    """Where a person is in a journey, the path taken with times, and the values seen at each branch."""
    from .observe import explain_person

    project = state.project
    store = project.store
    rule_set = project.rules()
    _require_journey_scope(project, rule_set, name)
    resolved = store.resolve_person_id(person_id)
    store.require_person_in_scope(resolved)
    click.echo(explain_person(store, rule_set, name, resolved, tz=project.timezone))


def _require_journey_scope(project, rule_set, name: str) -> None:
    """`journeys explain` reads a journey's path for one person: a scoped caller, only in journeys whose
    declared scope lies inside their own (the person must be theirs too)."""
    from motorcade.access.actions import READ, rule_scope

    journey = rule_set.journeys.get(name)
    if journey is not None:
        project.access.require(READ, f"read journey {name}", rule_scope(journey))


COMMANDS = [journeys]
