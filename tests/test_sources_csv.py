"""CSV ingest end to end: mapping, cleaning, quarantine, One-ID across sources, cars, idempotency, retry."""

import sqlite3

import pytest

import motorcade_sources_csv
import motorcade_sources_jsonl
from motorcade.sources.clean import vin_check_digit
from motorcade.sources.ingest import ingest, open_source, project_ingestor

TIME_COLUMNS = {"created_at", "updated_at", "first_seen", "last_seen", "merged_at", "applied_at", "retried_at"}


def dump(path) -> dict:
    """Every table's rows without wall-clock columns: two databases with the same data compare equal."""
    conn = sqlite3.connect(path)
    out = {}
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in TIME_COLUMNS]
        if table in ("source_cursors",):
            cols = [c for c in cols if c != "updated_at"]
        out[table] = sorted(map(repr, conn.execute(f"SELECT {', '.join(cols)} FROM {table}")))
    conn.close()
    return out


def vin(serial: int, wmi: str = "LBV") -> str:
    body = f"{wmi}AB1230R{serial:07d}"[:17]
    return body[:8] + vin_check_digit(body) + body[9:]


CONFIG = """
[project]
name = "t"
timezone = "Asia/Shanghai"

[sources.advisors]
type = "csv"
path = "advisors.csv"
[sources.advisors.advisor]
id = "code"
name = "name"
store_id = "store"
phone = "phone"

[sources.crm]
type = "csv"
path = "crm.csv"
[sources.crm.person]
key = "no"
identifiers = { crm_id = "no", phone = "mobile", email = "email" }
attributes = { name = "name", created = { column = "created", type = "datetime" } }
consents = { sms = "sms_ok" }

[sources.dms]
type = "csv"
path = "dms.csv"
vin_check_digit = VINCHECK
[sources.dms.person]
key = "cid"
identifiers = { dms_customer_id = "cid", phone = "mobile" }
attributes = { name = "name" }
[sources.dms.car]
vin = "vin"
brand = "brand"
model = "model"
store_id = "store"
advisor_id = "advisor"
owned_from = "from"
owned_to = "to"

[sources.leads]
type = "csv"
path = "leads.csv"
[sources.leads.person]
key = "lead"
identifiers = { lead_id = "lead", phone = "mobile" }

[identity]
max_records_per_source = 3
"""


@pytest.fixture
def project(motorcade_project, register_plugin):
    register_plugin(motorcade_sources_csv, name="csv")
    register_plugin(motorcade_sources_jsonl, name="jsonl")
    d = motorcade_project.directory
    (d / "motorcade.toml").write_text(CONFIG.replace("VINCHECK", "true"), encoding="utf-8")
    (d / "advisors.csv").write_text("code,name,store,phone\nSH001-S01,刘林,SH001,133-8318-8630\n", encoding="utf-8")
    (d / "crm.csv").write_text(
        "no,name,mobile,email,created,sms_ok\n"
        "C1,张伟,138 1234 5678,Zhang.Wei@163.COM,2024-01-02 10:00:00,是\n"
        "C2,李娜,+86 13900001111,,2024-01-03 10:00:00,\n"
        "C3,王芳,13800138000,,2024-01-04 10:00:00,\n"          # junk phone: never links
        "C4,赵强,13800138000,,2024-01-05 10:00:00,\n"
        ",缺号,13700001111,,2024-01-05 10:00:00,\n"            # missing key
        "C5,坏日期,13700002222,,2025-02-30 10:00:00,\n",       # bad date
        encoding="utf-8")
    car_a, car_b = vin(1), vin(2)
    bad = car_b[:8] + ("0" if car_b[8] != "0" else "1") + car_b[9:]
    (d / "dms.csv").write_text(
        "cid,name,mobile,vin,brand,model,store,advisor,from,to\n"
        f"D1,张伟,8613812345678,{car_a},BMW,X3,SH001,SH001-A01,2020-01-01,2024-06-01\n"
        f"D9,孙丽,13600003333,{car_a},BMW,X3,SH001,SH001-A02,2024-07-01,\n"    # resale: a new owner
        f"D2,李娜,13900001111,{car_b},Audi,A4L,SH002,,2023-03-01,\n"
        f"D3,李娜,13900001111,{bad},Audi,A4L,SH002,,2023-03-01,\n",            # bad check digit
        encoding="utf-8")
    (d / "leads.csv").write_text(
        "lead,mobile\nL1,13812345678\nL2,133 8318 8630\nL3,13383188630\nL4,\n", encoding="utf-8")
    from motorcade.project import Project

    p = Project(d, plugin_manager=motorcade_project.plugins)
    yield p
    p.close()


def ingest_all(project):
    ingestor = project_ingestor(project)
    return [ingest(project, name, ingestor=ingestor) for name in project.config.sources]


