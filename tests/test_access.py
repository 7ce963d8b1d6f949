"""Scopes, users, roles, tokens and the audit log (issue #20; docs/access.md).

The property test builds random people with random store and advisor relations, random memberships, events and
sends, and a random caller; every read path and action must return or touch exactly the caller's people. Its
oracle of "the caller's people" is a few lines of its own over the generated relations, written from the docs,
not the store's SQL.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.access import Access, AccessDenied, Grant, Scope
from motorcade.cli import main
from motorcade.model import Advisor, Event, Store
from motorcade.project import init_project

UTC = dt.timezone.utc
STORES = ("SH01", "SH02", "BJ01")
ADVISORS = {"A1": "SH01", "A2": "SH02", "A3": "BJ01"}
STORE_KINDS = ("selling_store", "service_store", "home_store", "lead_store", "store")
ADVISOR_KINDS = ("sales_advisor", "service_advisor")
RULES = """\
segment visited "到店客户" {
  where did service_visit
}

segment sh01_visited {
  scope store "SH01"
  where did service_visit
}

segment uses_sh01 {
  where in segment sh01_visited
}

journey recall "召回" {
  entry on entering segment visited
  invite: send via email template "t"
  settle: wait 3 days
  last: send via email template "t"
  goal service_visit within 7 days
}
"""
T0 = dt.datetime(2026, 11, 1, 10, tzinfo=UTC)


def oracle_people(relations: dict[int, list[tuple[str, str]]], scope: Scope) -> set[int]:
    """Who a scope covers, from docs/access.md: a person belongs to the stores of its store relations and to
    the stores of its advisors; an advisor scope covers the people related to that advisor."""
    if scope.group:
        return set(relations)
    out = set()
    for pid, rels in relations.items():
        stores = {t for k, t in rels if k in STORE_KINDS} | {ADVISORS[t] for k, t in rels if k in ADVISOR_KINDS}
        advisors = {t for k, t in rels if k in ADVISOR_KINDS}
        if stores & scope.stores or advisors & scope.advisors:
            out.add(pid)
    return out


relation = st.one_of(st.tuples(st.sampled_from(STORE_KINDS), st.sampled_from(STORES)),
                     st.tuples(st.sampled_from(ADVISOR_KINDS), st.sampled_from(sorted(ADVISORS))))
person = st.fixed_dictionaries({"relations": st.lists(relation, max_size=3), "visits": st.integers(0, 2),
                                "dead_send": st.booleans(),
                                # in journey `recall`: None (never entered) or (arm, status, step, steps taken)
                                "journey": st.one_of(st.none(), st.tuples(
                                    st.sampled_from(["treatment", "holdout"]),
                                    st.sampled_from(["active", "completed", "exited", "converted"]),
                                    st.sampled_from(["invite", "settle", "last"]), st.integers(0, 2)))})
grant = st.one_of(
    st.lists(st.sampled_from(STORES), min_size=1, max_size=2, unique=True).map(
        lambda codes: Grant.make("store_manager", codes)),
    st.sampled_from(sorted(ADVISORS)).map(lambda a: Grant.make("advisor", [a])),
    st.sampled_from(["analyst", "group_marketer", "group_admin"]).map(Grant.make),
)


def build_project(directory: Path, people: list[dict]):
    project = init_project(directory / "p", name="access")
    (project.directory / "rules" / "segments.mc").write_text(RULES, encoding="utf-8")
    store = project.store
    store.upsert_stores([Store(code, code, "group") for code in STORES])
    store.upsert_advisors([Advisor(a, a, s) for a, s in ADVISORS.items()])
    relations: dict[int, list[tuple[str, str]]] = {}
    events, sends = [], []
    for i, p in enumerate(people):
        pid = store.create_person({"name": f"客户{i}"})
        relations[pid] = []
        for kind, target in p["relations"]:
            store.set_relation(pid, kind, target)
            relations[pid].append((kind, target))
        events += [Event("service_visit", T0 + dt.timedelta(days=v), pid, {"store_id": "SH01"}, "dms",
                         f"v{pid}-{v}") for v in range(p["visits"])]
        if p.get("journey"):
            arm, status, step, taken = p["journey"]
            entered = int((T0 - dt.timedelta(days=3)).timestamp())  # the visits fall in the goal's window
            store.add_journey_states([{"journey": "recall", "person_id": pid, "entry": 1, "version": "v1", "arm": arm,
                                       "step": step, "status": status, "entered_at": entered, "due_at": entered,
                                       "waiting_since": None, "updated_at": entered}])
            path = [("invite", "sent", "settle"), ("settle", "waited", "last")][:taken]
            store.add_journey_path([{"journey": "recall", "person_id": pid, "entry": 1, "step": a, "outcome": o,
                                     "next_step": b, "at": entered + i} for i, (a, o, b) in enumerate(path)])
        sends.append({"idempotency_key": f"k{pid}", "origin_kind": "campaign", "origin": "recall", "run_id": "r1",
                      "person_id": pid, "channel": "email", "template": "t", "revision": "x",
                      "status": "dead" if p["dead_send"] else "sent", "reason": "bounced"})
    store.insert_events(events)
    with store.transaction():
        store.create_run("r1", origin_kind="campaign", origin="recall", revision="x", scheduled_for=None,
                         started_at=T0 - dt.timedelta(days=1))
        store.add_audience_snapshot("r1", [(pid, "treatment") for pid in relations])
        store.finish_run("r1", status="planned", audience_size=len(relations), finished_at=T0 - dt.timedelta(days=1))
        store.enqueue_sends(sends)
    return project, relations


def as_caller(project, access: Access):
    project.access = access
    return project.store


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=st.lists(person, min_size=1, max_size=10), grants=st.lists(grant, min_size=1, max_size=2))
def test_nothing_outside_the_callers_scope_is_returned_or_touched(people, grants):
    from motorcade.identity.explain import explain as identity_explain
    from motorcade.segments.compute import compute_segments, members_now
    from motorcade.segments.diff import diff_segments
    from motorcade.segments.explain import explain_person_in_segment, explain_segment
    from motorcade.segments.members import segment_members

    with tempfile.TemporaryDirectory() as tmp:
        project, relations = build_project(Path(tmp), people)
        try:
            compute_segments(project, as_of=T0 + dt.timedelta(days=5))  # as the local owner: everyone
            visited = {pid for pid, p in zip(relations, people) if p["visits"]}
            access = Access("u", grants, how="token")
            store = as_caller(project, access)
            mine = oracle_people(relations, access.scope())
            others = set(relations) - mine

            assert store.status_counts()["people"] == len(mine)
            assert store.status_counts()["sends"] == len(mine)
            assert store.status_counts()["events"] == sum(p["visits"] for pid, p in zip(relations, people)
                                                          if pid in mine)
            stored = {r["person_id"] for r in segment_members(project, "visited").rows}
            assert stored == visited & mine
            computed = {r["person_id"] for r in segment_members(project, "visited", "2026-11-20").rows}
            assert computed == visited & mine
            assert set(members_now(project, "visited", "2026-11-20")) == visited & mine
            explained = explain_segment(project, "visited", "2026-11-20", sample=100)
            assert explained.size == len(visited & mine) and {int(s) for s in explained.sample} <= mine
            diffs = diff_segments(project, T0 + dt.timedelta(days=5))
            assert all(int(s) in mine for d in diffs for s in (*d.added_sample, *d.removed_sample))
            assert {d.segment: d.old_size for d in diffs}["visited"] == len(visited & mine)  # stored sizes too
            assert {s["person_id"] for s in store.list_sends(limit=1000)} == mine
            assert sum(r["count"] for r in store.send_stats()) == len(mine)
            funnel = {row[0] for row in store.funnel_paths(["service_visit"])}
            assert funnel == visited & mine
            cohorts = store.cohort_activity(cohort_event="service_visit", return_event="service_visit")
            assert sum(n for _, n in cohorts["sizes"]) == len(visited & mine)
            outcomes = store.campaign_outcomes("recall", event="service_visit", window_seconds=30 * 86400,
                                               service_event="service_visit")
            assert {row[0] for row in outcomes} == mine
            assert [row[3] for row in store.campaign_runs("recall")] == [len(mine)]
            for pid in relations:
                if pid in mine:
                    explain_person_in_segment(project, "visited", pid, "2026-11-20")
                    identity_explain(store, str(pid))
                else:
                    with pytest.raises(AccessDenied):
                        explain_person_in_segment(project, "visited", pid, "2026-11-20")
                    with pytest.raises(AccessDenied):
                        identity_explain(store, str(pid))
            # a group journey's figures for a store user count only their people (journeys status, the console)
            from motorcade.journeys.observe import journey_status

            status = journey_status(store, project.rules(), "recall", as_of=T0 + dt.timedelta(days=20), tz=UTC)
            in_journey = {pid: p["journey"] for pid, p in zip(relations, people) if p["journey"] and pid in mine}
            assert status.entered == len(in_journey)
            assert status.holdout == sum(1 for j in in_journey.values() if j[0] == "holdout")
            active_steps: dict[str, int] = {}
            for arm, state, step, _ in in_journey.values():
                if state == "active":
                    active_steps[step] = active_steps.get(step, 0) + 1
            assert status.at_step == active_steps
            assert status.left == {k: sum(1 for j in in_journey.values() if j[1] == k) for k in status.left}
            assert sum(n for *_, n in status.edges) == sum(j[3] for j in in_journey.values())
            c = status.conversion  # every entry's 7-day window has closed; a visit in it is the goal
            assert (c.treatment_n, c.holdout_n) == (len(in_journey) - status.holdout, status.holdout)
            assert c.treatment_converted + c.holdout_converted == len(set(in_journey) & visited)
            # an action: retrying every dead letter touches only the caller's
            dead_before = {s["person_id"] for s in as_caller(project, Access.local_owner()).list_sends(
                status="dead", limit=1000)}
            store = as_caller(project, access)
            with store.transaction():
                retried = store.retry_sends(status="dead")
            assert retried == len(dead_before & mine)
            owner_view = as_caller(project, Access.local_owner())
            still_dead = {s["person_id"] for s in owner_view.list_sends(status="dead", limit=1000)}
            assert still_dead == dead_before & others
            # a store-scoped segment holds only that store's people, whoever computes it
            sh01 = oracle_people(relations, Scope.of_stores("SH01"))
            project.access = access
            assert set(members_now(project, "sh01_visited", "2026-11-20")) == visited & sh01 & mine
            project.access = Access.local_owner()
            assert set(members_now(project, "sh01_visited", "2026-11-20")) == visited & sh01
            # a group segment using a store segment: the compiled SQL itself applies the store's scope
            assert set(members_now(project, "uses_sh01", "2026-11-20")) == visited & sh01
            for pid in relations:  # and the reference evaluator agrees with it, person by person
                why = explain_person_in_segment(project, "uses_sh01", pid, "2026-11-20")
                assert why.sql_member == bool(why.tree.result) == (pid in visited & sh01)
        finally:
            project.close()


@pytest.fixture
def demo(tmp_path):
    people = [{"relations": [("selling_store", "SH01")], "visits": 1, "dead_send": True},
              {"relations": [("service_advisor", "A2")], "visits": 1, "dead_send": True},
              {"relations": [("home_store", "BJ01")], "visits": 2, "dead_send": False},
              {"relations": [("sales_advisor", "A1"), ("lead_store", "BJ01")], "visits": 1, "dead_send": False}]
    project, relations = build_project(tmp_path, people)
    from motorcade.segments.compute import compute_segments

    compute_segments(project, as_of=T0 + dt.timedelta(days=5))
    project.close()
    return project.directory, relations


def test_cli_read_paths_of_a_store_manager_show_only_that_store(demo, capsys, monkeypatch):
    directory, relations = demo
    assert main(["--project", str(directory), "users", "add", "ann", "--role", "store_manager", "--store",
                 "SH01"]) == 0
    sh01 = {pid for pid, rels in relations.items()
            if any(t == "SH01" or ADVISORS.get(t) == "SH01" for _, t in rels)}
    assert sh01 == {1, 4}
    capsys.readouterr()

    def run(*args):
        code = main(["--project", str(directory), "--as", "ann", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("segments", "members", "visited", "--json")
    assert code == 0 and {m["person_id"] for m in json.loads(out)["members"]} == sh01
    code, out, _ = run("segments", "members", "visited", "--as-of", "2026-11-20", "--csv")
    assert code == 0 and {int(line.split(",")[0]) for line in out.splitlines()[1:]} == sh01
    code, out, _ = run("sends", "list", "--json")
    assert code == 0 and {json.loads(line)["person_id"] for line in out.splitlines()} == sh01
    code, out, _ = run("status", "--json")
    assert code == 0 and json.loads(out)["people"] == 2
    code, out, _ = run("explain", "visited", "--as-of", "2026-11-20")
    assert code == 0 and "audience: 2 people" in out
    for other in (2, 3):
        code, _, err = run("explain", "visited", "--person", str(other))
        assert code == 1 and "not in the scope of ann" in err
        code, _, err = run("identity", "explain", str(other))
        assert code == 1 and "not in the scope of ann" in err
    code, _, err = run("identity", "explain", "phone:13812345678")  # unknown: the same answer, no probing
    assert code == 1 and "is not in the scope of ann" in err and "known" not in err
    code, _, err = run("report", "funnel", "--steps", "service_visit,order", "--store", "BJ01")
    assert code == 1 and "may not read store:BJ01" in err
    for denied in (["quarantine", "list"], ["ingest", "--all"], ["tags", "compute"], ["identity", "stats"],
                   ["users", "list"], ["audit"], ["run"], ["tags", "health"], ["segments", "compute", "visited"]):
        code, _, err = run(*denied)
        assert code == 1 and "ann may not" in err, denied
    code, out, _ = run("segments", "compute")  # only the segments of ann's store
    assert code == 0 and "sh01_visited" in out and "visited:" not in out.replace("sh01_visited", "")
    code, out, _ = run("sends", "retry", "--all")
    assert code == 0 and out.startswith("1 sends")  # person 1's dead letter, not person 2's


def test_pii_is_a_permission(demo, capsys, monkeypatch):
    directory, _ = demo
    main(["--project", str(directory), "users", "add", "ana", "--role", "analyst"])
    main(["--project", str(directory), "users", "add", "gm", "--role", "group_marketer"])
    monkeypatch.setenv("MOTORCADE_SHOW_PII", "1")
    capsys.readouterr()
    main(["--project", str(directory), "--as", "gm", "segments", "members", "visited", "--json"])
    assert "客户0" in capsys.readouterr().out
    main(["--project", str(directory), "--as", "ana", "segments", "members", "visited", "--json"])
    out = capsys.readouterr().out
    assert "客户0" not in out and '"person_id": 1' in out


def test_tokens_are_shown_once_stored_hashed_revocable_and_expire(demo, capsys, monkeypatch):
    directory, _ = demo
    main(["--project", str(directory), "users", "add", "ann", "--role", "store_manager", "--store", "SH01"])
    capsys.readouterr()
    assert main(["--project", str(directory), "users", "token", "create", "ann", "--days", "1"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("mct_")
    raw = (directory / "motorcade.db").read_bytes()
    assert token.encode() not in raw  # only the hash is kept
    monkeypatch.setattr("motorcade.access.login.is_local_owner", lambda project: False)
    assert main(["--project", str(directory), "status"]) == 1
    assert "not its local owner" in capsys.readouterr().err
    monkeypatch.setenv("MOTORCADE_TOKEN", token)
    assert main(["--project", str(directory), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["people"] == 2
    assert main(["--project", str(directory), "users", "whoami"]) == 0
    assert "ann (token): store_manager (store:SH01)" in capsys.readouterr().out
    from motorcade.access.login import caller_from_token
    from motorcade.store import open_store

    store = open_store(directory / "motorcade.db")
    with pytest.raises(AccessDenied, match="expired"):
        caller_from_token(store, token, now=dt.datetime.now(UTC) + dt.timedelta(days=2))
    store.close()
    monkeypatch.delenv("MOTORCADE_TOKEN")
    monkeypatch.setattr("motorcade.access.login.is_local_owner", lambda project: True)
    assert main(["--project", str(directory), "users", "token", "revoke", "1"]) == 0
    monkeypatch.setenv("MOTORCADE_TOKEN", token)
    capsys.readouterr()
    assert main(["--project", str(directory), "status"]) == 1
    assert "was revoked" in capsys.readouterr().err
    monkeypatch.setenv("MOTORCADE_TOKEN", "mct_made_up")
    assert main(["--project", str(directory), "status"]) == 1
    assert "not known" in capsys.readouterr().err
    monkeypatch.delenv("MOTORCADE_TOKEN")
    assert main(["--project", str(directory), "users", "token", "create", "ann"]) == 0
    second = capsys.readouterr().out.strip()
    assert main(["--project", str(directory), "users", "disable", "ann"]) == 0
    monkeypatch.setenv("MOTORCADE_TOKEN", second)
    capsys.readouterr()
    assert main(["--project", str(directory), "status"]) == 1
    assert "user 'ann' is disabled" in capsys.readouterr().err


def test_audit_log_records_actions_and_tampering_through_sql_is_detected(demo, capsys):
    directory, _ = demo
    project = ["--project", str(directory)]
    main([*project, "users", "add", "ann", "--role", "store_manager", "--store", "SH01"])
    main([*project, "--as", "ann", "segments", "members", "visited", "--csv"])
    main([*project, "--as", "ann", "segments", "compute"])
    capsys.readouterr()
    assert main([*project, "audit", "--json"]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    actions = [e["action"] for e in entries]
    assert actions == ["segments.compute", "segments.members", "users.add"]
    assert entries[1]["actor"] == "ann (as, by the local owner)"
    assert entries[1]["affected"]["members_exported"] == 2
    assert entries[0]["affected"]["segments"] == {"sh01_visited": 2}
    assert main([*project, "audit", "verify"]) == 0
    assert "intact: 3 entries" in capsys.readouterr().out

    db = sqlite3.connect(directory / "motorcade.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit_log SET actor = 'someone else' WHERE id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit_log WHERE id = 2")
    # someone with the file drops the guard and edits an entry
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("UPDATE audit_log SET arguments = '{}' WHERE id = 2")
    db.commit()
    assert main([*project, "audit", "verify"]) == 1
    assert "entry 2: was changed after it was written" in capsys.readouterr().out
    db.execute("DROP TRIGGER audit_log_no_delete")
    db.execute("DELETE FROM audit_log WHERE id = 2")
    db.commit()
    db.close()
    assert main([*project, "audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "entry 3: entries 2..2 are missing" in out and "does not follow" in out


def test_a_store_campaign_reaches_only_its_store(tmp_path, capsys):
    from motorcade.activation.runner import run_campaigns_now
    from motorcade.activation.settings import ActivationContext

    people = [{"relations": [("selling_store", "SH01")], "visits": 1, "dead_send": False},
              {"relations": [("home_store", "SH02")], "visits": 1, "dead_send": False},
              {"relations": [("service_advisor", "A1")], "visits": 1, "dead_send": False}]
    project, relations = build_project(tmp_path, people)
    (project.directory / "rules" / "campaign.mc").write_text(
        'campaign sh01_recall {\n  scope store "SH01"\n  audience sh01_visited\n  schedule daily at 10:00\n'
        '  via advisor_task template "t"\n}\n\ncampaign group_recall {\n  audience visited\n'
        '  schedule daily at 10:00\n  via advisor_task template "t"\n}\n', encoding="utf-8")
    (project.directory / "templates").mkdir(exist_ok=True)
    (project.directory / "templates" / "t.txt").write_text("hello", encoding="utf-8")
    from motorcade.segments.compute import compute_segments

    compute_segments(project, as_of=T0 + dt.timedelta(days=5))
    project.access = Access("ann", [Grant.make("store_manager", ["SH01"])], how="token")
    ctx = ActivationContext.for_project(project)
    with pytest.raises(AccessDenied, match="run campaign group_recall"):
        run_campaigns_now(ctx, ["group_recall"])
    result = run_campaigns_now(ctx, ["sh01_recall"])
    assert result[0]["audience"] == 2
    project.access = Access.local_owner()
    assert {s["person_id"] for s in project.store.list_sends(origin="sh01_recall", limit=100)} == {1, 3}
    project.close()


def test_check_rejects_store_rules_using_group_segments_or_group_tags():
    from motorcade.dsl import rule_set_from_text
    from motorcade.dsl.check import check

    text = """\
