"""The example dealer group: generated files ingest into exactly the planted One-ID profiles; a run
killed half-way and re-run ends with the same database as one clean run."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from motorcade.testing import dump_database

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dealer_group"
MOTORCADE = [sys.executable, "-c", "import sys; from motorcade.cli import run; sys.argv[0] = 'motorcade'; run()"]

pytestmark = pytest.mark.skipif(not (EXAMPLE / "generate.py").exists(), reason="example generator not present")


def dump(path) -> dict:
    return dump_database(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("dg") / "data"
    subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--size", "small", "--people", "400",
                    "--seed", "7", "--out", str(out)], check=True, capture_output=True)
    return out


def make_project(tmp: Path, data: Path, extra: str = "") -> Path:
    tmp.mkdir(parents=True)
    (tmp / "rules").mkdir()
    (tmp / "motorcade.toml").write_text((EXAMPLE / "motorcade.toml").read_text(encoding="utf-8") + extra, encoding="utf-8")
    shutil.copytree(data, tmp / "data")
    return tmp


def cli(project: Path, *args, **kw):
    env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": "csv,jsonl"}
    return subprocess.run([*MOTORCADE, "--project", str(project), *args], env=env, capture_output=True, text=True, **kw)


def test_example_ingests_into_the_planted_profiles(tmp_path, data):
    project = make_project(tmp_path / "p", data)
    result = cli(project, "ingest", "--all", "--json")
    assert result.returncode == 0, result.stderr
    summaries = {s["source"]: s for s in json.loads(result.stdout)}
    manifest = json.loads((data / "manifest.json").read_text())
    dirty = manifest["dirty_rows"]
    files = {"crm": "crm_customers.csv", "dms": "dms_owners.csv", "leads": "leads.csv", "insurance": "insurance.csv",
             "events": "events.jsonl", "wechat": "wechat_events.jsonl"}
    for source, file in files.items():
        assert summaries[source]["rejected"] == sum(dirty.get(file, {}).values()), source
    conn = sqlite3.connect(project / "motorcade.db")
    people = conn.execute("SELECT count(*) FROM people").fetchone()[0]
    assert people == manifest["truth"]["expected_profiles"]
    assert conn.execute("SELECT count(*) FROM cars").fetchone()[0] == manifest["truth"]["cars"]
    assert conn.execute("SELECT count(*) FROM ownerships").fetchone()[0] == manifest["truth"]["ownerships"]
    # no event is left on a merged-away id
    assert conn.execute("SELECT count(*) FROM events WHERE person_id NOT IN (SELECT id FROM people)").fetchone()[0] == 0
    explain = cli(project, "identity", "explain", "1")
    assert explain.returncode == 0 and "Why they are one person" in explain.stdout


def test_killed_run_then_rerun_equals_one_clean_run(tmp_path, data):
    clean = make_project(tmp_path / "clean", data, "\n")
    killed = make_project(tmp_path / "killed", data, "\n")
    for project in (clean, killed):
        text = (project / "motorcade.toml").read_text(encoding="utf-8")
        (project / "motorcade.toml").write_text(text.replace('format = "native"', 'format = "native"\nbatch_size = 500'),
                                                encoding="utf-8")
    assert cli(clean, "ingest", "-q", "crm", "events").returncode == 0
    assert cli(killed, "ingest", "-q", "crm").returncode == 0
    env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": "csv,jsonl"}
    proc = subprocess.Popen([*MOTORCADE, "--project", str(killed), "ingest", "-q", "events"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = killed / "motorcade.db"
    deadline = time.time() + 60
    n = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            conn = sqlite3.connect(db, timeout=1)
            n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            conn.close()
        except sqlite3.OperationalError:
            n = 0
        if n >= 1000:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert 0 < n
    assert cli(killed, "ingest", "-q", "events").returncode == 0
    assert dump(killed / "motorcade.db") == dump(clean / "motorcade.db")
