"""Rule tags are part of the core: they compute and are checked with no tag-calculator plugin installed.

The project here has a plugin manager with only the core registered (in memory, no entry points): the
``motorcade_project`` fixture's manager loads no distribution.
"""

import json

from click.testing import CliRunner

from motorcade.cli import build_cli
from motorcade.model import Event

import datetime as dt

RULES = """\
tag vip "VIP" = case
  when count(order) >= 2 then "yes"
  else "no"
end

segment vips { where tag vip = "yes" }
"""


def invoke(project, *args):
    return CliRunner().invoke(build_cli(), ["--project", str(project.directory), *args])


def _project_with_rules(motorcade_project, rules=RULES):
    (motorcade_project.directory / "rules" / "vip.mc").write_text(rules, encoding="utf-8")
    store = motorcade_project.store
    buyer, other = store.create_person(), store.create_person()
    at = dt.datetime(2026, 11, 19, 8, tzinfo=dt.timezone.utc)
    store.insert_events([Event(name="order", ts=at, person_id=buyer, source="t", dedup_key=f"o{i}")
                         for i in range(2)])
    return buyer, other


def test_no_calculator_plugin_is_installed(motorcade_project):
    assert not motorcade_project.plugins.registry().tag_calculators


def test_a_rule_tag_computes_by_its_tag_name_without_plugins(motorcade_project):
    buyer, other = _project_with_rules(motorcade_project)
    result = invoke(motorcade_project, "tags", "compute", "vip", "--as-of", "2026-11-20T08:00")
    assert result.exit_code == 0, result.output
    assert "rule:vip" in result.output
    values = {(t.person_id, t.tag): t.value for p in (buyer, other) for t in motorcade_project.store.tags_of(p)}
    assert values == {(buyer, "vip"): "yes", (other, "vip"): "no"}


def test_a_rule_tag_computes_by_its_calculator_name(motorcade_project):
    buyer, _other = _project_with_rules(motorcade_project)
    result = invoke(motorcade_project, "tags", "compute", "rule:vip", "--as-of", "2026-11-20T08:00", "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [r["calculator"] for r in runs] == ["rule:vip"]
    assert [t.value for t in motorcade_project.store.tags_of(buyer)] == ["yes"]


def test_compute_all_without_plugins_runs_the_rule_tags(motorcade_project):
    _project_with_rules(motorcade_project)
    result = invoke(motorcade_project, "tags", "compute", "--as-of", "2026-11-20T08:00")
    assert result.exit_code == 0, result.output
    assert "rule:vip" in result.output


def test_compute_with_neither_plugins_nor_rule_tags_says_so(motorcade_project):
    result = invoke(motorcade_project, "tags", "compute")
    assert result.exit_code == 1
    assert "no tag calculators are installed" in result.output and "rule tag" in result.output


def test_check_flags_an_unknown_tag_without_plugins(motorcade_project):
    _project_with_rules(motorcade_project, RULES + '\nsegment typo { where tag vpi = "yes" }\n')
    result = invoke(motorcade_project, "check")
    assert result.exit_code == 1, result.output
    assert "unknown tag `vpi`" in result.output and "did you mean `vip`?" in result.output


def test_check_flags_an_unknown_tag_in_a_project_with_no_tags_at_all(motorcade_project):
    (motorcade_project.directory / "rules" / "s.mc").write_text(
        'segment hot { where tag intent_levle = "high" }\n', encoding="utf-8")
    result = invoke(motorcade_project, "check")
    assert result.exit_code == 1, result.output
    assert "unknown tag `intent_levle`" in result.output
