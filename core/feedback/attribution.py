"""Attribution: which touches (sends, clicks, store visits, configurator views...) led people to convert.

A person's events are read in time order. Every conversion (default ``order``) closes a **journey**: the
touches since the person's previous conversion that lie within the window before it (``--within``, 90
days by default, inclusive). Touches older than the window, and touches after a person's last conversion,
form journeys that did not convert (the data-driven model needs them). Each conversion is credited once
per model, split over its journey's touches:

- ``first_touch`` / ``last_touch``: all to the first / last touch;
- ``linear``: equally;
- ``time_decay``: in proportion to ``2 ** (-(conversion time - touch time) / half-life)`` (7 days by
  default, ``[reports] attribution_half_life_days``);
- ``position_based``: 40 % to the first, 40 % to the last, 20 % shared by the ones between (one touch
  gets it all, two touches half each);
- ``markov``: data-driven, the **removal effect** of a first-order Markov chain over the journeys
  (Anderl, Becker, von Wangenheim & Schumann 2016, "Mapping the customer journey: lessons learned
  from graph-based online attribution modeling", *Int. J. of Research in Marketing* 33(3):457–474).
  Journeys are chains ``start → touch values → conversion | null``; the transition probabilities
  are the observed shares; the conversion probability from ``start`` is solved exactly (a linear
  system, no simulation). Removing a value sends its visits to ``null``; its removal effect is the
  share of the conversion probability lost. The conversions that had touches are split in
  proportion to the removal effects. Written here rather than taken from ChannelAttribution (the
  library most Markov attribution code points at): that one is a C++ extension built from source at
  install time whose removal effects are estimated by simulation (they move with the seed), while
  this model is small enough to solve exactly in a few lines of Python.

The same credits are given by **campaign**, **channel** and **store** (read from each touch's
properties; a journey's or trigger's send counts as campaign ``journey NAME`` / ``trigger NAME``; the store
falls back to the person's home store) and by **touch** (the event name). A
conversion without any touch is credited to ``(no touch)`` in every model, so each model's credits add
up to the conversions.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Iterable, Sequence

import attrs

from ..errors import MotorcadeError
from .common import UTC, check_store, scope_text
from .html import BarChart, Section, Series, Table

MODELS = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "markov")
MODEL_TITLES = {"first_touch": "first touch", "last_touch": "last touch", "linear": "linear",
                "time_decay": "time decay", "position_based": "position 40/20/40", "markov": "Markov (data-driven)"}
DIMENSIONS = ("campaign", "channel", "store", "touch")
DEFAULT_TOUCHES = ("sent", "clicked", "message_click", "touchpoint_visit", "configurator_view", "store_visit",
                   "test_drive", "lead_submit")
NO_VALUE = "(none)"
NO_TOUCH = "(no touch)"
CHART_LIMIT = 12  # bars per chart; the table has every value
MAX_WINDOW_DAYS = 36500


@attrs.frozen
class Touch:
    ts: int
    event: str
    campaign: str | None = None
    channel: str | None = None
    store: str | None = None

    def key(self, dimension: str) -> str:
        value = self.event if dimension == "touch" else getattr(self, dimension)
        return NO_VALUE if value is None or value == "" else str(value)


@attrs.frozen
class Journey:
    """One person's touches, and the time of the conversion they led to (None: no conversion)."""

    person_id: int
    touches: tuple[Touch, ...] = attrs.field(converter=tuple)
    converted_at: int | None = None


def build_journeys(rows: Iterable[tuple], conversion: str, window_seconds: int) -> list[Journey]:
    """Journeys from ``(person_id, ts, id, name, campaign, channel, store)`` rows in (person, ts, id) order."""
    journeys: list[Journey] = []
    person, pending = None, []

    def close_open() -> None:
        if pending:
            journeys.append(Journey(person, pending))

    for person_id, ts, _id, name, campaign, channel, store in rows:
        if person_id != person:
            close_open()
            person, pending = person_id, []
        if name == conversion:
            kept = [t for t in pending if t.ts >= ts - window_seconds]
            expired = pending[:len(pending) - len(kept)]
            if expired:
                journeys.append(Journey(person, expired))
            journeys.append(Journey(person, kept, ts))
            pending = []
        else:
            pending.append(Touch(ts, name, campaign, channel, store))
    close_open()
    return journeys


