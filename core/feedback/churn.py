"""Churn warning: owners whose expected service interval has passed, ranked, per store.

For every current owner (an ownership valid on ``as_of``'s date in the project's time zone ``tz``):

1. Their service visits (``service_event``) up to ``as_of``; visits closer than ``merge_days`` to the
   previous one are one visit (a repair and its follow-up, two invoice lines).
2. Their **expected interval** is the median gap between their own visits (needs two visits). With
   fewer, the median of the own intervals of the owners at the same home store (when at least
   ``min_peers`` have one), else of the whole group, else ``default_interval_days``. The basis is
   reported (``own``, ``store``, ``group``, ``default``).
3. They are **due** at the last visit (or, without visits, the ownership start) plus the interval.
   Owners past due are listed, ranked by how many intervals have passed since the last visit
   (``overdue ratio``), then by days overdue. Owners with no visit and no known start are skipped.
4. Status ``lapsed`` when the last visit is more than ``lapsed_days`` ago (流失), else ``overdue``.

Names and phone numbers are masked unless MOTORCADE_SHOW_PII=1.
"""

from __future__ import annotations

import datetime as dt
import statistics

import attrs

from ..errors import MotorcadeError
from ..localtime import zone_key
from ..masking import mask_name, mask_phone
from .common import UTC, check_store, scope_text, to_epoch
from .html import BarChart, Section, Series, Table

DAY = 86400


@attrs.frozen
class ChurnEntry:
    person_id: int
    store: str | None
    visits: int
    last_visit: int | None  # epoch seconds
    anchor: int  # last visit, or the ownership start
    interval_days: float
    basis: str
    due: int
    overdue_days: float
    overdue_ratio: float
    status: str
    name: str | None = None
    phone: str | None = None

    def to_dict(self) -> dict:
        return attrs.asdict(self)


def collapse_visits(times: list[int], merge_days: float) -> list[int]:
    """Visit times with those within ``merge_days`` of the previous kept visit dropped."""
    kept: list[int] = []
    for t in sorted(times):
        if not kept or t - kept[-1] >= merge_days * DAY:
            kept.append(t)
    return kept


def own_interval_days(visits: list[int]) -> float | None:
    """Median gap between consecutive visits in days; None with fewer than two visits."""
    if len(visits) < 2:
        return None
    return statistics.median(b - a for a, b in zip(visits, visits[1:])) / DAY


@attrs.frozen
class ChurnReport:
    entries: tuple[ChurnEntry, ...] = attrs.field(converter=tuple)  # ranked, limited
    per_store: tuple[dict, ...] = attrs.field(converter=tuple)
    owners: int
    at_risk: int
    as_of: int
    service_event: str
    limit: int
    scope: str = ""
    store_id: str | None = None
    store_names: dict = attrs.field(factory=dict)
    tz: dt.tzinfo = UTC  # dates are shown in the project's time zone

    def _day(self, ts: int) -> str:
        return dt.datetime.fromtimestamp(ts, self.tz).date().isoformat()

    @property
    def title(self) -> str:
        return "Churn warning · owners past their expected service interval"

    @property
    def subtitle(self) -> str:
        return f"as of {self._day(self.as_of)}; {self.service_event} history; {self.scope}"

    def to_dict(self) -> dict:
        return {"report": "churn", "as_of": self.as_of, "service_event": self.service_event, "store": self.store_id,
                "owners": self.owners, "at_risk": self.at_risk, "per_store": list(self.per_store),
                "entries": [e.to_dict() for e in self.entries]}

    def sections(self) -> list[Section]:
        out = []
        if self.per_store:
            rows = [(s["store"] or "(none)", self.store_names.get(s["store"], ""), f"{s['owners']:,}",
                     f"{s['overdue']:,}", f"{s['lapsed']:,}",
                     f"{(s['overdue'] + s['lapsed']) / s['owners'] * 100:.1f}%" if s["owners"] else "–")
                    for s in self.per_store]
            out.append(Section(
                "Per store",
                text=f"{self.at_risk:,} of {self.owners:,} current owners are past their expected service date.",
                table=Table(("store", "name", "owners", "overdue", "lapsed (> 1 year)", "at risk"), rows,
                            numeric=(2, 3, 4, 5)),
                chart=BarChart([s["store"] or "(none)" for s in self.per_store],
                               (Series("overdue", [s["overdue"] for s in self.per_store]),
                                Series("lapsed", [s["lapsed"] for s in self.per_store])), y_label="owners"),
            ))
        rows = []
        for rank, e in enumerate(self.entries, start=1):
            last = "never" if e.last_visit is None else self._day(e.last_visit)
            due = self._day(e.due)
            rows.append((str(rank), e.store or "", str(e.person_id), e.name or "", e.phone or "", last,
                         str(e.visits), f"{e.interval_days:.0f} d ({e.basis})", due, f"{e.overdue_days:.0f}",
                         f"{e.overdue_ratio:.2f}", e.status))
        out.append(Section(
            f"Ranked list (top {self.limit})",
            text="Ranked by intervals passed since the last visit. Basis: own = the owner's own median interval; "
                 "store/group/default = not enough own history.",
            table=Table(("#", "store", "person", "name", "phone", "last visit", "visits", "expected interval", "due",
                         "days overdue", "intervals passed", "status"), rows, numeric=(0, 6, 9, 10)),
        ))
        return out


