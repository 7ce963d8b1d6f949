"""Campaign uplift against the holdout, with confidence intervals, and the recall rate of lapsed owners.

Every person in a campaign's audience snapshots is counted once, in the arm of their first run
(``treatment`` or ``holdout``). Both arms are measured from the same instant, the run's start (the
snapshot), so the comparison is intention-to-treat: treatment people whose message failed still
count as treatment. A person *converts* when they do the target event (default ``service_visit``)
within ``days`` after that instant.

- absolute uplift = p_treatment − p_holdout, with Newcombe's hybrid score interval (method 10 of
  Newcombe 1998; ``method="wald"`` gives the Wald interval instead);
- relative uplift = p_treatment / p_holdout − 1, with the Katz log interval of the risk ratio;
- incremental conversions = absolute uplift × treatment size (conversions the campaign added);
- nothing after ``as_of`` counts: runs that start after it, and conversions after it (a window still open
  at ``as_of`` is counted as far as it has run, and reported as open);
- ownership dates are local dates in the project's time zone (``tz``);
- lapsed owners (owners at the snapshot whose last service visit — or, with none, whose ownership —
  is older than ``lapsed_days``, 365 by default: 流失): the recall rate per arm and its uplift.
"""

from __future__ import annotations

import datetime as dt

import attrs

from ..errors import MotorcadeError
from ..localtime import zone_key
from . import stats
from .common import UTC, check_store, pct, scope_text, signed_pct, to_epoch
from .html import BarChart, Section, Series, Table


@attrs.frozen
class ArmComparison:
    """Conversions of treatment vs holdout and the uplift estimates."""

    treatment_n: int
    treatment_converted: int
    holdout_n: int
    holdout_converted: int
    confidence: float = 0.95
    method: str = "newcombe"

    @property
    def treatment_rate(self) -> float | None:
        return self.treatment_converted / self.treatment_n if self.treatment_n else None

    @property
    def holdout_rate(self) -> float | None:
        return self.holdout_converted / self.holdout_n if self.holdout_n else None

    @property
    def absolute_uplift(self) -> float | None:
        if self.treatment_rate is None or self.holdout_rate is None:
            return None
        return self.treatment_rate - self.holdout_rate

    @property
    def absolute_interval(self) -> tuple[float, float] | None:
        try:
            interval = stats.DIFFERENCE_METHODS[self.method]
        except KeyError:
            raise MotorcadeError(f"unknown interval method {self.method!r}",
                                 hint=f"use one of {', '.join(stats.DIFFERENCE_METHODS)}") from None
        return interval(self.treatment_converted, self.treatment_n, self.holdout_converted, self.holdout_n,
                        self.confidence)

    @property
    def relative_uplift(self) -> float | None:
        if self.treatment_rate is None or not self.holdout_rate:
            return None
        return self.treatment_rate / self.holdout_rate - 1

    @property
    def relative_interval(self) -> tuple[float, float] | None:
        ratio = stats.risk_ratio_interval(self.treatment_converted, self.treatment_n, self.holdout_converted,
                                          self.holdout_n, self.confidence)
        return None if ratio is None else (ratio[0] - 1, ratio[1] - 1)

    @property
    def treatment_interval(self):
        return stats.wilson_interval(self.treatment_converted, self.treatment_n, self.confidence)

    @property
    def holdout_interval(self):
        return stats.wilson_interval(self.holdout_converted, self.holdout_n, self.confidence)

    @property
    def incremental(self) -> float | None:
        return None if self.absolute_uplift is None else self.absolute_uplift * self.treatment_n

    @property
    def significant(self) -> bool | None:
        interval = self.absolute_interval
        return None if interval is None else (interval[0] > 0 or interval[1] < 0)

    def to_dict(self) -> dict:
        return {
            "treatment": {"people": self.treatment_n, "converted": self.treatment_converted,
                          "rate": self.treatment_rate, "interval": self.treatment_interval},
            "holdout": {"people": self.holdout_n, "converted": self.holdout_converted,
                        "rate": self.holdout_rate, "interval": self.holdout_interval},
            "absolute_uplift": self.absolute_uplift, "absolute_interval": self.absolute_interval,
            "relative_uplift": self.relative_uplift, "relative_interval": self.relative_interval,
            "incremental_conversions": self.incremental, "significant": self.significant,
            "confidence": self.confidence, "method": self.method,
        }


def _interval_text(interval, signed: bool = True) -> str:
    if interval is None:
        return "–"
    fmt = signed_pct if signed else pct
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]"


def _relative_text(value, interval) -> str:
    if value is None:
        return "–"
    text = f"{value * 100:+.1f}%"
    if interval is not None:
        text += f" [{interval[0] * 100:+.1f}%, {interval[1] * 100:+.1f}%]"
    return text