segment everyone { where did service_visit }

scope store "SH01"

segment mine {
  where in segment everyone and tag store_value_score >= 4
}

segment valued {
  where tag group_value_score >= 4
}

campaign recall {
  audience everyone
  schedule daily at 10:00
  via email template "t"
}

campaign fine {
  audience mine
  schedule daily at 10:00
  via email template "t"
}
"""
    messages = [d.message for d in check(rule_set_from_text(text))]
    assert messages == [
        'segment `mine` is scoped to store "SH01" but uses segment `everyone`, which covers the whole group',
        'tag `group_value_score` is the group\'s (weighted over every store): a rule scoped to store "SH01" may '
        'not read it',
        'campaign `recall` is scoped to store "SH01" but uses segment `everyone`, which covers the whole group',
    ]
    from motorcade.dsl.check import Catalogue

    two = 'scope store "SH01", "SH02"\nsegment both { where tag store_value_score >= 4 }\n'
    messages = [d.message for d in check(rule_set_from_text(two), Catalogue(store_tags={"store_value_score"}))]
    assert messages == ['tag `store_value_score` has a value per store, and segment `both` is scoped to stores '
                        '"SH01", "SH02": which store\'s value is meant?']
    assert check(rule_set_from_text(two.replace(', "SH02"', "")), Catalogue(store_tags={"store_value_score"})) == []
    # a trigger's or a journey's own condition is evaluated for the person, not for a store: a per-store tag
    # there would silently read the value at the person's top store, so check refuses it and says what to do
    trigger = ('scope store "SH01"\nsegment mine { where tag store_value_score >= 4 }\n'
               'trigger thanks {\n  on order\n  if tag store_value_score >= 4\n  via email template "t"\n}\n')
    messages = [d.message for d in check(rule_set_from_text(trigger), Catalogue(store_tags={"store_value_score"}))]
    assert messages == ['tag `store_value_score` has a value per store, and trigger `thanks` reads it in its own '
                        'condition, which is evaluated for the person, not at store "SH01"']
    fixed = trigger.replace("if tag store_value_score >= 4", "if in segment mine")
    assert check(rule_set_from_text(fixed), Catalogue(store_tags={"store_value_score"})) == []


def test_scope_declarations_parse_format_and_round_trip():
    from motorcade.dsl import format_rules, parse_text

    text = ('scope store "SH01", "SH02"\n\nsegment a {\n  where did x\n}\n\ncampaign c {\n  scope store "SH01"\n'
            '  audience a\n}\n\nscope group\n\nsegment b {\n  where did y\n}\n')
    parsed = parse_text(text)
    assert [r.scope.stores for r in parsed.rules] == [("SH01", "SH02"), ("SH01",), ()]
    assert format_rules(parsed) == text
    assert parse_text(format_rules(parsed)).rules == parsed.rules


def test_grants_are_validated():
    with pytest.raises(Exception, match="needs the store"):
        Grant.make("store_manager")
    with pytest.raises(Exception, match="did you mean 'analyst'"):
        Grant.make("analist")
    with pytest.raises(Exception, match="group-wide"):
        Grant.make("analyst", ["SH01"])
    assert Scope.parse("store:SH01,SH02") == Scope.of_stores("SH01", "SH02")
    assert str(Scope.parse("advisor:A1")) == "advisor:A1"


def test_group_tags_are_configurable_and_check_reports_them_in_a_project(tmp_path, capsys):
    project = init_project(tmp_path / "p", name="t")
    (project.directory / "rules" / "store.mc").write_text(
        'tag wealth_band = case\n  when profile.income > 100 then "A"\n  else "B"\nend\n\nscope store "SH01"\n\n'
        'segment rich {\n  where tag wealth_band = "A"\n}\n', encoding="utf-8")
    project.close()
    args = ["--project", str(project.directory), "check"]
    assert main(args) == 0  # wealth_band is not a group tag by default
    with open(project.directory / "motorcade.toml", "a", encoding="utf-8") as f:
        f.write('\n[access]\ngroup_tags = ["wealth_band"]\n')
    capsys.readouterr()
    assert main(args) == 1
    assert 'tag `wealth_band` is the group\'s (weighted over every store): a rule scoped to store "SH01"' in \
        capsys.readouterr().out


def test_a_store_trigger_fires_only_for_its_store(tmp_path):
    """`scope store` on a trigger: an event of another store's customer does not fire it (the planner checks
    the person's stores before evaluating the trigger)."""
    from motorcade.activation.planner import process_event_trigger
    from motorcade.activation.settings import ActivationContext

    people = [{"relations": [("selling_store", "SH01")], "visits": 1, "dead_send": False},
              {"relations": [("home_store", "SH02")], "visits": 1, "dead_send": False},
              {"relations": [("service_advisor", "A1")], "visits": 1, "dead_send": False},
              {"relations": [], "visits": 1, "dead_send": False}]
    project, _ = build_project(tmp_path, people)
    (project.directory / "rules" / "trigger.mc").write_text(
        'trigger sh01_thanks {\n  scope store "SH01"\n  on service_visit\n  reenter always\n'
        '  via advisor_task template "t"\n}\n\ntrigger group_thanks {\n  on service_visit\n  reenter always\n'
        '  via advisor_task template "t"\n}\n', encoding="utf-8")
    (project.directory / "templates").mkdir(exist_ok=True)
    (project.directory / "templates" / "t.txt").write_text("thanks", encoding="utf-8")
    ctx = ActivationContext.for_project(project, clock=lambda: T0 + dt.timedelta(hours=1))
    assert process_event_trigger(ctx, "sh01_thanks")["planned"] == 2
    assert process_event_trigger(ctx, "group_thanks")["planned"] == 4
    assert {s["person_id"] for s in project.store.list_sends(origin="sh01_thanks", limit=100)} == {1, 3}
    project.close()


