"""Funnels: ordered steps per person with a conversion window, and a breakdown by a property.

A funnel is declared in the rule language::

    funnel recall_funnel "保客召回漏斗" { steps sent, clicked, lead_submit, service_visit within 14 days by channel }

and computed per person (:meth:`ReportsMixin.funnel_paths` has the exact matching rule): a pass
starts at an event of the first step; each next step is the first event of that step strictly later
than the previous step, no later than the start plus the window (inclusive) — ``did a then b then c
within N`` of the rule language, step by step. A person counts once, with their deepest pass. Per step the report gives the people who reached it,
the conversion from the previous step and from the first, and the median time from the previous step.

Breakdowns: ``by channel`` / ``by template`` / ``by campaign`` / any property reads the value from the
first step's event; ``by store`` reads ``store_id``/``store`` there and falls back to the person's home
store; ``by segment`` counts a person under every segment they are a member of now.
"""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Sequence

import attrs

from ..errors import MotorcadeError
from ..localtime import zone_key
from .common import UTC, check_store, duration_text, pct, scope_text
from .html import BarChart, Section, Series, Table

NO_VALUE = "(none)"


@attrs.frozen
class FunnelSpec:
    name: str
    steps: tuple[str, ...] = attrs.field(converter=tuple)
    within: tuple[int, str] | None = None  # (amount, unit) e.g. (14, "days")
    by: str | None = None
    title: str | None = None

    @classmethod
    def from_rule(cls, funnel) -> "FunnelSpec":
        """From a parsed ``motorcade.dsl.ast.Funnel``."""
        within = None if funnel.within is None else (funnel.within.amount, funnel.within.unit)
        return cls(funnel.name, funnel.steps, within, funnel.by, funnel.title)

    def window_text(self) -> str:
        return "no window" if self.within is None else f"within {self.within[0]} {self.within[1]}"


@attrs.frozen
class FunnelStep:
    name: str
    people: int
    from_previous: float | None
    from_first: float | None
    median_seconds_from_previous: float | None

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class FunnelGroup:
    key: str | None  # None = everybody
    steps: tuple[FunnelStep, ...] = attrs.field(converter=tuple)

    @property
    def entered(self) -> int:
        return self.steps[0].people if self.steps else 0

    def to_dict(self) -> dict:
        return {"key": self.key, "entered": self.entered, "steps": [s.to_dict() for s in self.steps]}


def summarize(step_names: Sequence[str], paths: Sequence[Sequence[int | None]], key: str | None = None) -> FunnelGroup:
    """Per-step figures from per-person step times (``None`` from the first step not reached on)."""
    steps = []
    first = previous = None
    for i, name in enumerate(step_names):
        reached = [p for p in paths if p[i] is not None]
        gaps = [p[i] - p[i - 1] for p in reached] if i else []
        count = len(reached)
        steps.append(FunnelStep(
            name=name,
            people=count,
            from_previous=None if i == 0 else (count / previous if previous else None),
            from_first=None if i == 0 else (count / first if first else None),
            median_seconds_from_previous=float(statistics.median(gaps)) if gaps else None,
        ))
        if i == 0:
            first = count
        previous = count
    return FunnelGroup(key, steps)


