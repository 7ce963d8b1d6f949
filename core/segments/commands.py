"""CLI commands of the segments stage (added to the root CLI by motorcade.cli):

    motorcade segments compute [NAMES] [--as-of T]
    motorcade explain SEGMENT [--person ID] [--as-of T]
    motorcade segments members NAME [--as-of T] [--json|--csv]
    motorcade diff [--as-of T] [--json] [--exit-code]
"""

from __future__ import annotations

import json

import click

from ..as_of import as_of_option
from ..cli_types import COUNT, PERSON_ID


def _project():
    return click.get_current_context().find_root().obj.project


_AS_OF = as_of_option()


@click.group(name="segments")
def segments_group() -> None:
    """Compute segments (audiences) from the rules and store their members."""


@segments_group.command(name="compute")
@click.argument("names", nargs=-1)
@_AS_OF
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def compute_command(names: tuple[str, ...], as_of: str | None, as_json: bool) -> None:
    """Compute every segment (or NAMES) in dependency order; print sizes and who entered / left."""
    from .compute import compute_segments

    results = compute_segments(_project(), list(names) or None, as_of, progress=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps([
            {"segment": r.name, "size": r.size, "entered": r.entered, "left": r.left, "run_id": r.run_id,
             "revision": r.revision, "as_of": r.as_of.isoformat(), "seconds": round(r.seconds, 3), "plan": r.plan}
            for r in results], ensure_ascii=False, indent=2))
        return
    if not results:
        click.echo("no segments in the rules")
    for r in results:
        click.echo(f"{r.name}: {r.size:,} members (+{r.entered:,} entered, -{r.left:,} left) "
                   f"in {r.seconds:.2f}s")
        click.echo(f"  plan: {r.plan}")
    if results:
        click.echo(f"as of {results[0].as_of.isoformat()}, rules revision {results[0].revision[:12]}")


@segments_group.command(name="members")
@click.argument("segment")
@_AS_OF
@click.option("--json", "fmt", flag_value="json", help="Print a JSON document.")
@click.option("--csv", "fmt", flag_value="csv", help="Print CSV (a header row, then one row per member).")
@click.option("--limit", type=COUNT, help="At most this many members (lowest ids first).")
def members_command(segment: str, as_of: str | None, fmt: str | None, limit: int | None) -> None:
    """Export a segment's members: those stored by its last computation, or with --as-of the members at
    that instant (computed, not stored). Names and phones are masked unless MOTORCADE_SHOW_PII=1."""
    import csv
    import sys

    from .members import COLUMNS, segment_members

    result = segment_members(_project(), segment, as_of, limit=limit)
    if fmt == "json":
        click.echo(json.dumps({"segment": result.segment, "as_of": result.as_of, "source": result.source,
                               "revision": result.revision, "count": len(result.rows), "members": result.rows},
                              ensure_ascii=False, indent=2))
        return
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(result.rows)
        return
    what = "stored by the last computation" if result.source == "stored" else "computed now, not stored"
    click.echo(f"{result.segment}: {len(result.rows):,} members at {result.as_of} ({what}, rules revision "
               f"{result.revision[:12]})")
    for row in result.rows:
        click.echo(f"  {row['person_id']:<12} {row['name'] or '-':<10} {row['phone'] or '-':<16} "
                   f"{row['entered_at'] or ''}")


