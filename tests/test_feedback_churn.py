"""Churn warning on hand-made service histories: intervals, fallbacks, ranking, stores, masking."""

import datetime as dt

import pytest

from motorcade.feedback.churn import collapse_visits, compute_churn, own_interval_days
from motorcade.model import Car, Event, Ownership, Store
from motorcade.store import open_store

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 6, 1, tzinfo=UTC)
DAY = 86400


def _owner(store, key, home, *, visits_days_ago=(), owned_days_ago=1000, sold_days_ago=None, name=None, phone=None):
    pid = store.create_person({"name": name} if name else {})
    store.set_relation(pid, "service_store", home)
    vin = f"LBV00000000000{key}"
    store.upsert_cars([Car(vin, "BMW", "X3", store_id=home)])
    start = None if owned_days_ago is None else (AS_OF - dt.timedelta(days=owned_days_ago)).date()
    end = None if sold_days_ago is None else (AS_OF - dt.timedelta(days=sold_days_ago)).date()
    store.add_ownership(Ownership(pid, vin, start, end))
    store.insert_events([Event("service_visit", AS_OF - dt.timedelta(days=d), pid, {"store": home}, "dms",
                               f"{key}-{d}") for d in visits_days_ago])
    if phone:
        store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('phone', ?, ?)", (phone, pid))
    return pid


@pytest.fixture
def owners(tmp_path):
    store = open_store(tmp_path / "churn.db")
    store.upsert_stores([Store("S1", "上海一店", "集团"), Store("S2", "上海二店", "集团")])
    ids = {
        "A": _owner(store, "AAA", "S1", visits_days_ago=(380, 290, 200), name="张伟", phone="+8613812345678"),
        "B": _owner(store, "BBB", "S1", visits_days_ago=(350, 170)),  # due in 10 days
        "C": _owner(store, "CCC", "S1", visits_days_ago=(400,)),  # one visit, over a year ago
        "D": _owner(store, "DDD", "S1", owned_days_ago=300),  # never came back
        "E": _owner(store, "EEE", "S1", visits_days_ago=(130, 127, 10)),  # 127 merges into 130
        "F": _owner(store, "FFF", "S1", visits_days_ago=(900,), sold_days_ago=30),  # no longer an owner
        "G": _owner(store, "GGG", "S2", visits_days_ago=(101, 81, 61)),
        "H": _owner(store, "HHH", "S2", owned_days_ago=None),  # no start date, no visit: cannot tell
    }
    # a visit after as_of is not history yet
    store.insert_events([Event("service_visit", AS_OF + dt.timedelta(days=3), ids["C"], {}, "dms", "future")])
    return store, ids


def test_intervals_from_own_history():
    assert collapse_visits([0, 3 * DAY, 100 * DAY, 106 * DAY, 107 * DAY], 7) == [0, 100 * DAY, 107 * DAY]
    assert own_interval_days([0, 90 * DAY, 180 * DAY, 400 * DAY]) == 90
    assert own_interval_days([5]) is None


def test_ranked_list_and_store_summary(owners):
    store, ids = owners
    report = compute_churn(store, as_of=AS_OF)
    # own intervals: A 90, B 180, E 120, G 20 -> group median 105 (S1 has only 3 peers < min_peers 5)
    order = [(e.person_id, e.basis, e.interval_days, e.status) for e in report.entries]
    assert order == [
        (ids["C"], "group", 105, "lapsed"),   # 400 / 105 = 3.81 intervals
        (ids["G"], "own", 20, "overdue"),      # 61 / 20 = 3.05
        (ids["D"], "group", 105, "overdue"),   # 300 / 105 = 2.86 (since the ownership start)
        (ids["A"], "own", 90, "overdue"),      # 200 / 90 = 2.22
    ]
    first = report.entries[0]
    assert first.overdue_days == pytest.approx(400 - 105)
    assert first.overdue_ratio == pytest.approx(400 / 105)
    assert first.last_visit == int((AS_OF - dt.timedelta(days=400)).timestamp())
    assert report.entries[2].last_visit is None and report.entries[2].visits == 0
    assert report.owners == 7 and report.at_risk == 4
    assert report.per_store == (
        {"store": "S1", "owners": 5, "overdue": 2, "lapsed": 1},
        {"store": "S2", "owners": 2, "overdue": 1, "lapsed": 0},
    )
    a = report.entries[3]
    assert (a.name, a.phone) == ("张*", "+86138****5678")
    assert "13812345678" not in str(report.to_dict())


