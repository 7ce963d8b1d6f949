"""Tags imported from another system: ``[sources.X.tags]`` maps a CSV export's columns to tags, with their
catalogue entry, provenance and health like computed tags; a tag with two producers is an error naming both."""

import datetime as dt
import json

import pytest
from click.testing import CliRunner

import motorcade
import motorcade_sources_csv
from motorcade.cli import build_cli
from motorcade.errors import ConfigError
from motorcade.sources.ingest import ingest
from motorcade.sources.mapping import RowMapping
from motorcade.tags.base import TagCalculator, TagDefinition

CONFIG = """
[project]
name = "t"
timezone = "Asia/Shanghai"

[sources.leads]
type = "csv"
path = "leads.csv"
[sources.leads.person]
key = "lead"
identifiers = { lead_id = "lead" }
[sources.leads.tags]
intent_level = { column = "intent", type = "string", values = ["low", "medium", "high"], title = "购买意向等级" }
lead_score = { column = "score", type = "number", range = [0, 100] }
hot = { column = "hot", type = "boolean" }
"""

LEADS = ("lead,intent,score,hot\n"
         "L1,high,87,yes\n"
         "L2,low,12.5,no\n"
         "L3,,40,\n"          # no intent level from the scoring system: no value
         "L4,hgih,50,yes\n")  # not an allowed value: the row goes to quarantine


class IntentCalculator(TagCalculator):
    name = "intent"
    produces = (TagDefinition("intent_level", "string", "computed intent"),)

    def compute(self, context):
        return []


class IntentPlugin:
    @motorcade.hookimpl
    def register_tag_calculators(self, register):
        register(IntentCalculator())


@pytest.fixture
def project(motorcade_project, register_plugin):
    register_plugin(motorcade_sources_csv, name="csv")
    d = motorcade_project.directory
    (d / "motorcade.toml").write_text(CONFIG, encoding="utf-8")
    (d / "leads.csv").write_text(LEADS, encoding="utf-8")
    from motorcade.project import Project

    p = Project(d, plugin_manager=motorcade_project.plugins)
    yield p
    p.close()


def invoke(project, *args):
    return CliRunner().invoke(build_cli(), ["--project", str(project.directory), *args])


def tags_of(project, key):
    person = project.store.person_of_identifier("lead_id", key)
    return {t.tag: (t.value, t.calculator) for t in project.store.tags_of(person)}


def test_a_source_loads_tag_values_with_their_catalogue_and_health(project):
    summary = ingest(project, "leads")
    assert summary.rejected == 1 and summary.tag_values == 7  # L1 3, L2 3, L3 1 (score)
    [row] = project.store.list_quarantine(source="leads")
    assert "intent" in row.reason and "'hgih' is not one of low, medium, high" in row.reason
    assert tags_of(project, "L1") == {"intent_level": ("high", "source:leads"), "lead_score": (87, "source:leads"),
                                      "hot": (1, "source:leads")}
    assert tags_of(project, "L2")["lead_score"] == (12.5, "source:leads")
    assert "intent_level" not in tags_of(project, "L3")

    listed = {r["tag"]: r for r in json.loads(invoke(project, "tags", "list", "--json").stdout)}
    assert listed["intent_level"]["title"] == "购买意向等级" and listed["intent_level"]["type"] == "string"
    assert listed["intent_level"]["values"] == ["low", "medium", "high"]
    assert listed["intent_level"]["calculator"] == "source:leads"
    assert listed["lead_score"]["values"] == [0, 100] and listed["hot"]["type"] == "boolean"

    health = {r["tag"]: r for r in json.loads(invoke(project, "tags", "health", "--json").stdout)}
    assert health["intent_level"]["calculator"] == "source:leads"
    assert health["intent_level"]["coverage"] == pytest.approx(2 / 3)  # of the three people read
    assert health["intent_level"]["figures"]["counts"] == {"high": 1, "low": 1}
    assert health["intent_level"]["age_seconds"] < 600  # freshness: read just now

    (project.directory / "rules" / "hot.mc").write_text(
        'segment hot_leads { where tag intent_level = "high" and tag hot = true }\n', encoding="utf-8")
    check = invoke(project, "check")
    assert check.exit_code == 0, check.output
    from motorcade.segments.compute import members_now

    assert members_now(project, "hot_leads") == [project.store.person_of_identifier("lead_id", "L1")]