@click.command(name="explain")
@click.argument("segment")
@click.option("--person", "person_id", type=PERSON_ID, help="Explain why this person is (not) a member.")
@_AS_OF
def explain_command(segment: str, person_id: int | None, as_of: str | None) -> None:
    """Show a segment's SQL, query plan, size and sample members — or, with --person, the
    condition tree for one person with the values seen and pass / fail per condition.

    SEGMENT may also name a recommendation (`recommend NAME { ... }`): its SQL and the people per item, or
    with --person the person's ranked items with the rule that chose each."""
    from .explain import explain_person_in_segment, explain_segment, shown

    project = _project()
    rule_set = project.rules()
    if segment not in rule_set.segments and segment in rule_set.recommendations:
        _explain_recommendation(project, segment, person_id, as_of)
        return
    if person_id is not None:
        result = explain_person_in_segment(project, segment, person_id, as_of)
        verdict = "IS a member" if result.tree.result else "is NOT a member"
        click.echo(f"person {shown(result.person_id)} {verdict} of {segment} at {result.as_of.isoformat()}")
        click.echo(result.tree.render())
        if result.sql_member != bool(result.tree.result):
            click.secho("warning: the compiled SQL disagrees with the reference evaluator for this person; "
                        "please report it with this output", fg="red", err=True)
        if result.stored:
            click.echo(f"stored membership: entered {result.stored['entered_at']}, "
                       f"last computed {result.stored['computed_at']}")
        else:
            click.echo("stored membership: not a member at the last computation (or never computed)")
        return
    result = explain_segment(project, segment, as_of)
    click.echo(f"segment {segment} at {result.as_of.isoformat()}")
    click.echo(f"plan: {result.plan}")
    if result.sql:
        click.echo("\nSQL:")
        click.echo(result.sql)
        click.echo("params: " + json.dumps(result.params, ensure_ascii=False, default=str))
        click.echo("\nquery plan:")
        for line in result.query_plan:
            click.echo("  " + line)
    click.echo(f"\naudience: {result.size:,} people in {result.seconds:.3f}s")
    if result.sample:
        click.echo("sample: " + ", ".join(result.sample))


def _explain_recommendation(project, name: str, person_id: int | None, as_of: str | None) -> None:
    from .explain import explain_person_recommendation, explain_recommendation_summary, shown

    if person_id is not None:
        result = explain_person_recommendation(project, name, person_id, as_of)
        items = [f"{r.item} (rank {r.rank}, rule {r.rule}, line {r.line}" + (f", car {r.vin})" if r.vin else ")")
                 for r in result.ranked]
        click.echo(f"person {shown(result.person_id)}: recommendation {name} at {result.as_of.isoformat()}: "
                   + ("; ".join(items) if items else "nothing"))
        click.echo(result.tree.render())
        if not result.sql_agrees:
            click.secho("warning: the compiled SQL disagrees with the reference evaluator for this person; "
                        "please report it with this output", fg="red", err=True)
        return
    result = explain_recommendation_summary(project, name, as_of)
    click.echo(f"recommendation {name} at {result.as_of.isoformat()}")
    click.echo("\nSQL:")
    click.echo(result.sql)
    click.echo(f"\n{result.people:,} people get at least one item (in {result.seconds:.3f}s)")
    for item, people, first in result.by_item:
        click.echo(f"  {item:<24} {people:>8,} people, first for {first:,}")


@click.command(name="diff")
@_AS_OF
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.option("--exit-code", "exit_code", is_flag=True,
              help="Exit 1 when a segment would change (like `git diff --exit-code`), 0 when none would.")
def diff_command(as_of: str | None, as_json: bool, exit_code: bool) -> None:
    """Compare the working-tree rules with the last computed revision: per segment, who the change adds
    and removes (same data, same as-of)."""
    import attrs

    from .compute import parse_as_of
    from .diff import diff_segments

    project = _project()
    moment = parse_as_of(as_of, project.timezone)
    diffs = diff_segments(project, moment)
    changed = [d for d in diffs if d.status != "unchanged"]
    if as_json:
        click.echo(json.dumps({"as_of": moment.isoformat(), "changed": len(changed),
                               "segments": [attrs.asdict(d) for d in diffs]}, ensure_ascii=False, indent=2))
    else:
        _print_diffs(diffs, moment)
    if exit_code and changed:
        raise click.exceptions.Exit(1)


def _print_diffs(diffs, moment) -> None:
    click.echo(f"rules in the working tree against the last computed revision, both evaluated as of "
               f"{moment.isoformat()}")
    if not diffs:
        click.echo("no segments")
    for d in diffs:
        if d.status == "unchanged":
            click.echo(f"{d.segment}: unchanged")
            continue
        sizes = f"{d.old_size if d.old_size is not None else '-'} -> {d.new_size if d.new_size is not None else '-'}"
        click.echo(f"{d.segment}: {d.status}, {sizes} (+{d.added:,} / -{d.removed:,})")
        if d.added_sample:
            click.echo("  adds e.g. " + ", ".join(d.added_sample))
        if d.removed_sample:
            click.echo("  removes e.g. " + ", ".join(d.removed_sample))


COMMANDS = [segments_group, explain_command, diff_command]
