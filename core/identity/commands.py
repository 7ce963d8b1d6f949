"""CLI commands of the identity stage (added to the root CLI by motorcade.cli): explain, split, stats."""

from __future__ import annotations

import json

import click

from ..cli_types import PERSON_ID

from ..masking import mask_identifier, mask_id


def _store():
    return click.get_current_context().obj.project.store


@click.group()
def identity() -> None:
    """One-ID: why records became one person, undoing bad merges, graph statistics."""


@identity.command("explain")
@click.argument("query")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (values masked unless MOTORCADE_SHOW_PII=1).")
def explain_cmd(query: str, as_json: bool) -> None:
    """Show a person's identifiers and the chain of shared identifiers that linked their records.

    QUERY is a person id, TYPE:VALUE (phone:13812345678, crm_id:C00000042) or a bare phone/e-mail/id.
    """
    from .explain import explain

    e = explain(_store(), query)
    records = {r["id"]: r for r in e.records}

    def label(rid: int) -> str:
        r = records.get(rid)
        if r is None:
            return f"record {rid}"
        if r["source_key"].startswith("ids:"):  # identifiers seen together on events
            return f"{r['source']}:seen-together#{rid}"
        return f"{r['source']}:{mask_id(r['source_key'])}"

    if as_json:
        click.echo(json.dumps({
            "person_id": e.person_id,
            "merged_ids": [{"old_id": o, "merged_at": at, "reason": r} for o, at, r in e.merged_ids],
            "records": [{"id": r["id"], "source": r["source"], "key": mask_id(r["source_key"])} for r in e.records],
            "identifiers": [{**i, "value": mask_identifier(i["type"], i["value"])} for i in e.identifiers],
            "chain": [{"from": label(a), "to": label(b), "via": l["type"],
                       "value": mask_identifier(l["type"], l["value"]), "link_id": l["link_id"], "rule": l["rule"],
                       "created_at": l["created_at"]} for a, b, l in e.chain],
            "not_linking": [{"type": l["type"], "value": mask_identifier(l["type"], l["value"]),
                             "why": l["flag_reason"] or "link removed", "link_id": l["link_id"]} for l in e.not_linking],
        }, ensure_ascii=False))
        return
    click.echo(f"Person {e.person_id} (asked: {e.asked}): {len(e.records)} record(s), "
               f"{len(e.identifiers)} identifier(s)")
    for old, at, reason in e.merged_ids:
        click.echo(f"  id {old} merged into {e.person_id} at {at}: {reason}")
    click.echo("Identifiers:")
    for i in sorted(e.identifiers, key=lambda i: (i["type"], i["value"])):
        flag = f"  [does not link: {i['flag_reason']}]" if i["flagged"] else ""
        click.echo(f"  {i['type']:<18} {mask_identifier(i['type'], i['value']):<32} on {i['records']} record(s){flag}")
    click.echo("Records:")
    for r in e.records:
        click.echo(f"  #{r['id']} {label(r['id'])} (first seen {r['first_seen']})")
    if e.chain:
        click.echo("Why they are one person (each record reached through a shared identifier):")
        for a, b, l in e.chain:
            click.echo(f"  {label(a)} -- {l['type']} {mask_identifier(l['type'], l['value'])} --> {label(b)}"
                       f"   [link {l['link_id']}, {l['rule']}, {l['created_at']}]")
    if e.not_linking:
        click.echo("On these records but not linking:")
        for l in e.not_linking:
            click.echo(f"  {label(l['record_id'])}: {l['type']} {mask_identifier(l['type'], l['value'])} "
                       f"({l['flag_reason'] or 'link removed ' + str(l['removed_at'])})")


@identity.command("split")
@click.argument("person_id", type=PERSON_ID)
@click.option("--identifier", help="TYPE:VALUE that wrongly joined the records; it is flagged and never links again.")
@click.option("--link", "link_id", type=int, help="One link id (see `identity explain`) to remove.")
@click.option("--reason", default="split by operator", show_default=True, help="Recorded in the merge log.")
def split_cmd(person_id: int, identifier: str | None, link_id: int | None, reason: str) -> None:
    """Undo a bad merge of PERSON_ID: remove the offending link and re-derive the people."""
    from .explain import split
    from .guards import IdentityGuards

    project = click.get_current_context().obj.project
    identity_table = project.config.identity
    guards = IdentityGuards.from_config(identity_table, region=identity_table.get("phone_region", "CN"))
    people = split(project.store, person_id, identifier=identifier, link_id=link_id, reason=reason,
                   priority=guards.priority)
    if len(people) == 1:
        click.echo(f"Person {people[0]} stays one person: the remaining identifiers still link the records.")
    else:
        click.echo(f"Person {person_id} is now {len(people)} people: {', '.join(map(str, sorted(people)))}. "
                   f"Events, cars and relations moved with their records; recompute tags.")


@identity.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats_cmd(as_json: bool) -> None:
    """Merge counts, identifiers by type, and flagged identifiers (masked)."""
    stats = _store().identity_stats()
    for f in stats["flagged"]:
        f["value"] = mask_identifier(f["type"], f["value"])
    if as_json:
        click.echo(json.dumps(stats, ensure_ascii=False))
        return
    click.echo(f"people {stats['people']:,}  records {stats['records']:,}  identifiers {stats['identifiers']:,}  "
               f"links {stats['links']:,} (removed {stats['removed_links']:,})")
    click.echo(f"merged ids {stats['merged_ids']:,}; people stitched from several records "
               f"{stats['people_merged_from_several_records']:,}")
    click.echo("records by source: " + ", ".join(f"{k} {v:,}" for k, v in stats["records_by_source"].items()))
    click.echo("identifiers by type: " + ", ".join(f"{k} {v:,}" for k, v in stats["identifiers_by_type"].items()))
    click.echo("people by number of sources: " + ", ".join(f"{k}: {v:,}" for k, v in stats["people_by_source_count"].items()))
    if stats["flagged_by_reason"]:
        click.echo("flagged identifiers (never link):")
        for reason, n in stats["flagged_by_reason"].items():
            click.echo(f"  {n:>6,}  {reason}")
        for f in stats["flagged"][:10]:
            click.echo(f"    {f['type']} {f['value']} on {f['records']} record(s): {f['reason']}")


COMMANDS: list = [identity]
