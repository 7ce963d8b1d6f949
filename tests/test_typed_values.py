"""Typed values compare as their type: a date loaded through a real source (CSV) and the same date in a rule
test give the same answer, in the compiled SQL, in the reference evaluator and in `explain`.

JSON keeps a date attribute as ISO text and SQLite a boolean tag as 0 / 1; the sources' typed columns and the
tag catalogue say what they are (the store's ``value_types``).
"""

import datetime as dt
import zoneinfo

import pytest

import motorcade_sources_csv
from motorcade.dsl import ast
from motorcade.dsl.data import CarData, Dataset, PersonData, ValueTypes
from motorcade.dsl.evaluate import evaluate_segment
from motorcade.dsl.ruletest import run_rule_tests
from motorcade.dsl.rules import RuleSet, rule_set_from_text
from motorcade.segments.compiler import compile_condition
from motorcade.segments.compute import evaluate_members
from motorcade.segments.dataset import load_dataset
from motorcade.segments.explain import explain_person_in_segment
from motorcade.sources.ingest import ingest
from motorcade.tags.base import TagDefinition

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
AS_OF = dt.datetime(2026, 6, 1, 10, 0, tzinfo=SHANGHAI)

CONFIG = """
[project]
name = "t"
timezone = "Asia/Shanghai"

[sources.crm]
type = "csv"
path = "crm.csv"
[sources.crm.person]
key = "no"
identifiers = { crm_id = "no" }
attributes = { birth_date = { column = "birthday", type = "date" }, seen = { column = "seen", type = "datetime" }, spend = { column = "spend", type = "float" }, vip = { column = "vip", type = "bool" } }

[sources.policies]
type = "csv"
path = "policies.csv"
[sources.policies.event]
name = "insurance_policy"
ts = { column = "start", type = "date" }
dedup_key = "policy"
identifiers = { crm_id = "no" }
properties = { ends_on = { column = "end", type = "date" } }
"""

# customer -> when their insurance policy ends (the policy started a year earlier)
POLICIES = {"C1": "2026-06-30", "C2": "2026-07-01", "C5": "2026-06-01"}

# customer -> (birthday, last seen (Shanghai wall clock), spend, vip) as the CRM export has them
CUSTOMERS = {
    "C1": ("1996-05-04", "2026-05-31 23:30", "250.5", "yes"),
    "C2": ("2001-07-01", "2026-04-30 23:59", "99", "no"),
    "C3": ("2000-02-29", "", "100", "yes"),
    "C4": ("", "2026-05-01 00:00", "", ""),
    "C5": ("2001-06-01", "2026-05-01 00:30", "101", "no"),
}

RULES = """\
segment over_25 { where profile.birth_date <= 25 years ago }
segment born_by { where profile.birth_date <= 2001-06-30 }
segment born_before { where profile.birth_date < 2001-06-01 }
segment age_25 { where age >= 25 }
segment age_exactly_24 { where age = 24 years }
segment seen_in_may { where profile.seen >= 2026-05-01 }
segment seen_late { where profile.seen > 2026-05-31 23:00 }
segment spenders { where profile.spend > 100 and profile.vip = true }
segment birthday_unknown { where profile.birth_date is null }
segment renew_in_june { where count(insurance_policy where ends_on <= 2026-06-30) >= 1 }
segment renew_soon { where did insurance_policy and count(insurance_policy where ends_on < 30 days ago) = 0 }
"""

# the answers docs/dsl.md gives at 2026-06-01 10:00 Shanghai
EXPECTED = {
    "over_25": {"C1", "C3", "C5"},  # born on or before 2001-06-01 (the local date of 25 years ago)
    "born_by": {"C1", "C3", "C5"},
    "born_before": {"C1", "C3"},
    "age_25": {"C1", "C3", "C5"},  # C5 turns 25 today; C2 is 24
    "age_exactly_24": {"C2"},
    "seen_in_may": {"C1", "C4", "C5"},  # C2 at 2026-04-30 23:59 local is April
    "seen_late": {"C1"},
    "spenders": {"C1"},
    "birthday_unknown": {"C4"},
    "renew_in_june": {"C1", "C5"},
    "renew_soon": {"C1", "C2", "C5"},  # no policy ended before 2026-05-02
}


def _literal(column: str, text: str) -> str:
    if not text:
        return ""
    if column == "seen":
        return text
    if column == "spend":
        return text
    if column == "vip":
        return "true" if text == "yes" else "false"
    return text


