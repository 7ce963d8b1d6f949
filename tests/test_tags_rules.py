"""Rule tags from the DSL: ordered after the tags they read, computed through the compiler, equal to the
reference evaluator, usable in segments."""

import datetime as dt
import random

import pytest

import motorcade
from motorcade.dsl import evaluate_tag
from motorcade.model import Event
from motorcade.segments.compute import evaluate_members
from motorcade.segments.dataset import load_dataset
from motorcade.tags.base import TagCalculator, TagDefinition
from motorcade.tags.engine import TagError, compute_project_tags

TZ = dt.timezone(dt.timedelta(hours=8))
AS_OF = dt.datetime(2026, 11, 21, 10, 30, tzinfo=TZ)

RULES = """
tag quadrant "意向×活跃" = case
  when tag intent_level = "high" and count(share) in last 90 days >= 3 then "高意向高活跃"
  when tag intent_level = "high" then "高意向低活跃"
  when count(share) in last 90 days >= 3 then "低意向高活跃"
  else "低意向低活跃"
end

tag recent_buyer = case
  when did order in last 30 days then true
end

segment active_high_intent {
  where tag quadrant = "高意向高活跃"
}
"""


class IntentLevels(TagCalculator):
    """An in-memory calculator: intent_level from the person's attribute (or none)."""

    name = "intent_test"
    produces = (TagDefinition("intent_level", "string", "test intent", allowed_values=("low", "high")),)

    def compute(self, context):
        rows = context.store.query("SELECT id, json_extract(attributes, '$.intent') FROM people")
        return [(pid, "intent_level", level) for pid, level in rows if level is not None]


class Plugin:
    @motorcade.hookimpl
    def register_tag_calculators(self, register):
        register(IntentLevels())


@pytest.fixture
def project(motorcade_project, register_plugin):
    register_plugin(Plugin(), name="intent-test")
    (motorcade_project.directory / "rules" / "tags.mc").write_text(RULES, encoding="utf-8")
    store = motorcade_project.store
    rng = random.Random(5)
    events = []
    for n in range(120):
        intent = rng.choice(["low", "high", None])
        pid = store.create_person({} if intent is None else {"intent": intent})
        for k in range(rng.randint(0, 6)):
            at = AS_OF - dt.timedelta(days=rng.choice([1, 30, 89, 90, 91, 120]), seconds=rng.choice([-1, 0, 1]))
            events.append(Event(rng.choice(["share", "share", "order"]), at, pid, {}, "test", f"{pid}-{k}"))
    with store.transaction():
        store.insert_events(events)
    return motorcade_project


def test_rule_tags_run_after_the_tags_they_read_and_equal_the_evaluator(project):
    results = compute_project_tags(project, as_of=AS_OF)
    order = [r.calculator for r in results]
    assert order.index("intent_test") < order.index("rule:quadrant")
    store = project.store
    rule_set = project.rules()
    dataset = load_dataset(store)
    for tag in ("quadrant", "recent_buyer"):
        stored = {r[0]: r[1] for r in store.query("SELECT person_id, value FROM tag_values WHERE tag = ?", (tag,))}
        expected = evaluate_tag(rule_set, tag, dataset, AS_OF, TZ)
        if tag == "recent_buyer":
            stored = {k: bool(v) for k, v in stored.items()}
        assert stored == expected, tag
    assert len(set(stored.values())) >= 1
    quadrants = {r[0] for r in store.query("SELECT DISTINCT value FROM tag_values WHERE tag = 'quadrant'")}
    assert quadrants == {"高意向高活跃", "高意向低活跃", "低意向高活跃", "低意向低活跃"}


def test_a_segment_selects_on_a_rule_tag(project):
    compute_project_tags(project, as_of=AS_OF)
    store = project.store
    members, _, _ = evaluate_members(store, project.rules(), "active_high_intent", AS_OF, TZ)
    expected = [r[0] for r in store.query(
        "SELECT person_id FROM tag_values WHERE tag = 'quadrant' AND value = '高意向高活跃' ORDER BY person_id")]
    assert members == expected and members


def test_the_rule_text_is_the_calculator_version(project):
    first = {r.calculator: r.version for r in compute_project_tags(project, as_of=AS_OF)}
    rules = project.directory / "rules" / "tags.mc"
    rules.write_text(RULES.replace(">= 3 then", ">= 4 then"), encoding="utf-8")
    second = {r.calculator: r.version for r in compute_project_tags(project, as_of=AS_OF)}
    assert first["rule:quadrant"] != second["rule:quadrant"]
    assert first["rule:recent_buyer"] == second["rule:recent_buyer"]


def test_a_rule_tag_reading_a_tag_nobody_produces_is_an_error(project):
    rules = project.directory / "rules" / "tags.mc"
    rules.write_text('tag x = case when tag no_such_tag = 1 then "y" end\n', encoding="utf-8")
    with pytest.raises(TagError, match="no_such_tag"):
        compute_project_tags(project, as_of=AS_OF)


def test_tags_list_shows_rule_tags(project):
    from click.testing import CliRunner

    import json

    from motorcade.cli import build_cli

    result = CliRunner().invoke(build_cli(), ["--project", str(project.directory), "tags", "list", "--json"],
                                catch_exceptions=False)

    rows = {r["tag"]: r for r in json.loads(result.output)}
    assert rows["quadrant"]["plugin"] == "rules" and rows["quadrant"]["calculator"] == "rule:quadrant"
    assert rows["intent_level"]["plugin"] == "intent-test"


def test_a_rule_tag_mixing_value_types_is_refused(project):
    from motorcade.errors import MotorcadeError

    rules = project.directory / "rules" / "tags.mc"
    rules.write_text('tag flag = case when count(order) >= 1 then true else "no" end\n', encoding="utf-8")
    with pytest.raises(MotorcadeError, match="mixes value types"):
        compute_project_tags(project, as_of=AS_OF)
