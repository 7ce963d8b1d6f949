"""Where features merged from parallel branches meet: store scopes (access) on journeys, and so on."""

from __future__ import annotations

import datetime as dt
import json
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
    def build(rules: str, config: str = ""):
        directory = motorcade_project.directory
        (directory / "motorcade.toml").write_text(CONFIG + config, encoding="utf-8")
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


ACCESS_RULES = """\
segment visited {
  where did service_visit
}

journey welcome {
  entry on entering segment visited
  hello: send via advisor_task template "t"
}

scope store "SH01"

segment sh01_visited {
  where did service_visit
}

journey sh01_welcome {
  entry on entering segment sh01_visited
  hello: send via advisor_task template "t"
}
"""


@pytest.fixture
def access_project(tmp_path):
    from motorcade.model import Event, Store
    from motorcade.project import init_project
    from motorcade.segments.compute import compute_segments

    project = init_project(tmp_path / "p", name="t")
    (project.directory / "rules" / "main.mc").write_text(ACCESS_RULES, encoding="utf-8")
    (project.directory / "templates").mkdir(exist_ok=True)
    (project.directory / "templates" / "t.txt").write_text("您好", encoding="utf-8")
    store = project.store
    store.upsert_stores([Store(code, code, "group") for code in ("SH01", "SH02")])
    t0 = dt.datetime(2026, 11, 1, 10, tzinfo=dt.timezone.utc)
    ids = []
    for i, code in enumerate(("SH01", "SH02")):
        pid = store.create_person({"name": f"客户{i}"})
        store.set_relation(pid, "selling_store", code)
        ids.append(pid)
    store.insert_events([Event("service_visit", t0, pid, {"store_id": "SH01"}, "dms", f"v{pid}") for pid in ids]
                        + [Event("order", t0 + dt.timedelta(days=1), pid, {}, "dms", f"o{pid}") for pid in ids])
    compute_segments(project, as_of=t0 + dt.timedelta(days=5))
    project.close()
    return project.directory, ids


def test_journey_and_insight_reads_have_a_permission_and_respect_the_callers_scope(access_project, capsys):
    """`journeys status|explain`, `report attribution|portrait` and `sends tracking` are reads: an analyst runs
    them (they were group_admin-only, as commands the permission table did not know); a store manager reads a
    journey scoped to their store and its people, a group journey's figures over their own people, not another
    store's person or figures over the whole group."""
    from motorcade.cli import main

    directory, (sh01_person, sh02_person) = access_project
    assert main(["--project", str(directory), "users", "add", "ana", "--role", "analyst"]) == 0
    assert main(["--project", str(directory), "users", "add", "ann", "--role", "store_manager", "--store",
                 "SH01"]) == 0
    capsys.readouterr()

    def run(user, *args):
        code = main(["--project", str(directory), "--as", user, *args])
        out = capsys.readouterr()
        return code, out.out + out.err

    for args in (["journeys", "status", "welcome"], ["journeys", "explain", "welcome", "--person", str(sh02_person)],
                 ["report", "attribution"], ["report", "portrait", "visited"], ["sends", "tracking"]):
        code, out = run("ana", *args)
        assert code == 0, (args, out)
    code, out = run("ann", "journeys", "status", "sh01_welcome")
    assert code == 0, out
    code, out = run("ann", "journeys", "explain", "sh01_welcome", "--person", str(sh01_person))
    assert code == 0, out
    code, out = run("ann", "journeys", "explain", "sh01_welcome", "--person", str(sh02_person))
    assert code == 1 and "not in the scope of ann" in out
    code, out = run("ann", "report", "portrait", "sh01_visited")
    assert code == 0, out
    code, out = run("ann", "journeys", "status", "welcome")  # a group journey: figures over ann's people
    assert code == 0, out
    for args in (["report", "attribution"], ["sends", "tracking"]):
        code, out = run("ann", *args)
        assert code == 1 and "ann may not" in out, (args, out)


