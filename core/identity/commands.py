"""CLI commands of the identity stage (added to the root CLI by motorcade.cli): explain, split, stats."""

from __future__ import annotations

import json

import click

from ..cli_types import PERSON_ID, ROW_ID, SQLITE_INTEGER_MAX
from ..masking import mask_identifier, mask_id


def _store():
    return click.get_current_context().obj.project.store


@click.group()
def identity() -> None:
    """One-ID: why records became one person, undoing bad merges (and splits), flagged and rejected identifiers."""


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
            "splits": [{**s, "value": mask_identifier(s["type"], s["value"]) if s["value"] is not None else None}
                       for s in e.splits],
            "not_linking": [{"type": l["type"], "value": mask_identifier(l["type"], l["value"]),
                             "why": l["flag_reason"] or "link removed", "link_id": l["link_id"]} for l in e.not_linking],
        }, ensure_ascii=False))
        return
    click.echo(f"Person {e.person_id} (asked: {e.asked}): {len(e.records)} record(s), "
               f"{len(e.identifiers)} identifier(s)")
    for old, at, reason in e.merged_ids:
        click.echo(f"  id {old} merged into {e.person_id} at {at}: {reason}")
    for s in e.splits:
        value = mask_identifier(s["type"], s["value"]) if s["value"] is not None else None
        click.echo("  split " + _split_line({**s, "value": value}))
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
@click.option("--link", "link_id", type=ROW_ID, help="One link id (see `identity explain`) to remove.")
@click.option("--reason", default="split by operator", show_default=True, help="Recorded in the merge log.")
def split_cmd(person_id: int, identifier: str | None, link_id: int | None, reason: str) -> None:
    """Undo a bad merge of PERSON_ID: remove the offending link and re-derive the people."""
    from .explain import split
    from .guards import IdentityGuards

    if identifier is None and link_id is None:  # a missing argument: usage error (exit 2)
        raise click.UsageError("say what to split off: --identifier TYPE:VALUE or --link LINK_ID")
    project = click.get_current_context().obj.project
    guards = IdentityGuards.from_config(project.config.identity)
    people = split(project.store, person_id, identifier=identifier, link_id=link_id, reason=reason,
                   priority=guards.priority)
    number = project.store.list_identity_splits(people[0])[-1]["id"]
    if len(people) == 1:
        click.echo(f"Split #{number}: person {people[0]} stays one person: the remaining identifiers still link "
                   f"the records.")
    else:
        click.echo(f"Split #{number}: person {person_id} is now {len(people)} people: "
                   f"{', '.join(map(str, sorted(people)))}. Events, cars and relations moved with their records; "
                   f"recompute tags.")
    click.echo(f"Undo with `motorcade identity unsplit {number}`.")


@identity.command("unsplit")
@click.argument("split_id", type=ROW_ID)
@click.option("--reason", default="split undone by operator", show_default=True, help="Recorded in the merge log.")
def unsplit_cmd(split_id: int, reason: str) -> None:
    """Undo split SPLIT_ID (see `identity splits`): restore its link or identifier and join the people again."""
    from .explain import unsplit
    from .guards import IdentityGuards

    project = click.get_current_context().obj.project
    guards = IdentityGuards.from_config(project.config.identity)
    person = unsplit(project.store, split_id, reason=reason, priority=guards.priority)
    if person is None:
        click.echo(f"Split #{split_id} undone; its identifier links nobody (flagged, or on no record).")
    else:
        click.echo(f"Split #{split_id} undone: its records are person {person} again. Recompute tags.")


@identity.command("splits")
@click.option("--person", "person_id", type=PERSON_ID, help="Only splits of this person (or leaving it as a piece).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (values masked unless MOTORCADE_SHOW_PII=1).")
def splits_cmd(person_id: int | None, as_json: bool) -> None:
    """The split log: each split with its reason, what it removed, the people it left, and its undo."""
    store = _store()
    rows = store.list_identity_splits(store.resolve_person_id(person_id) if person_id is not None else None)
    for r in rows:
        r["value"] = mask_identifier(r["type"], r["value"]) if r["value"] is not None else None
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        click.echo("No splits.")
        return
    for r in rows:
        click.echo(_split_line(r))


def _split_line(r: dict) -> str:
    what = f"link {r['link_id']}" if r["link_id"] is not None else "identifier"
    line = (f"#{r['id']} {r['split_at']}: person {r['person_id']} -> {', '.join(map(str, r['people']))}; "
            f"{what} {r['type']} {r['value']}: {r['reason']}")
    if r["undone_at"]:
        line += f"  [undone {r['undone_at']}: {r['undo_reason']}]"
    return line


_LIMIT = click.option("--limit", default=50, show_default=True, type=click.IntRange(0, SQLITE_INTEGER_MAX),
                      help="At most this many (0 = all).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON (values masked unless MOTORCADE_SHOW_PII=1).")


def _list_identifiers(rows: list[dict], as_json: bool, empty: str, line) -> None:
    """Print identifier rows with their values masked: JSON, ``empty`` when there are none, else ``line(row)``."""
    for r in rows:
        r["value"] = mask_identifier(r["type"], r["value"])
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
    elif not rows:
        click.echo(empty)
    else:
        for r in rows:
            click.echo(line(r))


@identity.command("flagged")
@click.option("--type", "type_", help="Only identifiers of this type (phone, crm_id, ...).")
@_LIMIT
@_JSON
def flagged_cmd(type_: str | None, limit: int, as_json: bool) -> None:
    """Identifiers that link nobody (junk values, over-shared, split off, advisors' phones), with the reason."""
    _list_identifiers(_store().list_flagged_identifiers(type_=type_, limit=limit or None), as_json,
                      "No flagged identifiers.",
                      lambda r: f"  {r['type']:<18} {r['value']:<32} on {r['records']:>6,} record(s): {r['reason']}")


@identity.command("rejected")
@click.option("--source", help="Only this source.")
@click.option("--type", "type_", help="Only identifiers of this type (phone, email, ...).")
@_LIMIT
@_JSON
def rejected_cmd(source: str | None, type_: str | None, limit: int, as_json: bool) -> None:
    """Identifier values that did not clean at ingest (and so link nobody), with the reason, newest first."""
    _list_identifiers(_store().list_rejected_identifiers(source=source, type_=type_, limit=limit or None), as_json,
                      "No rejected identifiers.",
                      lambda r: f"  {r['source']:<14} {r['type']:<14} {r['value']:<24} {r['reason']}  "
                                f"(last seen {r['last_seen']})")


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
        click.echo("  (all of them: `motorcade identity flagged`)")
    if stats["rejected_by_reason"]:
        click.echo("rejected identifier values (did not clean; `motorcade identity rejected`):")
        for reason, n in stats["rejected_by_reason"].items():
            click.echo(f"  {n:>6,}  {reason}")


COMMANDS: list = [identity]
