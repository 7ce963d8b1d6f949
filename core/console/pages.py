"""What each console page shows, as plain data, read through the project's store with the caller set on it.

Nothing here filters people: the store narrows every people-reading function to ``project.access``'s scope
(``AccessMixin.person_scope_filter``), and each page first asks the same question a command does
(:func:`motorcade.access.actions.authorize_command`), so a page and its command always agree.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs

from motorcade.access.actions import authorize_command, rule_scope
from motorcade.access.roles import ACT, AUDIT, EXPORT, OPERATE, PUBLISH, READ
from motorcade.access.scope import Scope
from motorcade.errors import MotorcadeError


def may(project, permission: str, scope: Scope | None = None) -> bool:
    return project.access.allows(permission, scope)


def caller_summary(project) -> dict:
    access = project.access
    return {"user": access.user, "grants": [str(g) for g in access.grants], "group": access.is_group,
            "scope": str(access.scope(READ)), "operate": may(project, OPERATE, Scope.everyone()),
            "audit": may(project, AUDIT), "act": may(project, ACT)}


def overview(project) -> dict:
    """People, events, segments, sends (the caller's own), the last segment runs and what failed."""
    authorize_command(project.access, "status")
    store = project.store
    counts = store.status_counts()
    runs = []
    for name in store.computed_segments():
        run = store.last_segment_run(name)
        if run is not None:
            runs.append(run)
    runs.sort(key=lambda r: str(r["computed_at"]), reverse=True)
    sends = {}
    for row in store.send_stats():
        sends[row["status"]] = sends.get(row["status"], 0) + row["count"]
    failures = {"dead sends": sends.get("dead", 0)}
    if may(project, OPERATE, Scope.everyone()):
        failures["unresolved quarantined rows"] = counts.get("quarantined", 0)
    audit = store.audit_entries(limit=8) if may(project, AUDIT) else []
    return {"counts": counts, "runs": runs[:10], "sends": sends, "failures": failures, "audit": audit}


def segment_list(project) -> list[dict]:
    authorize_command(project.access, "explain")
    rule_set = project.rules()
    store = project.store
    out = []
    for name in sorted(set(rule_set.segments) | set(store.computed_segments())):
        segment = rule_set.segments.get(name)
        scope = rule_scope(segment) if segment is not None else None
        run = store.last_segment_run(name)
        out.append({"name": name, "title": getattr(segment, "title", None) or "",
                    "scope": str(scope) if scope else "-", "size": run["size"] if run else None,
                    "computed_at": run["computed_at"] if run else None,
                    "editable": segment is not None and may(project, PUBLISH, scope)})
    return out


def find_segment_file(rule_set, name: str):
    """The parsed file that defines segment ``name`` (KeyError when none does)."""
    segment = rule_set.segments[name]
    rule_file = rule_set.file_of(segment)
    if rule_file is None:
        raise KeyError(name)
    return segment, rule_file


def segment_detail(project, name: str, *, history: int = 20) -> dict:
    authorize_command(project.access, "explain")
    rule_set = project.rules()
    store = project.store
    if name not in rule_set.segments and name not in store.computed_segments():
        from motorcade.dsl.errors import did_you_mean

        raise MotorcadeError(f"no segment named {name!r}", did_you_mean(name, rule_set.segments))
    segment = rule_set.segments.get(name)
    rule_text, filename, scope = None, None, None
    if segment is not None:
        _, rule_file = find_segment_file(rule_set, name)
        lines = rule_file.source.split("\n")
        end = _rule_end(lines, segment.line - 1)
        rule_text, filename, scope = "\n".join(lines[segment.line - 1:end]), rule_file.filename, rule_scope(segment)
    runs = list(reversed(store.segment_runs(name, limit=history)))
    members = None
    if runs:
        from motorcade.segments.members import segment_members

        members = segment_members(project, name, limit=50).rows
        project.audit_affected.clear()  # showing 50 masked rows is not an export
    return {"name": name, "title": getattr(segment, "title", None) or "", "rule": rule_text, "file": filename,
            "scope": str(scope) if scope else "-", "runs": runs, "members": members,
            "export": may(project, EXPORT) and bool(runs),
            "editable": segment is not None and may(project, PUBLISH, scope)}


def _rule_end(lines: list[str], start: int) -> int:
    """The line after the closing brace of the rule starting at ``start`` (braces counted outside strings)."""
    depth, seen = 0, False
    for index in range(start, len(lines)):
        in_string = False
        for ch in lines[index]:
            if ch == '"':
                in_string = not in_string
            elif not in_string and ch == "#":
                break
            elif not in_string and ch == "{":
                depth, seen = depth + 1, True
            elif not in_string and ch == "}":
                depth -= 1
        if seen and depth <= 0:
            return index + 1
    return len(lines)


def export_members(project, name: str) -> list[dict]:
    """The stored members (masked) for a CSV download; needs ``export`` and is recorded in the audit log."""
    authorize_command(project.access, "segments members")
    from motorcade.segments.members import segment_members

    rows = segment_members(project, name).rows
    project.store.audit("console.segments.members", {"segment": name},
                        {**project.audit_affected, "outcome": "ok"})
    return rows


def explain_person(project, name: str, person_id: int) -> dict:
    authorize_command(project.access, "explain")
    from motorcade.segments.explain import explain_person_in_segment

    result = explain_person_in_segment(project, name, person_id)
    return {"person": person_id, "member": bool(result.tree.result), "tree": result.tree.render(),
            "as_of": result.as_of.isoformat(), "stored": result.stored}


# -- rule editing ---------------------------------------------------------------------------------------

@attrs.frozen
class EditResult:
    errors: list  # motorcade.dsl.errors.Diagnostic (errors and warnings)
    diffs: list  # motorcade.segments.diff.SegmentDiff of the segments that would change
    rule_set: object | None


def _edited_rule_set(project, filename: str, text: str):
    from motorcade.dsl.errors import DslError
    from motorcade.dsl.parser import parse_text
    from motorcade.dsl.rules import build_rule_set

    current = project.rules()
    files, errors = [], []
    for rule_file in current.files:
        try:
            files.append(parse_text(text, rule_file.filename) if rule_file.filename == filename else rule_file)
        except DslError as exc:
            errors.extend(exc.diagnostics)
    if errors:
        return current, None, errors
    try:
        return current, build_rule_set(files, "console-edit"), []
    except DslError as exc:
        return current, None, exc.diagnostics


def _require_edit_scope(project, current, edited, filename: str) -> None:
    """The caller must hold ``publish`` over every rule of the file, before and after the edit."""
    from motorcade.dsl.ast import RULE_KINDS

    for rule_set in (current, edited):
        if rule_set is None:
            continue
        for rule_file in rule_set.files:
            if rule_file.filename != filename:
                continue
            for rule in rule_file.rules:
                project.access.require(PUBLISH, f"edit {RULE_KINDS[type(rule)]} {rule.name} in "
                                                f"{Path(filename).name}", rule_scope(rule))


def check_edit(project, filename: str, text: str, *, with_diff: bool = False) -> EditResult:
    """`check` on the rules with ``filename`` replaced by ``text`` (nothing written); with ``with_diff``, what
    the change would add to and remove from each segment (as `motorcade diff`)."""
    authorize_command(project.access, "check")
    current, edited, errors = _edited_rule_set(project, filename, text)
    if not any(rf.filename == filename for rf in current.files):
        raise MotorcadeError(f"{filename} is not one of the project's rule files")
    _require_edit_scope(project, current, edited, filename)
    if edited is not None:
        from motorcade.dsl.check import check

        # the edited file's findings, and errors elsewhere (they would stop publishing too)
        errors = [d for d in check(edited, project.catalogue()) if d.file == filename or d.severity == "error"]
    diffs = []
    if with_diff and edited is not None and not any(d.severity == "error" for d in errors):
        from motorcade.segments.diff import diff_segments

        diffs = [d for d in diff_segments(project, rule_set=edited) if d.status != "unchanged"]
    return EditResult(errors, diffs, edited)


def publish_edit(project, filename: str, text: str) -> dict:
    """Check the edit, write the file, compute the file's segments (the caller's) and record it all in the
    audit log: who published which revision of which file and what the segments became."""
    authorize_command(project.access, "segments compute")
    result = check_edit(project, filename, text, with_diff=True)
    if any(d.severity == "error" for d in result.errors):
        return {"published": False, "errors": result.errors}
    path = Path(filename)
    before = path.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    try:
        from motorcade.segments.compute import compute_segments

        rule_set = project.rules(checked=True)
        names = [r.name for rf in rule_set.files if rf.filename == filename for r in rf.rules
                 if r.name in rule_set.segments and rule_set.segments[r.name] is r]
        results = compute_segments(project, names, rule_set=rule_set) if names else []
    except Exception:
        path.write_text(before, encoding="utf-8")  # nothing published: the file is as it was
        raise
    affected = {"revision": rule_set.revision, "file": path.name,
                "segments": {r.name: r.size for r in results},
                "changes": {d.segment: {"added": d.added, "removed": d.removed} for d in result.diffs}}
    entry = project.store.audit("console.publish", {"file": path.name}, {**affected, "outcome": "ok"})
    return {"published": True, "audit_id": entry, "revision": rule_set.revision, "results": results,
            "diffs": result.diffs}


# -- campaigns, tags, sends, quarantine ------------------------------------------------------------------

def campaigns(project) -> dict:
    authorize_command(project.access, "report uplift")
    from motorcade.feedback.funnel import compute_funnel, funnel_spec
    from motorcade.feedback.uplift import compute_uplift

    rule_set = project.rules()
    store = project.store
    stats: dict[tuple[str, str], dict[str, int]] = {}
    for row in store.send_stats():
        counts = stats.setdefault((row["origin_kind"], row["origin"]), {})
        counts[row["status"]] = counts.get(row["status"], 0) + row["count"]
    out = []
    for kind, rules in (("campaign", rule_set.campaigns), ("trigger", rule_set.triggers)):
        for name, rule in sorted(rules.items()):
            entry = {"kind": kind, "name": name, "title": getattr(rule, "title", None) or "",
                     "scope": str(rule_scope(rule)), "sends": stats.get((kind, name), {}), "uplift": None}
            entry["status"] = "sending" if entry["sends"] else "no sends yet"
            if kind == "campaign" and entry["sends"]:
                try:
                    report = compute_uplift(store, name, tz=project.timezone)
                except MotorcadeError:
                    report = None
                if report is not None and report.overall.treatment_n:
                    entry["uplift"] = report.overall
            out.append(entry)
    funnels = []
    for name in sorted(rule_set.funnels):
        report = compute_funnel(store, funnel_spec(rule_set, name), tz=project.timezone)
        funnels.append({"name": name, "title": report.spec.title or "",
                        "steps": [(s.name, s.people) for s in report.total.steps]})
    return {"rules": out, "funnels": funnels}


def journeys(project) -> list[dict]:
    """Each journey's graph with counts (people now at each step, edges taken) and its goal against the
    holdout, as `motorcade journeys status` gives them: over the caller's people only."""
    authorize_command(project.access, "journeys status")
    from markupsafe import Markup

    from motorcade.dsl.journey import build_flow
    from motorcade.journeys.observe import journey_status, journey_svg

    rule_set = project.rules()
    moment = project.now()
    out = []
    for name in sorted(rule_set.journeys):  # a store user's figures count only their people (the store narrows)
        status = journey_status(project.store, rule_set, name, as_of=moment, tz=project.timezone)
        flow = build_flow(rule_set.journeys[name])
        out.append({"name": name, "title": status.title or "", "status": status,
                    "svg": Markup(journey_svg(flow, status.edges, status.at_step, status.entered, name))})
    return out


def tags(project) -> dict:
    authorize_command(project.access, "tags list")
    from motorcade.tags.commands import tag_catalogue

    health = None
    if may(project, READ, Scope.everyone()):  # health figures are over the whole group
        authorize_command(project.access, "tags health")
        from motorcade.tags.engine import health_report

        health = health_report(project.store)
    return {"catalogue": tag_catalogue(project), "health": health}


def sends(project) -> dict:
    authorize_command(project.access, "sends list")
    store = project.store
    return {"stats": store.send_stats(), "dead": store.list_sends(status="dead", limit=100),
            "retry": may(project, ACT)}


def retry_dead(project, keys: list[str]) -> int:
    authorize_command(project.access, "sends retry")
    store = project.store
    with store.transaction():
        count = store.retry_sends(keys=keys or None, status="dead")
    store.audit("console.sends.retry", {"keys": keys or "all"}, {"sends": count, "outcome": "ok"})
    return count


def quarantine(project, limit: int = 200) -> list:
    authorize_command(project.access, "quarantine list")
    from motorcade.sources.commands import mask_text

    return [attrs.evolve(row, raw=mask_text(row.raw), reason=mask_text(row.reason, None))
            for row in project.store.list_quarantine(limit=limit)]


def retry_quarantine(project, row_ids: list[int]) -> list[tuple[str, int, int | None]]:
    """Re-read these quarantined rows (`motorcade quarantine retry --id ...`), recorded in the audit log."""
    authorize_command(project.access, "quarantine retry")
    from motorcade.sources.commands import retry_quarantined

    outcomes = retry_quarantined(project, None, row_ids) if row_ids else []
    project.store.audit("console.quarantine.retry", {"ids": row_ids},
                        {"sources": {name: {"retried": n, "fixed": ok} for name, n, ok in outcomes},
                         "outcome": "ok"})
    return outcomes


def now_text(project) -> str:
    return dt.datetime.now(project.timezone).strftime("%Y-%m-%d %H:%M %Z")