def rule_test_text() -> str:
    ids = {key: i for i, key in enumerate(sorted(CUSTOMERS), start=1)}
    rows = ["  id | profile.birth_date | profile.seen | profile.spend | profile.vip"]
    for key, values in sorted(CUSTOMERS.items()):
        cells = [_literal(c, v) for c, v in zip(("birth_date", "seen", "spend", "vip"), values)]
        rows.append(f"  {ids[key]} | " + " | ".join(cells))
    events = ["  person | event | at | ends_on"]
    for key, end in sorted(POLICIES.items()):
        start = dt.date.fromisoformat(end).replace(year=2025)
        events.append(f"  {ids[key]} | insurance_policy | {start} 00:00 | {end}")
    expectations = [f"expect segment {name} exactly [{', '.join(str(ids[k]) for k in sorted(members))}]"
                    for name, members in EXPECTED.items()]
    return ("as of 2026-06-01 10:00\ntimezone \"Asia/Shanghai\"\n\npeople:\n" + "\n".join(rows) + "\n\n"
            + "events:\n" + "\n".join(events) + "\n\n" + "\n".join(expectations) + "\n")


@pytest.fixture
def project(motorcade_project, register_plugin):
    register_plugin(motorcade_sources_csv, name="csv")
    d = motorcade_project.directory
    (d / "motorcade.toml").write_text(CONFIG, encoding="utf-8")
    (d / "crm.csv").write_text("no,birthday,seen,spend,vip\n" + "".join(
        f"{key},{','.join(values)}\n" for key, values in CUSTOMERS.items()), encoding="utf-8")
    (d / "policies.csv").write_text("policy,no,start,end\n" + "".join(
        f"P{key},{key},{dt.date.fromisoformat(end).replace(year=2025)},{end}\n" for key, end in POLICIES.items()),
        encoding="utf-8")
    (d / "rules" / "people.mc").write_text(RULES, encoding="utf-8")
    (d / "rules" / "people.test.mc").write_text(rule_test_text(), encoding="utf-8")
    from motorcade.project import Project

    p = Project(d, plugin_manager=motorcade_project.plugins)
    yield p
    p.close()


def test_a_csv_source_and_a_rule_test_give_the_same_answer(project):
    summary = ingest(project, "crm")
    assert summary.rejected == 0
    assert ingest(project, "policies").events == len(POLICIES)
    store = project.store
    key_of = {store.person_of_identifier("crm_id", key): key for key in CUSTOMERS}
    rule_set = project.rules(checked=True)
    dataset = load_dataset(store)
    for name, expected in EXPECTED.items():
        members, plan, _query = evaluate_members(store, rule_set, name, AS_OF, SHANGHAI)
        assert {key_of[p] for p in members} == expected, (name, plan)  # the compiled SQL
        assert {key_of[p] for p in evaluate_segment(rule_set, name, dataset, AS_OF, SHANGHAI)} == expected, name
    report = run_rule_tests([project.directory / "rules"])
    assert report.ok, report.render()
    assert report.passed == len(EXPECTED)


def test_explain_shows_a_date_attribute_matching_a_relative_time(project):
    ingest(project, "crm")
    c1 = project.store.person_of_identifier("crm_id", "C1")
    explained = explain_person_in_segment(project, "over_25", c1, AS_OF)
    assert explained.tree.result is True and explained.sql_member is True
    assert "[PASS] profile.birth_date <= 25 years ago  (seen: 1996-05-04)" in explained.tree.render()


def test_the_store_records_the_declared_attribute_types(project):
    ingest(project, "crm")
    ingest(project, "policies")
    types = project.store.value_types()
    assert types.attributes == {"birth_date": "date", "seen": "datetime", "spend": "number", "vip": "boolean"}
    assert types.properties == {"ends_on": "date"}


# ---- age: the birthday rule, Feb 29 included ------------------------------------------------------

FEB29 = PersonData(1, attributes={"birth_date": dt.date(2000, 2, 29)})


@pytest.mark.parametrize("today, years", [
    (dt.date(2025, 2, 28), 24),  # no Feb 29 in 2025: the birthday has not come yet
    (dt.date(2025, 3, 1), 25),
    (dt.date(2024, 2, 28), 23),
    (dt.date(2024, 2, 29), 24),
    (dt.date(2000, 2, 29), 0),
])
def test_age_counts_whole_years_like_a_birthday(tmp_path, today, years):
    from motorcade.store.sqlite import SQLiteStore

    as_of = dt.datetime(today.year, today.month, today.day, 12, tzinfo=SHANGHAI)
    rule_set = RuleSet(segments={})
    cond = ast.Compare(ast.FieldRef("age"), "=", ast.Literal(years))
    assert evaluate_segment(RuleSet(segments={"s": ast.Segment("s", None, cond)}), "s", Dataset.of(FEB29), as_of,
                            SHANGHAI) == {1}
    store = SQLiteStore(tmp_path / "age.db")
    try:
        pid = store.create_person({"birth_date": "2000-02-29"})
        store.define_value_types({"birth_date": "date"}, scope="attribute", source="test")
        compiled = compile_condition(rule_set, cond, as_of, SHANGHAI, store.value_types())
        assert [r[0] for r in store.query(compiled.sql(), compiled.params)] == [pid]
    finally:
        store.close()


