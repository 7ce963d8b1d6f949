"""``motorcade diff``: what a rule change would do to each segment before anyone publishes it.

For every segment in the working-tree rules or in the last computed revision, both versions of the rule
are evaluated on the same data at the same ``as_of``; the difference is the effect of the rule change
alone (data changes since the last computation do not show up as adds or removes).
"""

from __future__ import annotations

import attrs

from motorcade.dsl.rules import build_rule_set
from motorcade.dsl.parser import parse_text

from .compute import evaluate_members, parse_as_of
from .explain import shown


@attrs.frozen
class SegmentDiff:
    segment: str
    status: str  # "unchanged" | "changed" | "new" | "removed" | "never computed"
    old_revision: str | None
    old_size: int | None
    new_size: int | None
    added: int
    removed: int
    added_sample: list[str]
    removed_sample: list[str]


def _old_rule_set(store, revision: str):
    files = store.rule_revision_files(revision)
    if files is None:
        return None
    return build_rule_set([parse_text(text, name) for name, text in sorted(files.items())], revision)


def diff_segments(project, as_of=None, *, sample: int = 3, rule_set=None) -> list[SegmentDiff]:
    """Per segment, what ``rule_set`` (default: the working-tree rules) adds and removes against the last
    computed revision (the console passes an edited rule set before it is written)."""
    tz = project.timezone
    as_of = parse_as_of(as_of, tz)
    store = project.store
    new_rules = rule_set if rule_set is not None else project.rules()
    names = sorted(set(new_rules.segments) | set(store.computed_segments()))
    old_rule_sets: dict[str, object] = {}
    out = []
    for name in names:
        run = store.last_segment_run(name)
        old_rules = None
        if run is not None:
            if run["revision"] not in old_rule_sets:
                old_rule_sets[run["revision"]] = _old_rule_set(store, run["revision"])
            old_rules = old_rule_sets[run["revision"]]
        old_segment = old_rules.segments.get(name) if old_rules is not None else None
        new_segment = new_rules.segments.get(name)
        if old_segment is not None and new_segment is not None and old_segment == new_segment and _same_deps(
                old_rules, new_rules, name):
            out.append(SegmentDiff(name, "unchanged", run["revision"], run["size"], None, 0, 0, [], []))
            continue
        old = set(evaluate_members(store, old_rules, name, as_of, tz)[0]) if old_segment is not None else set()
        new = set(evaluate_members(store, new_rules, name, as_of, tz)[0]) if new_segment is not None else set()
        if run is None:
            status = "never computed"
        elif new_segment is None:
            status = "removed"
        elif old_segment is None:
            status = "new"
        else:
            status = "changed"
        added, removed = sorted(new - old), sorted(old - new)
        out.append(SegmentDiff(name, status, run["revision"] if run else None,
                               len(old) if old_segment is not None else None,
                               len(new) if new_segment is not None else None, len(added), len(removed),
                               [shown(p) for p in added[:sample]], [shown(p) for p in removed[:sample]]))
    return out


def _same_deps(old_rules, new_rules, name: str, seen=None) -> bool:
    """True when every segment ``name`` refers to (transitively) is also unchanged."""
    from .compute import dependencies

    seen = seen if seen is not None else set()
    for dep in dependencies(new_rules, name):
        if dep in seen:
            continue
        seen.add(dep)
        if dep not in new_rules.segments:
            return False
        if old_rules.segments.get(dep) != new_rules.segments.get(dep) or not _same_deps(old_rules, new_rules, dep,
                                                                                          seen):
            return False
    return True
