"""An opt-out sticks: a refusal is never undone by a source row that did not change, nor by a grant older
than the refusal; a grant lifts a refusal only when it is known to come after it (its own time, or the same
source row changed after it stated the refusal). Real project: a CSV CRM export with an undated consent
column, a JSON Lines app log with dated subscribe/unsubscribe events, provider receipts through
``record_receipt`` and a marketing campaign delivered by ``run_once``."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import zoneinfo
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import motorcade_sources_csv
import motorcade_sources_jsonl
from motorcade.activation.feedback import record_receipt
from motorcade.activation.runner import run_once
from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import memory_channel_plugin
from motorcade.model import Consent
from motorcade.project import Project
from motorcade.sources import ingest as ingest_module
from motorcade.sources.ingest import ingest, project_ingestor
from motorcade.store import open_store

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)

CONFIG = """
[project]
name = "consent"
timezone = "Asia/Shanghai"

[sources.crm]
type = "csv"
path = "crm.csv"
[sources.crm.person]
key = "no"
identifiers = { crm_id = "no", phone = "mobile" }
attributes = { is_owner = { column = "owner", type = "bool" } }
consents = { "*" = "consent_all" }

[sources.app]
type = "jsonl"
path = "app.jsonl"
format = "native"
identifiers = { phone = "phone" }
"""

RULES = """
segment owners { where profile.is_owner = true }
campaign recall { audience owners  schedule daily at 10:00  send to all members  via memory template "hello" }
"""


class Clock:
    def __init__(self, at: dt.datetime):
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


class Loop:
    """One person in a real project, driven by operations; ``memory.sent`` holds what was delivered."""

    def __init__(self, directory: Path, pm, memory, monkeypatch):
        (directory / "rules").mkdir(parents=True)
        (directory / "templates").mkdir()
        (directory / "motorcade.toml").write_text(CONFIG, encoding="utf-8")
        (directory / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
        (directory / "templates" / "hello.txt").write_text("您好", encoding="utf-8")
        self.directory, self.memory = directory, memory
        self.clock = Clock(START)
        monkeypatch.setattr(ingest_module._SourceSettings, "now", lambda _self: self.clock().astimezone(UTC))
        self.project = Project(directory, plugin_manager=pm)
        self.ctx = ActivationContext.for_project(self.project, clock=self.clock, worker_id="w1")
        self.events: list[str] = []
        self.crm("")
        self.pid = self.project.store.resolve_person_id(
            self.project.store.query("SELECT person_id FROM identifiers WHERE type = 'crm_id'")[0][0])

    def crm(self, consent: str) -> None:
        (self.directory / "crm.csv").write_text(f"no,mobile,owner,consent_all\nC1,13812345678,yes,{consent}\n",
                                                encoding="utf-8")
        ingest(self.project, "crm", ingestor=project_ingestor(self.project))

    def app(self, name: str, at: dt.datetime) -> None:
        self.events.append(json.dumps({"event": name, "ts": at.isoformat(), "phone": "13812345678",
                                       "id": f"e{len(self.events)}"}))
        (self.directory / "app.jsonl").write_text("\n".join(self.events) + "\n", encoding="utf-8")
        ingest(self.project, "app", ingestor=project_ingestor(self.project))

    def receipt(self, at: dt.datetime) -> bool:
        sends = self.project.store.list_sends(limit=1)
        if not sends:
            return False
        return record_receipt(self.project.store, sends[0]["idempotency_key"], "unsubscribed", at=at,
                              scope="all") or True

    def run(self) -> int:
        """The next day's campaign slot: plan and deliver; returns how many messages were delivered."""
        self.clock.at = (self.clock.at.astimezone(SH) + dt.timedelta(days=1)).replace(hour=10, minute=0, second=0)
        store = self.project.store
        now = self.clock()
        store.record_segment_run("owners", [self.pid], revision="t", as_of=now, computed_at=now, duration_ms=0,
                                 plan=None)
        before = len(self.memory.sent)
        run_once(self.ctx)
        return len(self.memory.sent) - before

    def granted(self) -> bool | None:
        state = {c.channel: c.granted for c in self.project.store.consents_of(self.pid)}
        return state.get("*")

    def close(self) -> None:
        self.project.close()


@pytest.fixture
def loop(tmp_path, motorcade_pm, register_plugin, monkeypatch):
    register_plugin(motorcade_sources_csv, name="csv")
    register_plugin(motorcade_sources_jsonl, name="jsonl")
    memory = memory_channel_plugin("memory")
    register_plugin(memory, name="memory")
    made = []

    def make(directory: Path | None = None) -> Loop:
        made.append(Loop(directory or tmp_path / "p", motorcade_pm, memory, monkeypatch))
        return made[-1]

    yield make
    for item in made:
        item.close()