# ---- the rule-based models -----------------------------------------------------------------------

def touch_weights(model: str, touches: Sequence[Touch], converted_at: int, half_life_seconds: float) -> list[float]:
    """The share of one conversion each touch gets under a rule-based model (the shares add up to 1)."""
    n = len(touches)
    if n == 0:
        return []
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1 / n] * n
    if model == "time_decay":
        raw = [2 ** (-(converted_at - t.ts) / half_life_seconds) for t in touches]
        total = sum(raw)
        return [r / total for r in raw]
    if model == "position_based":
        if n == 1:
            return [1.0]
        if n == 2:
            return [0.5, 0.5]
        return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]
    raise MotorcadeError(f"unknown attribution model {model!r}", hint=f"use one of {', '.join(MODELS)}")


# ---- the Markov removal-effect model -------------------------------------------------------------

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"


def transition_counts(paths: Iterable[tuple[Sequence[str], bool]]) -> dict[str, dict[str, int]]:
    """Counts of ``state -> next state`` over paths ``(values, converted)``, from START to CONVERSION or NULL."""
    counts: dict[str, dict[str, int]] = {}
    for values, converted in paths:
        chain = [START, *values, CONVERSION if converted else NULL]
        for a, b in zip(chain, chain[1:]):
            row = counts.setdefault(a, {})
            row[b] = row.get(b, 0) + 1
    return counts


def conversion_probability(counts: dict[str, dict[str, int]], removed: str | None = None) -> float:
    """The probability of reaching CONVERSION from START, with ``removed`` turned into NULL.

    Solves ``p(s) = P(s -> conversion) + sum over s' of P(s -> s') p(s')`` (p of the removed state = 0) by
    Gauss-Jordan elimination with partial pivoting."""
    states = sorted(s for s in counts if s != removed)
    if START not in states:
        return 0.0
    index = {s: i for i, s in enumerate(states)}
    n = len(states)
    matrix = [[0.0] * (n + 1) for _ in range(n)]
    for s, i in index.items():
        row = counts[s]
        total = sum(row.values())
        matrix[i][i] += 1.0
        for target, count in row.items():
            p = count / total
            if target == CONVERSION:
                matrix[i][n] += p
            elif target in index:
                matrix[i][index[target]] -= p
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(matrix[r][col]))
        if abs(matrix[pivot][col]) < 1e-15:
            continue  # a state that never leaves (cannot happen for observed paths)
        matrix[col], matrix[pivot] = matrix[pivot], matrix[col]
        lead = matrix[col][col]
        matrix[col] = [v / lead for v in matrix[col]]
        for r in range(n):
            if r != col and matrix[r][col]:
                factor = matrix[r][col]
                matrix[r] = [a - factor * b for a, b in zip(matrix[r], matrix[col])]
    return min(1.0, max(0.0, matrix[index[START]][n]))


def removal_effects(paths: Sequence[tuple[Sequence[str], bool]]) -> dict[str, float]:
    """``{value: 1 - P(conversion without it) / P(conversion)}`` for every value seen on the paths."""
    counts = transition_counts(paths)
    base = conversion_probability(counts)
    values = sorted({v for values, _ in paths for v in values})
    if base <= 0:
        return {v: 0.0 for v in values}
    return {v: max(0.0, 1 - conversion_probability(counts, v) / base) for v in values}


def markov_credits(journeys: Sequence[Journey], dimension: str) -> tuple[dict[str, float], dict[str, float]]:
    """Credits per value (the conversions with touches split by removal effect) and the removal effects."""
    paths = [([t.key(dimension) for t in j.touches], j.converted_at is not None) for j in journeys if j.touches]
    effects = removal_effects(paths)
    converted = sum(1 for j in journeys if j.touches and j.converted_at is not None)
    total = sum(effects.values())
    if not converted:
        return {}, effects
    if total <= 0:  # cannot happen when a conversion has touches; kept so credits always add up
        return linear_fallback(journeys, dimension), effects
    return {v: converted * e / total for v, e in effects.items() if e > 0}, effects


