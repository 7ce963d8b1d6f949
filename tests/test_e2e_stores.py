"""End to end on both stores: the example dealer group's pipeline (ingest with One-ID, tags, segments,
campaigns and triggers, the outbox delivered to a local SMTP server and webhook gateway) run once on SQLite
and once on PostgreSQL gives the same people, identities, tags, memberships, sends, deliveries and reports."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from motorcade.store import open_store

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dealer_group"
# the example's store setting (SQLite unless MOTORCADE_DATABASE names another)
DATABASE_LINE = 'database = "${MOTORCADE_DATABASE:-motorcade.db}"'
MOTORCADE = [sys.executable, "-c", "import sys; from motorcade.cli import run; sys.argv[0] = 'motorcade'; run()"]

pytestmark = pytest.mark.skipif(not (EXAMPLE / "generate.py").exists(), reason="example generator not present")


def _receivers():
    sys.path.insert(0, str(EXAMPLE))
    try:
        from receivers import SmtpReceiver, WebhookReceiver
    finally:
        sys.path.remove(str(EXAMPLE))
    return SmtpReceiver, WebhookReceiver


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("dg") / "data"
    subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--size", "small", "--people", "300",
                    "--seed", "7", "--out", str(out)], check=True, capture_output=True)
    return out


def run_pipeline(folder: Path, data: Path, database: str) -> dict:
    """The example project with ``database``, its pipeline run by the CLI; what the receivers got."""
    folder.mkdir(parents=True)
    toml = (EXAMPLE / "motorcade.toml").read_text(encoding="utf-8")
    assert DATABASE_LINE in toml
    (folder / "motorcade.toml").write_text(toml.replace(DATABASE_LINE, f'database = "{database}"'),
                                           encoding="utf-8")
    for part in ("rules", "templates"):
        shutil.copytree(EXAMPLE / part, folder / part)
    shutil.copytree(data, folder / "data")
    SmtpReceiver, WebhookReceiver = _receivers()
    secret = secrets.token_hex(16)
    with SmtpReceiver() as smtp, WebhookReceiver(secret) as gateway:
        env = {**os.environ, "DEMO_SMTP_PORT": str(smtp.port), "DEMO_WEBHOOK_URL": gateway.url,
               "DEMO_WEBHOOK_SECRET": secret}
        result = subprocess.run([*MOTORCADE, "--project", str(folder), "pipeline"], env=env, capture_output=True,
                                text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return {"webhook": dict(gateway.keys), "email": len(smtp.messages),
                # the stages' summaries, without their timings
                "summary": [re.sub(r"[0-9.]+ s\b", "", line) for line in result.stdout.splitlines()]}


def snapshot(database: str) -> dict:
    """Everything the pipeline decided, keyed by stable ids (people ids are One-ID's; event ids may differ)."""
    store = open_store(database)
    try:
        q = lambda sql: sorted(tuple(r) for r in store.query(sql))  # noqa: E731 - portable SELECTs only
        people = {pid: store.get_person(pid) for pid in store.person_ids()}
        until = int(dt.datetime(2027, 3, 1, tzinfo=dt.timezone.utc).timestamp())
        return {
            "counts": store.status_counts(),
            "people": {pid: (p.attributes, p.identifiers) for pid, p in people.items()},
            "merges": q("SELECT old_id, new_id FROM person_merges"),
            "records": q("SELECT source, source_key, person_id, origin_person_id FROM identity_records"),
            "links": q("SELECT r.source_key, i.type, i.value, l.rule FROM identity_links l "
                       "JOIN identity_records r ON r.id = l.record_id JOIN identifiers i ON i.id = l.identifier_id"),
            "events": q("SELECT person_id, name, ts, source, dedup_key FROM events"),
            "quarantine": q("SELECT source, position, reason FROM quarantine"),
            "tags": {(t.person_id, t.tag): t.value for pid in people for t in store.tags_of(pid)},
            "members": q("SELECT segment, person_id FROM segment_members"),
            "outbox": q("SELECT idempotency_key, origin_kind, origin, person_id, step, channel, template, status, "
                        "attempts FROM outbox"),
            "snapshots": q("SELECT a.person_id, a.arm, r.origin FROM audience_snapshots a "
                           "JOIN activation_runs r ON r.id = a.run_id"),
            "consents": q("SELECT person_id, channel, granted FROM consents"),
            "funnel": store.funnel_paths(["sms_sent", "message_click"], within=(30, "days"), zone="Asia/Shanghai"),
            "cohorts": store.cohort_activity(cohort_event=None, return_event="service_visit", zone="Asia/Shanghai",
                                             until=until),
        }
    finally:
        store.close()


@pytest.mark.slow
def test_the_dealer_group_pipeline_gives_the_same_results_on_sqlite_and_postgresql(tmp_path, data, pg_url):
    sqlite_db = str(tmp_path / "sqlite" / "motorcade.db")
    delivered = {"sqlite": run_pipeline(tmp_path / "sqlite", data, sqlite_db),
                 "postgresql": run_pipeline(tmp_path / "postgresql", data, pg_url)}
    on_sqlite, on_postgres = snapshot(sqlite_db), snapshot(pg_url)
    assert on_sqlite["counts"]["sends"] > 0 and on_sqlite["members"] and on_sqlite["tags"]
    for key in on_sqlite:
        assert on_postgres[key] == on_sqlite[key], key
    assert delivered["postgresql"]["webhook"] == delivered["sqlite"]["webhook"]
    assert delivered["postgresql"]["summary"] == delivered["sqlite"]["summary"]
    assert delivered["postgresql"]["email"] == delivered["sqlite"]["email"] > 0
    assert all(n == 1 for n in delivered["postgresql"]["webhook"].values())


# -- `make demo` on PostgreSQL: one setting (MOTORCADE_DATABASE) -------------------------------------------

def _demo_copy(directory: Path) -> Path:
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns("data", "out", "motorcade.db*", "__pycache__",
                                                                      "analytics*"))
    return directory