def compute_churn(store, *, service_event: str = "service_visit", as_of: dt.datetime | None = None,
                  store_id: str | None = None, limit: int = 50, merge_days: float = 7,
                  default_interval_days: float = 180, lapsed_days: float = 365, min_peers: int = 5,
                  tz: dt.tzinfo = UTC) -> ChurnReport:
    check_store(store, store_id)
    if limit <= 0:
        raise MotorcadeError(f"--limit must be positive, got {limit}")
    as_of_ts = int((as_of or dt.datetime.now(UTC)).timestamp())
    histories = store.owner_service_histories(service_event=service_event, as_of=as_of_ts, store=store_id,
                                              zone=zone_key(tz))
    owners = []
    for person_id, home, since, times in histories:
        visits = collapse_visits(times, merge_days)
        owners.append((person_id, home, since, visits, own_interval_days(visits)))
    group_intervals = [o[4] for o in owners if o[4] is not None]
    by_store: dict[str | None, list[float]] = {}
    for o in owners:
        if o[4] is not None:
            by_store.setdefault(o[1], []).append(o[4])
    group_median = statistics.median(group_intervals) if group_intervals else None
    store_medians = {home: statistics.median(v) for home, v in by_store.items() if len(v) >= min_peers}

    entries, summary = [], {}
    for person_id, home, since, visits, own in owners:
        counts = summary.setdefault(home, {"store": home, "owners": 0, "overdue": 0, "lapsed": 0})
        counts["owners"] += 1
        if own is not None:
            interval, basis = own, "own"
        elif home in store_medians:
            interval, basis = store_medians[home], "store"
        elif group_median is not None:
            interval, basis = group_median, "group"
        else:
            interval, basis = float(default_interval_days), "default"
        if visits:
            anchor = visits[-1]
        elif since:
            anchor = to_epoch(dt.date.fromisoformat(since[:10]), tz)
        else:
            continue
        interval = max(interval, 1.0)
        due = anchor + int(round(interval * DAY))
        if due >= as_of_ts:
            continue
        status = "lapsed" if as_of_ts - anchor > lapsed_days * DAY else "overdue"
        counts[status] += 1
        entries.append(ChurnEntry(
            person_id=person_id, store=home, visits=len(visits), last_visit=visits[-1] if visits else None,
            anchor=anchor, interval_days=interval, basis=basis, due=due, overdue_days=(as_of_ts - due) / DAY,
            overdue_ratio=(as_of_ts - anchor) / (interval * DAY), status=status,
        ))
    entries.sort(key=lambda e: (-e.overdue_ratio, -e.overdue_days, e.person_id))
    top = entries[:limit]
    contacts = store.contact_summaries(e.person_id for e in top)
    top = [attrs.evolve(e, name=mask_name(contacts[e.person_id]["name"] or "") or None,
                        phone=mask_phone(contacts[e.person_id]["phone"] or "") or None) for e in top]
    per_store = sorted(summary.values(), key=lambda s: (-(s["overdue"] + s["lapsed"]), s["store"] or "~"))
    return ChurnReport(top, per_store, len(owners), len(entries), as_of_ts, service_event, limit,
                       scope_text(store, store_id), store_id, store.store_names(), tz)