def test_an_unsubscribe_receipt_survives_reingesting_the_unchanged_export(loop):
    """The reported case: consent_all=yes without a date, an `unsubscribed` receipt (scope all), the same
    export read again: no marketing after the opt-out."""
    lp = loop()
    lp.crm("yes")
    assert lp.run() == 1
    lp.clock.at += dt.timedelta(hours=2)
    assert lp.receipt(lp.clock())
    for _ in range(3):
        lp.clock.at += dt.timedelta(hours=1)
        lp.crm("yes")  # the unchanged export, read again later
        assert lp.granted() is False
        assert lp.run() == 0


def test_a_grant_older_than_the_refusal_does_not_lift_it_and_a_newer_one_does(loop):
    lp = loop()
    lp.clock.at += dt.timedelta(hours=1)
    assert lp.receipt(lp.clock()) is False  # no send yet: nothing to receive
    lp.app("unsubscribe", lp.clock())
    assert lp.granted() is False
    lp.app("subscribe", lp.clock() - dt.timedelta(minutes=5))  # a late event from before the opt-out
    assert lp.granted() is False and lp.run() == 0
    lp.app("subscribe", lp.clock())  # an explicit grant with its own time after the refusal
    assert lp.granted() is True and lp.run() == 1


def test_an_undated_export_lifts_only_a_refusal_it_stated_itself_before_its_row_changed(loop):
    lp = loop()
    lp.crm("no")
    assert lp.granted() is False
    lp.clock.at += dt.timedelta(hours=1)
    lp.crm("yes")  # the export's own refusal, changed after it was read: the customer said yes since
    assert lp.granted() is True and lp.run() == 1
    lp.clock.at += dt.timedelta(hours=1)
    lp.receipt(lp.clock())
    lp.clock.at += dt.timedelta(hours=1)
    lp.crm("no")
    lp.clock.at += dt.timedelta(hours=1)
    lp.crm("")
    assert lp.granted() is False  # an empty column states nothing
    lp.crm("yes")  # changed after the export said no, which it said after the receipt: lifts both
    assert lp.granted() is True


def test_a_first_undated_grant_never_lifts_a_refusal_and_a_late_dated_refusal_beats_it(loop):
    lp = loop()
    lp.app("unsubscribe", lp.clock() - dt.timedelta(days=30))
    lp.crm("yes")  # the export says yes, no date: we cannot know it came after the opt-out
    assert lp.granted() is False
    other = loop(lp.directory.parent / "q")
    other.crm("yes")
    assert other.granted() is True
    other.app("unsubscribe", other.clock() - dt.timedelta(days=30))  # older than the read, but dated
    assert other.granted() is False


def test_store_rules_without_ingest(tmp_path):
    store = open_store(tmp_path / "s.db")
    t = dt.datetime(2026, 5, 1, tzinfo=UTC)
    with store.transaction():
        pid = store.create_person()
        assert store.set_consent(Consent(pid, "sms", False, t, "unsubscribe_event"))
        assert not store.set_consent(Consent(pid, "sms", True, t, "app"))  # the same second: the refusal stays
        assert not store.set_consent(Consent(pid, "sms", True, t + dt.timedelta(days=1), "crm"), undated=True,
                                     record_id=1)
        assert store.set_consent(Consent(pid, "sms", True, t + dt.timedelta(seconds=1), "app"))
        assert store.consents_of(pid)[0].granted
    store.close()


def test_merging_two_people_keeps_the_state_that_takes_precedence(tmp_path):
    store = open_store(tmp_path / "s.db")
    t = dt.datetime(2026, 5, 1, tzinfo=UTC)
    with store.transaction():
        a, b, c, d = (store.create_person() for _ in range(4))
        # a: an export's yes (undated, read later); b: an older receipt's opt-out -> the opt-out stays
        store.set_consent(Consent(a, "*", True, t + dt.timedelta(days=3), "crm"), undated=True, record_id=1)
        store.set_consent(Consent(b, "*", False, t, "unsubscribe_event"))
        # c: a dated subscribe after d's opt-out -> the grant stands
        store.set_consent(Consent(c, "*", True, t + dt.timedelta(days=1), "app"))
        store.set_consent(Consent(d, "*", False, t, "unsubscribe_event"))
        store.merge_people(b, [a], reason="test")
        store.merge_people(d, [c], reason="test")
        store.settle_identity()
    assert [(x.granted, x.source) for x in store.consents_of(b)] == [(False, "unsubscribe_event")]
    assert [(x.granted, x.source) for x in store.consents_of(d)] == [(True, "app")]
    store.close()