def _demo_env(database: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MOTORCADE_DATABASE"}
    env["COLUMNS"] = "150"
    if database is not None:
        env["MOTORCADE_DATABASE"] = database
    return env


def _summary(output: str) -> str:
    """The demo's "N. Summary" section up to its timings (which vary from run to run)."""
    start = re.search(r"\d+\. Summary", output).start()
    return output[start:output.index("Time per stage", start)]


@pytest.mark.slow
def test_the_demo_runs_on_postgresql_with_one_setting_and_prints_sqlites_summary(tmp_path, pg_url):
    """All seven steps (pipeline, HTTP customers, journeys, reports, a store's view, the summary) with only
    MOTORCADE_DATABASE set; the database already holds a store from an earlier demo, which the demo empties."""
    earlier = open_store(pg_url)  # what a previous `make demo` on this database left
    earlier.create_person({"name": "left over"})
    earlier.close()
    runs = {}
    for name, database in (("sqlite", None), ("postgresql", pg_url)):
        directory = _demo_copy(tmp_path / name)
        # both side by side (each is mostly waiting on its own stages)
        runs[name] = subprocess.Popen([sys.executable, str(directory / "demo.py")], cwd=directory, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_demo_env(database))
    outputs = {}
    for name, process in runs.items():
        out, _ = process.communicate(timeout=1500)
        assert process.returncode == 0, out[-3000:]
        outputs[name] = out
    assert "the store: PostgreSQL (postgresql://" in outputs["postgresql"]
    assert "the store: SQLite" in outputs["sqlite"]
    assert not list((tmp_path / "postgresql").glob("motorcade.db*"))  # no SQLite file: it ran on PostgreSQL
    for step in range(1, 8):
        assert f"== {step}. " in outputs["postgresql"], step
    expected = _summary(outputs["sqlite"])
    assert "e-mails received by the SMTP server" in expected and "webhook keys received by the gateway" in expected
    assert _summary(outputs["postgresql"]) == expected
    store = open_store(pg_url)
    try:
        assert store.status_counts()["people"] > 1000
        assert not any(p.attributes.get("name") == "left over" for p in map(store.get_person, store.person_ids()[:5]))
    finally:
        store.close()


def test_the_demo_refuses_a_postgresql_database_that_is_not_a_motorcade_store(tmp_path, pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id integer)")
    directory = _demo_copy(tmp_path / "demo")
    done = subprocess.run([sys.executable, str(directory / "demo.py")], cwd=directory, text=True, capture_output=True,
                          env=_demo_env(pg_url), timeout=120)
    assert done.returncode == 1
    assert "holds tables that are not a Motorcade store (invoices)" in done.stderr
    assert "createdb" in done.stderr and "Traceback" not in done.stderr
    with psycopg.connect(pg_url, autocommit=True) as conn:  # untouched
        assert conn.execute("SELECT count(*) FROM invoices").fetchone()[0] == 0
        assert conn.execute("SELECT to_regclass('schema_version') IS NULL").fetchone()[0]
