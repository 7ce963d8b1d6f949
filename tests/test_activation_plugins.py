"""Sends for a channel whose plugin failed to load stay pending; `run` says so and exits 1.

The broken plugin is a real distribution on ``sys.path`` (a ``.dist-info`` with a ``motorcade`` entry
point) whose module raises ImportError, loaded by the real ``load_plugins()``; the working one is the
same channel registered in memory.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from motorcade.activation.runner import run_once
from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import memory_channel_plugin
from motorcade.cli import main
from motorcade.plugins import get_plugin_manager, load_plugins, set_plugin_manager
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)


@pytest.fixture
def broken_distribution(tmp_path, monkeypatch):
    """A distribution `motorcade-jsonfile` whose `jsonfile` entry point fails to import."""
    site = tmp_path / "site"
    info = site / "motorcade_jsonfile-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: motorcade-jsonfile\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[motorcade]\njsonfile = motorcade_jsonfile_broken\n", encoding="utf-8")
    (site / "motorcade_jsonfile_broken.py").write_text("import jsonlines_not_installed\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("MOTORCADE_LOAD_PLUGINS", "jsonfile")
    previous = get_plugin_manager.__globals__["_default"]
    try:
        yield
    finally:
        set_plugin_manager(previous)


def broken_pm():
    pm = load_plugins()
    assert [e.name for e in pm.load_errors] == ["jsonfile"]
    return pm


def working_pm(memory):
    pm = load_plugins(entry_points=False)
    pm.register(memory, name="jsonfile")
    return pm


RULES = """
segment owners { where profile.is_owner = true }
campaign notice { audience owners  schedule daily at 10:00  via jsonfile template "n"  transactional }
"""


def make_project(tmp_path, pm) -> Project:
    directory = tmp_path / "p"
    (directory / "rules").mkdir(parents=True, exist_ok=True)
    (directory / "templates").mkdir(exist_ok=True)
    (directory / "motorcade.toml").write_text("""
[project]
name = "t"
timezone = "Asia/Shanghai"

[channels.jsonfile]
path = "out.jsonl"
""", encoding="utf-8")
    (directory / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
    (directory / "templates" / "n.txt").write_text("{{ person.name }}", encoding="utf-8")
    return Project(directory, plugin_manager=pm)


def add_people(project, n=3) -> list[int]:
    store = project.store
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(n)]
    store.record_segment_run("owners", ids, revision="t", as_of=NOW, computed_at=NOW, duration_ms=0, plan=None)
    return ids


def test_planned_sends_of_a_channel_whose_plugin_failed_to_load_stay_pending(tmp_path, broken_distribution):
    memory = memory_channel_plugin("jsonfile")
    project = make_project(tmp_path, working_pm(memory))
    ids = add_people(project)
    run_once(ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w"), dispatch=False)
    assert len(project.store.list_sends()) == len(ids)
    # the plugin breaks (a dependency was uninstalled) before the sends go out
    broken = Project(project.directory, plugin_manager=broken_pm())
    report = run_once(ActivationContext.for_project(broken, clock=lambda: NOW, worker_id="w"))
    sends = broken.store.list_sends()
    assert {s["status"] for s in sends} == {"deferred"}
    assert all("channel 'jsonfile' is not loaded" in s["reason"] and "motorcade-jsonfile" in s["reason"]
               and "ModuleNotFoundError" in s["reason"] for s in sends), sends[0]["reason"]
    assert any("plugin 'jsonfile' (motorcade-jsonfile) failed to load" in e for e in report.errors), report.errors
    # fixed: the same sends go out
    later = NOW + dt.timedelta(minutes=5)
    fixed = Project(project.directory, plugin_manager=working_pm(memory))
    report = run_once(ActivationContext.for_project(fixed, clock=lambda: later, worker_id="w"))
    assert report.errors == [] and report.dispatched["sent"] == len(ids)
    assert sorted(m.person_id for m in memory.sent) == ids
    for p in (project, broken, fixed):
        p.close()


def test_a_campaign_whose_channel_plugin_failed_to_load_is_not_planned_and_run_exits_1(
        tmp_path, broken_distribution, capsys):
    pm = broken_pm()
    set_plugin_manager(pm)
    project = make_project(tmp_path, pm)
    add_people(project)
    report = run_once(ActivationContext.for_project(project, clock=lambda: NOW, worker_id="w"))
    assert project.store.list_sends() == []  # nothing planned, nothing suppressed: the slot stays due
    assert any("campaign notice:" in e and "plugin 'jsonfile' (motorcade-jsonfile) failed to load" in e
               for e in report.errors), report.errors
    code = main(["--project", str(project.directory), "run"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "channel 'jsonfile' is not loaded" in err and "ModuleNotFoundError" in err
    assert "suppressed" not in out
    memory = memory_channel_plugin("jsonfile")
    fixed = Project(project.directory, plugin_manager=working_pm(memory))
    run_once(ActivationContext.for_project(fixed, clock=lambda: NOW, worker_id="w"))
    assert len(memory.sent) == 3
    project.close()
    fixed.close()