def test_a_rule_tag_reads_an_imported_tag(project):
    ingest(project, "leads")
    (project.directory / "rules" / "t.mc").write_text(
        'tag follow_up = case when tag lead_score >= 50 then "call" else "wait" end\n', encoding="utf-8")
    result = invoke(project, "tags", "compute", "follow_up")
    assert result.exit_code == 0, result.output
    assert tags_of(project, "L1")["follow_up"] == ("call", "rule:follow_up")
    assert tags_of(project, "L2")["follow_up"] == ("wait", "rule:follow_up")
    refused = invoke(project, "tags", "compute", "lead_score")
    assert refused.exit_code == 1 and "imported by source 'leads'" in str(refused.exception)


def test_a_tag_from_a_source_and_a_calculator_is_a_check_error_naming_both(project, register_plugin):
    register_plugin(IntentPlugin(), name="intent")
    (project.directory / "rules" / "s.mc").write_text('segment hot { where tag intent_level = "high" }\n',
                                                      encoding="utf-8")
    result = invoke(project, "check")
    assert result.exit_code == 1
    assert "motorcade.toml: error: tag `intent_level` is produced by both calculator `intent` and source `leads`" \
        in result.output
    refused = invoke(project, "tags", "compute")
    assert refused.exit_code == 1
    assert "produced by both calculator 'intent' and source 'leads'" in str(refused.exception)


def test_a_rule_tag_named_like_an_imported_tag_is_a_check_error(project):
    (project.directory / "rules" / "t.mc").write_text(
        'tag lead_score = case when (did order) then 1 else 0 end\n', encoding="utf-8")
    result = invoke(project, "check")
    assert result.exit_code == 1
    assert "rule tag `lead_score` has the name of a tag source `leads` produces" in result.output


@pytest.mark.parametrize("table, message", [
    ({"x": {"column": "c", "type": "text"}}, "type 'text' is not a tag type"),
    ({"x": {"column": "c", "values": "low"}}, "values must be a list"),
    ({"x": {"column": "c", "type": "string", "range": [0, 1]}}, "range is [low, high] and only for type"),
    ({"x": {"type": "string"}}, "expected a column name"),
    ({"x": {"column": "c", "colour": "red"}}, "unknown key(s) colour"),
])
def test_bad_tag_tables_are_config_errors(table, message):
    settings = {"person": {"identifiers": {"phone": "m"}}, "tags": table}
    with pytest.raises(ConfigError) as info:
        RowMapping("leads", settings)
    assert message in str(info.value)


def test_tags_need_a_person_table():
    with pytest.raises(ConfigError) as info:
        RowMapping("leads", {"event": {"name": "x", "ts": "t", "identifiers": {"phone": "m"}}, "tags": {"x": "c"}})
    assert "needs a [sources.leads.person] table" in str(info.value)


@pytest.mark.parametrize("score, reason", [
    ("inf", "not a finite number"),
    ("101", "101 is outside [0, 100]"),
    ("high", "not a number"),
])
def test_a_tag_value_that_does_not_fit_rejects_the_row(score, reason):
    from motorcade.sources.base import RejectedRow

    mapping = RowMapping("leads", {"person": {"key": "lead", "identifiers": {"lead_id": "lead"}},
                                   "tags": {"lead_score": {"column": "score", "type": "number", "range": [0, 100]}}})
    [record] = mapping.records({"lead": "L1", "score": score}, "line 2", f"L1,{score}")
    assert isinstance(record, RejectedRow)
    assert "column score (tag lead_score)" in record.reason and reason in record.reason


def test_tag_values_are_converted_to_the_tag_type():
    mapping = RowMapping("leads", {"person": {"key": "lead", "identifiers": {"lead_id": "lead"}}, "tags": {
        "score": {"column": "s", "type": "number"}, "hot": {"column": "h", "type": "boolean"},
        "since": {"column": "d", "type": "date"}, "level": "l"}})
    [record] = mapping.records({"lead": "L1", "s": "42.0", "h": "是", "d": "2026/05/01", "l": " high "}, "line 2", "")
    assert record.tags == {"score": 42, "hot": True, "since": "2026-05-01", "level": "high"}


def test_two_sources_importing_one_tag_is_a_check_error(project):
    config = project.directory / "motorcade.toml"
    config.write_text(config.read_text(encoding="utf-8") + """
[sources.crm]
type = "csv"
path = "crm.csv"
[sources.crm.person]
key = "no"
identifiers = { crm_id = "no" }
[sources.crm.tags]
lead_score = "score"
""", encoding="utf-8")
    result = invoke(project, "check")
    assert result.exit_code == 1
    assert "tag `lead_score` is produced by both source `leads` and source `crm`" in result.output