def test_attribution_credits_journey_and_trigger_sends_by_their_rule(tmp_path):
    """The feedback events of a journey's or a trigger's sends carry `journey`/`trigger`, not `campaign`:
    attribution's campaign dimension names them (`journey NAME`, `trigger NAME`) instead of `(none)`."""
    from motorcade.activation.feedback import feedback_event
    from motorcade.feedback.attribution import compute_attribution
    from motorcade.model import Event
    from motorcade.store import open_store

    store = open_store(tmp_path / "a.db")
    t0 = dt.datetime(2026, 3, 1, 2, tzinfo=dt.timezone.utc)
    people = [store.create_person({"name": n}) for n in "ABC"]
    events = []
    for pid, (kind, origin) in zip(people, [("journey", "recall"), ("trigger", "thanks"), ("campaign", "spring")]):
        send = {"origin_kind": kind, "origin": origin, "channel": "sms", "template": "t",
                "idempotency_key": f"{kind}:{origin}:{pid}", "run_id": f"{kind}:{origin}", "step": 0,
                "revision": "r", "person_id": pid}
        events.append(feedback_event(send, "sent", t0))
        events.append(Event("order", t0 + dt.timedelta(days=2), pid, {}, "dms", f"o{pid}"))
    store.insert_events(events)
    report = compute_attribution(store, conversion="order", within_days=30, models=["last_touch"],
                                 touches=["sent"], as_of=int((t0 + dt.timedelta(days=5)).timestamp()))
    credits = {row["value"]: row["last_touch"] for row in report.rows("campaign") if row["last_touch"]}
    assert credits == {"journey recall": 1, "trigger thanks": 1, "spring": 1}


