"""`motorcade tags compute / list / health` on a real project with the built-in calculators registered."""

import datetime as dt
import importlib
import json

import pytest
from click.testing import CliRunner

from motorcade.cli import build_cli
from motorcade.model import Event

BUILT_INS = ("value", "activity", "intent", "lifecycle", "quadrant")


@pytest.fixture
def project(motorcade_project, register_plugin):
    for name in BUILT_INS:
        module = pytest.importorskip(f"motorcade_tags_{name}")
        register_plugin(importlib.reload(module) and module, name=name)
    store = motorcade_project.store
    p1, p2 = store.create_person({"income_band": ">100万"}), store.create_person()
    at = dt.datetime(2026, 11, 19, 8, tzinfo=dt.timezone.utc)
    store.insert_events([
        Event(name="share", ts=at, person_id=p1, source="t", dedup_key=f"s{i}") for i in range(4)] + [
        Event(name="reservation", ts=at, person_id=p1, source="t", dedup_key="r"),
        Event(name="test_drive", ts=at, person_id=p1, source="t", dedup_key="d"),
        Event(name="service_visit", ts=at, person_id=p2, properties={"store": "S1", "amount": 500}, source="t",
              dedup_key="v")])
    return motorcade_project


def invoke(project, *args):
    result = CliRunner().invoke(build_cli(), ["--project", str(project.directory), "tags", *args],
                                catch_exceptions=False)
    return result


def test_compute_list_and_health(project):
    result = invoke(project, "compute", "--as-of", "2026-11-20T08:00")
    assert result.exit_code == 0, result.output
    assert "quadrant v1: 2 values for everyone (full)" in result.output
    assert project.store.tags_of(1)[0].calculator  # written
    layers = {t.tag: t.value for t in project.store.tags_of(1)}
    assert layers["intent_activity_quadrant"] == "高意向高活跃" and layers["purchase_power"] == "high"

    listed = json.loads(invoke(project, "list", "--json").stdout)
    assert {r["tag"] for r in listed} >= {"group_value_score", "activity_level", "intent_level", "lifecycle_stage",
                                          "intent_activity_quadrant"}
    assert listed[-1]["calculator"] in ("quadrant", "value")  # dependency order: quadrant after its inputs

    health = invoke(project, "health")
    assert health.exit_code == 0
    assert "activity_level" in health.output and "100.0%" in health.output and "ok" in health.output
    rows = {r["tag"]: r for r in json.loads(invoke(project, "health", "--json").stdout)}
    assert rows["lifecycle_stage"]["figures"]["counts"] == {"prospect": 2}
    assert rows["top_store"]["coverage"] == 0.5


def test_incremental_compute_and_selection(project):
    invoke(project, "compute", "--as-of", "2026-11-20T08:00")
    result = invoke(project, "compute", "quadrant", "--incremental", "--as-of", "2026-11-20T08:00", "--json")
    runs = json.loads(result.stdout)  # the progress bar goes to stderr
    assert [(r["calculator"], r["mode"], r["people"]) for r in runs] == [
        ("activity", "incremental", 0), ("intent", "incremental", 0), ("quadrant", "incremental", 0)]


def test_unknown_name_is_a_clean_error(project):
    result = CliRunner().invoke(build_cli(), ["--project", str(project.directory), "tags", "compute", "intnet"])
    assert result.exit_code != 0 and "did you mean `intent`" in str(result.exception)


def test_tags_compute_prints_no_bar_frames_when_piped(tmp_path):
    """stderr is not a terminal: the results only, no progress bar frames (issue 15 item 8)."""
    import subprocess
    import sys

    from motorcade.project import init_project

    project = init_project(tmp_path / "p")
    (project.directory / "rules" / "r.mc").write_text('tag vip = case when (did order) then "yes" else "no" end\n',
                                                      encoding="utf-8")
    project.close()
    result = subprocess.run([sys.executable, "-c", "from motorcade.cli import run; run()", "--project",
                             str(tmp_path / "p"), "tags", "compute", "vip"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Computing tags" not in result.stderr and "rule:vip" in result.stdout
