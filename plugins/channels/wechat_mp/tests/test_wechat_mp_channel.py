"""The mini-program subscribe-message channel against a local server that checks requests as WeChat documents
them (stable_token, subscribe/send fields, field lengths by kind) and keeps its own one-subscription-one-message
ledger; the channel must never spend a subscription the user has not given."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
import zoneinfo


import motorcade_channels_wechat_mp as mp
from motorcade.activation.runner import run_once
from motorcade.activation.settings import ActivationContext
from motorcade.activation.testing import ProviderAPI, ProviderHandler
from motorcade.model import Event
from motorcade.project import Project

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
APPID, SECRET, TEMPLATE = "wxmp0123456789ab", "mpSecret", "bDmywsp2oEHjwAadTGKkUHpzhmMhO5"
DOCUMENTED = {"touser", "template_id", "page", "data", "miniprogram_state", "lang"}


class FakeWeChat(ProviderAPI):
    def __init__(self):
        super().__init__(Handler)
        self.subscriptions: dict[tuple[str, str], int] = {}  # WeChat's own ledger
        self.sent: list[dict] = []
        self.calls = 0


class Handler(ProviderHandler):
    content_type = "application/json"

    def do_POST(self):
        server: FakeWeChat = self.server
        path, _, query = self.path.partition("?")
        body = json.loads(self.read_body())
        if path == "/cgi-bin/stable_token":
            if body != {"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": False}:
                server.problems.append(f"stable_token body {body}")
                return self.answer({"errcode": 40125, "errmsg": "invalid appsecret"})
            return self.answer({"access_token": "ACCESS_TOKEN_1", "expires_in": 7200})
        server.calls += 1
        if path != "/cgi-bin/message/subscribe/send" or dict(urllib.parse.parse_qsl(query)) != {"access_token": "ACCESS_TOKEN_1"}:
            server.problems.append(f"path {self.path}")
            return self.answer({"errcode": 40001, "errmsg": "invalid credential"})
        problems = []
        if set(body) - DOCUMENTED or not {"touser", "template_id", "data"} <= set(body):
            problems.append(f"fields {sorted(body)}")
        if body.get("miniprogram_state") not in ("developer", "trial", "formal") or body.get("lang") not in (
                "zh_CN", "en_US", "zh_HK", "zh_TW"):
            problems.append("miniprogram_state / lang")
        for field, value in body.get("data", {}).items():
            kind = field.rstrip("0123456789")
            if set(value) != {"value"} or not isinstance(value["value"], str):
                problems.append(f"data.{field} must be {{'value': text}}")
            elif len(value["value"]) > mp.FIELD_LIMITS.get(kind, 10**6):
                problems.append(f"data.{field} longer than a {kind} allows")
        if problems:
            server.problems.extend(problems)
            return self.answer({"errcode": 47003, "errmsg": "argument invalid! " + "; ".join(problems)})
        ledger = (body["touser"], body["template_id"])
        if server.subscriptions.get(ledger, 0) <= 0:
            return self.answer({"errcode": 43101, "errmsg": "user refuse to accept the msg"})
        server.subscriptions[ledger] -= 1
        server.sent.append(body)
        self.answer({"errcode": 0, "errmsg": "ok", "msgid": 3180000000 + len(server.sent)})


CONFIG = """
[project]
name = "mp"
timezone = "Asia/Shanghai"

[activation]
public_url = "https://go.example.cn"

[channels.wechat_mp]
appid = "{appid}"
secret = "{secret}"
api_base = "{api}"

