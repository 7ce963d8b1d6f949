"""compute_segments / members_now / explain / diff and their CLI commands on a real project."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from click.testing import CliRunner

from motorcade.cli import build_cli, main
from motorcade.errors import MotorcadeError
from motorcade.model import Car, Consent, Event, Ownership
from motorcade.segments import compute_segments, dependency_order, members_now
from motorcade.segments.diff import diff_segments
from motorcade.segments.explain import explain_person_in_segment, explain_segment

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
AS_OF = dt.datetime(2026, 11, 20, 10, 0, tzinfo=TZ)

RULES = """
segment owners "车主" {
  where has car
}
segment lapsed_owners "一年未回厂" {
  where in segment owners and not did service_visit in last 365 days
}
segment sharers {
  where count(share) in last 90 days >= 2 and tag intent_level = "high"
}
"""


@pytest.fixture
def project(motorcade_project):
    (motorcade_project.directory / "rules" / "segments.mc").write_text(RULES, encoding="utf-8")
    store = motorcade_project.store
    with store.transaction():
        ids = [store.create_person({"name": f"p{i}"}) for i in range(6)]
        # 0, 1, 2 own cars; 1 serviced recently; 3 sold theirs last year
        for pid, frm, to in ((ids[0], dt.date(2018, 1, 1), None), (ids[1], dt.date(2020, 1, 1), None),
                             (ids[2], dt.date(2025, 1, 1), None), (ids[3], dt.date(2015, 1, 1), dt.date(2025, 6, 1))):
            store.upsert_cars([Car(f"VIN{pid}", "BMW", "X5", 2018, frm, None)])
            store.add_ownership(Ownership(pid, f"VIN{pid}", frm, to, "test"))
        store.insert_events([
            Event(person_id=ids[1], name="service_visit", ts=AS_OF - dt.timedelta(days=100), source="t", dedup_key="1"),
            Event(person_id=ids[2], name="service_visit", ts=AS_OF - dt.timedelta(days=366), source="t", dedup_key="2"),
            Event(person_id=ids[4], name="share", ts=AS_OF - dt.timedelta(days=3), source="t", dedup_key="3"),
            Event(person_id=ids[4], name="share", ts=AS_OF - dt.timedelta(days=89), source="t", dedup_key="4"),
            Event(person_id=ids[5], name="share", ts=AS_OF - dt.timedelta(days=3), source="t", dedup_key="5"),
        ])
        store.write_tag_values([(ids[4], "intent_level", "high"), (ids[5], "intent_level", "high")],
                               tags=["intent_level"], calculator="t", calculator_version="1", computed_at=AS_OF)
        store.set_consent(Consent(ids[0], "sms", True, AS_OF, "t"))
    motorcade_project.ids = ids
    return motorcade_project


def test_compute_stores_members_runs_changes_and_revision(project):
    ids = project.ids
    results = {r.name: r for r in compute_segments(project, as_of=AS_OF)}
    assert list(results) == ["owners", "lapsed_owners", "sharers"]  # a segment after the ones it refers to
    store = project.store
    assert store.segment_member_ids("owners") == sorted(ids[:3])
    assert store.segment_member_ids("lapsed_owners") == sorted([ids[0], ids[2]])
    assert store.segment_member_ids("sharers") == [ids[4]]
    assert results["owners"].entered == 3 and results["owners"].left == 0
    run = store.last_segment_run("owners")
    assert run["size"] == 3 and run["revision"] == results["owners"].revision
    assert "owners.mc" not in (store.rule_revision_files(run["revision"]) or {})  # keyed by the real file name
    assert any("segment owners" in text for text in store.rule_revision_files(run["revision"]).values())
    changes = store.segment_changes_since("owners", 0)
    assert sorted(c[1] for c in changes) == sorted(ids[:3]) and {c[2] for c in changes} == {"enter"}
    cursor = store.last_segment_change_id("owners")
    assert cursor == changes[-1][0]

    # A new service visit: person 0 leaves lapsed_owners; entered_at of the others is kept.
    entered_before = store.segment_membership("lapsed_owners", ids[2])["entered_at"]
    store.insert_events([Event(person_id=ids[0], name="service_visit", ts=AS_OF - dt.timedelta(days=1),
                               source="t", dedup_key="6")])
    later = AS_OF + dt.timedelta(hours=1)
    again = {r.name: r for r in compute_segments(project, ["lapsed_owners"], as_of=later)}
    assert again["lapsed_owners"].left == 1 and again["lapsed_owners"].entered == 0
    assert store.segment_member_ids("lapsed_owners") == [ids[2]]
    assert store.segment_membership("lapsed_owners", ids[2])["entered_at"] == entered_before
    last = store.last_segment_change_id("lapsed_owners")
    since = store.segment_changes_since("lapsed_owners", last - 1)
    assert since == [(last, ids[0], "leave", since[0][3])]
    assert store.segment_changes_since("owners", cursor) == []


def test_members_now_does_not_store(project):
    assert members_now(project, "owners", AS_OF) == sorted(project.ids[:3])
    assert project.store.segment_member_ids("owners") == []
    assert members_now(project, "owners", "2026-11-20T10:00") == sorted(project.ids[:3])


def test_dependency_order_and_cycles(project):
    rules = project.rules()
    assert dependency_order(rules, ["lapsed_owners", "owners"]) == ["owners", "lapsed_owners"]
    (project.directory / "rules" / "cycle.mc").write_text(
        "segment a { where in segment b }\nsegment b { where in segment a }\n", encoding="utf-8")
    with pytest.raises(MotorcadeError, match="cycle: a -> b -> a"):
        compute_segments(project, ["a"], as_of=AS_OF)


def test_rules_the_checker_rejects_are_not_computed(project, capsys):
    (project.directory / "rules" / "bad.mc").write_text(
        'segment typo { where tag intent_level > "high" and count(order) >= "x" }\n', encoding="utf-8")
    code = main(["--project", str(project.directory), "segments", "compute", "owners", "--as-of", "2026-11-20T10:00"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "bad.mc:1:" in err and "compare it with a number" in err
    assert project.store.query("SELECT count(*) FROM segment_runs")[0][0] == 0


def test_unknown_segment_names_a_close_match(project):
    with pytest.raises(MotorcadeError, match="did you mean `owners`"):
        compute_segments(project, ["ownerz"], as_of=AS_OF)


def test_explain_segment_shows_sql_plan_size_and_masked_sample(project):
    result = explain_segment(project, "sharers", AS_OF)
    assert "FROM events" in result.sql and ":v" in result.sql
    assert "high" not in result.sql  # values are bound, never in the text
    assert "high" in result.params.values()
    assert any("events_name_ts" in line or "events_person_name_ts" in line for line in result.query_plan)
    assert result.size == 1 and result.plan.startswith("drive from")


def test_explain_person_tree_agrees_with_sql(project):
    ids = project.ids
    member = explain_person_in_segment(project, "lapsed_owners", ids[2], AS_OF)
    assert member.tree.result is True and member.sql_member is True
    text = member.tree.render()
    assert "[PASS] segment lapsed_owners" in text and "did service_visit in last 365 days" in text
    not_member = explain_person_in_segment(project, "lapsed_owners", ids[1], AS_OF)
    assert not_member.tree.result is False and not_member.sql_member is False
    assert "[FAIL] did service_visit" not in not_member.tree.render()
    assert "1 matching events" in not_member.tree.render()
    with pytest.raises(MotorcadeError, match="no person with id 999"):
        explain_person_in_segment(project, "owners", 999, AS_OF)


def test_diff_compares_working_tree_rules_with_last_computed_revision(project):
    compute_segments(project, as_of=AS_OF)
    rules = project.directory / "rules" / "segments.mc"
    rules.write_text(RULES.replace("in last 365 days", "in last 30 days").replace(">= 2 and", ">= 1 and")
                     + "segment brand_new { where consented to sms }\n", encoding="utf-8")
    diffs = {d.segment: d for d in diff_segments(project, AS_OF)}
    assert diffs["owners"].status == "unchanged"
    lapsed = diffs["lapsed_owners"]
    assert lapsed.status == "changed" and (lapsed.old_size, lapsed.new_size) == (2, 3)
    assert (lapsed.added, lapsed.removed) == (1, 0)
    assert diffs["sharers"].added == 1  # person 5 with one share now counts
    assert diffs["brand_new"].status == "never computed" and diffs["brand_new"].added == 1


def test_cli_compute_explain_diff(project):
    runner = CliRunner()
    cli = build_cli()
    base = ["--project", str(project.directory)]
    result = runner.invoke(cli, [*base, "segments", "compute", "--as-of", "2026-11-20T10:00"])
    assert result.exit_code == 0, result.output
    assert "owners: 3 members (+3 entered, -0 left)" in result.output
    result = runner.invoke(cli, [*base, "segments", "compute", "owners", "--as-of", "2026-11-20T10:00"])
    assert "owners: 3 members (+0 entered, -0 left)" in result.output
    result = runner.invoke(cli, [*base, "explain", "owners", "--as-of", "2026-11-20T10:00"])
    assert result.exit_code == 0, result.output
    assert "SQL:" in result.output and "query plan:" in result.output and "audience: 3 people" in result.output
    result = runner.invoke(cli, [*base, "explain", "lapsed_owners", "--person", str(project.ids[1]),
                                 "--as-of", "2026-11-20T10:00"])
    assert result.exit_code == 0, result.output
    assert "is NOT a member" in result.output and "[FAIL] not did service_visit" in result.output
    result = runner.invoke(cli, [*base, "diff", "--as-of", "2026-11-20T10:00"])
    assert result.exit_code == 0 and "owners: unchanged" in result.output
    result = runner.invoke(cli, [*base, "segments", "compute", "nope"])
    assert isinstance(result.exception, MotorcadeError) and "no segment named `nope`" in str(result.exception)


def test_a_rule_the_compiler_cannot_compile_falls_back_to_the_evaluator(project, monkeypatch):
    from motorcade.dsl.evaluate import Unsupported
    from motorcade.segments.compiler import Compiler

    def no_rule(self, node, scope):  # as for a node a compiler has no rule for
        raise Unsupported("unsupported: Sequence (no rule in this test)")

    ids = project.ids
    project.store.insert_events([
        Event(person_id=ids[4], name="lead_submit", ts=AS_OF - dt.timedelta(days=50), source="t", dedup_key="7"),
        Event(person_id=ids[4], name="test_drive", ts=AS_OF - dt.timedelta(days=5), source="t", dedup_key="8"),
        Event(person_id=ids[5], name="lead_submit", ts=AS_OF - dt.timedelta(days=90), source="t", dedup_key="9"),
        Event(person_id=ids[5], name="test_drive", ts=AS_OF - dt.timedelta(days=5), source="t", dedup_key="10"),
    ])
    (project.directory / "rules" / "months.mc").write_text(
        "segment converted { where did lead_submit then test_drive within 2 months }\n", encoding="utf-8")
    [compiled] = compute_segments(project, ["converted"], as_of=AS_OF)  # calendar months compile
    assert compiled.plan.startswith("drive from events(name, ts) for the first step")
    monkeypatch.setattr(Compiler, "c_Sequence", no_rule)
    [result] = compute_segments(project, ["converted"], as_of=AS_OF)
    assert result.plan.startswith("reference evaluator (unsupported: Sequence (no rule in this test)")
    assert project.store.segment_member_ids("converted") == [ids[4]] == list(compiled.member_ids)
    assert explain_segment(project, "converted", AS_OF).sql is None


# --- segments members, diff --json/--exit-code, and the one --as-of format set of every command ------------

import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402

from motorcade.as_of import parse_as_of  # noqa: E402


def invoke(project, *args):
    return CliRunner().invoke(build_cli(), ["--project", str(project.directory), *args])


def test_members_exports_the_stored_members_masked(project, monkeypatch):
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    compute_segments(project, as_of=AS_OF)
    result = invoke(project, "segments", "members", "owners", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["source"] == "stored" and doc["count"] == 3 and doc["as_of"].startswith("2026-11-20T10:00")
    assert [m["name"] for m in doc["members"]] == ["p***"] * 3  # masked (length hidden too)
    assert all(m["entered_at"] for m in doc["members"])
    monkeypatch.setenv("MOTORCADE_SHOW_PII", "1")
    result = invoke(project, "segments", "members", "owners", "--csv")
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [int(r["person_id"]) for r in rows] == project.ids[:3]
    assert [r["name"] for r in rows] == ["p0", "p1", "p2"]


def test_members_at_another_as_of_are_computed_not_stored(project, monkeypatch):
    monkeypatch.setenv("MOTORCADE_SHOW_PII", "1")
    # on 2024-06-01 person 2 did not own a car yet and person 3 had not sold theirs
    ids = project.ids
    result = invoke(project, "segments", "members", "owners", "--as-of", "2024-06-01", "--json")
    doc = json.loads(result.output)
    assert doc["source"] == "computed" and [int(m["person_id"]) for m in doc["members"]] == [ids[0], ids[1], ids[3]]
    assert project.store.last_segment_run("owners") is None  # nothing stored


def test_members_of_a_segment_never_computed_or_unknown_say_what_to_do(project):
    result = invoke(project, "segments", "members", "owners")
    assert isinstance(result.exception, MotorcadeError)
    assert "has not been computed" in str(result.exception) and "segments compute owners" in str(result.exception)
    result = invoke(project, "segments", "members", "owner")
    assert "did you mean 'owners'?" in str(result.exception)


def test_diff_json_and_exit_code(project):
    compute_segments(project, as_of=AS_OF)
    code = main(["--project", str(project.directory), "diff", "--as-of", "2026-11-20T10:00", "--exit-code"])
    assert code == 0  # nothing changed
    (project.directory / "rules" / "segments.mc").write_text(RULES.replace("in last 365 days", "in last 30 days"),
                                                             encoding="utf-8")
    result = invoke(project, "diff", "--as-of", "2026-11-20T10:00", "--json")
    doc = json.loads(result.output)
    assert doc["as_of"] == "2026-11-20T10:00:00+08:00" and doc["changed"] == 1
    lapsed = {s["segment"]: s for s in doc["segments"]}["lapsed_owners"]
    assert (lapsed["status"], lapsed["added"]) == ("changed", 1)
    code = main(["--project", str(project.directory), "diff", "--as-of", "2026-11-20T10:00", "--exit-code"])
    assert code == 1
    result = invoke(project, "diff", "--as-of", "2026-11-20T10:00")
    assert "both evaluated as of 2026-11-20T10:00:00+08:00" in result.output


@pytest.mark.parametrize("text, expected", [
    ("2026-11-20", dt.datetime(2026, 11, 20, tzinfo=TZ)),
    ("2026-11-20T08:00", dt.datetime(2026, 11, 20, 8, tzinfo=TZ)),
    ("2026-11-20 08:00:30", dt.datetime(2026, 11, 20, 8, 0, 30, tzinfo=TZ)),
    ("2026-11-20T00:00Z", dt.datetime(2026, 11, 20, 8, tzinfo=TZ)),
    ("2026-11-20T08:00+08:00", dt.datetime(2026, 11, 20, 8, tzinfo=TZ)),
])
def test_as_of_formats(text, expected):
    assert parse_as_of(text, TZ) == expected


@pytest.mark.parametrize("text", ["yesterday", "20261120", "2026-13-01", "2026-11-20T25:00", "11/20/2026"])
@pytest.mark.parametrize("command", [["segments", "compute"], ["segments", "members", "owners"],
                                     ["explain", "owners"], ["diff"], ["tags", "compute"],
                                     ["report", "retention"], ["report", "churn"], ["pipeline"]])
def test_every_command_refuses_the_same_bad_as_of_as_a_usage_error(project, command, text):
    assert main(["--project", str(project.directory), *command, "--as-of", text]) == 2


def test_now_is_accepted_everywhere(project):
    assert abs(parse_as_of("now", TZ) - dt.datetime.now(TZ)) < dt.timedelta(seconds=5)
    assert main(["--project", str(project.directory), "segments", "compute", "--as-of", "now"]) == 0


@pytest.mark.parametrize("command", [["explain", "owners", "--person", "3**"], ["identity", "split", "3**"],
                                     ["sends", "list", "--person", "3**"]])
def test_a_masked_person_id_passed_back_is_refused_with_what_to_do(project, command):
    result = CliRunner().invoke(build_cli(), ["--project", str(project.directory), *command])
    assert result.exit_code == 2
    assert "'3**' is a masked id" in result.output and "MOTORCADE_SHOW_PII=1" in result.output


def test_person_ids_are_shown_the_same_everywhere_and_can_be_passed_back(project, monkeypatch):
    """Issue 15 item 7: explain masked person ids that `sends list` and `identity explain` showed raw; now
    internal ids are shown alike (they are not personal data) and an id read from one command works in another."""
    monkeypatch.delenv("MOTORCADE_SHOW_PII", raising=False)
    ids = project.ids
    compute_segments(project, as_of=AS_OF)
    out = invoke(project, "explain", "owners", "--person", str(ids[1]), "--as-of", "2026-11-20T10:00").output
    assert f"person {ids[1]} IS a member" in out
    doc = json.loads(invoke(project, "segments", "members", "owners", "--json").output)
    assert [m["person_id"] for m in doc["members"]] == ids[:3]
    sample = invoke(project, "explain", "owners", "--as-of", "2026-11-20T10:00").output.split("sample: ")[1]
    assert sample.split(", ")[0].strip() == str(ids[0])