def test_sources_stitch_into_people_with_cars_and_advisors(project):
    summaries = ingest_all(project)
    store = project.store
    crm, dms = summaries[1], summaries[2]
    assert crm.rejected == 2 and dms.rejected == 1
    reasons = {(q.source, q.position): q.reason for q in store.list_quarantine()}
    assert reasons[("crm", "line 6")].startswith("missing key")
    assert "created" in reasons[("crm", "line 7")]
    assert "check digit" in reasons[("dms", "line 5")]
    raw = {q.position: q.raw for q in store.list_quarantine(source="dms")}
    assert raw["line 5"].startswith("D3,李娜")

    zhang = store.person_of_identifier("phone", "+8613812345678")
    assert zhang == store.person_of_identifier("crm_id", "C1") == store.person_of_identifier("dms_customer_id", "D1")
    assert zhang == store.person_of_identifier("lead_id", "L1")
    person = store.get_person(zhang)
    assert person.attributes["name"] == "张伟" and "crm" in person.attributes["sources"]
    assert ("email", "zhang.wei@163.com") in {(i.type, i.value) for i in person.identifiers}
    assert person.attributes["created"] == "2024-01-02T02:00:00+00:00"  # local time -> UTC

    # junk phone links nobody: two CRM customers stay two people
    assert store.person_of_identifier("crm_id", "C3") != store.person_of_identifier("crm_id", "C4")
    # the advisor's own phone typed into leads: flagged, the leads stay apart
    assert store.person_of_identifier("lead_id", "L2") != store.person_of_identifier("lead_id", "L3")
    flagged = {f["reason"] for f in store.identity_stats()["flagged"]}
    assert "an advisor's work phone" in flagged and "junk value" in flagged

    # resale: the car moved to its new owner; the two owners are not merged
    car = vin(1)
    owners = store.conn.execute("SELECT person_id, valid_from, valid_to FROM ownerships WHERE vin = ? ORDER BY valid_from",
                                (car,)).fetchall()
    assert [o[1:] for o in owners] == [("2020-01-01", "2024-06-01"), ("2024-07-01", None)]
    assert owners[0][0] == zhang and owners[1][0] != zhang
    assert ("service_advisor", "SH001-A01") in store.relations_of(zhang)
    assert store.get_store("SH001") is not None  # placeholder until the stores file is loaded

    # consent column recorded
    assert [(c.channel, c.granted) for c in store.consents_of(zhang)] == [("sms", True)]


def test_ingesting_twice_changes_nothing(project):
    ingest_all(project)
    before = dump(project.store.path)
    again = ingest_all(project)
    assert sum(s.written for s in again) == 0 and sum(s.quarantined for s in again) == 0
    assert dump(project.store.path) == before


def test_quarantine_retry_uses_the_current_mapping(project):
    ingest_all(project)
    assert len(project.store.list_quarantine(source="dms")) == 1
    d = project.directory
    (d / "motorcade.toml").write_text(CONFIG.replace("VINCHECK", "false"), encoding="utf-8")
    from motorcade.project import Project

    fixed_project = Project(d, plugin_manager=project.plugins)
    try:
        rows = fixed_project.store.list_quarantine(source="dms")
        retried, fixed = project_ingestor(fixed_project).retry(open_source(fixed_project, "dms"), rows)
        assert (retried, fixed) == (1, 1)
        assert fixed_project.store.list_quarantine(source="dms") == []
        assert fixed_project.store.list_quarantine(source="dms", include_resolved=True)[0].resolved
        bad = fixed_project.store.conn.execute("SELECT count(*) FROM cars").fetchone()[0]
        assert bad == 3
    finally:
        fixed_project.close()


def test_cli_ingest_and_quarantine_list_mask_pii(project, monkeypatch):
    from click.testing import CliRunner

    from motorcade.cli import build_cli

    runner = CliRunner()
    result = runner.invoke(build_cli(), ["--project", str(project.directory), "ingest", "--all", "-q"])
    assert result.exit_code == 0, result.output
    assert "crm: read 6" in result.output and "quarantined 2" in result.output
    listing = runner.invoke(build_cli(), ["--project", str(project.directory), "quarantine", "list"])
    assert "13700001111" not in listing.output and "137****1111" in listing.output
    stats = runner.invoke(build_cli(), ["--project", str(project.directory), "identity", "stats"])
    assert "13800138000" not in stats.output and "junk value" in stats.output


def test_piped_ingest_prints_no_bar_frames(project):
    """stderr is not a terminal under CliRunner: the summary lines only, no spinner or bar characters."""
    from click.testing import CliRunner

    from motorcade.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["--project", str(project.directory), "ingest", "--all"])
    assert result.exit_code == 0, result.output
    assert "crm: read 6" in result.output
    assert not set("━╸⠋⠙⠹⠸") & set(result.output)


def test_a_config_error_in_any_named_source_stops_ingest_before_any_row(project):
    from click.testing import CliRunner

    from motorcade.cli import build_cli

    config = project.directory / "motorcade.toml"
    config.write_text(config.read_text(encoding="utf-8") + '\n[sources.broken]\ntype = "csv"\npath = "x.csv"\n',
                      encoding="utf-8")  # maps no records
    result = CliRunner().invoke(build_cli(), ["--project", str(project.directory), "ingest", "--all"])
    assert result.exit_code == 1 and "maps no records" in str(result.exception)
    conn = sqlite3.connect(project.directory / "motorcade.db")
    assert conn.execute("SELECT count(*) FROM people").fetchone()[0] == 0  # the good sources before it: nothing
    conn.close()


def test_ingest_without_sources_is_a_usage_error(project):
    from motorcade.cli import main

    assert main(["--project", str(project.directory), "ingest"]) == 2


@pytest.mark.parametrize("lines, line_bytes", [(0, 10), (5, 10), (100_000, 37)])
def test_the_size_estimate_of_a_file_is_close(tmp_path, lines, line_bytes):
    from motorcade.sources.base import estimate_lines

    path = tmp_path / "f.txt"
    path.write_bytes((b"x" * (line_bytes - 1) + b"\n") * lines)
    assert estimate_lines(path) == lines  # uniform lines: exact, also past the 1 MiB sample
    assert estimate_lines(tmp_path / "missing") is None
