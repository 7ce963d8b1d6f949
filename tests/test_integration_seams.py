"""Where features merged from parallel branches meet: store scopes (access) on journeys, and so on."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import memory_channel_plugin
from motorcade.dsl import format_rules, parse_text, rule_set_from_text
from motorcade.dsl.check import check
from motorcade.journeys.engine import process_journey
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")

CONFIG = """
[project]
name = "t"
timezone = "Asia/Shanghai"
database = "motorcade.db"
rules = ["rules"]

[channels.memory]
"""


@pytest.fixture
def journey_project(motorcade_project, motorcade_pm, register_plugin):
    def build(rules: str):
        directory = motorcade_project.directory
        (directory / "motorcade.toml").write_text(CONFIG, encoding="utf-8")
        (directory / "rules" / "main.mc").write_text(rules, encoding="utf-8")
        (directory / "templates").mkdir(exist_ok=True)
        (directory / "templates" / "hello.txt").write_text("您好 {{ person.name }}", encoding="utf-8")
        register_plugin(memory_channel_plugin(), name="memory")
        project = Project(directory, plugin_manager=motorcade_pm)
        project.__dict__["store"] = motorcade_project.store
        now = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)

        def context():
            return ActivationContext.for_project(project, clock=lambda: now, worker_id="w1",
                                                 rule_set=project.rules(checked=False))
        return project, context, now

    return build


SCOPED_JOURNEY = """\
scope store "SH01"

segment sh01_owners {
  where profile.is_owner = true
}

journey sh01_recall {
  entry on entering segment sh01_owners
  invite: send via memory template "hello"
}
"""


def test_a_store_scoped_journey_lets_in_and_sends_to_its_stores_people_only(journey_project):
    """`scope store "SH01"` at the top of a journeys file: someone of another store (or of none) who enters
    the entry segment does not enter the journey and gets nothing."""
    project, context, now = journey_project(SCOPED_JOURNEY)
    store = project.store
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(4)]
        store.set_relation(ids[0], "selling_store", "SH01")
        store.set_relation(ids[1], "home_store", "SH02")
        store.set_relation(ids[3], "service_store", "SH01")
    store.record_segment_run("sh01_owners", ids, revision="t", as_of=now, computed_at=now, duration_ms=0,
                             plan=None)
    totals = process_journey(context(), "sh01_recall")
    assert totals["entered"] == 2 and totals["sends"] == 2
    assert {s["person_id"] for s in store.list_sends(origin="sh01_recall", limit=100)} == {ids[0], ids[3]}


def test_journey_scope_parses_per_rule_and_from_the_file_and_round_trips():
    text = ('scope store "SH01"\n\nsegment a {\n  where did x\n}\n\njourney j {\n  entry on entering segment a\n'
            '  s: send via memory template "hello"\n}\n\njourney k {\n  scope store "SH02"\n'
            '  entry on entering segment a\n  s: send via memory template "hello"\n}\n')
    parsed = parse_text(text)
    assert [r.scope.stores for r in parsed.rules] == [("SH01",), ("SH01",), ("SH02",)]
    assert format_rules(parsed) == text
    assert parse_text(format_rules(parsed)).rules == parsed.rules


def test_check_rejects_a_store_journey_reading_group_segments_or_group_tags():
    text = """\
segment everyone { where did service_visit }

scope store "SH01"

journey recall {
  entry on entering segment everyone
  exit when tag group_value_score >= 4
  s: send via memory template "hello"
}
"""
    messages = [d.message for d in check(rule_set_from_text(text))]
    assert 'journey `recall` is scoped to store "SH01" but uses segment `everyone`, which covers the whole ' \
           'group' in messages
    assert 'tag `group_value_score` is the group\'s (weighted over every store): a rule scoped to store "SH01" ' \
           'may not read it' in messages