def test_store_peers_default_interval_limit_and_store_view(owners, monkeypatch):
    store, ids = owners
    peers = compute_churn(store, as_of=AS_OF, min_peers=3)
    assert {e.person_id: (e.basis, e.interval_days) for e in peers.entries if e.basis != "own"} == {
        ids["C"]: ("store", 120), ids["D"]: ("store", 120)}
    s2 = compute_churn(store, as_of=AS_OF, store_id="S2")
    assert [e.person_id for e in s2.entries] == [ids["G"]]
    assert s2.owners == 2
    assert [e.person_id for e in compute_churn(store, as_of=AS_OF, limit=1).entries] == [ids["C"]]
    monkeypatch.setenv("MOTORCADE_SHOW_PII", "1")
    shown = compute_churn(store, as_of=AS_OF).entries[3]
    assert shown.phone == "+8613812345678"


def test_default_interval_when_nobody_has_history(tmp_path):
    store = open_store(tmp_path / "d.db")
    store.upsert_stores([Store("S1", "一店", "集团")])
    pid = _owner(store, "ZZZ", "S1", visits_days_ago=(200,))
    _owner(store, "YYY", "S1", visits_days_ago=(100,))
    report = compute_churn(store, as_of=AS_OF, default_interval_days=180)
    assert [(e.person_id, e.basis, e.interval_days) for e in report.entries] == [(pid, "default", 180)]
    sections = report.sections()
    assert sections[0].table.rows[0][:3] == ("S1", "一店", "2")
    assert sections[1].table.rows[0][0] == "1"


def test_cli_churn_and_retention(owners, motorcade_project, tmp_path):
    import json
    import shutil

    from click.testing import CliRunner

    from motorcade.cli import build_cli
    from motorcade.errors import MotorcadeError

    store, ids = owners
    store.close()
    motorcade_project.store.close()
    shutil.copy(store.path, motorcade_project.store.path)
    runner = CliRunner()
    base = ["--project", str(motorcade_project.directory), "report"]
    result = runner.invoke(build_cli(), [*base, "churn", "--as-of", "2026-06-01", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [e["person_id"] for e in data["entries"]] == [ids["C"], ids["G"], ids["D"], ids["A"]]
    result = runner.invoke(build_cli(), [*base, "churn", "--as-of", "2026-06-01", "--store", "S2"])
    assert result.exit_code == 0, result.output
    assert "Ranked list" in result.output and "S2" in result.output and "S1 " not in result.output
    out = tmp_path / "retention.html"
    result = runner.invoke(build_cli(), [*base, "retention", "--as-of", "2026-06-01", "--periods", "6",
                                         "--format", "html", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "Return to workshop" in page and "<svg" in page
    result = runner.invoke(build_cli(), [*base, "retention", "--store", "NOPE"])
    assert isinstance(result.exception, MotorcadeError) and "known stores: S1, S2" in str(result.exception)


def test_owners_are_decided_on_the_project_date(tmp_path):
    """as_of 02:00 UTC on 10 March is 9 March in New York: a car bought on 10 March is not owned yet, one sold
    on 10 March still is — whatever hour of the day as_of falls on in UTC."""
    import zoneinfo

    new_york = zoneinfo.ZoneInfo("America/New_York")
    store = open_store(tmp_path / "tz.db")
    buyer, seller = store.create_person(), store.create_person()
    store.upsert_cars([Car("LBV00000000000NEW", "BMW", "X1"), Car("LBV00000000000OLD", "BMW", "X3")])
    store.add_ownership(Ownership(buyer, "LBV00000000000NEW", dt.date(2026, 3, 10), None))
    store.add_ownership(Ownership(seller, "LBV00000000000OLD", dt.date(2020, 1, 1), dt.date(2026, 3, 10)))
    evening = dt.datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 9 March, 22:00 in New York
    report = compute_churn(store, as_of=evening, tz=new_york)
    assert report.owners == 1 and [e.person_id for e in report.entries] == [seller]
    morning = dt.datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 10 March, 10:00 in New York
    assert [e.person_id for e in compute_churn(store, as_of=morning, tz=new_york).entries] == []
    assert compute_churn(store, as_of=morning, tz=new_york).owners == 1