def test_rule_tests_state_per_store_values_and_a_store_rule_reads_its_stores(tmp_path):
    """`tag NAME@STORE` gives a person's value of a per-store tag at a store: a rule scoped to SH01 reads the
    SH01 value, a group rule the person's own (top store) value, and explain says which store's was read."""
    from motorcade.dsl.evaluate import Evaluator
    from motorcade.dsl.ruletest import parse_test_file, run_rule_tests

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "value.mc").write_text(
        'segment valued { where tag store_value_score >= 4 }\n\n'
        'scope store "SH01"\n\nsegment sh01_valued { where tag store_value_score >= 4 }\n', encoding="utf-8")
    text = (
        "as of 2026-06-01 10:00\n\npeople:\n"
        "  id | tag store_value_score | tag store_value_score@SH01 | tag store_value_score@SH02 | stores\n"
        '  1  | 4.5                   | 2.0                        | 4.5                        | ["SH01", "SH02"]\n'
        '  2  | 4.2                   | 4.2                        |                            | ["SH01"]\n'
        '  3  | 4.8                   |                            | 4.8                        | ["SH01", "SH02"]\n'
        "\nexpect segment valued exactly [1, 2, 3]\nexpect segment sh01_valued exactly [2]\n")
    (rules / "value.test.mc").write_text(text, encoding="utf-8")
    report = run_rule_tests([rules])
    assert report.failed == 0 and report.passed == 2, [(r.name, r.message) for r in report.results if not r.passed]
    scenario = parse_test_file("value.test.mc", text).scenarios[0]
    from motorcade.dsl.rules import rule_set_from_text

    rule_set = rule_set_from_text('scope store "SH01"\nsegment sh01_valued { where tag store_value_score >= 4 }\n'
                                  'scope store "SH01", "SH02"\nsegment two { where tag store_value_score >= 4 }\n')
    from motorcade.dsl.evaluate import explain_person

    tree = explain_person(rule_set, "sh01_valued", scenario.dataset, 1, dt.datetime(2026, 6, 1, tzinfo=UTC), "UTC")
    assert "(seen: 2.0 at store SH01)" in tree.render() and tree.result is False
    from motorcade.dsl.evaluate import EvaluationError

    with pytest.raises(EvaluationError, match="which store's value is meant"):
        Evaluator(rule_set, scenario.dataset, dt.datetime(2026, 6, 1, tzinfo=UTC), "UTC").segment_member(
            "two", scenario.dataset.people[1])