@attrs.frozen
class FunnelReport:
    spec: FunnelSpec
    total: FunnelGroup
    groups: tuple[FunnelGroup, ...] = attrs.field(converter=tuple)
    by: str | None
    scope: str
    store_id: str | None = None
    campaign: str | None = None
    since: int | None = None
    until: int | None = None

    @property
    def title(self) -> str:
        return f"Funnel {self.spec.name}" + (f" · {self.spec.title}" if self.spec.title else "")

    @property
    def subtitle(self) -> str:
        parts = [" → ".join(self.spec.steps), self.spec.window_text(), self.scope]
        if self.campaign:
            parts.append(f"campaign {self.campaign}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            "report": "funnel", "funnel": self.spec.name, "title": self.spec.title, "steps": list(self.spec.steps),
            "within": None if self.spec.within is None else {"amount": self.spec.within[0], "unit": self.spec.within[1]},
            "by": self.by, "store": self.store_id, "campaign": self.campaign, "since": self.since, "until": self.until,
            "total": self.total.to_dict(), "groups": [g.to_dict() for g in self.groups],
        }

    def sections(self, *, max_groups_in_chart: int = 6) -> list[Section]:
        rows = [(s.name, f"{s.people:,}", pct(s.from_previous), pct(s.from_first),
                 duration_text(s.median_seconds_from_previous)) for s in self.total.steps]
        out = [Section(
            "Steps",
            text=f"{self.total.entered:,} people entered the funnel ({self.spec.window_text()}).",
            table=Table(("step", "people", "from previous", "from first", "median time from previous"), rows),
            chart=BarChart(self.spec.steps, (Series("people", [s.people for s in self.total.steps]),), y_label="people"),
        )]
        if self.groups:
            columns = [self.by or "group", "entered"] + [f"{s} (from first)" for s in self.spec.steps[1:]]
            table_rows = []
            for g in self.groups:
                cells = [str(g.key), f"{g.entered:,}"]
                cells += [f"{s.people:,} ({pct(s.from_first)})" for s in g.steps[1:]]
                table_rows.append(cells)
            shown = self.groups[:max_groups_in_chart]
            chart = BarChart(
                self.spec.steps[1:],
                [Series(str(g.key), [s.from_first for s in g.steps[1:]]) for g in shown],
                percent=True, y_label="conversion from first step",
            )
            notes = [f"The {self.by} is read from each person's first-step event."]
            if self.by == "store":
                notes = ["The store is read from the first-step event, else the person's home store."]
            if self.by == "segment":
                notes = ["Segments are the people's current memberships; a person in several counts in each."]
            if len(self.groups) > len(shown):
                notes.append(f"The chart shows the {len(shown)} largest groups.")
            out.append(Section(f"Breakdown by {self.by}", text=" ".join(notes), table=Table(columns, table_rows),
                               chart=chart))
        return out


def compute_funnel(store, spec: FunnelSpec, *, since: int | None = None, until: int | None = None,
                   campaign: str | None = None, store_id: str | None = None, by: str | None = None,
                   tz: dt.tzinfo = UTC) -> FunnelReport:
    """The funnel report for ``spec`` over ``store`` (``by`` overrides the funnel's own breakdown).

    ``tz`` is the project's time zone: a ``within N months`` window counts calendar months there."""
    check_store(store, store_id)
    by = by if by is not None else spec.by
    if by is not None and not by.replace("_", "a").isalnum():
        raise MotorcadeError(f"cannot break a funnel down by {by!r}",
                             hint="use a property name such as channel, template, campaign, store or segment")
    paths = store.funnel_paths(spec.steps, within=spec.within, zone=zone_key(tz), since=since,
                               until=until, campaign=campaign, store=store_id, by=None if by == "segment" else by)
    times = [row[2:] for row in paths]
    total = summarize(spec.steps, times)
    groups: list[FunnelGroup] = []
    if by:
        buckets: dict[str, list] = {}
        if by == "segment":
            memberships = store.segment_memberships(row[0] for row in paths)
            for row in paths:
                for segment in memberships.get(row[0]) or [NO_VALUE]:
                    buckets.setdefault(segment, []).append(row[2:])
        else:
            for row in paths:
                key = NO_VALUE if row[1] is None else str(row[1])
                buckets.setdefault(key, []).append(row[2:])
        groups = [summarize(spec.steps, rows, key) for key, rows in buckets.items()]
        groups.sort(key=lambda g: (-g.entered, g.key))
    return FunnelReport(spec, total, groups, by, scope_text(store, store_id), store_id, campaign, since, until)


def funnel_spec(rules, name: str) -> FunnelSpec:
    """The funnel ``name`` from a RuleSet, or an error that lists the funnels there are."""
    try:
        return FunnelSpec.from_rule(rules.funnels[name])
    except KeyError:
        from motorcade.dsl.errors import did_you_mean

        raise MotorcadeError(
            f"no funnel named {name!r} in the project's rule files",
            hint=did_you_mean(name, rules.funnels) or
            (f"funnels: {', '.join(sorted(rules.funnels))}" if rules.funnels else
             'declare one, e.g. funnel recall { steps sent, clicked, service_visit within 14 days by channel }'),
        ) from None
