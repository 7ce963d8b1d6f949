"""Retention and return: monthly cohort tables and "return to workshop" curves.

A person's cohort is the calendar month (in the project's time zone) of their first ``cohort_event``
(e.g. ``purchase``, ``sent``) — or, with ``cohort_event=None``, of the start of their first car
ownership (the owners' "return to workshop" view). Period N is the N-th calendar month after the
cohort month (period 0 = the cohort month itself). For each cohort and period the report counts the
people who did ``return_event`` again (after the cohort event) in that period, and the people who
have returned at least once by that period (cumulative: the return curve). Periods that have not
started yet at ``as_of`` are left empty rather than counted as zero, and periods before the store's
first ``return_event`` (data loaded from some date on, owners who bought long before) are "no data":
nobody could be seen returning then, which is not the same as nobody returning. A cohort with such
months has no cumulative figures (its first returns may predate the data).

The "all cohorts" return curve is a product-limit (Kaplan–Meier) estimate over the fully observed
cohorts: at month N, of the people of the cohorts that have reached N and not returned before N, the
share who return in N; the curve is one minus the product of the shares who did not. Each cohort counts
for as long as it has been observed, so recent cohorts dropping out of later months cannot make the
curve go down; while every cohort has reached N it equals the pooled share.
"""

from __future__ import annotations

import datetime as dt

import attrs

from ..errors import MotorcadeError
from ..localtime import zone_key
from .common import UTC, check_store, pct, scope_text
from .html import LineChart, Section, Series, Table


def month_index(text: str) -> int:
    """"2026-03" -> 2026 * 12 + 3."""
    year, month = text.split("-")
    return int(year) * 12 + int(month)


@attrs.frozen
class Cohort:
    cohort: str  # "YYYY-MM"
    size: int
    active: tuple[int | None, ...] = attrs.field(converter=tuple)  # people returning in period N (None: not yet)
    cumulative: tuple[int | None, ...] = attrs.field(converter=tuple)  # people returned at least once by N
    # first period with return data (earlier ones are "no data"); None: the store has no return event at all
    observed_from: int | None = 0
    reached: int | None = None  # the last period reached at as_of (None: read it from the values)

    def state(self, n: int, *, cumulative: bool) -> str:
        """Period ``n``'s cell: ``"value"``, ``"no data"`` (before the return data start) or ``"not yet"``."""
        if self.reached is not None and n > self.reached:
            return "not yet"
        if self.observed_from is None or n < self.observed_from or (cumulative and self.observed_from > 0):
            return "no data"
        return "value" if (self.cumulative if cumulative else self.active)[n] is not None else "not yet"

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class RetentionReport:
    cohort_event: str | None
    return_event: str
    periods: int
    cohorts: tuple[Cohort, ...] = attrs.field(converter=tuple)
    as_of_month: str
    scope: str = ""
    store_id: str | None = None
    data_since: str | None = None  # local month of the store's first return event (None: there is none)

    @property
    def cohort_label(self) -> str:
        return "first car ownership" if self.cohort_event is None else f"first {self.cohort_event}"

    @property
    def title(self) -> str:
        if self.cohort_event is None:
            return f"Return to workshop · {self.return_event} by month of {self.cohort_label}"
        return f"Retention · {self.return_event} by month of {self.cohort_label}"

    @property
    def subtitle(self) -> str:
        return f"monthly cohorts up to {self.as_of_month}; periods 0..{self.periods}; {self.scope}"

    def curve(self, *, cumulative: bool) -> list[float | None]:
        """Across cohorts, per period N (None where no cohort has data for N).

        Not cumulative: returning people / cohort people over the cohorts with data for period N.
        Cumulative: the product-limit estimate of the share returned by N (see the module docstring).
        """
        if not cumulative:
            out = []
            for n in range(self.periods + 1):
                seen = [c for c in self.cohorts if c.active[n] is not None]
                people = sum(c.size for c in seen)
                out.append(sum(c.active[n] for c in seen) / people if people else None)
            return out
        out, staying = [], 1.0
        for n in range(self.periods + 1):
            seen = [c for c in self.cohorts if c.cumulative[n] is not None]
            at_risk = sum(c.size - (c.cumulative[n - 1] if n else 0) for c in seen)
            if not seen:
                out.append(None)
                continue
            returned = sum(c.cumulative[n] - (c.cumulative[n - 1] if n else 0) for c in seen)
            if at_risk:
                staying *= 1 - returned / at_risk
            out.append(1 - staying)
        return out

    def to_dict(self) -> dict:
        return {
            "report": "retention", "cohort_event": self.cohort_event, "cohort": self.cohort_label,
            "return_event": self.return_event, "periods": self.periods, "as_of_month": self.as_of_month,
            "store": self.store_id, "data_since": self.data_since, "cohorts": [c.to_dict() for c in self.cohorts],
            "curve": self.curve(cumulative=False), "cumulative_curve": self.curve(cumulative=True),
        }

    def _blank(self, c: Cohort) -> bool:
        """A cohort with no data in any shown period (it is left out of the tables and the chart)."""
        return all(c.state(n, cumulative=False) != "value" for n in range(self.periods + 1))

    def _table(self, cumulative: bool) -> Table:
        columns = ["cohort", "people"] + [f"M{n}" for n in range(self.periods + 1)]
        rows, shade = [], []
        for c in self.cohorts:
            if self._blank(c):
                continue
            values = c.cumulative if cumulative else c.active
            cells = []
            for n, v in enumerate(values):
                state = c.state(n, cumulative=cumulative)
                cells.append(pct(v / c.size if c.size else None) if state == "value" else
                             "no data" if state == "no data" else "")
            rows.append([c.cohort, f"{c.size:,}"] + cells)
            shade.append([None, None] + [None if v is None or not c.size else v / c.size for v in values])
        curve = self.curve(cumulative=cumulative)
        rows.append(["all", f"{sum(c.size for c in self.cohorts):,}"] + ["" if v is None else pct(v) for v in curve])
        shade.append([None] * len(columns))
        return Table(columns, rows, shade=shade)

    def sections(self, *, max_cohort_lines: int = 6) -> list[Section]:
        x = [f"M{n}" for n in range(self.periods + 1)]
        recent = [c for c in self.cohorts if not self._blank(c)][-max_cohort_lines:]
        blank = [c for c in self.cohorts if self._blank(c)]
        left_out = (f"\n{len(blank):,} cohort{'s' if len(blank) > 1 else ''} ({blank[0].cohort}"
                    f"{f' to {blank[-1].cohort}' if len(blank) > 1 else ''}, {sum(c.size for c in blank):,} people) "
                    f"with no data in M0–M{self.periods} {'are' if len(blank) > 1 else 'is'} not shown."
                    if blank else "")
        cumulative_lines = [Series(c.cohort, [None if v is None else v / c.size for v in c.cumulative])
                            for c in recent if c.size]
        cumulative_lines.append(Series("all cohorts", self.curve(cumulative=True)))
        what = "return to the workshop" if self.cohort_event is None else f"do {self.return_event} again"
        no_data = any(c.observed_from != 0 for c in self.cohorts)
        if not self.cohorts:
            source = "car ownership with a start date" if self.cohort_event is None else f"`{self.cohort_event}` event"
            return [Section("No cohorts", text=f"No person in this view has a {source} up to {self.as_of_month}.")]
        return [
            Section(
                f"Share who {what} in month N",
                text=(f"Cohort = month of {self.cohort_label}; M0 is that month. A cell is the share of the cohort "
                      f"with {self.return_event} in that month; blank = month not reached yet"
                      + (f"; no data = before the first {self.return_event} in the store "
                         f"({self.data_since or 'there is none'}): returns then cannot be seen." if no_data else ".")
                      + left_out),
                table=self._table(cumulative=False),
            ),
            Section(
                f"Cumulative: share who did {self.return_event} at least once by month N",
                text=(f"The curves show the {len(recent)} most recent cohorts and all cohorts together. The 'all' "
                      "row and curve are a product-limit (Kaplan–Meier) estimate: at month N, the share of the "
                      "people not yet returned (in the cohorts that have reached N) who return in N, chained "
                      "over the months, so it never goes down when recent cohorts drop out of later months; "
                      "while every cohort has reached N it is the plain share."
                      + (" Cohorts with months before the data start are left out of it." if no_data else "")),
                table=self._table(cumulative=True),
                chart=LineChart(x, cumulative_lines, percent=True, y_label=f"returned ({self.return_event})",
                                x_label=f"months since {self.cohort_label}"),
            ),
        ]