[channels.wechat_mp.templates]
service_due = {{ id = "{template}", page = "pages/booking/index?c={{link_code}}", data = {{ thing1 = "subject", thing2 = "body", thing3 = "东风之星4S店" }} }}
"""
RULES = """
segment owners { where profile.is_owner = true }
campaign due "保养到期" {
  audience owners
  schedule daily at 10:00
  send to all members
  via wechat_mp template "service_due"
}
"""


def test_one_subscription_one_message(tmp_path):
    from motorcade.plugins import load_plugins

    server = FakeWeChat().start()
    (tmp_path / "motorcade.toml").write_text(CONFIG.format(appid=APPID, secret=SECRET, api=server.base,
                                                           template=TEMPLATE), encoding="utf-8")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.mc").write_text(RULES, encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "service_due.txt").write_text(
        "Subject: 您的爱车保养到期提醒\n\n{{ person.name }}，您的爱车已行驶一万公里，欢迎到店保养 {{ track('https://dealer.example/b') }}",
        encoding="utf-8")
    project = Project(tmp_path, plugin_manager=load_plugins())
    store = project.store
    day1 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=SH)
    with store.transaction():
        people = [store.create_person({"name": f"客户{i}", "is_owner": True}) for i in range(3)]
        for person in people:
            store.conn.execute("INSERT INTO identifiers (type, value, person_id) VALUES ('wechat_mp_openid', ?, ?)",
                               (f"oMP{person}", person))
    # person 0 accepted once, person 1 rejected, person 2 never asked; WeChat's ledger agrees
    store.insert_events([
        Event(name="mp_subscribe", ts=day1 - dt.timedelta(days=1), person_id=people[0], source="app",
              properties={"template_id": TEMPLATE, "result": "accept"}, dedup_key="s1"),
        Event(name="mp_subscribe", ts=day1 - dt.timedelta(days=1), person_id=people[1], source="app",
              properties={"template_id": TEMPLATE, "result": "reject"}, dedup_key="s2")])
    server.subscriptions[(f"oMP{people[0]}", TEMPLATE)] = 1
    store.record_segment_run("owners", people, revision="t", as_of=day1, computed_at=day1, duration_ms=0, plan=None)
    run_once(ActivationContext.for_project(project, clock=lambda: day1, worker_id="w1"))
    assert not server.problems
    assert server.calls == 1  # only the person with a subscription cost a call
    [sent] = server.sent
    assert sent["touser"] == f"oMP{people[0]}" and sent["template_id"] == TEMPLATE
    assert sent["data"]["thing1"]["value"] == "您的爱车保养到期提醒"
    assert len(sent["data"]["thing2"]["value"]) == 20 and sent["data"]["thing2"]["value"].endswith("…")
    assert sent["data"]["thing3"] == {"value": "东风之星4S店"}
    assert sent["page"].startswith("pages/booking/index?c=") and len(sent["page"]) == len("pages/booking/index?c=") + 11
    statuses = {s["person_id"]: (s["status"], s["reason"] or "") for s in store.list_sends(limit=10)}
    assert statuses[people[0]][0] == "sent"
    assert statuses[people[1]][0] == "dead" and "no unused subscription" in statuses[people[1]][1]
    assert statuses[people[2]][0] == "dead"
    # the next day: person 0's subscription is spent; nothing is sent, no call is made
    day2 = day1 + dt.timedelta(days=1)
    run_once(ActivationContext.for_project(project, clock=lambda: day2, worker_id="w1"))
    assert server.calls == 1 and len(server.sent) == 1
    second = [s for s in store.list_sends(limit=10) if s["person_id"] == people[0] and s["status"] != "sent"]
    assert [(s["status"], "no unused subscription" in (s["reason"] or "")) for s in second] == [("dead", True)]
    project.close()
    server.shutdown()


def test_field_values_fit_their_kind():
    assert mp.field_value("thing", "一" * 20) == "一" * 20
    assert mp.field_value("thing", "一" * 21) == "一" * 19 + "…"
    assert mp.field_value("phrase", "已完成保养") == "已完成保养"
    assert mp.field_value("time", "2026年11月23日 10:00") == "2026年11月23日 10:00"
    assert mp.field_kind("character_string12") == "character_string"