def test_a_store_segment_reads_the_store_value_on_every_store_engine(store_database):
    """On SQLite and PostgreSQL alike: the value plugin keeps each store's value, a segment scoped to a store
    reads the value at that store, a group segment the value at the person's top store, and the
    reference evaluator over the loaded rows agrees."""
    from motorcade_tags_value import ValueTags

    from motorcade.dsl import rule_set_from_text
    from motorcade.dsl.evaluate import evaluate_segment
    from motorcade.segments.compute import evaluate_members
    from motorcade.segments.dataset import load_dataset
    from motorcade.store import open_store
    from motorcade.tags.engine import compute_tags

    store = open_store(store_database)
    try:
        as_of = dt.datetime(2026, 11, 20, 8, tzinfo=UTC)
        a, b = store.create_person({}), store.create_person({})
        for pid in (a, b):
            for code in ("SH01", "SH02"):
                store.set_relation(pid, "selling_store", code)

        def order(pid, code, days, amount):
            return Event("order", as_of - dt.timedelta(days=days), pid, {"store": code, "amount": amount}, "t",
                         f"{pid}-{code}-{days}")
        # a: a big, recent spender at SH02, one old small order at SH01; b: the other way round
        store.insert_events([order(a, "SH01", 300, 100), order(a, "SH02", 3, 90000), order(a, "SH02", 10, 90000),
                             order(b, "SH01", 2, 80000), order(b, "SH01", 5, 80000), order(b, "SH02", 200, 50)])
        cuts = {"recency_cut_points": [7, 30, 90, 180], "frequency_cut_points": [1, 2, 3, 4],
                "monetary_cut_points": [1000, 5000, 20000, 100000]}
        compute_tags(store, {"value": ValueTags()}, as_of=as_of, settings={"value": cuts})
        # a at SH01: R 1 (300 days), F 1, M 1 -> 1.0; at SH02: R 5, F 2, M 5 -> 4.0 (its top store); b mirrored
        assert store.store_tags_of(a)["SH01"]["store_value_score"] == 1.0
        assert store.store_tags_of(a)["SH02"]["store_value_score"] == 4.0
        rules = rule_set_from_text('segment top { where tag store_value_score >= 4 }\n'
                                   'scope store "SH01"\nsegment sh01 { where tag store_value_score >= 4 }\n'
                                   'scope store "SH02"\nsegment sh02 { where tag store_value_score >= 4 }\n')
        dataset = load_dataset(store)
        for name, members in (("top", [a, b]), ("sh01", [b]), ("sh02", [a])):
            got, plan, _ = evaluate_members(store, rules, name, as_of, "UTC")
            assert got == members and "reference evaluator" not in plan, (name, plan)
            assert evaluate_segment(rules, name, dataset, as_of, "UTC") == set(members), name
    finally:
        store.close()