@attrs.frozen
class UpliftReport:
    campaign: str
    event: str
    days: int
    overall: ArmComparison
    lapsed: ArmComparison
    lapsed_days: int
    runs: tuple[str, ...] = attrs.field(converter=tuple)
    sends: dict = attrs.field(factory=dict)
    by_store: tuple[tuple[str, ArmComparison], ...] = attrs.field(default=(), converter=tuple)
    incomplete: int = 0  # people whose window has not ended yet at as_of
    scope: str = ""
    store_id: str | None = None
    store_names: dict = attrs.field(factory=dict)

    @property
    def title(self) -> str:
        return f"Campaign uplift · {self.campaign}"

    @property
    def subtitle(self) -> str:
        return (f"{self.event} within {self.days} days of the audience snapshot; treatment vs holdout; "
                f"{self.scope}; {len(self.runs)} run(s)")

    def to_dict(self) -> dict:
        return {
            "report": "uplift", "campaign": self.campaign, "event": self.event, "days": self.days,
            "runs": list(self.runs), "store": self.store_id, "overall": self.overall.to_dict(),
            "lapsed_owners": {"lapsed_days": self.lapsed_days, **self.lapsed.to_dict()},
            "sends": self.sends, "incomplete_windows": self.incomplete,
            "by_store": [{"store": s, **c.to_dict()} for s, c in self.by_store],
        }

    def _method_text(self) -> str:
        conf = f"{self.overall.confidence * 100:g}%"
        name = {"newcombe": "Newcombe hybrid score (1998, method 10)", "wald": "Wald"}[self.overall.method]
        return (f"{conf} intervals: absolute uplift by the {name} interval for a difference of proportions; "
                f"relative uplift by the Katz log interval of the risk ratio; arm rates by the Wilson interval.")

    def sections(self) -> list[Section]:
        o, lp = self.overall, self.lapsed
        rows = []
        for label, c in (("all audience", o), (f"lapsed owners (> {self.lapsed_days} d)", lp)):
            rows.append((label, f"{c.treatment_n:,}", f"{c.treatment_converted:,}", pct(c.treatment_rate),
                         f"{c.holdout_n:,}", f"{c.holdout_converted:,}", pct(c.holdout_rate),
                         signed_pct(c.absolute_uplift), _interval_text(c.absolute_interval),
                         _relative_text(c.relative_uplift, c.relative_interval),
                         "–" if c.incremental is None else f"{c.incremental:+,.1f}"))
        text = self._method_text()
        if not o.holdout_n:
            text += "\nThis campaign has no holdout people: add `holdout 10 %` to the campaign to measure uplift."
        if self.incomplete:
            text += (f"\n{self.incomplete:,} people were snapshotted less than {self.days} days ago: their window is "
                     "still open, so these figures will still move.")
        if o.significant is not None:
            text += ("\nThe absolute uplift is statistically different from zero at this confidence."
                     if o.significant else "\nThe interval includes zero: no detectable uplift at this confidence.")
        summary = Section(
            "Treatment vs holdout",
            text=text,
            table=Table(("audience", "treatment", "converted", "rate", "holdout", "converted", "rate",
                         "uplift", "interval", "relative uplift", "incremental"), rows),
            chart=BarChart(
                ("all audience", "lapsed owners"),
                (Series("treatment", (o.treatment_rate, lp.treatment_rate),
                        lower=((o.treatment_interval or (None,))[0], (lp.treatment_interval or (None,))[0]),
                        upper=((o.treatment_interval or (None, None))[1], (lp.treatment_interval or (None, None))[1])),
                 Series("holdout", (o.holdout_rate, lp.holdout_rate),
                        lower=((o.holdout_interval or (None,))[0], (lp.holdout_interval or (None,))[0]),
                        upper=((o.holdout_interval or (None, None))[1], (lp.holdout_interval or (None, None))[1]))),
                percent=True, y_label=f"{self.event} within {self.days} d",
            ),
        )
        out = [summary]
        outbox, events = self.sends.get("outbox", {}), self.sends.get("events", {})
        if outbox or events:
            send_rows = [(f"outbox: {k}", f"{v:,}") for k, v in outbox.items()]
            send_rows += [(f"feedback event: {k} (people)", f"{v:,}") for k, v in events.items()]
            out.append(Section("Sends and feedback", table=Table(("what", "count"), send_rows)))
        if self.by_store:
            store_rows = [(s, self.store_names.get(s, ""), f"{c.treatment_n:,}", pct(c.treatment_rate),
                           f"{c.holdout_n:,}", pct(c.holdout_rate), signed_pct(c.absolute_uplift),
                           _interval_text(c.absolute_interval)) for s, c in self.by_store]
            out.append(Section(
                "By store",
                text="Each person is counted at their home store (home, else service, else selling, else lead store).",
                table=Table(("store", "name", "treatment", "rate", "holdout", "rate", "uplift", "interval"),
                            store_rows, numeric=(2, 3, 4, 5, 6, 7)),
                chart=BarChart([s for s, _ in self.by_store],
                               (Series("uplift", [c.absolute_uplift for _, c in self.by_store],
                                       lower=[(c.absolute_interval or (None,))[0] for _, c in self.by_store],
                                       upper=[(c.absolute_interval or (None, None))[1] for _, c in self.by_store]),),
                               unit="pp", y_label="uplift (treatment − holdout)"),
            ))
        return out


