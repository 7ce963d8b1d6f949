"""The example dealer group's rule files (examples/dealer_group/rules): their rule tests pass and can
fail, they are in canonical form, `check` finds nothing against the example's real catalogue (events
ingested from the generated data, the tag plugins' tags, the profile attributes, the channel plugins),
the DSL `quadrant` rule tag agrees with the quadrant tag plugin, and on generated data the segments
agree with the generator's planted truth."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from motorcade.activation.feedback import OUTCOMES
from motorcade.dsl import ast, check, evaluate_segment, load_rules, run_rule_tests
from motorcade.dsl.errors import ERROR
from motorcade.dsl.evaluate import Evaluator, tag_value
from motorcade.dsl.data import Dataset, PersonData
from motorcade.dsl.format import format_rules
from motorcade.dsl.parser import parse_text
from motorcade.dsl.ruletest import find_test_files, parse_test_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "dealer_group"
RULES = EXAMPLE / "rules"
AS_OF = dt.datetime(2026, 11, 20, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # the example data's as-of
MOTORCADE = [sys.executable, "-c", "import sys; from motorcade.cli import run; sys.argv[0] = 'motorcade'; run()"]
TAG_PLUGINS = ("activity", "intent", "lifecycle", "quadrant", "value")
CHANNEL_PLUGINS = ("email", "webhook", "sms", "wecom", "wechat_oa", "advisor_task")

needs_generator = pytest.mark.skipif(not (EXAMPLE / "generate.py").exists(), reason="example generator not present")


def rule_files() -> list[Path]:
    return sorted(p for p in RULES.glob("*.mc") if not p.name.endswith(".test.mc"))


# ---- rule tests ---------------------------------------------------------------------------------


def test_every_rule_file_has_rule_tests_next_to_it():
    names = {p.name for p in rule_files()}
    assert {"layers.mc", "personas.mc", "owners.mc", "campaigns.mc", "funnels.mc"} <= names
    for path in rule_files():
        assert path.with_name(path.name[:-3] + ".test.mc").is_file(), f"{path.name} has no rule tests"


def test_rule_tests_pass():
    report = run_rule_tests([RULES])
    failures = [f"{r.name}: {r.message}" for r in report.results if not r.passed]
    assert failures == []
    assert report.passed >= 60
    # every condition of the tested rules was seen true and false at least once
    one_sided = [f"{c.location} {c.text}" for c in report.coverage if not (c.seen_true and c.seen_false)]
    assert len(one_sided) <= 2, one_sided


def test_every_segment_tag_and_trigger_is_tested():
    rules = load_rules([RULES])
    tested = {(exp.kind, exp.name) for path in find_test_files([RULES])
              for scenario in parse_test_file(str(path), path.read_text(encoding="utf-8")).scenarios
              for exp in scenario.expectations}
    untested = ([("segment", n) for n in rules.segments if ("segment", n) not in tested]
                + [("tag", n) for n in rules.tags if ("tag", n) not in tested]
                + [("trigger", n) for n in rules.triggers if ("trigger", n) not in tested])
    assert untested == []
    # campaigns cannot be tested directly: their audiences are
    assert {c.audience for c in rules.campaigns.values()} <= {n for kind, n in tested if kind == "segment"}


def test_what_the_brief_asks_for_is_there():
    rules = load_rules([RULES])
    assert {"low_intent_low_activity", "low_intent_high_activity", "high_intent_low_activity",
            "high_intent_high_activity", "brand_loyalists", "tech_pioneers", "family_premium", "owners",
            "lapsed_owners", "replacement_candidates", "vip_owners"} <= set(rules.segments)
    assert {s.title for s in rules.segments.values()} >= {"品牌中坚型", "技术新锐型", "家庭尊享型", "流失回厂客户"}
    recall = rules.campaigns["lapsed_recall"]
    assert (recall.title, recall.audience, recall.holdout, recall.send_to) == \
        ("流失回厂客户激活", "lapsed_owners", 10, "new")
    assert isinstance(recall.schedule, ast.Daily)
    # the demo delivers through e-mail and webhook: every customer-facing rule starts with one of them
    for rule in [*rules.campaigns.values(), *rules.triggers.values()]:
        first = rule.via.steps[0].channel
        assert first in ("email", "webhook", "advisor_task"), rule.name
    assert {s.channel for s in rules.campaigns["advisor_call_high_intent"].via.steps} == {"advisor_task"}
    assert rules.triggers["order_thanks"].on.event == "order"
    assert rules.triggers["wechat_welcome"].on.event == "wechat_follow"
    assert rules.funnels["recall_funnel"].steps == ("sent", "clicked", "service_visit")


# Each mutation changes one threshold or window edge; the rule tests must notice every one of them.
MUTATIONS = [
    ("layers.mc", "count(share) in last 90 days >= 3", "count(share) in last 90 days >= 2"),
    ("layers.mc", "did touchpoint_visit in last 90 days", "did touchpoint_visit in last 91 days"),
    ("layers.mc", "[lead_submit, test_drive, reservation] in last 90 days",
     "[lead_submit, test_drive, reservation, order] in last 90 days"),
    ("layers.mc", '    and tag purchase_power = "high"\n', "\n"),
    ("layers.mc", '    and not in segment high_intent_high_activity\n', "\n"),
    ("layers.mc", "not did order in last 90 days", "not did order in last 89 days"),
    ("personas.mc", "profile.birth_year >= 1985", "profile.birth_year >= 1980"),
    ("personas.mc", 'count(touchpoint_visit where topic = "brand") in last 180 days >= 2',
     'count(touchpoint_visit where topic = "brand") in last 181 days >= 2'),
    ("personas.mc", 'tag purchase_power is null or tag purchase_power != "low"', 'tag purchase_power != "low"'),
    ("personas.mc", "profile.family_size is null or profile.family_size >= 3", "profile.family_size >= 3"),
    ("personas.mc", "profile.birth_year is null or profile.birth_year <= 1990", "profile.birth_year <= 1990"),
    ("personas.mc", "when in segment family_premium", "when in segment brand_loyalists"),
    ("owners.mc", "not did service_visit in last 365 days", "not did service_visit in last 366 days"),
    ("owners.mc", "has car where age >= 1 year", "has car"),
    ("owners.mc", "has car where age >= 5 years", "has car where age >= 4 years"),
    ("owners.mc", "sum(order.amount) in last 3 years >= 800000", "sum(order.amount) >= 800000"),
    ("campaigns.mc", "if not did service_visit in last 30 days", "if not did service_visit in last 29 days"),
    ("campaigns.mc", "on order where amount >= 500000", "on order where amount > 500000 or amount = 499999"),
    ("funnels.mc", "did sent then service_visit within 30 days", "did sent then service_visit within 31 days"),
    ("funnels.mc", "did sent then clicked then service_visit", "did sent then service_visit"),
]


@pytest.mark.parametrize("file, before, after", MUTATIONS, ids=[f"{m[0]}:{m[1][:40]}" for m in MUTATIONS])
def test_rule_tests_catch_a_changed_rule(tmp_path, file, before, after):
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    text = (rules / file).read_text(encoding="utf-8")
    assert text.count(before) == 1, f"{before!r} is not in {file} exactly once"
    (rules / file).write_text(text.replace(before, after), encoding="utf-8")
    assert run_rule_tests([rules]).failed > 0


# ---- canonical form, CLI ------------------------------------------------------------------------


@pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.name)
def test_rule_files_are_canonical(path):
    text = path.read_text(encoding="utf-8")
    assert format_rules(parse_text(text, str(path))) == text


def test_cli_fmt_check_and_test(tmp_path):
    env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": ""}  # the rule commands need no plugin
    # run outside any project: the commands take the given paths
    fmt = subprocess.run([*MOTORCADE, "fmt", "--check", str(RULES)], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    result = subprocess.run([*MOTORCADE, "test", str(RULES)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(" passed, 0 failed")
    assert "coverage:" in result.stdout


# ---- the quadrant rule tag agrees with the quadrant tag plugin ----------------------------------


def test_quadrant_rule_tag_agrees_with_the_quadrant_plugin(tmp_path):
    from motorcade.store import SQLiteStore
    from motorcade.tags.base import TagCalculator, TagDefinition
    from motorcade.tags.engine import compute_tags
    from motorcade_tags_quadrant import QuadrantTags

    combos = [(i, a) for i in ("low", "medium", "high", None) for a in ("low", "high", None)]

    class Levels(TagCalculator):
        """Stands in for the intent and activity calculators: every combination, missing ones too."""

        name = "levels"
        produces = (TagDefinition("intent_level", "string", "intent", allowed_values=("low", "medium", "high")),
                    TagDefinition("activity_level", "string", "activity", allowed_values=("low", "high")))

        def compute(self, context):
            for person_id, (intent, activity) in enumerate(combos, start=1):
                if intent is not None:
                    yield person_id, "intent_level", intent
                if activity is not None:
                    yield person_id, "activity_level", activity

    store = SQLiteStore(tmp_path / "quadrant.db")
    try:
        for _ in combos:
            store.create_person()
        compute_tags(store, {"levels": Levels(), "quadrant": QuadrantTags()}, as_of=AS_OF)
        by_plugin = {pid: {t.tag: t.value for t in store.tags_of(pid)}.get("intent_activity_quadrant")
                     for pid in range(1, len(combos) + 1)}
    finally:
        store.close()
    rules = load_rules([RULES])
    people = {}
    for pid, (intent, activity) in enumerate(combos, start=1):
        tags = {k: v for k, v in (("intent_level", intent), ("activity_level", activity)) if v is not None}
        people[pid] = PersonData(pid, tags=tags)
    evaluator = Evaluator(rules, Dataset(people), AS_OF)
    by_rule = {pid: tag_value(evaluator, rules.tags["quadrant"], person) for pid, person in people.items()}
    assert by_rule == by_plugin
    assert set(by_rule.values()) == {"高意向高活跃", "高意向低活跃", "低意向高活跃", "低意向低活跃", None}


# ---- against the example project built from generated data --------------------------------------


def plugin_manager():
    from motorcade.plugins import load_plugins

    pm = load_plugins(entry_points=False)
    for name in TAG_PLUGINS:
        pm.register(importlib.import_module(f"motorcade_tags_{name}"), name=name)
    for name in CHANNEL_PLUGINS:
        pm.register(importlib.import_module(f"motorcade_channels_{name}"), name=name)
    return pm


@pytest.fixture(scope="module")
def example_project(tmp_path_factory):
    """The example project on 400 generated people: ingested and tags computed, as of the data's as-of."""
    project_dir = tmp_path_factory.mktemp("dealer_group") / "project"
    project_dir.mkdir()
    shutil.copy(EXAMPLE / "motorcade.toml", project_dir / "motorcade.toml")
    shutil.copytree(RULES, project_dir / "rules")
    subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--size", "small", "--people", "400",
                    "--seed", "7", "--out", str(project_dir / "data")], check=True, capture_output=True)
    env = {**os.environ, "MOTORCADE_LOAD_PLUGINS": ",".join(("csv", "jsonl", *TAG_PLUGINS))}
    for args in (["ingest", "--all"], ["tags", "compute", "--as-of", AS_OF.isoformat()]):
        done = subprocess.run([*MOTORCADE, "--project", str(project_dir), *args], env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
    return project_dir


@needs_generator
def test_check_finds_nothing_against_the_example_catalogue(example_project):
    from motorcade.project import Project

    project = Project(example_project, plugin_manager=plugin_manager())
    try:
        catalogue = project.catalogue()
    finally:
        project.close()
    # the catalogue really checks every kind of name the rules use
    assert {"share", "service_visit", "wechat_follow", "order"} <= catalogue.events
    assert {"intent_level", "activity_level", "purchase_power", "value_level"} <= set(catalogue.tags)
    assert {"birth_year", "family_size"} <= catalogue.profile_attributes
    assert set(CHANNEL_PLUGINS) <= catalogue.channels
    rules = load_rules([RULES])
    # Feedback events (sent, clicked, ...) exist once activation has run; before that, they are the only
    # names the project's catalogue may not know yet.
    unknown = [d for d in check(rules, catalogue) if d.severity == ERROR]
    assert all(d.message.startswith("unknown event `") and d.message.split("`")[1] in OUTCOMES for d in unknown), \
        [d.render() for d in unknown]
    with_feedback = attrs.evolve(catalogue, events=catalogue.events | set(OUTCOMES))
    assert [d.render() for d in check(rules, with_feedback)] == []
    # and a misspelt name would be caught
    typo = load_rules([RULES])
    bad = parse_text('segment typo { where did servcie_visit in last 30 days and tag intent_lvl = "high" }', "typo.mc")
    typo.files.append(bad)
    typo.segments["typo"] = bad.rules[0]
    messages = [d.message for d in check(typo, with_feedback) if d.severity == ERROR]
    assert messages == ["unknown event `servcie_visit`", "unknown tag `intent_lvl`"]


@pytest.fixture(scope="module")
def example_dataset(example_project):
    """Every profile of the example project as the reference evaluator sees it."""
    from motorcade.activation.people import person_data
    from motorcade.project import Project

    project = Project(example_project, plugin_manager=plugin_manager())
    try:
        ids = [row[0] for row in project.store.query("SELECT id FROM people")]
        return Dataset({pid: person_data(project.store, pid, as_of=AS_OF) for pid in ids})
    finally:
        project.close()


@needs_generator
def test_segments_agree_with_the_generated_truth(example_project, example_dataset):
    dataset = example_dataset
    ids = list(dataset.people)
    truth = json.loads((example_project / "data" / "manifest.json").read_text(encoding="utf-8"))["truth"]
    rules = load_rules([RULES])
    size = {name: len(evaluate_segment(rules, name, dataset, AS_OF)) for name in rules.segments}
    assert size["owners"] == truth["owners"]
    # lapsed by the car's age from its first delivery: the second owners of resold cars are the only
    # ones the generator (which counts from the ownership's start) does not call lapsed
    assert truth["owners_lapsed_365d"] <= size["lapsed_owners"] <= truth["owners_lapsed_365d"] + truth["cars_resold"]
    assert 0 < size["replacement_candidates"] <= truth["owners_with_car_older_than_5y"]
    assert size["high_intent_high_activity"] <= truth["high_intent_high_activity_behaviour"]
    layers = ("low_intent_low_activity", "low_intent_high_activity", "high_intent_low_activity",
              "high_intent_high_activity")
    assert sum(size[n] for n in layers) <= len(ids)  # the layers do not overlap
    for name in ("vip_owners", "brand_loyalists", "tech_pioneers", "family_premium", "low_intent_low_activity",
                 "low_intent_high_activity"):
        assert size[name] > 0, name


@needs_generator
def test_segments_compile_to_sql_that_agrees_with_the_evaluator(example_project, example_dataset):
    """The segments stage runs the rules as SQL; on the example data every example segment must give the
    reference evaluator's members."""
    compiler = pytest.importorskip("motorcade.segments.compiler")
    import sqlite3

    dataset = example_dataset
    rules = load_rules([RULES])
    conn = sqlite3.connect(example_project / "motorcade.db")
    try:
        from motorcade.dsl import ast

        for name in rules.segments:
            # `in segment NAME`: the segment's condition with its `scope` (stores.mc is scoped to SH001)
            query = compiler.compile_condition(rules, ast.InSegment(name), AS_OF, "Asia/Shanghai")
            members = {row[0] for row in conn.execute(query.sql(), query.params)}
            assert members == evaluate_segment(rules, name, dataset, AS_OF), name
    finally:
        conn.close()
