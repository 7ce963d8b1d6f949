"""Looking at a journey: people per step, where one person is and why (`motorcade journeys status|explain`),
goal conversion against the entry holdout, and the journey drawn as an SVG graph with counts on each edge."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import attrs

from motorcade.dsl import ast
from motorcade.dsl.data import Dataset, EventData, PersonData
from motorcade.dsl.errors import did_you_mean
from motorcade.dsl.evaluate import Evaluator, Scope, shift
from motorcade.dsl.journey import END, Flow, build_flow
from motorcade.errors import MotorcadeError
from motorcade.feedback.uplift import ArmComparison
from motorcade.masking import mask_message
from motorcade.store.codec import epoch, from_epoch

LEFT = ("completed", "exited", "converted")


def journey_rule(rule_set, name: str) -> ast.Journey:
    journey = rule_set.journeys.get(name)
    if journey is None:
        hint = did_you_mean(name, rule_set.journeys) or (
            "journeys: " + ", ".join(sorted(rule_set.journeys)) if rule_set.journeys else
            "define one with `journey NAME { ... }` in a rule file")
        raise MotorcadeError(f"no journey named {name!r} in the rules", hint=hint)
    return journey


@attrs.frozen
class JourneyStatus:
    name: str
    title: str | None
    at_step: dict[str, int]  # active people per step id, in flow order
    entered: int
    holdout: int
    left: dict[str, int]  # completed / exited / converted
    edges: list[tuple[str, str, str | None, int]]  # (step, outcome, next step, people)
    conversion: ArmComparison | None
    goal: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"journey": self.name, "title": self.title, "at_step": self.at_step, "entered": self.entered,
                "holdout": self.holdout, **self.left,
                "edges": [{"step": s, "outcome": o, "next": n, "people": c} for s, o, n, c in self.edges],
                "goal": self.goal, "conversion": None if self.conversion is None else self.conversion.to_dict()}

    def render(self) -> str:
        lines = [f"journey {self.name}" + (f" ({self.title})" if self.title else ""),
                 f"  entered {self.entered:,} ({self.holdout:,} held out); "
                 + ", ".join(f"{k} {v:,}" for k, v in self.left.items())]
        lines.append("  people now at each step:")
        for step, people in self.at_step.items():
            lines.append(f"    {step:<28} {people:>8,}")
        if not self.at_step:
            lines.append("    (nobody is in the journey now)")
        if self.edges:
            lines.append("  steps taken:")
            for step, outcome, target, people in self.edges:
                lines.append(f"    {step:<28} {outcome:<10} -> {target or '(left)':<28} {people:>8,}")
        if self.conversion is not None:
            c = self.conversion
            rate = (lambda r: "–" if r is None else f"{r * 100:.1f}%")
            lines.append(f"  goal {self.goal}: treatment {c.treatment_converted:,}/{c.treatment_n:,} "
                         f"({rate(c.treatment_rate)}), holdout {c.holdout_converted:,}/{c.holdout_n:,} "
                         f"({rate(c.holdout_rate)})")
            if c.absolute_uplift is not None:
                interval = c.absolute_interval
                text = "" if interval is None else f" [{interval[0] * 100:+.1f}, {interval[1] * 100:+.1f}] pp"
                lines.append(f"  uplift {c.absolute_uplift * 100:+.1f} pp{text} ({c.confidence:.0%} confidence, "
                             f"{c.method}){' — significant' if c.significant else ''}")
        return "\n".join(lines)


def goal_conversion(store, journey: ast.Journey, *, as_of: dt.datetime, tz, confidence: float = 0.95,
                    method: str = "newcombe") -> ArmComparison | None:
    """Entries whose goal event came within the goal's window after entering, treatment vs holdout. Entries
    whose window has not closed by ``as_of`` are left out (they could still convert)."""
    goal = journey.goal
    if goal is None:
        return None
    entries = store.journey_entries(journey.name)
    closed = [(pid, entry, arm, entered) for pid, entry, arm, entered in entries
              if shift(from_epoch(entered), goal.within.amount, goal.within.unit, tz) <= as_of]
    events = store.journey_events([pid for pid, *_ in closed], [goal.event], since=min(
        (e for *_, e in closed), default=0), until=epoch(as_of))
    types = store.value_types()
    counts = {"treatment": [0, 0], "holdout": [0, 0]}
    for pid, _entry, arm, entered in closed:
        end = epoch(shift(from_epoch(entered), goal.within.amount, goal.within.unit, tz))
        hit = False
        for event_id, name, ts, properties in events.get(pid, ()):
            if entered < ts <= end:
                if goal.where is not None:
                    data = EventData(name, from_epoch(ts), types.event(properties), id=event_id)
                    evaluator = Evaluator(None, Dataset.of(PersonData(pid)), as_of, tz)
                    if evaluator.cond(goal.where, Scope(PersonData(pid), event=data)) is not True:
                        continue
                hit = True
                break
        counts[arm][0] += 1
        counts[arm][1] += hit
    return ArmComparison(counts["treatment"][0], counts["treatment"][1], counts["holdout"][0],
                         counts["holdout"][1], confidence, method)


def journey_status(store, rule_set, name: str, *, as_of: dt.datetime, tz) -> JourneyStatus:
    journey = journey_rule(rule_set, name)
    flow = build_flow(journey)
    at_step: dict[str, int] = {}
    entered = holdout = 0
    left = {key: 0 for key in LEFT}
    for status, arm, step, people in store.journey_state_counts(name):
        entered += people
        if arm == "holdout":
            holdout += people
        if status == "active":
            at_step[step] = at_step.get(step, 0) + people
        elif status in left:
            left[status] += people
    order = {node_id: index for index, node_id in enumerate(flow.nodes)}
    at_step = dict(sorted(at_step.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))
    edges = sorted(store.journey_edge_counts(name), key=lambda e: (order.get(e[0], len(order)), e[0], e[1]))
    goal = None if journey.goal is None else journey.goal.event
    return JourneyStatus(name, journey.title, at_step, entered, holdout, left, edges,
                         goal_conversion(store, journey, as_of=as_of, tz=tz), goal)


def _when(seconds: int | None, tz) -> str:
    if seconds is None:
        return "-"
    return from_epoch(seconds).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def explain_person(store, rule_set, name: str, person_id: int, *, tz) -> str:
    """Where a person is in a journey and the path they took: each step with its time, outcome and, at a
    branch or an exit, the condition and the values seen (masked unless MOTORCADE_SHOW_PII=1)."""
    journey_rule(rule_set, name)
    states = store.journey_states_of(name, person_id)
    if not states:
        return f"person {person_id} has not entered journey {name}"
    path = store.journey_path_of(name, person_id)
    lines = []
    for state in states:
        where = {"active": f"at step `{state['step']}`, due {_when(state['due_at'], tz)}",
                 "holdout": "in the holdout (entered, receives nothing; counted for the uplift)",
                 "completed": "completed the journey", "exited": f"exited at step `{state['step']}`",
                 "converted": f"reached the goal (at step `{state['step']}`)"}[state["status"]]
        lines.append(f"person {person_id}, journey {name}, entry {state['entry']} "
                     f"(entered {_when(state['entered_at'], tz)}, version {state['version']}, {state['arm']}): {where}")
        for step in (p for p in path if p["entry"] == state["entry"]):
            target = "(left the journey)" if step["next_step"] is None else f"-> {step['next_step']}"
            if step["next_step"] == END:
                target = "-> end"
            lines.append(f"  {_when(step['at'], tz)}  {step['step']:<24} {step['outcome']:<10} {target}")
            detail = step["detail"] or {}
            if "condition" in detail:
                lines.append(f"      {detail['condition']}: {_result(detail.get('result'))}")
                for leaf in detail.get("seen") or ():
                    if leaf.get("seen") is not None and leaf.get("condition") != detail["condition"]:
                        lines.append(f"        {leaf['condition']}: {_result(leaf.get('result'))} "
                                     f"(seen: {mask_message(str(leaf['seen']))})")
                    elif leaf.get("seen") is not None:
                        lines.append(f"        seen: {mask_message(str(leaf['seen']))}")
            elif "event" in detail:
                lines.append(f"      {detail['event']} at {dt.datetime.fromisoformat(detail['at']).astimezone(tz):%Y-%m-%d %H:%M}")
    return "\n".join(lines)


def _result(value) -> str:
    return {True: "true", False: "false", None: "unknown (null)"}.get(value, str(value))


# ---- the graph --------------------------------------------------------------------------------

_BOX_W, _BOX_H, _ROW, _INDENT, _LEFT_PAD = 200, 34, 58, 36, 16
_KIND_WORDS = {"send": "send", "wait": "wait", "wait_until": "wait until", "wait_for": "wait for", "if": "if",
               "split": "split", "exit": "exit"}


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _describe(node) -> str:
    step = node.step
    if node.kind == "send":
        return "send " + " / ".join(s.channel for s in step.via.steps)
    if node.kind == "wait":
        return f"wait {step.duration.amount} {step.duration.unit}"
    if node.kind == "wait_until":
        return f"wait until {step.at:%H:%M}"
    if node.kind == "wait_for":
        return f"wait for {step.event} ≤ {step.up_to.amount} {step.up_to.unit}"
    if node.kind == "if":
        from motorcade.dsl.format import fmt_cond

        text = fmt_cond(step.cond)
        return "if " + (text if len(text) <= 26 else text[:25] + "…")
    if node.kind == "split":
        return "split " + " / ".join(f"{a.percent:g}%" for a in step.arms)
    return _KIND_WORDS[node.kind]


def journey_svg(flow: Flow, edges: list[tuple[str, str, str | None, int]], at_step: dict[str, int],
                entered: int, title: str = "") -> str:
    """The flow as an SVG (no script, nothing fetched): one box per step in text order, indented by block
    depth, with the people now at the step; every edge drawn with how many people took it. Edges that leave
    the journey (exit, goal, exit when) are counted in the box they leave from."""
    ids = ["entry", *flow.nodes, END]
    rows = {node_id: index for index, node_id in enumerate(ids)}
    depth = {node_id: node.depth for node_id, node in flow.nodes.items()}
    max_depth = max(depth.values(), default=0)
    right = _LEFT_PAD + _BOX_W + max_depth * _INDENT  # the right edge of the widest box
    all_edges = [("entry", "next", flow.start)] + [(n.id, o, t) for n in flow.nodes.values() for o, t in n.edges.items()]
    longest = max((abs(rows[t] - rows[s_]) for s_, _, t in all_edges), default=1)
    width = int(right + 30 + longest * 16 + 110)
    height = len(ids) * _ROW + 10
    counts: dict[tuple[str, str], int] = {}
    leaving: dict[str, dict[str, int]] = {}
    for step, outcome, target, people in edges:
        if target is None:
            leaving.setdefault(step, {})[outcome] = leaving.get(step, {}).get(outcome, 0) + people
        else:
            counts[(step, target)] = counts.get((step, target), 0) + people

    def box_x(node_id):
        return _LEFT_PAD + depth.get(node_id, 0) * _INDENT

    def box_y(node_id):
        return 6 + rows[node_id] * _ROW

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
           f'height="{height}" role="img" aria-label="{_esc("journey " + title)}" font-family="sans-serif" '
           'font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>']
    for source, outcome, target in all_edges:
        people = entered if source == "entry" else counts.get((source, target), 0)
        x1 = box_x(source) + _BOX_W
        y1 = box_y(source) + _BOX_H / 2
        x2 = box_x(target) + _BOX_W
        y2 = box_y(target) + _BOX_H / 2
        # a longer edge bends further out, so nested arcs do not run through each other's labels
        bend = right + 12 + abs(rows[target] - rows[source]) * 16
        label_x = 0.125 * (x1 + x2) + 0.75 * bend + 4  # the curve's outermost point, at t = 1/2
        label_y = (y1 + y2) / 2 + 4
        stroke = "#1f77b4" if people else "#bbb"
        out.append(f'<path d="M {x1} {y1} C {bend} {y1}, {bend} {y2}, {x2} {y2}" fill="none" stroke="{stroke}" '
                   f'stroke-width="{1.2 if not people else 2}" marker-end="url(#arrow)"><title>{_esc(source)} '
                   f'{_esc(outcome)} → {_esc(target)}: {people:,}</title></path>')
        word = "" if outcome == "next" else f"{outcome} "
        out.append(f'<text x="{label_x}" y="{label_y}" fill="#333">{_esc(word)}{people:,}</text>')
    for node_id in ids:
        x, y = box_x(node_id), box_y(node_id)
        if node_id == "entry":
            label, fill = f"entry · {entered:,} entered", "#e8f0fe"
        elif node_id == END:
            label, fill = "end", "#eee"
        else:
            label, fill = f"{node_id}: {_describe(flow.nodes[node_id])}", "#fff"
        out.append(f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="{fill}" '
                   'stroke="#555"/>')
        shown = label if len(label) <= 30 else label[:29] + "…"
        out.append(f'<text x="{x + 8}" y="{y + 14}"><title>{_esc(label)}</title>{_esc(shown)}</text>')
        notes = []
        if at_step.get(node_id):
            notes.append(f"now {at_step[node_id]:,}")
        for outcome, people in sorted(leaving.get(node_id, {}).items()):
            notes.append(f"{'converted' if outcome == 'goal' else outcome} {people:,}")
        if notes:
            out.append(f'<text x="{x + 8}" y="{y + 28}" fill="#a33" font-size="11">{_esc(" · ".join(notes))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def journey_sections(store, rule_set, *, as_of: dt.datetime, tz) -> list:
    """HTML report sections: each journey's graph with counts, and its conversion against the holdout."""
    from motorcade.feedback.html import Section, Table

    sections = []
    for name in sorted(rule_set.journeys):
        status = journey_status(store, rule_set, name, as_of=as_of, tz=tz)
        flow = build_flow(rule_set.journeys[name])
        svg = journey_svg(flow, status.edges, status.at_step, status.entered, name)
        text = (f"{status.entered:,} entered ({status.holdout:,} held out); "
                + ", ".join(f"{k} {v:,}" for k, v in status.left.items()))
        table = None
        c = status.conversion
        if c is not None:
            rate = (lambda r: "–" if r is None else f"{r * 100:.1f}%")
            interval = c.absolute_interval
            table = Table(("arm", "people", f"reached {status.goal}", "rate"), [
                ("treatment", f"{c.treatment_n:,}", f"{c.treatment_converted:,}", rate(c.treatment_rate)),
                ("holdout", f"{c.holdout_n:,}", f"{c.holdout_converted:,}", rate(c.holdout_rate)),
                ("uplift", "", "", "–" if c.absolute_uplift is None else
                 f"{c.absolute_uplift * 100:+.1f} pp" + ("" if interval is None else
                                                        f" [{interval[0] * 100:+.1f}, {interval[1] * 100:+.1f}]")),
            ])
        sections.append(Section(f"Journey {name}" + (f" — {status.title}" if status.title else ""), text,
                                table=table, svg=svg))
    return sections