def test_a_journey_sends_tracked_links_and_sends_tracking_counts_them_by_journey(journey_project, capsys):
    """`{{ track(url) }}` in a journey's send template becomes a short link kept with the send, and
    `sends tracking --origin JOURNEY` counts its clicks (the origin was taken for a campaign's)."""
    from motorcade.cli import main

    project, context, now = journey_project(SCOPED_JOURNEY.replace('scope store "SH01"\n', ""),
                                            '\n[activation]\npublic_url = "https://go.example.cn"\n')
    (project.directory / "templates" / "hello.txt").write_text(
        '您好 {{ track("https://dealer.example/booking") }}', encoding="utf-8")
    store = project.store
    with store.transaction():
        pid = store.create_person({"name": "客户", "is_owner": True})
    store.record_segment_run("sh01_owners", [pid], revision="t", as_of=now, computed_at=now, duration_ms=0,
                             plan=None)
    assert process_journey(context(), "sh01_recall")["sends"] == 1
    send = store.list_sends(origin="sh01_recall", limit=10)[0]
    links = store.links_of_send(send["idempotency_key"])
    assert [link["target"] for link in links] and links[0]["kind"] == "link"
    assert f"https://go.example.cn/s/{links[0]['code']}" in send["payload"]["steps"][0]["body"]
    store.add_link_hit(links[0]["code"], at=now, user_agent="Mozilla/5.0 (iPhone)", bot=None)
    store.conn.commit()
    capsys.readouterr()
    assert main(["--project", str(project.directory), "sends", "tracking", "--origin", "sh01_recall", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"]["click"] == 1


def test_a_rule_test_of_a_store_journey_lets_in_only_that_stores_people(tmp_path):
    """`expect journey` simulates the journey's `scope store` as the engine applies it: a person of another
    store is `not entered` (the `stores` column gives a person's stores)."""
    from motorcade.dsl.ruletest import run_rule_tests

    (tmp_path / "j.mc").write_text('scope store "SH01"\n\njourney drive {\n  entry on test_drive\n'
                                   '  first: send via sms template "thanks"\n}\n', encoding="utf-8")
    (tmp_path / "j.test.mc").write_text(
        "as of 2026-06-20 10:00\n\npeople:\n  id | stores\n  1  | \"SH01\"\n  2  | \"SH02\"\n\nevents:\n"
        "  id | person | event      | at\n  1  | 1      | test_drive | 2026-06-10 09:00\n"
        "  2  | 2      | test_drive | 2026-06-10 09:00\n\n"
        "expect journey drive puts 1 at completed\nexpect journey drive puts 2 at not entered\n",
        encoding="utf-8")
    report = run_rule_tests([tmp_path])
    assert report.ok and report.passed == 2, report.render()


def test_check_reports_the_templates_of_a_journeys_send_steps(tmp_path, capsys):
    """`motorcade check` checks a journey's send templates as a campaign's (a missing template, track()
    without [activation] public_url): `run` refuses such a journey, so `check` must not pass it."""
    from motorcade.cli import main
    from motorcade.project import init_project

    project = init_project(tmp_path / "p", name="t")
    (project.directory / "rules" / "main.mc").write_text(
        'segment visited {\n  where did service_visit\n}\n\njourney welcome {\n  entry on entering segment visited\n'
        '  hello: send via advisor_task template "missing"\n  wait 1 day\n'
        '  again: send via advisor_task template "tracked"\n}\n', encoding="utf-8")
    (project.directory / "templates").mkdir(exist_ok=True)
    (project.directory / "templates" / "tracked.txt").write_text('{{ track("https://x.example") }}',
                                                                  encoding="utf-8")
    project.close()
    capsys.readouterr()
    assert main(["--project", str(project.directory), "check"]) == 1
    out = capsys.readouterr().out
    assert "missing" in out and "journey welcome" not in out.replace("journey `welcome`", "")
    assert "rules/main.mc:7" in out and "public_url" in out


def test_a_rule_test_of_a_store_trigger_fires_only_for_that_stores_people(tmp_path):
    """`expect trigger` applies the trigger's `scope store` as the planner does (the planner checks the
    person's stores before evaluating the trigger)."""
    from motorcade.dsl.ruletest import run_rule_tests

    (tmp_path / "t.mc").write_text('scope store "SH01"\n\ntrigger thanks {\n  on service_visit\n'
                                   '  via sms template "thanks"\n}\n', encoding="utf-8")
    (tmp_path / "t.test.mc").write_text(
        "as of 2026-06-20 10:00\n\npeople:\n  id | stores\n  1  | \"SH01\"\n  2  | \"SH02\"\n\nevents:\n"
        "  id | person | event         | at\n  1  | 1      | service_visit | 2026-06-10 09:00\n"
        "  2  | 2      | service_visit | 2026-06-10 09:00\n\n"
        "expect trigger thanks fires on event 1\nexpect trigger thanks does not fire on event 2\n",
        encoding="utf-8")
    report = run_rule_tests([tmp_path])
    assert report.ok and report.passed == 2, report.render()


def test_a_journey_send_renders_the_persons_recommendation(journey_project):
    """`{{ recommendation.NAME }}` in a journey's send template: the person's top item, as in a campaign."""
    rules = SCOPED_JOURNEY.replace('scope store "SH01"\n', "") + (
        '\nrecommend service_package {\n  when profile.vip = true then "major_service"\n'
        '  when profile.is_owner = true then "minor_service"\n}\n')
    project, context, now = journey_project(rules)
    (project.directory / "templates" / "hello.txt").write_text(
        "您好，推荐 {{ recommendation.service_package }}", encoding="utf-8")
    store = project.store
    with store.transaction():
        vip = store.create_person({"name": "甲", "is_owner": True, "vip": True})
        plain = store.create_person({"name": "乙", "is_owner": True})
    store.record_segment_run("sh01_owners", [vip, plain], revision="t", as_of=now, computed_at=now, duration_ms=0,
                             plan=None)
    assert process_journey(context(), "sh01_recall")["sends"] == 2
    bodies = {s["person_id"]: s["payload"]["steps"][0]["body"] for s in store.list_sends(origin="sh01_recall")}
    assert bodies == {vip: "您好，推荐 major_service", plain: "您好，推荐 minor_service"}


@pytest.mark.parametrize("engine_url", ["duckdb:///analytics.duckdb", "chdb:///analytics-ch"])
def test_a_segment_reading_a_recommendation_has_the_same_members_on_the_analytics_engine(tmp_path, engine_url):
    """`recommendation R includes "x"` compiles in every engine's dialect (it was compiled with a helper the
    dialect merge removed, so every recommendation failed, on SQLite too)."""
    pytest.importorskip("duckdb" if engine_url.startswith("duckdb") else "chdb")
    from motorcade.analytics import open_engine
    from motorcade.segments.compute import evaluate_members
    from motorcade.store import open_store

    rules = rule_set_from_text(
        'recommend service_package {\n  when profile.vip = true then "major_service"\n'
        '  when count(service_visit) >= 1 then "minor_service"\n}\n\n'
        'segment minor { where recommendation service_package includes "minor_service" }\n'
        'segment major { where recommendation service_package includes "major_service" }\n')
    store = open_store(tmp_path / "p.db")
    from motorcade.model import Event

    at = dt.datetime(2026, 11, 1, 10, tzinfo=SH)
    with store.transaction():
        ids = [store.create_person({"name": f"客户{i}", "vip": i % 2 == 0}) for i in range(6)]
    store.insert_events([Event("service_visit", at, pid, {}, "dms", f"v{pid}") for pid in ids[:3]])
    as_of = at + dt.timedelta(days=1)
    expected = {"minor": set(ids[:3]), "major": {ids[0], ids[2], ids[4]}}
    engine = open_engine(engine_url, base_dir=tmp_path)
    try:
        engine.mirror(store)
        for name, members in expected.items():
            assert set(evaluate_members(store, rules, name, as_of, "Asia/Shanghai")[0]) == members, name
            there, _plan, _query = evaluate_members(store, rules, name, as_of, "Asia/Shanghai", engine=engine)
            assert set(there) == members, name
    finally:
        engine.close()
        store.close()


@pytest.fixture
def both_store(store_database):
    from motorcade.store import open_store

    s = open_store(store_database)
    try:
        yield s
    finally:
        s.close()


def test_links_receipts_and_journey_states_on_both_stores(both_store):
    """The PostgreSQL store (merged beside tracking and journeys) offers their functions: short links and
    their hits, receipts seen, journey versions, states and path, with the answers SQLite gives."""
    store = both_store
    t0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.timezone.utc)
    pid = store.create_person({"name": "p"})
    store.enqueue_sends([{"idempotency_key": "journey:j:e1:p1:s", "origin_kind": "journey", "origin": "j",
                          "run_id": "journey:j", "person_id": pid, "channel": "sms", "template": "t",
                          "revision": "r", "payload": {"steps": []}}], at=t0)
    assert store.add_links([("AAAAAAAAAAA", "journey:j:e1:p1:s", 0, "link", "https://x.example")], at=t0) == 1
    assert store.link("AAAAAAAAAAA")["target"] == "https://x.example"
    store.add_link_hit("AAAAAAAAAAA", at=t0, user_agent="Mozilla/5.0", bot=None)
    assert store.link_hit_counts("journey", "j") == {"click": 1, "open": 0, "bot": 0}
    assert store.receipt_seen("sms", "k1", at=t0) is False and store.receipt_seen("sms", "k1", at=t0) is True
    store.add_receipt_rejection("sms", "signature", None, at=t0)
    assert store.receipt_rejection_counts() == {("sms", "signature"): 1}
    with store.transaction():
        store.record_journey_version("j", "v1", "journey j {}", at=t0)
        store.add_journey_states([{"journey": "j", "person_id": pid, "entry": 1, "version": "v1", "arm": "treatment",
                                   "step": "s", "status": "active", "entered_at": int(t0.timestamp()),
                                   "due_at": int(t0.timestamp()), "waiting_since": None,
                                   "updated_at": int(t0.timestamp())}])
    assert store.journey_version_text("j", "v1") == "journey j {}"
    assert [r["step"] for r in store.due_journey_states("j", t0 + dt.timedelta(minutes=1), limit=10)] == ["s"]
    assert store.journey_entry_history("j", [pid])[pid][0] == 1


def test_a_journey_runs_and_sends_tracking_counts_on_both_stores(journey_project, store_database, capsys):
    """The journey engine and `sends tracking --origin` run on PostgreSQL too: their reads through
    `Store.query` were written with SQLite's `?` placeholders."""
    from motorcade.cli import main
    from motorcade.store import open_store

    project, context, now = journey_project(SCOPED_JOURNEY.replace('scope store "SH01"\n', ""),
                                            '\n[activation]\npublic_url = "https://go.example.cn"\n')
    config = project.directory / "motorcade.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        'database = "motorcade.db"', f'database = "{store_database}"'), encoding="utf-8")
    (project.directory / "templates" / "hello.txt").write_text('{{ track("https://x.example") }}', encoding="utf-8")
    store = open_store(store_database)
    project.__dict__["store"] = store
    try:
        pid = store.create_person({"name": "客户", "is_owner": True})
        store.record_segment_run("sh01_owners", [pid], revision="t", as_of=now, computed_at=now, duration_ms=0,
                                 plan=None)
        assert process_journey(context(), "sh01_recall")["sends"] == 1
        send = store.list_sends(origin="sh01_recall", limit=10)[0]
        store.add_link_hit(store.links_of_send(send["idempotency_key"])[0]["code"], at=now, user_agent="Mozilla/5.0",
                           bot=None)
    finally:
        project.__dict__.pop("store")
        store.close()
    capsys.readouterr()
    assert main(["--project", str(project.directory), "sends", "tracking", "--origin", "sh01_recall", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"]["click"] == 1


def test_recommendations_compute_on_both_stores(both_store):
    """A template's `recommendation.NAME` (and `explain recommendation`) computes on the PostgreSQL store too:
    the query was rendered for SQLite whatever the store."""
    from motorcade.segments.recommend import compute_recommendations

    rules = rule_set_from_text('recommend pkg {\n  when profile.vip = true then "major"\n'
                               '  when profile.is_owner = true then "minor"\n}\n')
    store = both_store
    vip = store.create_person({"name": "a", "vip": True, "is_owner": True})
    plain = store.create_person({"name": "b", "is_owner": True})
    nobody = store.create_person({"name": "c"})
    at = dt.datetime(2026, 3, 1, 9, tzinfo=dt.timezone.utc)
    got = compute_recommendations(store, rules, "pkg", at, "Asia/Shanghai", [vip, plain, nobody])
    assert {pid: [i.item for i in items] for pid, items in got.items()} == {vip: ["major", "minor"], plain: ["minor"]}


def test_after_store_copy_postgresql_keeps_numbering_link_hits_receipt_rejections_and_journey_paths(tmp_path, pg_url):
    """`store copy` moves each generated id's sequence past the copied rows, for the tracking and journeys
    tables too: the next link hit, refused receipt or journey path row on PostgreSQL gets a new id."""
    from motorcade.store import open_store
    from motorcade.store.copy import copy_store

    t0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.timezone.utc)
    stamp = int(t0.timestamp())

    def fill(store, n):
        store.add_link_hit("AAAAAAAAAAA", at=t0, user_agent="Mozilla/5.0", bot=None)
        store.add_receipt_rejection("sms", "signature", None, at=t0)
        with store.transaction():
            store.add_journey_path([{"journey": "j", "person_id": 1, "entry": 1, "step": f"s{n}", "outcome": "sent",
                                     "next_step": None, "at": stamp + n, "detail": None}])

    source = open_store(tmp_path / "p.db")
    target = open_store(pg_url)
    try:
        fill(source, 0)
        copy_store(source, target)
        fill(target, 1)  # failed with a duplicate id: the sequences still started at 1
        assert [tuple(r) for r in target.query("SELECT count(*), count(DISTINCT id) FROM link_hits")] == [(2, 2)]
        assert [tuple(r) for r in target.query("SELECT count(DISTINCT id) FROM journey_path")] == [(2,)]
        assert target.receipt_rejection_counts() == {("sms", "signature"): 2}
    finally:
        source.close()
        target.close()