def test_age_is_unknown_without_a_date_of_birth():
    people = [PersonData(1, attributes={"birth_date": "2000-01-01"}), PersonData(2),
              PersonData(3, attributes={"birth_date": dt.date(2000, 1, 1)}, cars=[CarData("V", purchase_date=dt.date(1990, 1, 1))])]
    rules = _rule_set("segment a { where age is null }\nsegment b { where age >= 26 }\n")
    assert evaluate_segment(rules, "a", Dataset.of(*people), AS_OF, SHANGHAI) == {1, 2}
    assert evaluate_segment(rules, "b", Dataset.of(*people), AS_OF, SHANGHAI) == {3}


def _rule_set(text):
    return rule_set_from_text(text, "t.mc")


# ---- typed tags -------------------------------------------------------------------------------------


def test_boolean_and_date_tags_compare_as_their_type(tmp_path):
    from motorcade.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "tags.db")
    try:
        a, b, c = store.create_person(), store.create_person(), store.create_person()
        store.define_tags([TagDefinition("window", "boolean", "w"), TagDefinition("since", "date", "s")],
                          calculator="test", calculator_version="1")
        store.write_tag_values([(a, "window", 1), (b, "window", 0), (a, "since", "2026-05-01"),
                                (b, "since", "2025-01-01"), (c, "since", "someday")],
                               tags=["window", "since"], calculator="test", calculator_version="1", computed_at=AS_OF)
        types = store.value_types()
        assert types == ValueTypes(attributes={}, properties={}, tags={"window": "boolean", "since": "date"})
        dataset = load_dataset(store)
        assert dataset.people[a].tags == {"window": True, "since": dt.date(2026, 5, 1)}
        cases = {
            "tag window = true": {a},
            "tag window = false": {b},
            "tag window = 1": set(),  # a boolean is not a number
            "tag window in [true]": {a},
            "tag since >= 2026-01-01": {a},
            "tag since < 60 days ago": {b},
            "tag since = \"2026-05-01\"": set(),  # a date is not a string
            "tag since = \"someday\"": {c},
        }
        for text, expected in cases.items():
            rule_set = _rule_set(f"segment s {{ where {text} }}\n")
            assert evaluate_segment(rule_set, "s", dataset, AS_OF, SHANGHAI) == expected, text
            members, plan, _ = evaluate_members(store, rule_set, "s", AS_OF, SHANGHAI)
            assert set(members) == expected, (text, plan)
    finally:
        store.close()


def test_an_attribute_typed_differently_by_two_sources_is_a_check_error(project):
    from click.testing import CliRunner

    from motorcade.cli import build_cli

    config = project.directory / "motorcade.toml"
    config.write_text(config.read_text(encoding="utf-8") + """
[sources.dms]
type = "csv"
path = "dms.csv"
[sources.dms.person]
key = "cid"
identifiers = { dms_customer_id = "cid" }
attributes = { birth_date = { column = "born", type = "datetime" } }
""", encoding="utf-8")
    result = CliRunner().invoke(build_cli(), ["--project", str(project.directory), "check"])
    assert result.exit_code == 1
    assert ("motorcade.toml: error: profile attribute `birth_date` is mapped with different types: date in source "
            "`crm` and datetime in source `dms`") in result.output


def test_check_knows_age_is_a_number_of_years():
    from motorcade.dsl.check import Catalogue, check

    rules = _rule_set('segment a { where age >= "30" }\nsegment b { where age >= 3 days }\n'
                      'segment c { where age between 25 and 34 years }\n')
    found = [(d.severity, d.message) for d in check(rules, Catalogue.from_names(attributes={"city"}))]
    assert ("error", "`age` is a number of years; compare it with a number") in found
    assert ("error", "`3 days` can only be compared with `age` in years") in found
    assert ("warning", "`age` counts from `profile.birth_date`, which no person has") in found
    assert len([f for f in found if f[0] == "error"]) == 2


def test_motorcade_test_types_values_as_the_project_declares_them(project):
    """A rule test that writes the date of birth as text, as the CSV has it, gets the CSV's answer."""
    from click.testing import CliRunner

    from motorcade.cli import build_cli

    (project.directory / "rules" / "people.test.mc").write_text(
        'as of 2026-06-01 10:00\n\npeople:\n  id | profile.birth_date\n  1  | "1996-05-04"\n  2  | "2001-07-01"\n\n'
        "expect segment over_25 exactly [1]\nexpect segment age_25 exactly [1]\n", encoding="utf-8")
    result = CliRunner().invoke(build_cli(), ["--project", str(project.directory), "test", "--no-coverage"])
    assert result.exit_code == 0, result.output
    assert "2 passed, 0 failed" in result.output
    plain = run_rule_tests([project.directory / "rules"])  # without the project's types: text stays text
    assert plain.failed == 2
