"""Explain, split and stats: reading and repairing the identity graph (the CLI calls these)."""

from __future__ import annotations

from collections import deque
from typing import Any, Sequence

import attrs

from ..errors import MotorcadeError
from .guards import DEFAULT_PRIORITY
from ..masking import mask_free_text, mask_identifier
from ..sources.clean import CleanError, clean_identifier, identifier_lookup_key


@attrs.frozen
class Explanation:
    """Why a person's records are one person."""

    person_id: int
    asked: str  # what the operator asked about
    merged_ids: tuple[tuple[int, str, str], ...]  # (old id, merged_at, reason) resolving to this person
    records: tuple[dict[str, Any], ...]  # the person's identity records
    identifiers: tuple[dict[str, Any], ...]  # distinct identifiers with flags
    chain: tuple[tuple[int, int, dict[str, Any]], ...]  # (from record, to record, link): a spanning tree
    not_linking: tuple[dict[str, Any], ...]  # identifiers on the records that do not link (flagged/removed)
    splits: tuple[dict[str, Any], ...] = ()  # logged splits of this person or leaving it as a piece


def find_person(store, query: str) -> tuple[int, str]:
    """A person id from ``42``, ``phone:13812345678``, ``crm_id:C00000042`` or a bare identifier value."""
    text = query.strip()
    if text.isdigit() and len(text) < 11:
        pid = store.resolve_person_id(int(text))
        if store.get_person(pid) is None:
            raise MotorcadeError(f"no person with id {text}", hint="pass an id from `motorcade status` or an identifier")
        return pid, f"person {text}"
    type_, sep, value = text.partition(":")
    candidates = []
    if sep and type_ and not type_.startswith("+"):
        raw = value
        value = _cleaned(type_, value)
        candidates = store.find_identifier(type_, value)
        asked = [(type_, raw)]
    else:
        for t in ("phone", "email"):
            candidates += store.find_identifier(t, _cleaned(t, text))
        candidates += [c for c in store.find_identifier(None, text) if c not in candidates]
        asked = [("phone", text), ("email", text), (None, text)]
    if not candidates:
        _explain_rejected(store, asked)
        raise MotorcadeError(f"no identifier {mask_identifier(type_ if sep else '', value if sep else text)} is known",
                             hint="use TYPE:VALUE, e.g. phone:13812345678 or crm_id:C00000042")
    iid, t, v, pid, flag = candidates[0]
    if pid is None:
        records = store.records_of_identifier(iid)
        if not records:
            raise MotorcadeError(f"{t} {mask_identifier(t, v)} belongs to nobody ({flag or 'no links'})")
        if flag:
            people = sorted({r[3] for r in records})
            raise MotorcadeError(
                f"{t} {mask_identifier(t, v)} is flagged ({flag}) and links nobody; it appears on "
                f"{len(records)} record(s) of {len(people)} people",
                hint=f"explain one of them: motorcade identity explain {people[0]}",
            )
        pid = records[0][3]
    return store.resolve_person_id(pid), f"{t} {mask_identifier(t, v)}"


def _cleaned(type_: str, value: str) -> str:
    """``value`` as ingest would have stored it (numbers of unknown ranges too: a project may accept
    them), else as given."""
    for lenient in (False, True):
        try:
            return clean_identifier(type_, value, accept_unknown_ranges=lenient)
        except CleanError:
            pass
    return value.strip()


def _explain_rejected(store, asked: list[tuple[str | None, str]]) -> None:
    """Raise a MotorcadeError saying why ingest rejected the identifier asked about, if it did."""
    for type_, raw in asked:
        rows = store.list_rejected_identifiers(type_=type_, lookup=identifier_lookup_key(type_ or "", raw))
        if rows:
            r = min(rows, key=lambda x: x["first_seen"])
            sources = sorted({x["source"] for x in rows})
            raise MotorcadeError(
                f"{r['type']} {mask_identifier(r['type'], r['value'])} was rejected when source(s) "
                f"{', '.join(sources)} were ingested (first seen {r['first_seen']}): {r['reason']}",
                hint="it links nobody; `motorcade identity rejected` lists every rejected identifier",
            )


