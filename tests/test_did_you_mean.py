"""Every command that looks a name up suggests the closest one with the same helper `check` uses
(`motorcade.dsl.errors.did_you_mean`), so the hint reads the same everywhere."""

import json
import subprocess
import sys

import pytest

from motorcade.dsl.errors import did_you_mean

RULES = """
segment vip_owners {
  where profile.name is not null
}
tag loyalty_level = case
  when in segment vip_owners then "high"
  else "low"
end
trigger order_thanks {
  on order
  via webhook template "thanks"
  transactional
}
campaign spring_recall {
  audience vip_owners
  schedule daily at 10:00
  send to all members
  via webhook template "thanks"
}
funnel recall_funnel {
  steps sent, clicked, service_visit
  within 30 days
}
"""

TESTS = """
as of 2026-11-20 00:00
timezone "Asia/Shanghai"

people:
  id | profile.name
  1  | "Wei"

events:
  id | person | event | at
  1  | 1      | order | 2026-11-01 15:00

expect segment vip_owner exactly [1]
expect tag loyalty_levl of 1 = "high"
expect trigger order_thank fires on event 1
"""


def motorcade(project, *args):
    return subprocess.run([sys.executable, "-m", "motorcade.cli", "--project", str(project), *args],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("dym") / "p"
    assert motorcade(root.parent, "init", str(root)).returncode == 0
    (root / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
    (root / "rules" / "main.test.mc").write_text(TESTS, encoding="utf-8")
    return root


@pytest.mark.parametrize("args, suggestion", [
    (["explain", "vip_ownrs"], "vip_owners"),
    (["explain", "vip_ownrs", "--person", "1"], "vip_owners"),
    (["segments", "compute", "vip_ownrs"], "vip_owners"),
    (["tags", "compute", "activity_levl"], "activity_level"),  # a bundled calculator's tag
    (["report", "funnel", "recall_funel"], "recall_funnel"),
    (["report", "uplift", "spring_recal"], "spring_recall"),
])
def test_a_misspelled_name_gets_the_check_hint(project, args, suggestion):
    result = motorcade(project, *args)
    assert result.returncode != 0, result.stdout
    assert did_you_mean(args[1] if args[0] != "segments" and args[0] != "tags" and args[0] != "report" else args[2],
                        [suggestion]) in result.stdout + result.stderr, result.stdout + result.stderr


def test_rule_tests_suggest_the_rule_they_meant(project):
    result = motorcade(project, "test")
    out = result.stdout + result.stderr
    assert result.returncode == 1
    for suggestion in ("did you mean `vip_owners`?", "did you mean `loyalty_level`?", "did you mean `order_thanks`?"):
        assert suggestion in out, out


@pytest.fixture(scope="module")
def project_with_events(tmp_path_factory):
    import datetime as dt

    from motorcade.model import Event
    from motorcade.store import open_store

    root = tmp_path_factory.mktemp("dym_events") / "p"
    assert motorcade(root.parent, "init", str(root)).returncode == 0
    store = open_store(root / "motorcade.db")
    person = store.create_person({"name": "Wei"})
    store.insert_events([Event("service_visit", dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc), person_id=person,
                               source="t", dedup_key="1")])
    store.close()
    return root


@pytest.mark.parametrize("args", [
    ["report", "retention", "--event", "srvice_visit"],
    ["report", "churn", "--event", "srvice_visit"],
    ["report", "funnel", "--steps", "sent,srvice_visit"],
])
def test_reports_warn_about_a_misspelled_event(project_with_events, args):
    result = motorcade(project_with_events, *args, "--format", "json")
    assert "did you mean `service_visit`?" in result.stderr, result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)  # the warning stays on stderr: the JSON is intact