def test_an_export_with_a_consent_time_lifts_an_older_opt_out_only(loop):
    """`consent_times` gives an export's consent its own time: an explicit choice at that time."""
    lp = loop()
    toml = lp.directory / "motorcade.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'consents = { "*" = "consent_all" }', 'consents = { "*" = "consent_all" }\nconsent_times = { "*" = "consent_at" }'),
        encoding="utf-8")
    lp.project.close()
    lp.project = Project(lp.directory, plugin_manager=lp.project.plugins)

    def export(value: str, at: str) -> None:
        (lp.directory / "crm.csv").write_text(
            f"no,mobile,owner,consent_all,consent_at\nC1,13812345678,yes,{value},{at}\n", encoding="utf-8")
        ingest(lp.project, "crm", ingestor=project_ingestor(lp.project))

    lp.app("unsubscribe", lp.clock())  # 2026-11-23 10:00 Shanghai
    export("yes", "2026-11-23 09:59:00")  # said yes before the opt-out: the opt-out stays
    assert lp.granted() is False
    export("yes", "")  # no time: cannot prove it came after
    assert lp.granted() is False
    export("yes", "2026-11-23 10:05:00")  # an explicit yes after the opt-out
    assert lp.granted() is True and lp.run() == 1
    export("yes", "not a time")
    (row,) = lp.project.store.list_quarantine(source="crm")
    assert "column consent_at" in row.reason


# -- the property -------------------------------------------------------------------------------------

minutes = st.integers(min_value=1, max_value=600)
operations = st.lists(st.one_of(
    st.tuples(st.just("crm"), st.sampled_from(["yes", "no", ""])),
    st.tuples(st.just("app"), st.sampled_from(["subscribe", "unsubscribe"]), st.integers(0, 3 * 24 * 60)),
    st.tuples(st.just("receipt"), st.integers(0, 3 * 24 * 60)),
    st.tuples(st.just("wait"), minutes),
    st.tuples(st.just("run")),
), min_size=1, max_size=14)


class Choices:
    """What the person chose, as the test sees it: each choice with the latest time it may have been made
    (``hi``) and, for a grant, the time it was certainly made after (``after``)."""

    def __init__(self):
        self.refusals: list[dt.datetime] = []
        self.grants: list[dt.datetime] = []  # certainly made after this time
        self.crm_value: str | None = None
        self.crm_last_read: dt.datetime | None = None

    def crm(self, value: str, at: dt.datetime) -> None:
        if not value:
            return  # an empty column says nothing
        if value != self.crm_value:
            if value == "no":
                self.refusals.append(at)
            elif self.crm_value is not None:  # changed since the export last said no: made after that read
                self.grants.append(self.crm_last_read)
            self.crm_value = value
        self.crm_last_read = at

    def refused(self) -> bool:
        """Whether the latest explicit choice may be a refusal: a refusal no grant certainly follows."""
        return any(all(g < r for g in self.grants) for r in self.refusals)


@settings(max_examples=int(os.environ.get("CONSENT_EXAMPLES", "40")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(ops=operations)
def test_no_marketing_reaches_a_person_whose_latest_explicit_choice_is_a_refusal(loop, ops):
    with tempfile.TemporaryDirectory() as tmp:
        lp = loop(Path(tmp) / "p")
        choices = Choices()
        for op in ops:
            lp.clock.at += dt.timedelta(seconds=1)
            now = lp.clock()
            if op[0] == "crm":
                lp.crm(op[1])
                choices.crm(op[1], now)
            elif op[0] == "app":
                at = now - dt.timedelta(minutes=op[2])
                lp.app(op[1], at)
                (choices.grants if op[1] == "subscribe" else choices.refusals).append(at)
            elif op[0] == "receipt":
                at = now - dt.timedelta(minutes=op[1])
                if lp.receipt(at):
                    choices.refusals.append(at)
            elif op[0] == "wait":
                lp.clock.at += dt.timedelta(minutes=op[1])
            else:
                delivered = lp.run()
                if choices.refused():
                    assert delivered == 0, (ops, lp.project.store.consents_of(lp.pid))
                    assert lp.granted() is False
                elif not choices.refusals:
                    assert delivered >= 1  # nobody refused (opt_out mode): the campaign reaches them
        lp.close()