def explain(store, query: str) -> Explanation:
    if store.access is not None and not store.access.is_group:
        # a scoped caller gets one answer for "unknown", "nobody's" and "another store's": no probing
        shown = mask_free_text(query.strip())
        try:
            pid, asked = find_person(store, query)
        except MotorcadeError:
            raise store.scope_denial(shown) from None
        store.require_person_in_scope(pid, shown)
    else:
        pid, asked = find_person(store, query)
    records = store.identity_records_of(pid)
    links = store.identity_links_of(pid)
    by_record: dict[int, list[dict]] = {}
    by_identifier: dict[int, list[dict]] = {}
    for link in links:
        by_record.setdefault(link["record_id"], []).append(link)
        if not link["flagged"] and link["removed_at"] is None:
            by_identifier.setdefault(link["identifier_id"], []).append(link)
    # breadth-first from the oldest record: each other record is reached through one shared identifier
    chain = []
    if records:
        seen = {records[0]["id"]}
        queue = deque([records[0]["id"]])
        while queue:
            rid = queue.popleft()
            for link in by_record.get(rid, ()):
                for other in by_identifier.get(link["identifier_id"], ()):
                    if other["record_id"] not in seen:
                        seen.add(other["record_id"])
                        queue.append(other["record_id"])
                        chain.append((rid, other["record_id"], other))
    identifiers = {}
    for link in links:
        identifiers.setdefault(link["identifier_id"], {
            "type": link["type"], "value": link["value"], "flagged": link["flagged"],
            "flag_reason": link["flag_reason"], "records": 0})["records"] += 1
    not_linking = tuple(l for l in links if l["flagged"] or l["removed_at"] is not None)
    return Explanation(pid, asked, tuple(store.person_merges_into(pid)), tuple(records),
                       tuple(identifiers.values()), tuple(chain), not_linking, tuple(store.list_identity_splits(pid)))


def split(store, person_id: int, *, identifier: str | None = None, link_id: int | None = None,
          reason: str = "split by operator", priority: Sequence[str] = DEFAULT_PRIORITY) -> list[int]:
    """Undo a bad merge: flag an identifier (it never links again) or remove one link, then re-derive.

    Returns the ids of the resulting people. Events, ownerships, relations follow at once; each
    person's golden record is rebuilt from its own records (``priority``: ``[identity] priority``).
    The split is logged with its reason (``identity_splits``; :func:`unsplit` undoes it).
    """
    pid = store.resolve_person_id(person_id)
    if store.get_person(pid) is None:
        raise MotorcadeError(f"no person with id {person_id}",
                             hint="pass an id from `motorcade identity explain TYPE:VALUE` or `motorcade status`")
    with store.transaction():
        flagged_id = None
        if link_id is not None:
            owner = store.remove_identity_link(link_id)
            if owner is None or store.resolve_person_id(owner) != pid:
                raise MotorcadeError(f"link {link_id} does not belong to person {person_id}",
                                     hint=f"see the links with `motorcade identity explain {person_id}`")
        elif identifier is not None:
            type_, sep, value = identifier.partition(":")
            if not sep:
                raise MotorcadeError("give the identifier as TYPE:VALUE, e.g. phone:13812345678")
            try:
                value = clean_identifier(type_, value)
            except CleanError as exc:
                raise MotorcadeError(f"identifier {identifier!r}: {exc}") from None
            found = store.find_identifier(type_, value)
            if not found or found[0][3] is None or store.resolve_person_id(found[0][3]) != pid:
                raise MotorcadeError(f"{type_} {mask_identifier(type_, value)} does not link person {person_id}",
                                     hint=f"see its identifiers with `motorcade identity explain {person_id}`")
            flagged_id = found[0][0]
            store.flag_identifier(flagged_id, reason)
        else:
            raise MotorcadeError("say what to split off: --identifier TYPE:VALUE or --link LINK_ID")
        people = store.rederive_person(pid, reason=reason)
        store.record_identity_split(pid, identifier_id=flagged_id, link_id=link_id, reason=reason, people=people)
        store.recompute_golden_records(people, priority)
        store.settle_identity()
    return people


def unsplit(store, split_id: int, *, reason: str = "split undone by operator",
            priority: Sequence[str] = DEFAULT_PRIORITY) -> int | None:
    """Undo a logged split: restore the link it removed (or let the identifier it flagged link again)
    and join the people that link joins. Recorded in the split log and, for each id merged back, in the
    merge log (``split #N undone: REASON``). Returns the person the identifier belongs to again (None
    if it links nobody, e.g. flagged since for another reason)."""
    found = store.list_identity_splits(split_id=split_id)
    if not found:
        raise MotorcadeError(f"no split #{split_id}", hint="see the splits with `motorcade identity splits`")
    logged = found[0]
    if logged["undone_at"] is not None:
        raise MotorcadeError(f"split #{split_id} was already undone at {logged['undone_at']}")
    why = f"split #{split_id} undone: {reason}"
    with store.transaction():
        if logged["link_id"] is not None:
            restored = store.restore_identity_link(logged["link_id"])
            if restored is None:
                raise MotorcadeError(f"the link {logged['link_id']} split #{split_id} removed no longer exists")
            identifier_id = restored[1]
        else:
            identifier_id = logged["identifier_id"]
            exists, flag_reason = store.identifier_flag_reason(identifier_id)
            if exists and flag_reason != logged["reason"]:
                raise MotorcadeError(
                    f"{logged['type']} {mask_identifier(logged['type'], logged['value'])} was flagged again since "
                    f"split #{split_id} ({flag_reason or 'not flagged'}); not undone",
                    hint="see `motorcade identity flagged`")
            store.unflag_identifier(identifier_id)
        person = store.join_people_of_identifier(identifier_id, reason=why)
        store.mark_identity_split_undone(split_id, reason=reason)
        if person is not None:
            store.recompute_golden_records([person], priority)
        store.settle_identity()
    return person
