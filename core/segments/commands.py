"""CLI commands of the segments stage (added to the root CLI by motorcade.cli):

    motorcade segments compute [NAMES] [--as-of T]
    motorcade explain SEGMENT [--person ID] [--as-of T]
    motorcade diff [--as-of T]
"""

from __future__ import annotations

import json

import click

from motorcade.cli_types import ROW_ID


def _project():
    return click.get_current_context().find_root().obj.project


_AS_OF = click.option("--as-of", "as_of",
                      help="The instant 'now' means (ISO; naive = project time zone; default: now).")


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


@click.command(name="explain")
@click.argument("segment")
@click.option("--person", "person_id", type=ROW_ID, help="Explain why this person is (not) a member.")
@_AS_OF
def explain_command(segment: str, person_id: int | None, as_of: str | None) -> None:
    """Show a segment's SQL, query plan, size and masked sample members — or, with --person, the
    condition tree for one person with the values seen and pass / fail per condition."""
    from .explain import explain_person_in_segment, explain_segment, masked

    project = _project()
    if person_id is not None:
        result = explain_person_in_segment(project, segment, person_id, as_of)
        verdict = "IS a member" if result.tree.result else "is NOT a member"
        click.echo(f"person {masked(result.person_id)} {verdict} of {segment} at {result.as_of.isoformat()}")
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


@click.command(name="diff")
@_AS_OF
def diff_command(as_of: str | None) -> None:
    """Compare the working-tree rules with the last computed revision: per segment, who the change adds
    and removes (same data, same as-of)."""
    from .diff import diff_segments

    diffs = diff_segments(_project(), as_of)
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