def linear_fallback(journeys: Sequence[Journey], dimension: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for j in journeys:
        if j.converted_at is not None and j.touches:
            for t in j.touches:
                out[t.key(dimension)] = out.get(t.key(dimension), 0.0) + 1 / len(j.touches)
    return out


def model_credits(journeys: Sequence[Journey], model: str, dimension: str, half_life_seconds: float,
                  markov: dict[str, float] | None = None) -> dict[str, float]:
    """Conversions credited to each value of ``dimension`` under ``model`` (they add up to the conversions).
    ``markov``: the Markov credits of the touched conversions when already computed."""
    credits: dict[str, float] = {}
    if model == "markov":
        credits = dict(markov) if markov is not None else markov_credits(journeys, dimension)[0]
    else:
        for j in journeys:
            if j.converted_at is None or not j.touches:
                continue
            for touch, weight in zip(j.touches, touch_weights(model, j.touches, j.converted_at, half_life_seconds)):
                if weight:
                    credits[touch.key(dimension)] = credits.get(touch.key(dimension), 0.0) + weight
    direct = sum(1 for j in journeys if j.converted_at is not None and not j.touches)
    if direct:
        credits[NO_TOUCH] = credits.get(NO_TOUCH, 0.0) + direct
    return credits


# ---- the report ----------------------------------------------------------------------------------

@attrs.frozen
class AttributionReport:
    conversion: str
    within_days: float
    models: tuple[str, ...] = attrs.field(converter=tuple)
    touches: tuple[str, ...] = attrs.field(converter=tuple)
    half_life_days: float = 7.0
    conversions: int = 0
    with_touches: int = 0
    journeys: int = 0
    touch_count: int = 0
    credits: dict = attrs.field(factory=dict)  # {dimension: {model: {value: credit}}}
    effects: dict = attrs.field(factory=dict)  # {dimension: {value: removal effect}}
    scope: str = ""
    store_id: str | None = None
    store_names: dict = attrs.field(factory=dict)

    @property
    def title(self) -> str:
        return f"Attribution · {self.conversion}"

    @property
    def subtitle(self) -> str:
        return (f"touches within {self.within_days:g} days before each {self.conversion}; {self.scope}; "
                f"{self.conversions:,} conversions")

    def rows(self, dimension: str) -> list[dict]:
        """One dict per value: its credit under every model; sorted by the last model's credit."""
        per_model = self.credits.get(dimension, {})
        values = sorted({v for credits in per_model.values() for v in credits})
        rows = [{"value": v, **{m: per_model.get(m, {}).get(v, 0.0) for m in self.models}} for v in values]
        if dimension in self.effects:
            for row in rows:
                row["removal_effect"] = self.effects[dimension].get(row["value"])
        order = self.models[-1]
        rows.sort(key=lambda r: (r["value"] == NO_TOUCH, -r[order], r["value"]))
        return rows

    def to_dict(self) -> dict:
        return {
            "report": "attribution", "conversion": self.conversion, "within_days": self.within_days,
            "models": list(self.models), "touches": list(self.touches), "half_life_days": self.half_life_days,
            "store": self.store_id, "conversions": self.conversions, "conversions_with_touches": self.with_touches,
            "journeys": self.journeys, "touch_events": self.touch_count,
            "by": {d: self.rows(d) for d in DIMENSIONS},
        }

    def _label(self, dimension: str, value: str) -> str:
        if dimension == "store" and value in self.store_names:
            return f"{value} {self.store_names[value]}"
        return value

    def sections(self) -> list[Section]:
        text = (f"{self.conversions:,} {self.conversion} events; {self.with_touches:,} had touches "
                f"({', '.join(self.touches)}) in the {self.within_days:g} days before; "
                f"{self.conversions - self.with_touches:,} are credited to {NO_TOUCH}. "
                f"{self.journeys:,} journeys, {self.touch_count:,} touches in all.\n"
                "Each conversion is credited once per model: first / last touch; linear (equal shares); "
                f"time decay (half-life {self.half_life_days:g} days); position-based (40 % first, 40 % last, "
                "20 % shared between); Markov (data-driven): the removal effect of each value in a first-order "
                "Markov chain over all journeys, converted or not.")
        out = [Section("Conversions and models", text=text)]
        for dimension in DIMENSIONS:
            rows = self.rows(dimension)
            if not rows:
                continue
            columns = (dimension, *(MODEL_TITLES[m] for m in self.models))
            has_effects = "removal_effect" in rows[0]
            if has_effects:
                columns += ("removal effect",)
            table_rows = []
            for row in rows:
                cells = [self._label(dimension, row["value"]), *(f"{row[m]:,.2f}" for m in self.models)]
                if has_effects:
                    effect = row.get("removal_effect")
                    cells.append("–" if effect is None else f"{effect * 100:.1f}%")
                table_rows.append(cells)
            table_rows.append(["total", *(f"{sum(r[m] for r in rows):,.2f}" for m in self.models),
                               *([""] if has_effects else [])])
            shown = rows[:CHART_LIMIT]
            chart = BarChart([self._label(dimension, r["value"]) for r in shown],
                             [Series(MODEL_TITLES[m], [r[m] for r in shown]) for m in self.models],
                             y_label=f"{self.conversion} credited")
            out.append(Section(f"By {dimension}", table=Table(columns, table_rows), chart=chart,
                               text=None if len(rows) <= CHART_LIMIT else
                               f"The chart shows the first {CHART_LIMIT} of {len(rows)} values."))
        return out


def compute_attribution(store, *, conversion: str = "order", within_days: float = 90,
                        models: Sequence[str] | None = None, touches: Sequence[str] = DEFAULT_TOUCHES,
                        half_life_days: float = 7.0, store_id: str | None = None,
                        as_of: int | None = None) -> AttributionReport:
    """The attribution report of ``conversion`` events over ``touches`` (see the module docstring)."""
    check_store(store, store_id)
    models = tuple(models) if models else MODELS
    for model in models:
        if model not in MODELS:
            raise MotorcadeError(f"unknown attribution model {model!r}", hint=f"use one of {', '.join(MODELS)}")
    if not (math.isfinite(within_days) and 0 < within_days <= MAX_WINDOW_DAYS):
        raise MotorcadeError(f"--within must be a number of days above 0 and at most {MAX_WINDOW_DAYS:,}, "
                             f"got {within_days:g}", hint="e.g. --within 90")
    if not (math.isfinite(half_life_days) and half_life_days > 0):
        raise MotorcadeError(f"the time-decay half-life must be positive, got {half_life_days:g} days",
                             hint="set [reports] attribution_half_life_days in motorcade.toml")
    touches = tuple(dict.fromkeys(touches))
    if not touches:
        raise MotorcadeError("no touch events to attribute to", hint="set [reports] touches in motorcade.toml")
    if conversion in touches:
        raise MotorcadeError(f"{conversion!r} is both the conversion and a touch",
                             hint="leave it out of [reports] touches, or choose another --conversion")
    as_of = as_of if as_of is not None else int(dt.datetime.now(UTC).timestamp())
    rows = store.attribution_events(conversion, touches, until=as_of, store=store_id)
    journeys = build_journeys(rows, conversion, int(round(within_days * 86400)))
    half_life = half_life_days * 86400
    markov = {d: markov_credits(journeys, d) for d in DIMENSIONS} if "markov" in models else {}
    credits = {d: {m: model_credits(journeys, m, d, half_life, markov.get(d, (None,))[0]) for m in models}
               for d in DIMENSIONS}
    effects = {d: effects for d, (_, effects) in markov.items()}
    converted = [j for j in journeys if j.converted_at is not None]
    return AttributionReport(
        conversion=conversion, within_days=within_days, models=models, touches=touches,
        half_life_days=half_life_days, conversions=len(converted),
        with_touches=sum(1 for j in converted if j.touches), journeys=len(journeys),
        touch_count=sum(len(j.touches) for j in journeys), credits=credits, effects=effects,
        scope=scope_text(store, store_id), store_id=store_id, store_names=store.store_names(),
    )
