"""The JPush channel against a local server that checks requests as JPush's REST API v3 documents them:
Basic auth base64(appKey:masterSecret), POST /v3/push, JSON fields and types; answers scripted per registration id."""

from __future__ import annotations

import base64
import json

import pytest

import motorcade_channels_jpush as jpush
from motorcade.activation.channel import ChannelContext, OutboundMessage
from motorcade.activation.testing import ProviderAPI, ProviderHandler
from motorcade.errors import ConfigError

APP_KEY, SECRET = "7d431e42dfa6a6d693ac2d04", "5e987ac6d2e04d95a9d8f0d1"
DOCUMENTED_FIELDS = {"platform", "audience", "notification", "message", "notification_3rd", "sms_message",
                     "options", "callback", "cid"}
SCRIPTED = {  # registration id -> (HTTP status, body, headers)
    "rid-gone": (400, {"error": {"code": 1011, "message": "cannot find user by this audience"}}, {}),
    "rid-busy": (429, {"error": {"code": 2002, "message": "Request times of the app_key exceed the limit"}},
                 {"X-Rate-Limit-Reset": "30"}),
    "rid-down": (503, {"error": {"code": 1000, "message": "Server error"}}, {}),
}


class FakeJPush(ProviderAPI):
    def __init__(self):
        super().__init__(Handler)
        self.requests: list[dict] = []


class Handler(ProviderHandler):
    content_type = "application/json"

    def do_POST(self):
        server: FakeJPush = self.server
        raw = self.read_body()
        expected = "Basic " + base64.b64encode(f"{APP_KEY}:{SECRET}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self.answer({"error": {"code": 1004, "message": "Authen failed"}}, 401)
        if self.path != "/v3/push" or not self.headers.get("Content-Type", "").startswith("application/json"):
            server.problems.append(f"path {self.path} / content type {self.headers.get('Content-Type')}")
            return self.answer({"error": {"code": 1003, "message": "bad request"}}, 400)
        body = json.loads(raw)
        server.requests.append(body)
        problems = []
        if set(body) - DOCUMENTED_FIELDS:
            problems.append(f"undocumented fields {set(body) - DOCUMENTED_FIELDS}")
        if body.get("platform") not in ("all", ["android", "ios"], ["android"], ["ios"]):
            problems.append("platform")
        ids = body.get("audience", {}).get("registration_id")
        if not (isinstance(ids, list) and 1 <= len(ids) <= 1000 and all(isinstance(i, str) for i in ids)):
            problems.append("audience.registration_id must be a list of 1..1000 ids")
        notification = body.get("notification", {})
        if not isinstance(notification.get("alert"), str) or not notification["alert"]:
            problems.append("notification.alert")
        options = body.get("options", {})
        if not isinstance(options.get("sendno"), int) or not isinstance(options.get("apns_production"), bool) \
                or not isinstance(options.get("time_to_live"), int):
            problems.append("options types")
        if len(json.dumps(body["notification"], ensure_ascii=False).encode()) > 4000:
            problems.append("notification over 4000 bytes")
        if problems:
            server.problems.extend(problems)
            return self.answer({"error": {"code": 1003, "message": "; ".join(problems)}}, 400)
        status, answer, headers = SCRIPTED.get(ids[0], (200, {"sendno": str(options["sendno"]),
                                                              "msg_id": str(54043195528000 + len(server.requests))}, {}))
        self.answer(answer, status, headers)


@pytest.fixture
def server():
    fake = FakeJPush().start()
    yield fake
    fake.shutdown()


def channel(server, **extra):
    settings = {"app_key": APP_KEY, "master_secret": SECRET, "endpoint": f"http://127.0.0.1:{server.server_address[1]}",
                **extra}
    return jpush.JPushChannel(settings, ChannelContext(project_dir="."))


def message(key, rid, body="您的爱车保养到期，点击预约", **params):
    return OutboundMessage(idempotency_key=key, person_id=1, address=rid, template="t", body=body, subject="保养提醒",
                           params=params)


def test_push_reaches_the_server_as_documented(server):
    results = channel(server).send([message("k1", "1a0018970af2f2d5d4a", link="https://go.example.cn/s/Ab3x9QzK2mP")])
    assert not server.problems
    assert [r.status for r in results] == ["sent"]
    assert results[0].provider_message_id == "54043195528001"
    body = server.requests[0]
    assert body["audience"] == {"registration_id": ["1a0018970af2f2d5d4a"]}
    assert body["notification"]["android"] == {"alert": "您的爱车保养到期，点击预约", "title": "保养提醒",
                                               "extras": {"idempotency_key": "k1",
                                                          "url": "https://go.example.cn/s/Ab3x9QzK2mP"}}
    assert body["options"]["sendno"] == jpush.sendno("k1") and body["options"]["apns_production"] is True


def test_answers_are_classified(server):
    results = {r.idempotency_key: r for r in channel(server).send(
        [message("gone", "rid-gone"), message("busy", "rid-busy"), message("down", "rid-down"),
         message("long", "rid-ok", body="长" * 5000)])}
    assert results["gone"].status == "permanent" and "1011" in results["gone"].detail
    assert results["busy"].status == "transient" and results["busy"].retry_after is not None
    assert results["down"].status == "transient"
    assert results["long"].status == "sent"  # cut to fit JPush's 4000-byte notification
    assert not server.problems


def test_a_wrong_secret_is_transient_and_says_so(server):
    [result] = channel(server, master_secret="wrong").send([message("k", "rid-ok")])
    assert result.status == "transient" and "app_key and master_secret" in result.detail


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="app_key"):
        jpush.JPushChannel({"master_secret": "x"}, ChannelContext(project_dir="."))
    with pytest.raises(ConfigError, match="Master Secret"):
        jpush.JPushChannel({"app_key": "a"}, ChannelContext(project_dir="."))
