"""A segment's members for export: the stored membership of its last computation, or the members at
another as-of computed on the spot. Personal data is masked unless MOTORCADE_SHOW_PII=1."""

from __future__ import annotations

import datetime as dt
import difflib
from typing import Any

import attrs

from motorcade.errors import MotorcadeError
from motorcade.masking import mask_name, mask_phone

from .compute import evaluate_members, parse_as_of

COLUMNS = ("person_id", "name", "phone", "entered_at")


@attrs.frozen
class SegmentMembers:
    segment: str
    as_of: str  # the as-of the membership holds for (ISO)
    source: str  # "stored" (the last `segments compute`) or "computed" (at --as-of, not stored)
    revision: str  # rules revision of the membership
    rows: list[dict[str, Any]]  # COLUMNS, masked unless PII is visible


def segment_members(project, segment: str, as_of: str | dt.datetime | None = None, *,
                    limit: int | None = None) -> SegmentMembers:
    """Members of ``segment``: stored ones (``as_of`` None) or computed at ``as_of``."""
    store = project.store
    rule_set = project.rules()
    if segment not in rule_set.segments and segment not in store.computed_segments():
        known = sorted(set(rule_set.segments) | set(store.computed_segments()))
        close = difflib.get_close_matches(segment, known, n=1)
        raise MotorcadeError(f"no segment named {segment!r}",
                             hint=f"did you mean {close[0]!r}?" if close else
                             f"segments: {', '.join(known) or 'none'}")
    entered: dict[int, str] = {}
    if as_of is None:
        run = store.last_segment_run(segment)
        if run is None:
            raise MotorcadeError(f"segment {segment!r} has not been computed yet",
                                 hint=f"run `motorcade segments compute {segment}`, or pass --as-of to compute "
                                      "its members now without storing them")
        entered = dict(store.segment_member_rows(segment, limit=limit))
        ids = list(entered)
        when = dt.datetime.fromisoformat(str(run["as_of"])).astimezone(project.timezone).isoformat()
        source, revision = "stored", str(run["revision"])
    else:
        if segment not in rule_set.segments:
            raise MotorcadeError(f"segment {segment!r} is no longer in the rules",
                                 hint="leave out --as-of to export its last stored members")
        moment = parse_as_of(as_of, project.timezone)
        ids = evaluate_members(store, rule_set, segment, moment, project.timezone)[0]
        when, source, revision = moment.isoformat(), "computed", rule_set.revision
    ids = ids[:limit] if limit else ids
    contacts = store.contact_summaries(ids)
    rows = [{"person_id": p, "name": mask_name(contacts[p]["name"] or ""),
             "phone": mask_phone(contacts[p]["phone"] or ""), "entered_at": entered.get(p)} for p in ids]
    getattr(project, "audit_affected", {}).update(segment=segment, members_exported=len(rows), source=source)
    return SegmentMembers(segment, when, source, revision, rows)
