"""`motorcade store copy --to postgresql://...`: the example dealer group's SQLite store moves into PostgreSQL with
every row and id, the verification passes, and it catches a copy that differs."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.store import open_store
from motorcade.store.copy import verify_copy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dealer_group"
MOTORCADE = [sys.executable, "-c", "import sys; from motorcade.cli import run; sys.argv[0] = 'motorcade'; run()"]
AS_OF = "2026-11-21T10:30:00"

pytestmark = pytest.mark.skipif(not (EXAMPLE / "generate.py").exists(), reason="example generator not present")


def cli(project: Path, *args):
    return subprocess.run([*MOTORCADE, "--project", str(project), *args], capture_output=True, text=True,
                          env={**os.environ}, timeout=900)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The example project on SQLite after ingest, tags and segments."""
    folder = tmp_path_factory.mktemp("copy") / "project"
    subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--size", "small", "--people", "300",
                    "--seed", "11", "--out", str(folder / "data")], check=True, capture_output=True)
    shutil.copy(EXAMPLE / "motorcade.toml", folder / "motorcade.toml")
    for part in ("rules", "templates"):
        shutil.copytree(EXAMPLE / part, folder / part)
    result = cli(folder, "pipeline", "--stage", "ingest", "--stage", "tags", "--stage", "segments")
    assert result.returncode == 0, result.stderr
    return folder


def test_store_copy_moves_every_row_and_verifies(project, pg_url):
    result = cli(project, "store", "copy", "--to", pg_url, "--batch", "500", "--as-of", AS_OF)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify: OK" in result.stdout and "events:" in result.stdout  # progress per table
    source, target = open_store(project / "motorcade.db"), open_store(pg_url)
    try:
        assert target.status_counts() == source.status_counts()
        for pid in source.person_ids()[::7]:  # ids kept: the same person under the same id
            assert target.get_person(pid) == source.get_person(pid)
            assert target.tags_of(pid) == source.tags_of(pid)
            assert target.events_of(pid) == source.events_of(pid)
        assert target.send_stats() == source.send_stats()
        # the copy is a working store: new rows continue after the copied ids
        assert target.create_person({"name": "新客户"}) == max(source.person_ids()) + 1
    finally:
        source.close()
        target.close()
    again = cli(project, "store", "copy", "--to", pg_url)
    assert again.returncode == 1 and "is not empty" in again.stderr + again.stdout


def test_verify_finds_a_copy_that_differs(project, pg_url):
    assert cli(project, "store", "copy", "--to", pg_url, "--no-verify").returncode == 0
    source, target = open_store(project / "motorcade.db"), open_store(pg_url)
    try:
        from motorcade.project import Project

        rules = Project(project).rules()
        as_of = dt.datetime.fromisoformat(AS_OF + "+08:00")
        assert verify_copy(source, target, rules, "Asia/Shanghai", as_of).ok
        with target.transaction():  # one person's tags lost in the copy
            target.conn.execute_native("DELETE FROM tag_values WHERE person_id = (SELECT min(person_id) "
                                       "FROM tag_values WHERE tag = 'lifecycle_stage')")
        check = verify_copy(source, target, rules, "Asia/Shanghai", as_of)
        assert not check.ok
        assert check.counts["tag_values"][0] > check.counts["tag_values"][1]
        assert any(differ for *_, differ in check.segments.values())
    finally:
        source.close()
        target.close()


def test_store_copy_is_audited_in_both_stores_and_still_verifies(project, pg_url):
    """`store copy` moves every person's data: it is audited (docs/access.md). The entry that it started is
    written to the source before any row is read, so it is copied too and the chains agree; the outcome lands
    in the target (after verify) and in the source's log; verify compares the audit log up to the copy's own
    entry, so later entries (the outcome, later actions) never make a good copy look different."""
    import json
    import re

    with_password = re.sub(r"^postgresql://([^@/]+)@", r"postgresql://\1:s3cret-pw@", pg_url)
    assert "s3cret-pw" in with_password
    result = cli(project, "store", "copy", "--to", with_password, "--as-of", AS_OF)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify: OK" in result.stdout
    source, target = open_store(project / "motorcade.db"), open_store(pg_url)
    try:
        started = source.audit_entries(action="store.copy.started", limit=1)
        assert started and "/:***@" not in pg_url and ":***@" in json.loads(started[0]["arguments"])["to"]
        copied = target.audit_entries(action="store.copy.started", limit=1)
        assert copied == started  # the same entry, same hash: copied with the rows
        outcome = target.audit_entries(action="store.copy", limit=1)[0]
        assert outcome["action"] == "store.copy" and outcome["id"] == started[0]["id"] + 1
        affected = json.loads(outcome["affected"])
        assert affected["outcome"] == "ok" and affected["verify"] == "ok" and affected["rows"] > 0
        assert affected["started_entry"] == started[0]["id"]
        mine = [e for e in source.audit_entries(action="store.copy") if e["action"] == "store.copy"][0]
        assert mine["id"] > started[0]["id"] and json.loads(mine["affected"])["outcome"] == "ok"
        from motorcade.access.audit import verify_chain

        for store in (source, target):  # both chains whole: the target's continues the copied one
            assert verify_chain(store.audit_chain())[1] == []
        for store in (source, target):
            everything = json.dumps(store.audit_entries())
            assert "s3cret-pw" not in everything and "***" in everything
        # the source moved on (its outcome entry, a later action): the copy still verifies
        source.audit("segments.compute", {"names": ["x"]}, {"outcome": "ok"})
        from motorcade.project import Project

        rules = Project(project).rules()
        as_of = dt.datetime.fromisoformat(AS_OF + "+08:00")
        check = verify_copy(source, target, rules, "Asia/Shanghai", as_of)
        assert check.ok, check.counts
        # a copied entry missing from the target is a difference
        with target.transaction():
            target.conn.execute_native("ALTER TABLE audit_log DISABLE TRIGGER USER")
            target.conn.execute_native("DELETE FROM audit_log WHERE id = %s", (started[0]["id"] - 1,))
        check = verify_copy(source, target, rules, "Asia/Shanghai", as_of)
        assert not check.ok and check.counts["audit_log"][0] == check.counts["audit_log"][1] + 1
    finally:
        source.close()
        target.close()
