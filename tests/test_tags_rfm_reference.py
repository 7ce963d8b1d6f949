"""Outside reference: RFM figures on the public CDNOW transaction data set agree with independent ones.

The data ship in the ``lifetimes`` distribution (PyPI, MIT): ``CDNOW_sample.txt`` (the 1/10 sample of
CDNOW's 1997 cohort: 2,357 customers, 6,919 purchases through June 1998) and Fader & Hardie's published
calibration summary of it (``cdnow_customers_summary_with_transactions.csv``: per customer x = repeat
purchase days, t_x = week of the last purchase, T = weeks observed, zbar = mean repeat purchase value,
over the 39 weeks to 1997-09-30). The files are read from the installed distribution without importing
lifetimes (its modelling stack is not needed). Purchases are loaded into a real SQLite store as ``order``
events at noon UTC, and the value calculator runs with ``as_of`` = 1997-10-01T00:00Z, the end of that period.

Checks, per customer:
* frequency (distinct purchase days) = x + 1 and recency (whole days) = 7 × (T − t_x), against the
  published summary;
* frequency, recency and monetary (sum of dollars) against a plain-Python computation from the raw file;
* monetary − the first day's spend = x × zbar (the published mean repeat value).
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.metadata
from collections import defaultdict

import pytest

from motorcade.model import Event
from motorcade.store import SQLiteStore
from motorcade.tags.engine import compute_tags

value_plugin = pytest.importorskip("motorcade_tags_value")

AS_OF = dt.datetime(1997, 10, 1, tzinfo=dt.timezone.utc)


def _dataset(name: str):
    try:
        dist = importlib.metadata.distribution("lifetimes")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("the CDNOW reference data come from the `lifetimes` package: install the test extra "
                    "(pip install -e '.[test]')")
    return dist.locate_file(f"lifetimes/datasets/{name}")


@pytest.fixture(scope="module")
def purchases():
    """(sample customer id, date, dollars) rows of CDNOW_sample.txt."""
    rows = []
    for line in _dataset("CDNOW_sample.txt").read_text().splitlines():
        if line.strip():
            _, customer, day, _cds, dollars = line.split()
            rows.append((int(customer), dt.datetime.strptime(day, "%Y%m%d").date(), float(dollars)))
    return rows


@pytest.fixture(scope="module")
def computed(purchases, tmp_path_factory):
    """The value calculator's figures per customer id, computed in a real SQLite store."""
    store = SQLiteStore(tmp_path_factory.mktemp("cdnow") / "cdnow.db")
    person_of = {}
    with store.transaction():
        for customer in sorted({c for c, _, _ in purchases}):
            person_of[customer] = store.create_person({"cdnow_id": customer})
        store.insert_events(
            Event(name="order", ts=dt.datetime.combine(day, dt.time(12), dt.timezone.utc),
                  person_id=person_of[customer], properties={"amount": dollars}, source="cdnow",
                  dedup_key=f"{customer}-{i}")
            for i, (customer, day, dollars) in enumerate(purchases))
    compute_tags(store, {"value": value_plugin.ValueTags()}, as_of=AS_OF)
    figures = defaultdict(dict)
    for person, tag, value in store.query(
            "SELECT person_id, tag, value FROM tag_values WHERE tag IN "
            "('rfm_frequency', 'rfm_recency_days', 'rfm_monetary')"):
        figures[person][tag] = value
    by_customer = {c: figures.get(p, {}) for c, p in person_of.items()}
    store.close()
    return by_customer


def test_against_the_published_calibration_summary(computed):
    rows = list(csv.DictReader(_dataset("cdnow_customers_summary_with_transactions.csv").open()))
    assert len(rows) == 2357 == len(computed)
    for row in rows:
        got = computed[int(row["ID"])]
        x, t_x, big_t = int(row["x"]), float(row["t_x"]), float(row["T"])
        assert got["rfm_frequency"] == x + 1, row
        assert got["rfm_recency_days"] == round((big_t - t_x) * 7), row


def test_against_a_plain_python_computation(purchases, computed):
    end = AS_OF.date()
    days = defaultdict(lambda: defaultdict(float))  # customer -> date -> dollars
    for customer, day, dollars in purchases:
        if day < end:
            days[customer][day] += dollars
    assert set(days) == set(computed)
    summary = {int(r["ID"]): r for r in csv.DictReader(_dataset("cdnow_customers_summary_with_transactions.csv")
                                                       .open())}
    for customer, spend in days.items():
        got = computed[customer]
        assert got["rfm_frequency"] == len(spend)
        assert got["rfm_recency_days"] == (end - max(spend)).days - 1  # the period ends on 30 September
        assert got["rfm_monetary"] == pytest.approx(round(sum(spend.values()), 2), abs=0.005)
        x, zbar = int(summary[customer]["x"]), float(summary[customer]["zbar"])
        repeat_spend = got["rfm_monetary"] - spend[min(spend)]
        assert repeat_spend == pytest.approx(x * zbar, abs=0.005 * max(x, 1) + 0.01)