def compute_retention(store, *, return_event: str, cohort_event: str | None = None, periods: int = 12,
                      store_id: str | None = None, as_of: dt.datetime | None = None,
                      tz: dt.tzinfo = UTC) -> RetentionReport:
    """The cohort report. ``cohort_event=None`` builds cohorts from ownership starts (owners)."""
    check_store(store, store_id)
    if periods < 0 or periods > 120:
        raise MotorcadeError(f"--periods must be between 0 and 120, got {periods}")
    as_of = as_of or dt.datetime.now(UTC)
    data = store.cohort_activity(cohort_event=cohort_event, return_event=return_event, zone=zone_key(tz),
                                 store=store_id, until=int(as_of.timestamp()))
    as_of_month = as_of.astimezone(tz).strftime("%Y-%m")
    last = month_index(as_of_month)
    active: dict[tuple[str, int], int] = {(c, p): n for c, p, n in data["active"]}
    firsts: dict[tuple[str, int], int] = {(c, p): n for c, p, n in data["first_return"]}
    data_since = data.get("data_since")
    cohorts = []
    for cohort, size in data["sizes"]:
        if month_index(cohort) > last:
            continue  # a cohort that starts after as_of (future-dated data)
        reachable = last - month_index(cohort)
        observed_from = None if data_since is None else max(month_index(data_since) - month_index(cohort), 0)
        act, cum, running = [], [], 0
        for n in range(periods + 1):
            running += firsts.get((cohort, n), 0)
            seen = n <= reachable and observed_from is not None and n >= observed_from
            act.append(active.get((cohort, n), 0) if seen else None)
            cum.append(running if seen and observed_from == 0 else None)
        cohorts.append(Cohort(cohort, size, act, cum, observed_from, reachable))
    return RetentionReport(cohort_event, return_event, periods, cohorts, as_of_month, scope_text(store, store_id),
                           store_id, data_since)
