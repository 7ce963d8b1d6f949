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