# Values that COPY's text format escapes (backslash, tab, newline, carriage return), that its CSV format
# would quote, or that a JSON document must escape again inside them; NULL next to the empty string.
AWKWARD = ["", "\\", "\\N", "a\tb", "line\nbreak", "cr\rlf\r\n", "back\\slash\\t", '引号"内"', "客户 王小明",
           '{"json": "in \\"text\\""}', "🚗 emoji", "\u2028sep", "trailing space ", ",;|"]
_texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


def _fill_awkward(store, values: list[str]) -> list[int]:
    """People, events, identifiers, tags and relations holding ``values`` (and NULLs where a column allows)."""
    from motorcade.model import Event

    at = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    with store.transaction():
        ids = [store.create_person({"name": v, "note": None, "nested": {"q": v, "list": [v, None, 1.5]}})
               for v in values]
        store.insert_events(Event("页面\t浏览" if i % 2 else "page_view", at + dt.timedelta(seconds=i), pid,
                                  {"text": v, "none": None, "n": i}, source=v or "s",
                                  dedup_key=None if i % 3 == 0 else f"k{i}\\{v}")
                            for i, (pid, v) in enumerate(zip(ids, values)))
        store.insert_identifiers((i + 1, "crm_id", f"{i}:{v}", pid, None if i % 2 else v)
                                 for i, (pid, v) in enumerate(zip(ids, values)))
        for pid, v in zip(ids, values):
            store.set_relation(pid, "advisor", v, source=None)
    store.write_tag_values([(pid, "note", v) for pid, v in zip(ids, values)] +
                           [(pid, "score", i + 0.25) for i, pid in enumerate(ids)],
                           tags=["note", "score"], calculator="t", calculator_version="1", computed_at=at)
    return ids


def _assert_same(source, target, ids: list[int]) -> None:
    for pid in ids:
        assert target.get_person(pid) == source.get_person(pid)
        assert target.events_of(pid) == source.events_of(pid)
        assert target.tags_of(pid) == source.tags_of(pid)
        assert target.relations_of(pid) == source.relations_of(pid)
        assert target.identity_rows_of_people([pid]) == source.identity_rows_of_people([pid])


def test_store_copy_keeps_values_copy_escapes(tmp_path, pg_url):
    from motorcade.store.copy import copy_store

    source, target = open_store(tmp_path / "s.db"), open_store(pg_url)
    try:
        ids = _fill_awkward(source, AWKWARD)
        copy_store(source, target, batch_size=3)
        _assert_same(source, target, ids)
        assert target.get_person(ids[0]).attributes["note"] is None  # JSON null stays null, not the text "None"
    finally:
        source.close()
        target.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_texts, min_size=1, max_size=6))
def test_store_copy_keeps_any_text(tmp_path_factory, pg_cluster, values):
    from motorcade.store.copy import copy_store

    url = pg_cluster.create_database("copy")
    source = open_store(tmp_path_factory.mktemp("copy") / "s.db")
    target = open_store(url)
    try:
        ids = _fill_awkward(source, values)
        copy_store(source, target, batch_size=4)
        _assert_same(source, target, ids)
    finally:
        source.close()
        target.close()
        pg_cluster.drop_database(url)


def test_store_copy_leaves_tables_all_visible(tmp_path, pg_url):
    """Right after a copy, index-only scans (the segment plans' event probes) read no table page: the copied
    pages are frozen and all-visible. Otherwise the first segment runs after a copy read the whole heap
    (at 20M events: 15 s instead of 1 s for one segment) until autovacuum comes by."""
    from motorcade.store.copy import copy_store

    source, target = open_store(tmp_path / "s.db"), open_store(pg_url)
    try:
        _fill_awkward(source, AWKWARD * 40)
        copy_store(source, target, batch_size=100)
        pages = {t: (p, v) for t, p, v in target.conn.execute_native(
            "SELECT relname, relpages, relallvisible FROM pg_class WHERE relname IN ('events', 'people', "
            "'tag_values', 'identifiers')").fetchall()}
        assert len(pages) == 4 and all(p > 0 and v == p for p, v in pages.values()), pages
        plan = "\n".join(r[0] for r in target.conn.execute_native(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT person_id FROM events WHERE name = 'page_view' AND ts >= 0 "
            "AND person_id IS NOT NULL").fetchall())
        assert "Heap Fetches: 0" in plan or "Index Only Scan" not in plan, plan
    finally:
        source.close()
        target.close()


def test_throwaway_cluster_takes_server_settings(pg_cluster):
    """The stores bench sizes its server (shared_buffers, work_mem, ...); the settings reach the server and the
    rest keep the test defaults."""
    import psycopg

    from motorcade.store.postgres.cluster import ThrowawayCluster

    cluster = ThrowawayCluster(pg_cluster.bin_dir, {"work_mem": "7MB", "random_page_cost": "1.1"}).start()
    try:
        with psycopg.connect(cluster.url()) as conn:
            shown = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                     for name in ("work_mem", "random_page_cost", "fsync", "shared_buffers")}
    finally:
        cluster.stop()
    assert shown == {"work_mem": "7MB", "random_page_cost": "1.1", "fsync": "off", "shared_buffers": "128MB"}