def is_lapsed(t0: int, last_service: int | None, owner_since: str | None, lapsed_days: int,
              tz: dt.tzinfo = UTC) -> bool:
    """A lapsed owner at ``t0``: owns a car and no service visit (or, with none, no ownership start)
    within ``lapsed_days`` before t0. An owner with neither a visit nor a known start is not counted."""
    if owner_since is None:
        return False
    limit = lapsed_days * 86400
    if last_service is not None:
        return t0 - last_service > limit
    if not owner_since:
        return False
    return t0 - to_epoch(dt.date.fromisoformat(owner_since[:10]), tz) > limit


def _compare(rows, key, confidence, method) -> ArmComparison:
    counts = {"treatment": [0, 0], "holdout": [0, 0]}
    for row in rows:
        if key(row):
            counts[row[1]][0] += 1
            counts[row[1]][1] += row[4] is not None
    return ArmComparison(counts["treatment"][0], counts["treatment"][1], counts["holdout"][0],
                         counts["holdout"][1], confidence, method)


def compute_uplift(store, campaign: str, *, event: str = "service_visit", days: int = 30,
                   run_id: str | None = None, store_id: str | None = None, service_event: str = "service_visit",
                   lapsed_days: int = 365, confidence: float = 0.95, method: str = "newcombe",
                   as_of: int | None = None, tz: dt.tzinfo = UTC, campaigns: tuple[str, ...] = ()) -> UpliftReport:
    """The uplift report of ``campaign`` (all its runs, or ``run_id``). ``campaigns``: the names defined in the
    rules, for the did-you-mean hint of a campaign without runs."""
    check_store(store, store_id)
    if days <= 0:
        raise MotorcadeError(f"--days must be positive, got {days}")
    if not 0 < confidence < 1:
        raise MotorcadeError(f"--confidence must be between 0 and 1, got {confidence}", hint="e.g. 0.95")
    if method not in stats.DIFFERENCE_METHODS:
        raise MotorcadeError(f"unknown interval method {method!r}",
                             hint=f"use one of {', '.join(stats.DIFFERENCE_METHODS)}")
    as_of = as_of if as_of is not None else int(dt.datetime.now(UTC).timestamp())
    runs = store.campaign_runs(campaign, until=as_of)
    if run_id is not None:
        runs = [r for r in runs if r[0] == run_id]
    if not runs:
        known = store.run_origins("campaign")
        if store.campaign_runs(campaign) and (run_id is None or any(r[0] == run_id
                                                                   for r in store.campaign_runs(campaign))):
            first = store.campaign_runs(campaign)[0][1]
            raise MotorcadeError(
                f"campaign {campaign!r} has no runs" + (f" with id {run_id!r}" if run_id else "") +
                f" before --as-of {dt.datetime.fromtimestamp(as_of, tz).isoformat(timespec='minutes')}",
                hint=f"its first run started at {first}: choose a later --as-of")
        from motorcade.dsl.errors import did_you_mean

        close = None if campaign in campaigns else did_you_mean(campaign, {*known, *campaigns})
        raise MotorcadeError(
            f"campaign {campaign!r} has no runs" + (f" with id {run_id!r}" if run_id else "") + f" in {store.location}",
            hint=close or (f"campaigns with runs: {', '.join(known)}" if known else "run the campaign first: motorcade run"),
        )
    zone = zone_key(tz)
    rows = store.campaign_outcomes(campaign, event=event, window_seconds=days * 86400, service_event=service_event,
                                   run_id=run_id, store=store_id, until=as_of, zone=zone)
    overall = _compare(rows, lambda r: True, confidence, method)
    lapsed = _compare(rows, lambda r: is_lapsed(r[3], r[5], r[6], lapsed_days, tz), confidence, method)
    by_store = []
    if store_id is None:
        homes = sorted({r[7] for r in rows if r[7] is not None})
        by_store = [(s, _compare(rows, lambda r, s=s: r[7] == s, confidence, method)) for s in homes]
    incomplete = sum(1 for r in rows if r[3] + days * 86400 > as_of)
    return UpliftReport(
        campaign=campaign, event=event, days=days, overall=overall, lapsed=lapsed, lapsed_days=lapsed_days,
        runs=[r[0] for r in runs],
        sends=store.campaign_send_counts(campaign, run_id=run_id, store=store_id, until=as_of),
        by_store=by_store, incomplete=incomplete, scope=scope_text(store, store_id), store_id=store_id,
        store_names=store.store_names(),
    )
