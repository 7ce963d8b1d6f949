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
