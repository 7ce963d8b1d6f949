"""A journey's steps as a flow graph: one node per step, keyed by the step's id, with where each outcome goes.

The block structure of the rule text (``if ... then { } else { }``, ``wait for ... then { } else { }``,
``split 50% { } / 50% { }``) becomes explicit edges; the end of a block continues with the step after the
block's owner, and the end of the journey is the node :data:`END`. The engine
(:mod:`motorcade.journeys`), ``check`` and rule tests all walk this graph.

A step's id is its label (``invite: send via ...``) or, unlabelled, its kind and its position
(``send@1``, ``wait@2.then.1``, ``send@3.arm2.1``): ``@`` cannot appear in a label, so the two never clash.
"""

from __future__ import annotations

import attrs

from motorcade.dsl import ast

END = "end"
STEP_KINDS = {ast.SendStep: "send", ast.WaitStep: "wait", ast.WaitUntilStep: "wait_until",
              ast.WaitForStep: "wait_for", ast.IfStep: "if", ast.SplitStep: "split", ast.ExitStep: "exit"}


@attrs.frozen
class FlowNode:
    """One step. ``edges`` maps an outcome to the id of the next node:

    send / wait / wait_until: ``{"next"}``; wait_for: ``{"event", "timeout"}``; if: ``{"then", "else"}``;
    split: ``{"arm1", "arm2", ...}``; exit: none.
    """

    id: str
    kind: str
    step: ast.Node
    edges: dict[str, str]
    depth: int = 0  # how many blocks enclose it


@attrs.frozen
class Flow:
    start: str
    nodes: dict[str, FlowNode]  # in text order

    def reachable(self) -> set[str]:
        seen, stack = set(), [self.start]
        while stack:
            node_id = stack.pop()
            if node_id in seen or node_id not in self.nodes:
                continue
            seen.add(node_id)
            stack.extend(self.nodes[node_id].edges.values())
        return seen

    def edges(self) -> list[tuple[str, str, str]]:
        """``(from, outcome, to)`` of every edge (including the journey's entry edge from ``entry``)."""
        out = [("entry", "next", self.start)]
        for node in self.nodes.values():
            out.extend((node.id, outcome, target) for outcome, target in node.edges.items())
        return out


def step_id(step, path: str) -> str:
    return step.label if step.label is not None else f"{STEP_KINDS[type(step)]}@{path}"


def build_flow(journey: ast.Journey) -> Flow:
    """The flow graph of ``journey`` (labels must be unique: ``check`` reports duplicates; the first wins)."""
    nodes: dict[str, FlowNode] = {}

    def block(steps, prefix: str, cont: str, depth: int) -> str:
        """Add the nodes of ``steps``; return the id of the first (``cont`` when the block is empty)."""
        ids = [step_id(step, f"{prefix}{index}") for index, step in enumerate(steps, start=1)]
        following = ids[1:] + [cont]
        for index, (step, own, nxt) in enumerate(zip(steps, ids, following), start=1):
            path = f"{prefix}{index}"
            if own in nodes:  # a duplicate label: keep the first definition
                continue
            kind = STEP_KINDS[type(step)]
            nodes[own] = FlowNode(own, kind, step, {}, depth)  # placeholder keeps text order
            if isinstance(step, (ast.SendStep, ast.WaitStep, ast.WaitUntilStep)):
                edges = {"next": nxt}
            elif isinstance(step, ast.ExitStep):
                edges = {}
            elif isinstance(step, ast.WaitForStep):
                edges = {"event": block(step.then or (), f"{path}.then.", nxt, depth + 1),
                         "timeout": block(step.otherwise or (), f"{path}.else.", nxt, depth + 1)}
            elif isinstance(step, ast.IfStep):
                edges = {"then": block(step.then, f"{path}.then.", nxt, depth + 1),
                         "else": block(step.otherwise or (), f"{path}.else.", nxt, depth + 1)}
            elif isinstance(step, ast.SplitStep):
                edges = {f"arm{number}": block(arm.steps, f"{path}.arm{number}.", nxt, depth + 1)
                         for number, arm in enumerate(step.arms, start=1)}
            else:  # pragma: no cover - STEP_KINDS covers every step class
                raise TypeError(type(step).__name__)
            nodes[own] = FlowNode(own, kind, step, edges, depth)
        return ids[0] if ids else cont

    start = block(journey.steps, "", END, 0)
    return Flow(start, nodes)


def all_steps(steps):
    """Every step under ``steps``, depth first in text order."""
    for step in steps:
        yield step
        if isinstance(step, (ast.IfStep, ast.WaitForStep)):
            yield from all_steps(step.then or ())
            yield from all_steps(step.otherwise or ())
        elif isinstance(step, ast.SplitStep):
            for arm in step.arms:
                yield from all_steps(arm.steps)
